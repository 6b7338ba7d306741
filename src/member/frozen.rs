//! A built member frozen to bytes, so the store can keep it beside its
//! config and a restart thaws it instead of building it again: parsing,
//! walking and serializing are most of a start-up's CPU.
//!
//! A frozen member is only as good as the binary that froze it, because the
//! rules that judged the config live in the code. So each one carries the
//! [`validation_stamp`](super::validation_stamp) it was built under (binary
//! and Kong target), and whether it holds application registration, the one
//! thing whose judgement depends on the holder (only the default group may).
//! A thaw under any other stamp, or of application registration outside
//! the default group, is [`Unthawed::Stale`], and the caller builds. Only clean
//! members are frozen: a member with errors is never served, so nothing
//! needs it fast.
//!
//! Layout: a blake3 hash of everything after it, the head's length (u32,
//! little-endian), the head (postcard), then the chunks' bytes, which the
//! thawed member's chunks share without a copy. The hash is checked on every
//! thaw: a snapshot's hash is made of its chunks' hashes, so a chunk whose
//! bytes had changed on disk would otherwise be served under the right ETag.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Chunk, KeyClass, Member, MemberInfo, MemberKey, MemberVaultRef, member_hash};
use crate::config::{Coll, EntityPaths, KeyKind, RouteMatch};
use crate::intern::Interner;
use crate::report::Note;

/// Bytes of the checksum that starts a frozen member.
const SUM: usize = 32;

/// The head's first fields, read before the rest: a row from a binary
/// whose head has another layout is stale, not damaged.
#[derive(Deserialize)]
struct Prefix<'a> {
    stamp: &'a str,
    blob: &'a str,
    app_registration: bool,
}

#[derive(Serialize, Deserialize)]
struct Head<'a> {
    stamp: &'a str,
    /// The hash of the blob it was built from: a row under another key is
    /// damaged.
    blob: &'a str,
    app_registration: bool,
    /// `(coll, field, parent, index)` of each entity (`EntityPaths::raw`).
    places: Vec<(u8, u8, u32, u32)>,
    #[serde(borrow)]
    names: Vec<&'a str>,
    /// `(kind, entity, value)`; the class's collection is the entity's.
    #[serde(borrow)]
    keys: Vec<(u8, u32, &'a str)>,
    /// `(prefix, coll, path, reference)`.
    #[serde(borrow)]
    vault_refs: Vec<(&'a str, u8, &'a str, &'a str)>,
    chunks: Vec<FrozenChunk>,
    kong_chunks: Option<Vec<FrozenChunk>>,
    #[serde(borrow)]
    acl_groups: Vec<(&'a str, &'a str)>,
    routes: Cow<'a, [RouteMatch]>,
    notes: Cow<'a, [Note]>,
}

/// A chunk: its bytes are `start..end` of the region after the head.
#[derive(Serialize, Deserialize)]
struct FrozenChunk {
    coll: u8,
    start: u32,
    end: u32,
    hash: [u8; 32],
    count: u64,
}

/// A chunk checked against the row: its collection, its bytes' place in
/// the row, its hash and its entity count.
type Span = (Coll, Range<usize>, [u8; 32], usize);

/// Why a frozen member was not thawed.
#[derive(Debug, PartialEq, Eq)]
pub enum Unthawed {
    /// Frozen by another binary, for another target, or for a holder that
    /// is (or is not) the default group: expected after an upgrade.
    Stale,
    /// The bytes do not decode to a member: worth a warning, never fatal.
    Damaged(String),
}

impl Member {
    /// This member, built from the blob with hash `blob`, frozen under
    /// `stamp`; `None` when it is not clean or its `Sym`s are not `interner`'s.
    pub fn freeze(&self, interner: &Interner, stamp: &str, blob: &str) -> Option<Vec<u8>> {
        if !self.is_clean() || !self.unresolved.is_empty() || self.interner_id != interner.id() {
            return None;
        }
        let mut region: Vec<u8> = Vec::with_capacity(self.fragment_bytes());
        let mut placed: Vec<(*const u8, usize, Range<u32>)> = Vec::new();
        let mut freeze_chunk = |c: &Chunk| -> Option<FrozenChunk> {
            let at = (c.bytes.as_ptr(), c.bytes.len());
            let range = match placed.iter().find(|(p, n, _)| (*p, *n) == at) {
                // Kong's form shares unchanged collections with decK's.
                Some((_, _, r)) => r.clone(),
                None => {
                    let start = u32::try_from(region.len()).ok()?;
                    region.extend_from_slice(&c.bytes);
                    let r = start..u32::try_from(region.len()).ok()?;
                    placed.push((at.0, at.1, r.clone()));
                    r
                }
            };
            Some(FrozenChunk {
                coll: c.coll as u8,
                start: range.start,
                end: range.end,
                hash: *c.hash.as_bytes(),
                count: c.count as u64,
            })
        };
        let chunks: Vec<FrozenChunk> = self
            .chunks
            .iter()
            .map(&mut freeze_chunk)
            .collect::<Option<_>>()?;
        let kong_chunks = match &self.kong_chunks {
            Some(k) => Some(
                k.iter()
                    .map(&mut freeze_chunk)
                    .collect::<Option<Vec<_>>>()?,
            ),
            None => None,
        };
        let (places, names) = self.paths.raw();
        let head = Head {
            stamp,
            blob,
            app_registration: self.app_registration,
            places: places.collect(),
            names: names.iter().map(|n| &**n).collect(),
            keys: self
                .keys
                .iter()
                .map(|k| (k.class.kind as u8, k.entity, interner.resolve(k.sym)))
                .collect(),
            vault_refs: self
                .vault_refs
                .iter()
                .map(|v| {
                    (
                        interner.resolve(v.prefix),
                        v.coll as u8,
                        &*v.path,
                        v.reference.as_str(),
                    )
                })
                .collect(),
            chunks,
            kong_chunks,
            acl_groups: self
                .acl_groups
                .iter()
                .map(|(g, p)| (g.as_str(), &**p))
                .collect(),
            routes: Cow::Borrowed(&self.routes),
            notes: Cow::Borrowed(&self.notes),
        };
        let head = postcard::to_allocvec(&head).ok()?;
        let mut out = Vec::with_capacity(SUM + 4 + head.len() + region.len());
        out.extend_from_slice(&[0; SUM]);
        out.extend_from_slice(&u32::try_from(head.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&region);
        let sum = blake3::hash(&out[SUM..]);
        out[..SUM].copy_from_slice(sum.as_bytes());
        Some(out)
    }

    /// The stamp `row` was frozen under, if it has a readable head: after
    /// an upgrade, a stale member thawed under its own stamp serves the
    /// snapshot it was published with while it is rebuilt.
    pub fn frozen_stamp(row: &[u8]) -> Option<&str> {
        let len = row
            .get(SUM..SUM + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_le_bytes(b) as usize)?;
        let head = row.get(SUM + 4..SUM + 4 + len)?;
        postcard::take_from_bytes::<Prefix>(head)
            .ok()
            .map(|(p, _)| p.stamp)
    }

    /// The member `row` froze from blob `blob`, held by `info`, with its
    /// `Sym`s interned in `interner`, if it was frozen under `stamp` for a
    /// holder like `info`.
    pub fn thaw(
        info: MemberInfo,
        row: Vec<u8>,
        interner: &Interner,
        stamp: &str,
        blob: &str,
    ) -> Result<Member, Unthawed> {
        let damaged = |why: &str| Unthawed::Damaged(why.to_string());
        let len = row
            .get(SUM..SUM + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_le_bytes(b) as usize)
            .ok_or_else(|| damaged("shorter than its header"))?;
        if blake3::hash(&row[SUM..]).as_bytes()[..] != row[..SUM] {
            return Err(damaged("its checksum does not match"));
        }
        let base = SUM + 4 + len;
        let head_bytes = row
            .get(SUM + 4..base)
            .ok_or_else(|| damaged("shorter than its head"))?;
        let (prefix, _) = postcard::take_from_bytes::<Prefix>(head_bytes)
            .map_err(|e| Unthawed::Damaged(e.to_string()))?;
        if prefix.stamp != stamp || (prefix.app_registration && !info.is_default) {
            return Err(Unthawed::Stale);
        }
        if prefix.blob != blob {
            return Err(damaged("it was frozen from another config"));
        }
        let head: Head =
            postcard::from_bytes(head_bytes).map_err(|e| Unthawed::Damaged(e.to_string()))?;
        let region = row.len() - base;
        let names = head.names.iter().map(|&n| Box::from(n)).collect();
        let paths = EntityPaths::from_raw(head.places.iter().copied(), names)
            .ok_or_else(|| damaged("an entity's place is out of range"))?;
        let mut keys = Vec::with_capacity(head.keys.len());
        for &(kind, entity, value) in &head.keys {
            let kind = *KeyKind::ALL
                .get(kind as usize)
                .ok_or_else(|| damaged("unknown key kind"))?;
            if entity as usize >= paths.len() {
                return Err(damaged("a key's entity is out of range"));
            }
            keys.push(MemberKey {
                class: KeyClass {
                    coll: paths.coll(entity),
                    kind,
                },
                sym: interner.intern(value),
                entity,
            });
        }
        let coll = |c: u8| {
            Coll::ALL
                .get(c as usize)
                .copied()
                .ok_or_else(|| damaged("unknown collection"))
        };
        let mut vault_refs = Vec::with_capacity(head.vault_refs.len());
        for &(prefix, c, path, reference) in &head.vault_refs {
            vault_refs.push(MemberVaultRef {
                prefix: interner.intern(prefix),
                coll: coll(c)?,
                path: Arc::from(path),
                reference: reference.to_string(),
            });
        }
        // Checked here, sliced once the head no longer borrows the row.
        let spans = |list: &[FrozenChunk]| -> Result<Vec<Span>, Unthawed> {
            list.iter()
                .map(|c| {
                    let (s, e) = (c.start as usize, c.end as usize);
                    if s > e || e > region {
                        return Err(damaged("a chunk is out of range"));
                    }
                    Ok((coll(c.coll)?, base + s..base + e, c.hash, c.count as usize))
                })
                .collect()
        };
        let chunk_spans = spans(&head.chunks)?;
        let kong_spans = head.kong_chunks.as_deref().map(spans).transpose()?;
        // What snapshots assume of a member's chunks: one per collection,
        // in order, counting no more entities than it has.
        let entities = (0..paths.len() as u32)
            .filter(|&e| paths.coll(e) != Coll::PluginConfigs)
            .count();
        for list in std::iter::once(&chunk_spans).chain(kong_spans.as_ref()) {
            let ordered = list.windows(2).all(|w| w[0].0 < w[1].0);
            if !ordered || list.iter().any(|c| c.3 > paths.len()) {
                return Err(damaged("its chunks are out of order or over-counted"));
            }
        }
        let acl_groups = head
            .acl_groups
            .iter()
            .map(|&(g, p)| (g.to_string(), Arc::from(p)))
            .collect();
        let app_registration = head.app_registration;
        let routes = head.routes.into_owned();
        let mut notes = head.notes.into_owned();
        for n in &mut notes {
            n.member.clone_from(&info.name);
        }
        let whole = Bytes::from(row);
        let slice = |spans: Vec<Span>| -> Vec<Chunk> {
            spans
                .into_iter()
                .map(|(coll, r, hash, count)| Chunk {
                    coll,
                    bytes: whole.slice(r),
                    hash: blake3::Hash::from_bytes(hash),
                    count,
                })
                .collect()
        };
        let chunks = slice(chunk_spans);
        let kong_chunks = kong_spans.map(slice);
        let hash = member_hash(&chunks, kong_chunks.as_deref());
        Ok(Member {
            info,
            entities,
            paths,
            keys,
            vault_refs,
            errors: Vec::new(),
            unresolved: Vec::new(),
            chunks,
            kong_chunks,
            acl_groups,
            routes,
            notes,
            hash,
            interner_id: interner.id(),
            app_registration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;

    #[test]
    fn kinds_and_collections_round_trip_through_their_index() {
        // A kind added to the enum must be added to `ALL` (and here): a
        // member holding a kind `ALL` lacks would never thaw.
        let last = |k: KeyKind| match k {
            KeyKind::Id
            | KeyKind::Name
            | KeyKind::Username
            | KeyKind::CustomId
            | KeyKind::InstanceName
            | KeyKind::UpstreamTarget
            | KeyKind::SetKid
            | KeyKind::Prefix
            | KeyKind::GlobalPlugin
            | KeyKind::SecretKey
            | KeyKind::SecretUsername
            | KeyKind::SecretClientId => false,
            KeyKind::PluginScope => true,
        };
        assert!(last(KeyKind::ALL[KeyKind::ALL.len() - 1]));
        for (i, k) in KeyKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for (i, c) in Coll::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    const DOC: &str = r#"{"_format_version":"3.0",
        "services":[{"name":"s","host":"h","routes":[{"name":"r","paths":["/a"],
            "plugins":[{"name":"key-auth"}]}]}],
        "consumers":[{"username":"u","keyauth_credentials":[{"key":"k"}],"groups":[{"name":"g"}]}],
        "consumer_groups":[{"name":"g"}],
        "vaults":[{"name":"env","prefix":"my-env"}],
        "plugins":[{"name":"acl","config":{"allow":["{vault://my-env/x}"]}}]}"#;

    /// What a member is, spelled without `Sym` numbers (they depend on the
    /// interner's history).
    fn spelled(m: &Member, interner: &Interner) -> String {
        let keys: Vec<_> = m
            .keys
            .iter()
            .map(|k| (k.class, interner.resolve(k.sym).to_string(), m.key_path(k)))
            .collect();
        let vaults: Vec<_> = m
            .vault_refs
            .iter()
            .map(|v| {
                (
                    interner.resolve(v.prefix).to_string(),
                    v.coll,
                    &v.path,
                    &v.reference,
                )
            })
            .collect();
        let paths: Vec<String> = (0..m.paths.len() as u32).map(|e| m.paths.path(e)).collect();
        format!(
            "{:?} {} {paths:?} {keys:?} {vaults:?} {:?} {:?} {:?} {:?} {:?} {} {}",
            m.info,
            m.entities,
            m.chunks,
            m.kong_chunks,
            m.acl_groups,
            m.routes,
            m.notes,
            m.hash,
            m.app_registration
        )
    }

    #[test]
    fn a_thawed_member_is_the_member_that_was_frozen() {
        let built_in = Interner::new();
        let info = MemberInfo::new("m", "blue", false);
        let m = Member::build(info.clone(), DOC.as_bytes(), Format::Json, &built_in);
        assert!(m.is_clean(), "{:?}", m.errors);
        assert!(m.kong_chunks.is_some(), "the document has decK-only keys");
        let row = m
            .freeze(&built_in, "s1", "b")
            .expect("a clean member freezes");
        let thawed_in = Interner::new();
        thawed_in.intern("something else first");
        let t = Member::thaw(info, row, &thawed_in, "s1", "b").expect("thaws");
        assert_eq!(spelled(&t, &thawed_in), spelled(&m, &built_in));
    }

    #[test]
    fn a_thaw_under_another_stamp_or_holder_is_stale_and_damage_is_an_error() {
        let i = Interner::new();
        let info = MemberInfo::new("m", "blue", false);
        let m = Member::build(info.clone(), DOC.as_bytes(), Format::Json, &i);
        let row = m.freeze(&i, "s1", "b").expect("freezes");
        let thaw = |info: &MemberInfo, row: &[u8], stamp| {
            Member::thaw(info.clone(), row.to_vec(), &i, stamp, "b").map(|_| ())
        };
        assert_eq!(thaw(&info, &row, "s2"), Err(Unthawed::Stale));
        assert_eq!(Member::frozen_stamp(&row), Some("s1"));
        assert_eq!(Member::frozen_stamp(&row[..SUM + 2]), None);
        assert!(matches!(
            Member::thaw(info.clone(), row.clone(), &i, "s1", "another blob"),
            Err(Unthawed::Damaged(_))
        ));
        let default = MemberInfo::new("m", "blue", true);
        assert_eq!(
            thaw(&default, &row, "s1"),
            Ok(()),
            "judged the same in any group"
        );
        assert_eq!(thaw(&info, &row, "s1"), Ok(()));
        // Application registration is clean only in the default group.
        let app = br#"{"_format_version":"3.0","services":[{"name":"s","host":"h",
            "plugins":[{"name":"konnect-application-auth","config":{"key_names":["k"],"scope":"s"}}]}]}"#;
        let m = Member::build(default.clone(), app, Format::Json, &i);
        assert!(m.is_clean(), "{:?}", m.errors);
        let app_row = m.freeze(&i, "s1", "b").expect("freezes");
        assert_eq!(thaw(&default, &app_row, "s1"), Ok(()));
        assert_eq!(thaw(&info, &app_row, "s1"), Err(Unthawed::Stale));
        // Every truncation and every flipped byte is refused as damage.
        for n in 0..row.len() {
            assert!(matches!(
                thaw(&info, &row[..n], "s1"),
                Err(Unthawed::Damaged(_))
            ));
            let mut bad = row.clone();
            bad[n] ^= 0x5a;
            assert!(
                matches!(thaw(&info, &bad, "s1"), Err(Unthawed::Damaged(_))),
                "byte {n}"
            );
        }
        // A head that checks out but says nonsense (a buggy writer): every
        // flipped byte is refused or thaws to something, and none panics.
        let len = u32::from_le_bytes(row[SUM..SUM + 4].try_into().expect("4 bytes")) as usize;
        let mut refused = 0;
        for n in SUM + 4..SUM + 4 + len {
            let mut bad = row.clone();
            bad[n] ^= 0x5a;
            let sum = blake3::hash(&bad[SUM..]);
            bad[..SUM].copy_from_slice(sum.as_bytes());
            if let Ok(m) = Member::thaw(info.clone(), bad, &i, "s1", "b") {
                for e in 0..m.paths.len() as u32 {
                    let _ = m.paths.path(e);
                }
            } else {
                refused += 1;
            }
        }
        assert!(refused > 0, "some nonsense must be refused");
    }

    #[test]
    fn a_member_with_errors_is_not_frozen() {
        let i = Interner::new();
        let m = Member::build(
            MemberInfo::new("m", "m", false),
            br#"{"_format_version":"3.0","services":[{"name":"s"}]}"#,
            Format::Json,
            &i,
        );
        assert!(!m.is_clean());
        assert!(m.freeze(&i, "s1", "b").is_none());
    }
}

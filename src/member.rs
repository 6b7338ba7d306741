//! One member config, validated alone, interned and indexed, with its
//! entities pre-serialized once as JSON fragments for snapshots.
//!
//! A `Member` is immutable and shared by `Arc`: building one is the expensive
//! part of an update (parse, check, serialize), and it happens before — and
//! outside of — the single writer. Knows nothing about other members.

use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::config::{self, Coll, Format, KeyKind, KongTarget, Model, RefBy, RouteMatch};
use crate::intern::{Interner, Sym};
use crate::report::{ErrorKind, MAX_MEMBER_ERRORS, MemberError, Note, more_errors};

/// Who a member is and where it sits.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    /// Fixes the merge order; a group's UUID in the daemon, the file stem in the CLI.
    pub id: String,
    /// What findings call the member.
    pub name: String,
    /// Only the default group may hold application registration (README: Finding codes, `app_registration_outside_default`).
    pub is_default: bool,
}

impl MemberInfo {
    pub fn new(id: impl Into<String>, name: impl Into<String>, is_default: bool) -> MemberInfo {
        MemberInfo {
            id: id.into(),
            name: name.into(),
            is_default,
        }
    }

    /// A member known only by its id (a group since deleted, a file stem):
    /// named by it, and not the default group.
    pub fn unnamed(id: impl ToString) -> MemberInfo {
        let id = id.to_string();
        MemberInfo::new(id.clone(), id, false)
    }
}

/// A key this member holds that must be unique across a composite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyClass {
    pub coll: Coll,
    pub kind: KeyKind,
}

#[derive(Clone, Debug)]
pub struct MemberKey {
    pub class: KeyClass,
    pub sym: Sym,
    /// Path of the entity holding the key.
    pub path: Arc<str>,
}

/// An ID association that names nothing in this member. Alone it is an
/// `unresolved_reference`; in a composite where another member holds the
/// target it becomes a `cross_member_reference`.
#[derive(Clone, Debug)]
pub struct UnresolvedRef {
    /// Index of the matching `unresolved_reference` in `Member::errors`.
    pub error: usize,
    /// The keys of the target that would have matched.
    pub candidates: Vec<(KeyClass, Sym)>,
    pub source_label: String,
    /// What the referencing entity is (`route`).
    pub source_noun: &'static str,
    pub target_noun: &'static str,
    pub value: String,
}

#[derive(Clone, Debug)]
pub struct MemberVaultRef {
    pub prefix: Sym,
    pub coll: Coll,
    pub path: Arc<str>,
    pub reference: String,
}

/// One collection's top-level entities of this member, serialized and
/// comma-joined, ready to be spliced into a snapshot.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub coll: Coll,
    pub bytes: Bytes,
    pub hash: blake3::Hash,
    pub count: usize,
}

#[derive(Debug)]
pub struct Member {
    pub info: MemberInfo,
    pub entities: usize,
    pub keys: Vec<MemberKey>,
    pub vault_refs: Vec<MemberVaultRef>,
    pub errors: Vec<MemberError>,
    pub unresolved: Vec<UnresolvedRef>,
    /// The decK form of its top-level entities, in `Coll::ALL` order, only
    /// non-empty collections.
    pub chunks: Vec<Chunk>,
    /// Kong's declarative form (`config::declarative`), when it differs
    /// from the decK form; otherwise `chunks` is both.
    pub kong_chunks: Option<Vec<Chunk>>,
    /// ACL group names of its consumers, with the ACL's path.
    pub acl_groups: Vec<(String, Arc<str>)>,
    /// What its routes match (for `overlapping_route` warnings).
    pub routes: Vec<RouteMatch>,
    /// What was not checked (a plugin config not modelled).
    pub notes: Vec<Note>,
    pub hash: blake3::Hash,
    /// The interner its `Sym`s come from (`Interner::id`).
    pub interner_id: u64,
}

impl Member {
    /// Parses, validates and indexes one member config, for the default
    /// data planes (Kong Gateway Enterprise with its bundled plugins).
    pub fn build(info: MemberInfo, bytes: &[u8], format: Format, interner: &Interner) -> Member {
        Member::build_for(info, bytes, format, interner, &KongTarget::default())
    }

    /// [`Member::build`] for the given data planes (`--kong-edition`, `--plugins`).
    pub fn build_for(
        info: MemberInfo,
        bytes: &[u8],
        format: Format,
        interner: &Interner,
        target: &KongTarget,
    ) -> Member {
        Member::from_model(
            info,
            config::read_member_for(bytes, format, target),
            interner,
        )
    }

    pub fn from_model(info: MemberInfo, model: Model, interner: &Interner) -> Member {
        let mut errors = model.errors;
        // Errors past `MAX_MEMBER_ERRORS`: how many, and the kind of the first.
        let mut more = Capped {
            count: model.more_errors,
            kind: (model.more_errors > 0).then_some(ErrorKind::SchemaError),
        };
        let mut keys = Vec::new();
        // Every key of this member: (class, sym) → path of its first holder.
        let mut seen: AHashMap<(KeyClass, Sym), Arc<str>> = AHashMap::new();
        let mut entities = 0;

        for e in &model.entities {
            if e.coll != Coll::PluginConfigs {
                entities += 1;
            }
            let path: Arc<str> = Arc::from(e.path.as_str());
            for k in &e.keys {
                let class = KeyClass {
                    coll: e.coll,
                    kind: k.kind,
                };
                let sym = interner.intern(&k.value);
                match seen.get(&(class, sym)) {
                    Some(first) => more.push(&mut errors, ErrorKind::DuplicateInMember, || {
                        MemberError::new(
                            ErrorKind::DuplicateInMember,
                            e.coll.name(),
                            e.path.clone(),
                            duplicate_message(e.coll, k.kind, &k.value, first),
                        )
                    }),
                    None => {
                        seen.insert((class, sym), path.clone());
                        if k.kind.conflict().is_some() {
                            keys.push(MemberKey {
                                class,
                                sym,
                                path: path.clone(),
                            });
                        }
                    }
                }
            }
            if let Some(name) = &e.plugin
                && name == "konnect-application-auth"
                && !info.is_default
            {
                more.push(&mut errors, ErrorKind::AppRegistrationOutsideDefault, || {
                    MemberError::new(
                        ErrorKind::AppRegistrationOutsideDefault,
                        e.coll.name(),
                        e.path.clone(),
                        "application registration is only supported in the default runtime group: move this `konnect-application-auth` plugin to the default group's config",
                    )
                });
            }
        }

        let mut unresolved = Vec::new();
        for e in &model.entities {
            for r in &e.refs {
                let sym = interner.intern(&r.value);
                let candidates = ref_candidates(r.target, r.by, sym);
                if candidates.iter().any(|c| seen.contains_key(c)) {
                    continue;
                }
                if errors.len() >= MAX_MEMBER_ERRORS {
                    more.count += 1;
                    more.kind.get_or_insert(ErrorKind::UnresolvedReference);
                    continue;
                }
                unresolved.push(UnresolvedRef {
                    error: errors.len(),
                    candidates,
                    source_label: e.label.clone(),
                    source_noun: e.coll.noun(),
                    target_noun: r.target.noun(),
                    value: r.value.clone(),
                });
                errors.push(MemberError::new(
                    ErrorKind::UnresolvedReference,
                    e.coll.name(),
                    r.path.clone(),
                    format!(
                        "{} names {} {}, which is not in member '{}'",
                        e.label,
                        r.target.noun(),
                        crate::report::quote(&r.value),
                        info.name
                    ),
                ));
            }
        }

        let vault_refs = model
            .vault_refs
            .into_iter()
            .map(|v| MemberVaultRef {
                prefix: interner.intern(&v.prefix),
                coll: v.coll,
                path: Arc::from(v.path.as_str()),
                reference: v.reference,
            })
            .collect();

        if let Some(kind) = more.kind {
            errors.push(more_errors(kind, more.count));
        }
        for e in &mut errors {
            e.member.clone_from(&info.name);
        }
        let kong =
            config::declarative::kong_form(&model.top, &model.plugin_configs, model.deck_only);
        let chunks = build_chunks(model.top, model.plugin_configs);
        let kong_chunks = kong.map(|k| {
            // Unchanged collections share the decK chunks' bytes.
            let mut out: Vec<Chunk> = chunks
                .iter()
                .filter(|c| {
                    !k.dropped.contains(&c.coll) && !k.changed.iter().any(|(x, _)| *x == c.coll)
                })
                .cloned()
                .collect();
            out.extend(build_chunks(k.changed, Vec::new()));
            out.sort_by_key(|c| c.coll);
            out
        });
        let mut hash = member_hash(&chunks);
        if let Some(k) = &kong_chunks {
            let mut h = blake3::Hasher::new();
            h.update(hash.as_bytes()).update(member_hash(k).as_bytes());
            hash = h.finalize();
        }
        let acl_groups = model
            .acl_groups
            .into_iter()
            .map(|(g, p)| (g, Arc::from(p.as_str())))
            .collect();
        let mut notes = model.notes;
        for n in &mut notes {
            n.member.clone_from(&info.name);
        }
        Member {
            info,
            entities,
            keys,
            vault_refs,
            errors,
            unresolved,
            chunks,
            kong_chunks,
            acl_groups,
            routes: model.routes,
            notes,
            hash,
            interner_id: interner.id(),
        }
    }

    /// How many distinct `Sym`s this member holds at most.
    pub fn symbol_count(&self) -> usize {
        self.keys.len()
            + self.vault_refs.len()
            + self
                .unresolved
                .iter()
                .map(|u| u.candidates.len())
                .sum::<usize>()
    }

    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The decK-form chunk of a collection.
    pub fn chunk(&self, coll: Coll) -> Option<&Chunk> {
        self.chunks.iter().find(|c| c.coll == coll)
    }

    /// The chunks of Kong's declarative form.
    pub fn kong(&self) -> &[Chunk] {
        self.kong_chunks.as_deref().unwrap_or(&self.chunks)
    }

    /// Bytes held by this member's fragments.
    pub fn fragment_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes.len()).sum()
    }
}

/// Member errors past [`MAX_MEMBER_ERRORS`] are counted, not built.
struct Capped {
    count: usize,
    kind: Option<ErrorKind>,
}

impl Capped {
    fn push(
        &mut self,
        errors: &mut Vec<MemberError>,
        kind: ErrorKind,
        e: impl FnOnce() -> MemberError,
    ) {
        if errors.len() < MAX_MEMBER_ERRORS {
            errors.push(e());
        } else {
            self.count += 1;
            self.kind.get_or_insert(kind);
        }
    }
}

/// The keys a reference may match: by id, by name (username for consumers), or either.
fn ref_candidates(target: Coll, by: RefBy, sym: Sym) -> Vec<(KeyClass, Sym)> {
    let name_kind = match target {
        Coll::Consumers => Some(KeyKind::Username),
        Coll::Certificates | Coll::CaCertificates => None,
        _ => Some(KeyKind::Name),
    };
    let mut out = Vec::with_capacity(2);
    if matches!(by, RefBy::Id | RefBy::IdOrName) {
        out.push((
            KeyClass {
                coll: target,
                kind: KeyKind::Id,
            },
            sym,
        ));
    }
    if let (Some(kind), RefBy::Name | RefBy::IdOrName) = (name_kind, by) {
        out.push((KeyClass { coll: target, kind }, sym));
    }
    out
}

fn duplicate_message(coll: Coll, kind: KeyKind, value: &str, first: &str) -> String {
    let what = match kind {
        KeyKind::GlobalPlugin => format!("a second global '{value}' plugin"),
        KeyKind::PluginScope => format!("a second plugin {value}"),
        _ => format!("{} {} '{}'", coll.noun(), kind.field(), value),
    };
    format!("{what} is already defined at {first}; it must be unique in one member config")
}

/// Serializes the top-level entities, one chunk per collection. All chunks
/// live in one exactly sized buffer and are slices of it: a snapshot then
/// shares one reference count per member rather than one per chunk (fewer
/// cache misses when assembling), and no chunk keeps spare capacity.
fn build_chunks(
    top: Vec<(Coll, Vec<serde_json::Value>)>,
    plugin_configs: Vec<(String, serde_json::Value)>,
) -> Vec<Chunk> {
    let mut buf = Vec::new();
    let mut spans = Vec::with_capacity(top.len() + 1);
    for (coll, items) in top {
        let start = buf.len();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            // Serializing a `Value` cannot fail: keys are strings, numbers finite.
            let _ = serde_json::to_writer(&mut buf, item);
        }
        spans.push((coll, start..buf.len(), items.len()));
    }
    if !plugin_configs.is_empty() {
        let start = buf.len();
        for (i, (name, cfg)) in plugin_configs.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let _ = serde_json::to_writer(&mut buf, name);
            buf.push(b':');
            let _ = serde_json::to_writer(&mut buf, cfg);
        }
        spans.push((Coll::PluginConfigs, start..buf.len(), plugin_configs.len()));
    }
    buf.shrink_to_fit();
    let whole = Bytes::from(buf);
    let mut chunks: Vec<Chunk> = spans
        .into_iter()
        .map(|(coll, range, count)| {
            let bytes = whole.slice(range);
            Chunk {
                coll,
                hash: blake3::hash(&bytes),
                bytes,
                count,
            }
        })
        .collect();
    chunks.sort_by_key(|c| c.coll);
    chunks
}

fn member_hash(chunks: &[Chunk]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c.coll.name().as_bytes());
        h.update(c.hash.as_bytes());
    }
    h.finalize()
}

//! One member config, validated alone, interned and indexed, with its
//! entities pre-serialized once as JSON fragments for snapshots.
//!
//! A `Member` is immutable and shared by `Arc`: building one is the expensive
//! part of an update (parse, check, serialize), and it happens before — and
//! outside of — the single writer. Knows nothing about other members.

mod frozen;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{
    self, Coll, EntityPaths, Format, KeyKind, KongTarget, Model, RefBy, RouteMatch,
};
use crate::intern::{Interner, Sym};
use crate::report::{ErrorKind, MAX_MEMBER_ERRORS, MemberError, Note, more_errors};

pub use frozen::Unthawed;

/// What a stored config's stamp must equal for a rebuild to trust it (skip
/// the checks that only find errors): this very binary, told by its file's
/// size and modification time (any other build, with other rules, differs),
/// and the data planes it is checked for. `None` when the binary can't be
/// told: nothing is trusted then.
pub fn validation_stamp(target: &KongTarget) -> Option<String> {
    static EXE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let exe = EXE.get_or_init(|| {
        let m = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
        let mtime = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!(
            "rgmerge {} exe {}:{}",
            env!("CARGO_PKG_VERSION"),
            m.len(),
            mtime.as_nanos()
        ))
    });
    exe.as_ref().map(|e| format!("{e} target {target:?}"))
}

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

#[derive(Clone, Copy, Debug)]
pub struct MemberKey {
    pub class: KeyClass,
    pub sym: Sym,
    /// The entity holding the key (`Member::path`).
    pub entity: u32,
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
    /// Where each entity sits (its path, spelled on demand).
    pub paths: EntityPaths,
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
    /// It holds `konnect-application-auth` plugins: an error unless its
    /// holder is the default group, so only the default group may thaw it.
    pub app_registration: bool,
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
        Member::build_checked(info, bytes, format, interner, target, config::Checks::All)
    }

    /// [`build_for`](Member::build_for) with the checks `checks` says: a
    /// restore passes `Checks::Trusted` for bytes whose stamp matches
    /// [`validation_stamp`].
    pub fn build_checked(
        info: MemberInfo,
        bytes: &[u8],
        format: Format,
        interner: &Interner,
        target: &KongTarget,
        checks: config::Checks,
    ) -> Member {
        Member::from_model(
            info,
            config::read_member_checked(bytes, format, target, interner, checks),
            interner,
        )
    }

    /// Free of errors: a stored config may carry [`validation_stamp`].
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn from_model(info: MemberInfo, model: Model, interner: &Interner) -> Member {
        let mut errors = model.errors;
        // Errors past `MAX_MEMBER_ERRORS`: how many, and the kind of the first.
        let mut more = Capped {
            count: model.more_errors,
            kind: (model.more_errors > 0).then_some(ErrorKind::SchemaError),
        };
        let paths = model.entities;
        let all = model.keys;
        let class = |k: &config::EntityKey| KeyClass {
            coll: paths.coll(k.entity),
            kind: k.kind,
        };
        // Every key of this member sorted by (class, sym), ties in entity
        // order: the first of a run holds the key, the rest are duplicates.
        // A sort of 4-byte positions, not a map of every key.
        let order_key = |&i: &u32| {
            let k = &all[i as usize];
            (paths.coll(k.entity), k.kind, k.sym, i)
        };
        let mut order: Vec<u32> = (0..all.len() as u32).collect();
        order.sort_unstable_by_key(order_key);
        // For each key position: the position of the key's first holder.
        let mut first = vec![0u32; all.len()];
        let mut run: Option<(KeyClass, Sym, u32)> = None;
        for &i in &order {
            let k = &all[i as usize];
            let holder = match run {
                Some((c, s, h)) if c == class(k) && s == k.sym => h,
                _ => i,
            };
            run = Some((class(k), k.sym, holder));
            first[i as usize] = holder;
        }
        let holds = |class: KeyClass, sym: Sym| {
            let want = (class.coll, class.kind, sym);
            let at = order.partition_point(|&i| {
                let k = &all[i as usize];
                (paths.coll(k.entity), k.kind, k.sym) < want
            });
            order.get(at).is_some_and(|&i| {
                let k = &all[i as usize];
                (paths.coll(k.entity), k.kind, k.sym) == want
            })
        };

        // Whether an entity has its own `id` (its keys are contiguous, in
        // entity order).
        let has_id = |ent: u32| {
            let from = all.partition_point(|k| k.entity < ent);
            all[from..]
                .iter()
                .take_while(|k| k.entity == ent)
                .any(|k| k.kind == KeyKind::Id)
        };

        let mut keys = Vec::new();
        let mut entities = 0;
        let app_registration = !model.app_auth.is_empty();
        let mut app_auth = model.app_auth.iter().peekable();
        let mut next_key = 0;
        for e in 0..paths.len() as u32 {
            let coll = paths.coll(e);
            if coll != Coll::PluginConfigs {
                entities += 1;
            }
            while let Some(k) = all.get(next_key).filter(|k| k.entity == e) {
                let at = next_key as u32;
                next_key += 1;
                let holder = first[at as usize];
                if holder != at {
                    let held_by = all[holder as usize].entity;
                    // Kong loads two global plugins of one name when a copy
                    // has its own `id` (the later one wins), as it does on
                    // any scope.
                    if k.kind == KeyKind::GlobalPlugin && (has_id(e) || has_id(held_by)) {
                        continue;
                    }
                    more.push(&mut errors, ErrorKind::DuplicateInMember, || {
                        MemberError::new(
                            ErrorKind::DuplicateInMember,
                            coll.name(),
                            paths.path(e),
                            duplicate_message(
                                coll,
                                k.kind,
                                interner.resolve(k.sym),
                                &paths.path(held_by),
                            ),
                        )
                    });
                } else if k.kind.conflict().is_some() {
                    keys.push(MemberKey {
                        class: class(k),
                        sym: k.sym,
                        entity: e,
                    });
                }
            }
            if app_auth.next_if_eq(&&e).is_some() && !info.is_default {
                more.push(&mut errors, ErrorKind::AppRegistrationOutsideDefault, || {
                    MemberError::new(
                        ErrorKind::AppRegistrationOutsideDefault,
                        coll.name(),
                        paths.path(e),
                        "application registration is only supported in the default runtime group: move this `konnect-application-auth` plugin to the default group's config",
                    )
                });
            }
        }
        drop(first);

        let mut unresolved = Vec::new();
        for r in &model.refs {
            let candidates = ref_candidates(r.target, r.by, r.value);
            if candidates.iter().any(|&(c, s)| holds(c, s)) {
                continue;
            }
            if errors.len() >= MAX_MEMBER_ERRORS {
                more.count += 1;
                more.kind.get_or_insert(ErrorKind::UnresolvedReference);
                continue;
            }
            let source = paths.coll(r.entity);
            let label = model_label(&model.labels, r.entity);
            let value = interner.resolve(r.value).to_string();
            errors.push(MemberError::new(
                ErrorKind::UnresolvedReference,
                source.name(),
                r.path.clone(),
                format!(
                    "{} names {} {}, which is not in member '{}'",
                    label,
                    r.target.noun(),
                    crate::report::quote(&value),
                    info.name
                ),
            ));
            unresolved.push(UnresolvedRef {
                error: errors.len() - 1,
                candidates,
                source_label: label.to_string(),
                source_noun: source.noun(),
                target_noun: r.target.noun(),
                value,
            });
        }
        drop(order);
        drop(all);
        let keys = config::model::fit(keys);

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
        let chunks = build_chunks(model.fragments);
        let kong_chunks = model.kong.map(|(changed, dropped)| {
            // Unchanged collections share the decK chunks' bytes.
            let changed = build_chunks(changed);
            let mut out: Vec<Chunk> = chunks
                .iter()
                .filter(|c| !dropped.contains(&c.coll) && !changed.iter().any(|x| x.coll == c.coll))
                .cloned()
                .collect();
            out.extend(changed);
            out.sort_by_key(|c| c.coll);
            out
        });
        let hash = member_hash(&chunks, kong_chunks.as_deref());
        let acl_groups = config::model::fit(
            model
                .acl_groups
                .into_iter()
                .map(|(g, p)| (g, Arc::from(p.as_str())))
                .collect(),
        );
        let mut notes = model.notes;
        for n in &mut notes {
            n.member.clone_from(&info.name);
        }
        Member {
            info,
            entities,
            paths,
            keys,
            vault_refs,
            errors,
            unresolved,
            chunks,
            kong_chunks,
            acl_groups,
            routes: config::model::fit(model.routes),
            notes,
            hash,
            interner_id: interner.id(),
            app_registration,
        }
    }

    /// The path of the entity holding `key` (`consumers[3]`).
    pub fn key_path(&self, key: &MemberKey) -> String {
        self.paths.path(key.entity)
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

/// The label of an entity with associations (`Model::labels`).
fn model_label(labels: &[(u32, String)], entity: u32) -> &str {
    match labels.binary_search_by_key(&entity, |(e, _)| *e) {
        Ok(i) => &labels[i].1,
        Err(_) => "",
    }
}

/// One chunk per collection of the serialized entities. All chunks live in
/// one exactly sized buffer and are slices of it: a snapshot then shares
/// one reference count per member rather than one per chunk (fewer cache
/// misses when assembling), and no chunk keeps spare capacity.
fn build_chunks(fragments: config::Fragments) -> Vec<Chunk> {
    let whole = Bytes::from(config::model::fit(fragments.buf));
    let mut chunks: Vec<Chunk> = fragments
        .spans
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

/// A member's identity: its decK chunks' hashes, and Kong's form's when it differs.
fn member_hash(chunks: &[Chunk], kong: Option<&[Chunk]>) -> blake3::Hash {
    let of = |chunks: &[Chunk]| {
        let mut h = blake3::Hasher::new();
        for c in chunks {
            h.update(c.coll.name().as_bytes());
            h.update(c.hash.as_bytes());
        }
        h.finalize()
    };
    let hash = of(chunks);
    match kong {
        Some(k) => {
            let mut h = blake3::Hasher::new();
            h.update(hash.as_bytes()).update(of(k).as_bytes());
            h.finalize()
        }
        None => hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The member of a document read an entity at a time (`Member::build`)
    /// and read from the whole parsed tree, with one interner.
    fn both_ways(bytes: &[u8], format: Format, target: &KongTarget) -> (Member, Member) {
        let interner = Interner::new();
        let info = MemberInfo::new("m", "m", false);
        let streamed = Member::build_for(info.clone(), bytes, format, &interner, target);
        let doc = config::parse(bytes, format).expect("parses");
        let tree = Member::from_model(
            info,
            config::read_value_in(doc, target, &interner),
            &interner,
        );
        (streamed, tree)
    }

    /// Every member config of the test cases (as JSON) and generated ones,
    /// for both editions: the streamed read gives the same member, findings,
    /// paths, chunks and hashes as the tree.
    #[test]
    fn streaming_json_reads_the_same_member_as_the_tree() {
        let mut docs: Vec<(String, Vec<u8>)> = Vec::new();
        let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases");
        for case in std::fs::read_dir(&cases).expect("fixtures/cases").flatten() {
            for f in std::fs::read_dir(case.path()).expect("case dir").flatten() {
                let p = f.path();
                let name = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string();
                if name.starts_with("expected") || name.starts_with('_') {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                let format = Format::from_path(&p, &bytes);
                if let Ok(doc) = config::parse(&bytes, format) {
                    let json = serde_json::to_vec_pretty(&doc).expect("serializable");
                    docs.push((p.display().to_string(), json));
                }
            }
        }
        assert!(docs.len() > 100, "found only {} case files", docs.len());
        for (i, conflicts) in [(0, 0.0), (1, 0.3), (2, 0.0)] {
            docs.push((
                format!("synth {i}"),
                crate::synth::member_config(i, 400, conflicts, 11),
            ));
        }
        let dense = crate::synth::consumers_document(
            3,
            &crate::synth::Spec {
                entities: 300,
                conflicts: 0.0,
                seed: 2,
            },
            0,
        );
        docs.push(("consumers".into(), crate::synth::to_json(&dense)));
        let oss = KongTarget {
            edition: config::Edition::Oss,
            ..KongTarget::default()
        };
        for (name, json) in &docs {
            for target in [KongTarget::default(), oss.clone()] {
                let (streamed, tree) = both_ways(json, Format::Json, &target);
                assert_eq!(format!("{streamed:?}"), format!("{tree:?}"), "{name}");
            }
        }
    }

    /// The same for YAML in decK's subset: every YAML test-case file as it
    /// is, every test case and generated member written as YAML, for both
    /// editions.
    #[test]
    fn streaming_yaml_reads_the_same_member_as_the_tree() {
        let mut docs: Vec<(String, Vec<u8>)> = Vec::new();
        let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases");
        for case in std::fs::read_dir(&cases).expect("fixtures/cases").flatten() {
            for f in std::fs::read_dir(case.path()).expect("case dir").flatten() {
                let p = f.path();
                let name = p.display().to_string();
                if p.file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| n.starts_with("expected") || n.starts_with('_'))
                {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                let format = Format::from_path(&p, &bytes);
                if let Ok(doc) = config::parse(&bytes, format) {
                    if format == Format::Yaml {
                        docs.push((name.clone(), bytes));
                    }
                    let yaml = crate::synth::to_yaml(&doc).expect("writable as YAML");
                    docs.push((format!("{name} as YAML"), yaml));
                }
            }
        }
        assert!(docs.len() > 150, "found only {} case files", docs.len());
        for (i, conflicts) in [(0, 0.0), (1, 0.3), (2, 0.0)] {
            let json = crate::synth::member_config(i, 400, conflicts, 11);
            let doc: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
            docs.push((
                format!("synth {i}"),
                crate::synth::to_yaml(&doc).expect("YAML"),
            ));
        }
        let dense = crate::synth::consumers_document(
            3,
            &crate::synth::Spec {
                entities: 300,
                conflicts: 0.0,
                seed: 2,
            },
            0,
        );
        docs.push((
            "consumers".into(),
            crate::synth::to_yaml(&dense).expect("YAML"),
        ));
        let oss = KongTarget {
            edition: config::Edition::Oss,
            ..KongTarget::default()
        };
        let mut streamed_count = 0;
        for (name, yaml) in &docs {
            let text = std::str::from_utf8(yaml).unwrap_or("");
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            if config::parse::yaml_fast::outline(text).is_ok() {
                streamed_count += 1;
            }
            for target in [KongTarget::default(), oss.clone()] {
                let (streamed, tree) = both_ways(yaml, Format::Yaml, &target);
                assert_eq!(format!("{streamed:?}"), format!("{tree:?}"), "{name}");
            }
        }
        // Not vacuous: most documents take the streamed read.
        assert!(
            streamed_count * 10 > docs.len() * 9,
            "only {streamed_count} of {} documents were outlined",
            docs.len()
        );
    }
}

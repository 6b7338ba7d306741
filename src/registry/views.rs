//! What readers see: an immutable view of each group, built by the writer
//! after a commit and published next to the snapshots. Every GET is answered
//! from views, so reads never queue behind writes and never see a write half
//! done. A view names other groups by id only, so renaming one group never
//! leaves another's view stale.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use super::record::Pin;
use super::{
    Certificates, Config, DpCertificate, Group, GroupMeta, History, Kind, NodeTable, Published,
    Registry,
};
use crate::config::{Coll, Format, KeyKind};
use crate::intern::Interner;
use crate::member::Member;
use crate::report::{Conflict, MemberError, Report, State};

/// One group as readers see it.
#[derive(Debug)]
pub struct GroupView {
    pub meta: GroupMeta,
    /// The served snapshot (the pinned content while pinned).
    pub snapshot: Arc<Published>,
    /// The group's runtime instances: the live table, not a copy (a
    /// heartbeat shows at once, without a new view).
    pub nodes: Arc<NodeTable>,
    pub certificates: Certificates,
    pub role: Role,
    /// The kept versions, oldest first; the served one last.
    pub history: Arc<History>,
    pub pin: Option<PinView>,
}

/// A pin, and what it hides.
#[derive(Debug)]
pub struct PinView {
    pub pin: Pin,
    /// The group's state now.
    pub state: State,
    /// The hash the group would serve now without the pin; `None` for a
    /// composite in conflict (it would publish nothing).
    pub current_hash: Option<String>,
    /// Members whose current config the served snapshot does not carry:
    /// (member id, `changed` | `added` | `removed`).
    pub hidden: Vec<(Uuid, &'static str)>,
}

/// What a group is in the composite model, with what readers need of it.
#[derive(Debug)]
pub enum Role {
    Standard(StandardView),
    Composite(CompositeView),
}

#[derive(Debug)]
pub struct StandardView {
    /// The composites this group is a member of.
    pub composites: Vec<Uuid>,
    config: Arc<Config>,
}

pub struct CompositeView {
    /// Member group ids, in merge order.
    pub members: Vec<Uuid>,
    /// The composite's report now (its served snapshot may be older).
    pub report: Arc<Report>,
    /// What the entries are worked out from, when first asked for.
    merged: Vec<Arc<Member>>,
    interner: Arc<Interner>,
    entries: OnceLock<Vec<ConflictEntry>>,
}

impl std::fmt::Debug for CompositeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompositeView")
            .field("members", &self.members)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// One member's side of a conflict, as Konnect's group status lists it:
/// which member, which conflict of the report, and the entity's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictEntry {
    /// The member (Konnect's `cluster_id`).
    pub member: Uuid,
    /// Index of the conflict in the view's report.
    pub conflict: usize,
    /// The entity's `id` in the member's config, or a stable UUID v5 (see
    /// [`resource_id`]) when it has none.
    pub resource_id: Uuid,
    /// The entity's name (or username) in the member's config; the
    /// conflict's value when it has none.
    pub name: String,
    /// Where the entity sits in the member's config.
    pub path: String,
}

/// Most entries a group status lists, as Konnect.
pub const MAX_CONFLICT_ENTRIES: usize = 256;

/// One member error as Konnect's group status lists it (as a conflict:
/// Konnect has no state for it): which member, which error of the report,
/// and the entity it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorEntry {
    /// The member (Konnect's `cluster_id`).
    pub member: Uuid,
    /// Index of the error in the view's report.
    pub error: usize,
    /// The entity's `id` in the member's config, else a stable UUID v5 over
    /// the member, the collection and its name (or the error's path).
    pub resource_id: Uuid,
}

/// The namespace of rgmerge's derived resource ids (UUID v5).
pub const RESOURCE_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_3c2a_58b4_4e0f_9a7c_2d1e_0b3f_4a59);

/// The stable id of an entity whose config gives none: UUID v5 over
/// `member id \0 collection \0 unique key value`. The same input always
/// gets the same id, across restarts and daemons.
pub fn resource_id(member_id: &str, collection: &str, key: &str) -> Uuid {
    let name = format!("{member_id}\0{collection}\0{key}");
    Uuid::new_v5(&RESOURCE_NAMESPACE, name.as_bytes())
}

/// An entity's `id` and name, as its member's config gives them.
#[derive(Clone, Copy, Default)]
struct EntityKeys<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
}

impl CompositeView {
    /// Each member's side of each conflict, at most [`MAX_CONFLICT_ENTRIES`],
    /// one per (member, entity): worked out on first use, off the writer.
    pub fn conflict_entries(&self) -> &[ConflictEntry] {
        self.entries.get_or_init(|| self.work_out_entries())
    }

    fn work_out_entries(&self) -> Vec<ConflictEntry> {
        let by_name: HashMap<&str, &Member> = self
            .merged
            .iter()
            .map(|m| (m.info.name.as_str(), m.as_ref()))
            .collect();
        // (member, collection) → entity path → its `id` and name.
        let mut keys: HashMap<(&str, Coll), HashMap<String, EntityKeys>> = HashMap::new();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, c) in self.report.conflicts.iter().enumerate() {
            for name in &c.members {
                let Some(member) = by_name.get(name.as_str()) else {
                    continue;
                };
                let Ok(member_id) = Uuid::parse_str(&member.info.id) else {
                    continue;
                };
                let path = c.paths.get(name).cloned().unwrap_or_default();
                // Two entities with the same value stay two entries.
                let entity = self.entity_at(&mut keys, member, &c.entity, &path);
                let resource_id = entity
                    .id
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .unwrap_or_else(|| {
                        resource_id(&member.info.id, &c.entity, entity.name.unwrap_or(&c.value))
                    });
                if !seen.insert((member_id, resource_id)) {
                    continue;
                }
                out.push(ConflictEntry {
                    member: member_id,
                    conflict: i,
                    resource_id,
                    name: entity.name.unwrap_or(&c.value).to_string(),
                    path,
                });
                if out.len() == MAX_CONFLICT_ENTRIES {
                    return out;
                }
            }
        }
        out
    }

    /// The `id` and name of the entity of `member` a finding at `path` is in:
    /// the longest entity path that is `path` or contains it (`services[1]`
    /// of `services[1].host`). `keys` caches each (member, collection).
    fn entity_at<'a>(
        &'a self,
        keys: &mut HashMap<(&'a str, Coll), HashMap<String, EntityKeys<'a>>>,
        member: &'a Member,
        collection: &str,
        path: &str,
    ) -> EntityKeys<'a> {
        Coll::from_name(collection)
            .and_then(|coll| {
                keys.entry((member.info.name.as_str(), coll))
                    .or_insert_with(|| self.entity_keys(member, coll))
                    .iter()
                    .filter(|(p, _)| within(path, p))
                    .max_by_key(|(p, _)| p.len())
                    .map(|(_, k)| *k)
            })
            .unwrap_or_default()
    }

    /// Entity path → `id` and name of `member`'s entities in `coll`.
    fn entity_keys<'a>(
        &'a self,
        member: &'a Member,
        coll: Coll,
    ) -> HashMap<String, EntityKeys<'a>> {
        let mut out: HashMap<String, EntityKeys> = HashMap::new();
        if member.interner_id != self.interner.id() {
            return out;
        }
        for k in member.keys.iter().filter(|k| k.class.coll == coll) {
            let value = || self.interner.resolve(k.sym);
            let e = out.entry(member.key_path(k)).or_default();
            match k.class.kind {
                KeyKind::Id => e.id = Some(value()),
                KeyKind::Name | KeyKind::GlobalPlugin => e.name = Some(value()),
                KeyKind::Username | KeyKind::InstanceName => {
                    e.name.get_or_insert_with(value);
                }
                _ => {}
            }
        }
        out
    }

    /// One entry per member error, in the report's order (at most
    /// [`MAX_CONFLICT_ENTRIES`]).
    pub fn error_entries(&self) -> Vec<ErrorEntry> {
        let by_name: HashMap<&str, &Member> = self
            .merged
            .iter()
            .map(|m| (m.info.name.as_str(), m.as_ref()))
            .collect();
        let mut keys: HashMap<(&str, Coll), HashMap<String, EntityKeys>> = HashMap::new();
        let mut out = Vec::new();
        for (i, e) in self.report.errors.iter().enumerate() {
            let Some(member) = by_name.get(e.member.as_str()) else {
                continue;
            };
            let Ok(member_id) = Uuid::parse_str(&member.info.id) else {
                continue;
            };
            let entity = self.entity_at(&mut keys, member, &e.entity, &e.path);
            let resource_id = entity
                .id
                .and_then(|id| Uuid::parse_str(id).ok())
                .unwrap_or_else(|| {
                    resource_id(&member.info.id, &e.entity, entity.name.unwrap_or(&e.path))
                });
            out.push(ErrorEntry {
                member: member_id,
                error: i,
                resource_id,
            });
            if out.len() == MAX_CONFLICT_ENTRIES {
                break;
            }
        }
        out
    }

    /// The error an entry stands for.
    pub fn error_of(&self, entry: &ErrorEntry) -> Option<&MemberError> {
        self.report.errors.get(entry.error)
    }

    /// The conflict an entry is a side of.
    pub fn conflict_of(&self, entry: &ConflictEntry) -> Option<&Conflict> {
        self.report.conflicts.get(entry.conflict)
    }
}

/// Whether `path` is `entity` or inside it (`services[0].port`,
/// `services[0]` → yes; `services[10]` → no).
fn within(path: &str, entity: &str) -> bool {
    path.strip_prefix(entity)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// A member config as it was written: its bytes and their media type.
pub struct ConfigText<'a> {
    pub media_type: &'static str,
    pub bytes: &'a [u8],
}

impl StandardView {
    /// The hash of the member config, for a conditional write.
    pub fn config_hash(&self) -> &str {
        &self.config.hash
    }

    pub fn config(&self) -> ConfigText<'_> {
        ConfigText {
            media_type: match self.config.blob.format {
                Format::Json => "application/json",
                Format::Yaml => "application/yaml",
            },
            bytes: &self.config.blob.bytes,
        }
    }
}

impl GroupView {
    pub fn composite(&self) -> Option<&CompositeView> {
        match &self.role {
            Role::Composite(c) => Some(c),
            Role::Standard(_) => None,
        }
    }

    pub fn standard(&self) -> Option<&StandardView> {
        match &self.role {
            Role::Standard(s) => Some(s),
            Role::Composite(_) => None,
        }
    }

    /// The pinned certificates, oldest first.
    pub fn certificates(&self) -> Vec<&DpCertificate> {
        let mut all: Vec<&DpCertificate> = self.certificates.values().collect();
        all.sort_by_key(|c| (c.created_ms, c.id));
        all
    }

    /// Instances seen within `window_ms` of `now_ms`.
    pub fn active_instances(&self, now_ms: u64, window_ms: u64) -> usize {
        self.nodes.active(now_ms, window_ms)
    }
}

impl Registry {
    /// The view of one group as it stands now.
    pub(crate) fn view(&self, g: &Group) -> GroupView {
        let role = match &g.kind {
            Kind::Standard { config, composites } => Role::Standard(StandardView {
                composites: composites.iter().copied().collect(),
                config: config.clone(),
            }),
            Kind::Composite { members, composite } => Role::Composite(CompositeView {
                members: members.iter().copied().collect(),
                report: Arc::new(composite.report()),
                merged: composite.members().cloned().collect(),
                interner: composite.interner().clone(),
                entries: OnceLock::new(),
            }),
        };
        let pin = g.pin.as_ref().map(|p| {
            let (sources, current_hash) = self.current_merge(g);
            PinView {
                pin: p.clone(),
                state: self.state_of(g),
                current_hash,
                hidden: self.hidden_members(g, &sources),
            }
        });
        GroupView {
            meta: g.meta.clone(),
            snapshot: g.snapshot.clone(),
            nodes: g.nodes.clone(),
            certificates: g.certificates.clone(),
            role,
            history: g.history.clone(),
            pin,
        }
    }
}

/// The Konnect resource type of an entity collection (`services` →
/// `service`, `keyauth_credentials` → `key-auth_credential`).
pub fn resource_type(collection: &str) -> String {
    crate::config::Coll::from_name(collection)
        .map(|c| c.noun())
        .unwrap_or("entity")
        .to_lowercase()
        .replace(' ', "_")
}

/// The label of a group's cluster endpoint, `https://<label>.DOMAIN`: the
/// first 10 hex digits of its id, as Konnect's endpoints use. The TLS
/// server name a data plane sends carries it, and picks the group.
pub fn cluster_label(id: Uuid) -> String {
    let mut hex = id.simple().to_string();
    hex.truncate(10);
    hex
}

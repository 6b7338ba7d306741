//! Groups, memberships and their rules, runtime instances, and the snapshots
//! each group publishes (SPEC §2, §3, §4, §6).
//!
//! The registry is plain state with methods; it is driven by one writer (see
//! `engine`). Every write runs inside a [`Tx`] that records how to undo it, so
//! a write that the store cannot make durable, or a dry run, leaves no trace.
//! Knows nothing of HTTP or storage: it hands out [`GroupRecord`]s to persist.

mod group;
mod node;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use group::{ClusterType, GroupMeta, MAX_DESCRIPTION, MAX_LABELS, MAX_NAME, now};
pub use node::{Node, SyncStatus, now_ms, rfc3339_ms};

use crate::compose::{Body, Composite, EMPTY_CONFIG, ProvenanceRun};
use crate::config::{Coll, Format};
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::report::{Report, State};
use crate::store::{Blob, Change, Loaded};

/// `env`, `aws`, … are interned by every key index.
const BUILTIN_VAULT_COUNT: usize = crate::config::BUILTIN_VAULTS.len();

/// SPEC §3's numbers.
pub const MAX_MEMBERS: usize = 256;
pub const MAX_PER_REQUEST: usize = 50;
pub const MAX_COMPOSITES_PER_GROUP: usize = 5;

/// Why a request was refused; the server turns the kind into a status code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError {
    pub kind: ErrorKind,
    pub title: &'static str,
    pub detail: String,
    /// For a rejected config: every member error, in the report shape.
    pub report: Option<Box<Report>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Conflict,
    ReadOnly,
    Storage,
    Internal,
}

impl RegistryError {
    pub fn invalid(detail: impl Into<String>) -> RegistryError {
        RegistryError {
            kind: ErrorKind::Invalid,
            title: "Bad Request",
            detail: detail.into(),
            report: None,
        }
    }
    pub fn not_found(detail: impl Into<String>) -> RegistryError {
        RegistryError {
            kind: ErrorKind::NotFound,
            title: "Not Found",
            detail: detail.into(),
            report: None,
        }
    }
    pub fn conflict(detail: impl Into<String>) -> RegistryError {
        RegistryError {
            kind: ErrorKind::Conflict,
            title: "Conflict",
            detail: detail.into(),
            report: None,
        }
    }
    pub fn read_only(detail: impl Into<String>) -> RegistryError {
        RegistryError {
            kind: ErrorKind::ReadOnly,
            title: "Read-only group",
            detail: detail.into(),
            report: None,
        }
    }
    pub fn internal(detail: impl Into<String>) -> RegistryError {
        RegistryError {
            kind: ErrorKind::Internal,
            title: "Internal error",
            detail: detail.into(),
            report: None,
        }
    }
    pub fn storage(detail: impl Into<String>) -> RegistryError {
        RegistryError {
            kind: ErrorKind::Storage,
            title: "Storage failure",
            detail: detail.into(),
            report: None,
        }
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

#[derive(Clone, Debug)]
pub struct Settings {
    pub max_groups: Option<usize>,
    pub active_window_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_groups: None,
            active_window_ms: 30_000,
        }
    }
}

/// A published snapshot and what it was assembled from.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub body: Body,
    /// (member group id, config blob hash), in merge order.
    pub sources: Vec<(Uuid, String)>,
    pub provenance: Vec<(Coll, Vec<ProvenanceRun>)>,
}

/// A member config as the registry holds it.
#[derive(Debug)]
pub struct Config {
    pub hash: String,
    pub blob: Blob,
    pub member: Arc<Member>,
}

pub enum Kind {
    Standard {
        config: Arc<Config>,
        composites: BTreeSet<Uuid>,
    },
    Composite {
        members: BTreeSet<Uuid>,
        composite: Box<Composite>,
    },
}

pub struct Group {
    pub meta: GroupMeta,
    pub kind: Kind,
    pub snapshot: Arc<Published>,
    pub nodes: BTreeMap<String, Node>,
}

/// What the store keeps of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub meta: GroupMeta,
    #[serde(default)]
    pub members: Vec<Uuid>,
    #[serde(default)]
    pub config: Option<String>,
    pub snapshot: SnapshotRecord,
    #[serde(default)]
    pub nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub version: u64,
    pub hash: String,
    pub sources: Vec<(Uuid, String)>,
}

/// The inverse of one step of a write.
enum Undo {
    Created(Uuid),
    Deleted(Box<Group>),
    Meta(Uuid, GroupMeta),
    Config(Uuid, Arc<Config>),
    Composites(Uuid, BTreeSet<Uuid>),
    Members(Uuid, BTreeSet<Uuid>),
    /// A member entered composite `.0`, replacing `.2` (if any).
    Upserted(Uuid, String, Option<Arc<Member>>),
    Removed(Uuid, Arc<Member>),
    Snapshot(Uuid, Arc<Published>),
    Nodes(Uuid, BTreeMap<String, Node>),
}

pub struct Registry {
    interner: Arc<Interner>,
    groups: BTreeMap<Uuid, Group>,
    names: HashMap<String, Uuid>,
    settings: Settings,
}

/// A write in progress: the registry plus how to undo what was done so far.
pub struct Tx<'a> {
    reg: &'a mut Registry,
    undo: Vec<Undo>,
    touched: BTreeSet<Uuid>,
    deleted: BTreeSet<Uuid>,
    blobs: Vec<(String, Blob)>,
    published: BTreeSet<Uuid>,
}

/// What a committed write changed, for the store and for readers.
#[derive(Debug, Default)]
pub struct Effects {
    pub changes: Vec<Change>,
    /// Groups whose snapshot changed (or that were created).
    pub published: Vec<(Uuid, Arc<Published>)>,
    pub deleted: Vec<Uuid>,
    pub touched: Vec<Uuid>,
}

impl Registry {
    /// A registry with only the default group.
    pub fn new(interner: Arc<Interner>, settings: Settings) -> Registry {
        let mut reg = Registry {
            interner,
            groups: BTreeMap::new(),
            names: HashMap::new(),
            settings,
        };
        let meta = GroupMeta {
            id: Uuid::new_v4(),
            name: "default".into(),
            description: None,
            cluster_type: ClusterType::ControlPlane,
            labels: BTreeMap::new(),
            is_default: true,
            created_at: now(),
            updated_at: now(),
        };
        let group = reg.new_group(meta);
        reg.names.insert(group.meta.name.clone(), group.meta.id);
        reg.groups.insert(group.meta.id, group);
        reg
    }

    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }

    /// The interner only ever grows: every distinct name, id or key it has
    /// seen stays, even from refused configs and dry runs. When what it holds
    /// is mostly garbage (over twice what the current members use, and more
    /// than `min` strings), re-intern every member into a fresh one, as a
    /// restart would. Returns (strings before, strings after).
    pub fn compact_interner(&mut self, min: usize) -> Option<(usize, usize)> {
        let before = self.interner.len();
        let live: usize = self
            .groups
            .values()
            .filter_map(|g| match &g.kind {
                Kind::Standard { config, .. } => Some(config.member.symbol_count()),
                Kind::Composite { .. } => None,
            })
            .sum::<usize>()
            + BUILTIN_VAULT_COUNT;
        if before <= min || before <= 2 * live {
            return None;
        }
        let fresh = Arc::new(Interner::new());
        let standard: Vec<(Uuid, MemberInfo, Arc<Config>)> = self
            .groups
            .values()
            .filter_map(|g| match &g.kind {
                Kind::Standard { config, .. } => {
                    Some((g.meta.id, member_info(&g.meta), config.clone()))
                }
                Kind::Composite { .. } => None,
            })
            .collect();
        let rebuilt: HashMap<Uuid, Arc<Config>> = standard
            .into_par_iter()
            .map(|(id, info, c)| {
                let member = Member::build(info, &c.blob.bytes, c.blob.format, &fresh);
                (
                    id,
                    Arc::new(Config {
                        hash: c.hash.clone(),
                        blob: c.blob.clone(),
                        member: Arc::new(member),
                    }),
                )
            })
            .collect();
        for g in self.groups.values_mut() {
            match &mut g.kind {
                Kind::Standard { config, .. } => {
                    if let Some(c) = rebuilt.get(&g.meta.id) {
                        *config = c.clone();
                    }
                }
                Kind::Composite { members, composite } => {
                    let ms = members
                        .iter()
                        .filter_map(|m| rebuilt.get(m))
                        .map(|c| c.member.clone());
                    **composite = Composite::from_members(fresh.clone(), ms);
                }
            }
        }
        self.interner = fresh;
        Some((before, self.interner.len()))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn empty_config(&self, meta: &GroupMeta) -> Arc<Config> {
        let blob = Blob {
            format: Format::Json,
            bytes: EMPTY_CONFIG.to_vec(),
        };
        let member = Member::build(member_info(meta), &blob.bytes, blob.format, &self.interner);
        Arc::new(Config {
            hash: blob.hash(),
            blob,
            member: Arc::new(member),
        })
    }

    fn new_group(&self, meta: GroupMeta) -> Group {
        let kind = if meta.cluster_type.is_composite() {
            Kind::Composite {
                members: BTreeSet::new(),
                composite: Box::new(Composite::new(self.interner.clone())),
            }
        } else {
            Kind::Standard {
                config: self.empty_config(&meta),
                composites: BTreeSet::new(),
            }
        };
        let snapshot = Arc::new(Published {
            version: 1,
            body: Body::empty(),
            sources: Vec::new(),
            provenance: Vec::new(),
        });
        Group {
            meta,
            kind,
            snapshot,
            nodes: BTreeMap::new(),
        }
    }

    pub fn begin(&mut self) -> Tx<'_> {
        Tx {
            reg: self,
            undo: Vec::new(),
            touched: BTreeSet::new(),
            deleted: BTreeSet::new(),
            blobs: Vec::new(),
            published: BTreeSet::new(),
        }
    }

    // ---- reads ----

    pub fn group(&self, id: Uuid) -> Result<&Group> {
        self.groups
            .get(&id)
            .ok_or_else(|| RegistryError::not_found(format!("no control plane with id {id}")))
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.names.get(name).and_then(|id| self.groups.get(id))
    }

    pub fn active_nodes(&self, g: &Group) -> usize {
        let now = now_ms();
        g.nodes
            .values()
            .filter(|n| n.is_active(now, self.settings.active_window_ms))
            .count()
    }

    /// A composite's report, with members named by group name.
    pub fn composite_report(&self, id: Uuid) -> Result<Report> {
        match &self.group(id)?.kind {
            Kind::Composite { composite, .. } => Ok(composite.report()),
            Kind::Standard { .. } => Err(RegistryError::invalid(format!(
                "control plane {id} is not a composite (control plane group)"
            ))),
        }
    }

    /// Everything the store must hold to restore this registry: every
    /// group's record and every config it names.
    pub fn all_changes(&self) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .groups
            .values()
            .map(|g| Change::PutGroup(Box::new(self.record(g))))
            .collect();
        for g in self.groups.values() {
            if let Kind::Standard { config, .. } = &g.kind {
                changes.push(Change::PutBlob(config.hash.clone(), config.blob.clone()));
            }
        }
        changes
    }

    pub fn record(&self, g: &Group) -> GroupRecord {
        let (members, config) = match &g.kind {
            Kind::Standard { config, .. } => (Vec::new(), Some(config.hash.clone())),
            Kind::Composite { members, .. } => (members.iter().copied().collect(), None),
        };
        GroupRecord {
            meta: g.meta.clone(),
            members,
            config,
            snapshot: SnapshotRecord {
                version: g.snapshot.version,
                hash: g.snapshot.body.hash().to_string(),
                sources: g.snapshot.sources.clone(),
            },
            nodes: g.nodes.values().cloned().collect(),
        }
    }

    /// Every blob a record names: configs and the sources of published snapshots.
    pub fn live_blobs(&self) -> std::collections::HashSet<String> {
        let mut live = std::collections::HashSet::new();
        for g in self.groups.values() {
            if let Kind::Standard { config, .. } = &g.kind {
                live.insert(config.hash.clone());
            }
            live.extend(g.snapshot.sources.iter().map(|(_, h)| h.clone()));
        }
        live
    }

    /// Rebuilds the registry from the store's contents, checking that every
    /// published snapshot still assembles to the bytes it had.
    pub fn restore(
        interner: Arc<Interner>,
        settings: Settings,
        loaded: Loaded,
    ) -> std::result::Result<Registry, String> {
        if loaded.groups.is_empty() {
            return Ok(Registry::new(interner, settings));
        }
        let mut reg = Registry {
            interner,
            groups: BTreeMap::new(),
            names: HashMap::new(),
            settings,
        };
        let blob = |h: &str| {
            loaded
                .blobs
                .get(h)
                .ok_or_else(|| format!("config blob {h} is missing"))
        };
        // Build every standard group's member in parallel: this is the expensive part.
        let built: Vec<std::result::Result<(Uuid, Arc<Config>), String>> = loaded
            .groups
            .par_iter()
            .filter_map(|r| r.config.as_ref().map(|h| (r, h)))
            .map(|(r, h)| {
                let b = blob(h)?.clone();
                let member = Member::build(member_info(&r.meta), &b.bytes, b.format, &reg.interner);
                Ok((
                    r.meta.id,
                    Arc::new(Config {
                        hash: h.clone(),
                        blob: b,
                        member: Arc::new(member),
                    }),
                ))
            })
            .collect();
        let mut configs = HashMap::new();
        for b in built {
            let (id, c) = b?;
            configs.insert(id, c);
        }
        let mut composites_of: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
        for r in &loaded.groups {
            for m in &r.members {
                composites_of.entry(*m).or_default().insert(r.meta.id);
            }
        }
        for r in &loaded.groups {
            let kind = if r.meta.cluster_type.is_composite() {
                let mut members = Vec::with_capacity(r.members.len());
                for m in &r.members {
                    let c = configs.get(m).ok_or_else(|| {
                        format!(
                            "composite {} names member {m}, which has no config",
                            r.meta.id
                        )
                    })?;
                    members.push(c.member.clone());
                }
                // Merged in one go: the key index is sized once for every member.
                let composite = Composite::from_members(reg.interner.clone(), members);
                Kind::Composite {
                    members: r.members.iter().copied().collect(),
                    composite: Box::new(composite),
                }
            } else {
                let config = configs
                    .get(&r.meta.id)
                    .cloned()
                    .ok_or_else(|| format!("group {} has no config", r.meta.id))?;
                Kind::Standard {
                    config,
                    composites: composites_of.remove(&r.meta.id).unwrap_or_default(),
                }
            };
            // The published snapshot: reuse current members where the blob is the same.
            let mut members = Vec::new();
            for (mid, h) in &r.snapshot.sources {
                let current = configs
                    .get(mid)
                    .filter(|c| &c.hash == h)
                    .map(|c| c.member.clone());
                let m = match current {
                    Some(m) => m,
                    None => {
                        let b = blob(h)?;
                        let info = MemberInfo {
                            id: mid.to_string(),
                            name: mid.to_string(),
                            is_default: false,
                        };
                        Arc::new(Member::build(info, &b.bytes, b.format, &reg.interner))
                    }
                };
                members.push(m);
            }
            let body = Body::assemble(members.iter().map(|m| m.as_ref()));
            if body.hash() != r.snapshot.hash {
                return Err(format!(
                    "the snapshot of control plane '{}' (version {}) no longer assembles to its recorded hash {}",
                    r.meta.name, r.snapshot.version, r.snapshot.hash
                ));
            }
            let provenance = named_provenance(&members, &loaded.groups);
            let snapshot = Arc::new(Published {
                version: r.snapshot.version,
                body,
                sources: r.snapshot.sources.clone(),
                provenance,
            });
            let nodes = r.nodes.iter().map(|n| (n.id.clone(), n.clone())).collect();
            reg.names.insert(r.meta.name.clone(), r.meta.id);
            reg.groups.insert(
                r.meta.id,
                Group {
                    meta: r.meta.clone(),
                    kind,
                    snapshot,
                    nodes,
                },
            );
        }
        if !reg.groups.values().any(|g| g.meta.is_default) {
            return Err("no default group in the store".into());
        }
        Ok(reg)
    }
}

fn named_provenance(
    members: &[Arc<Member>],
    records: &[GroupRecord],
) -> Vec<(Coll, Vec<ProvenanceRun>)> {
    let mut p = crate::compose::snapshot::provenance(members.iter().map(|m| m.as_ref()));
    for (_, runs) in &mut p {
        for run in runs {
            if let Some(r) = records
                .iter()
                .find(|r| r.meta.id.to_string() == run.member_id)
            {
                run.member.clone_from(&r.meta.name);
            }
        }
    }
    p
}

fn member_info(meta: &GroupMeta) -> MemberInfo {
    MemberInfo {
        id: meta.id.to_string(),
        name: meta.name.clone(),
        is_default: meta.is_default,
    }
}

/// A request to create a group.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub cluster_type: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A request to change a group; a label set to `null` is removed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub cluster_type: Option<String>,
    #[serde(default)]
    pub is_default: Option<bool>,
}

/// A node's heartbeat.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    #[serde(default)]
    pub id: Option<String>,
    pub hostname: String,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub config_hash: String,
}

/// What a config write would do (dry run) or did.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigOutcome {
    /// The group's own snapshot version after the write.
    pub version: u64,
    pub hash: String,
    /// Each composite the group belongs to, and its report after the change.
    pub composites: Vec<CompositeOutcome>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompositeOutcome {
    pub id: Uuid,
    pub name: String,
    pub report: Report,
}

impl<'a> Tx<'a> {
    pub fn registry(&self) -> &Registry {
        self.reg
    }

    fn group_mut(&mut self, id: Uuid) -> Result<&mut Group> {
        self.reg
            .groups
            .get_mut(&id)
            .ok_or_else(|| RegistryError::not_found(format!("no control plane with id {id}")))
    }

    /// Undoes everything this transaction did.
    pub fn rollback(mut self) {
        while let Some(u) = self.undo.pop() {
            self.reg.apply_undo(u);
        }
    }

    /// What to persist and publish if this transaction is kept (dropping a
    /// `Tx` without `rollback` keeps it).
    pub fn effects(&self) -> Effects {
        let mut effects = Effects::default();
        let live = self.reg.live_blobs();
        for (h, b) in &self.blobs {
            if live.contains(h) {
                effects.changes.push(Change::PutBlob(h.clone(), b.clone()));
            }
        }
        // Configs this write replaced, unless a record still names them.
        let mut dead = BTreeSet::new();
        for u in &self.undo {
            match u {
                Undo::Config(_, old) => {
                    dead.insert(old.hash.clone());
                }
                Undo::Snapshot(_, old) => dead.extend(old.sources.iter().map(|(_, h)| h.clone())),
                Undo::Deleted(g) => {
                    if let Kind::Standard { config, .. } = &g.kind {
                        dead.insert(config.hash.clone());
                    }
                    dead.extend(g.snapshot.sources.iter().map(|(_, h)| h.clone()));
                }
                _ => {}
            }
        }
        for h in dead {
            if !live.contains(&h) {
                effects.changes.push(Change::DeleteBlob(h));
            }
        }
        for id in &self.touched {
            if let Some(g) = self.reg.groups.get(id) {
                effects.touched.push(*id);
                effects
                    .changes
                    .push(Change::PutGroup(Box::new(self.reg.record(g))));
            }
        }
        for id in &self.deleted {
            if !self.reg.groups.contains_key(id) {
                effects.changes.push(Change::DeleteGroup(*id));
                effects.deleted.push(*id);
            }
        }
        for id in &self.published {
            if let Some(g) = self.reg.groups.get(id) {
                effects.published.push((*id, g.snapshot.clone()));
            }
        }
        effects
    }

    fn touch(&mut self, id: Uuid) {
        self.touched.insert(id);
    }

    // ---- groups ----

    /// Adds a new group with its empty config and first snapshot.
    fn insert_group(&mut self, meta: GroupMeta) {
        let group = self.reg.new_group(meta.clone());
        if let Kind::Standard { config, .. } = &group.kind {
            self.blobs.push((config.hash.clone(), config.blob.clone()));
        }
        self.reg.names.insert(meta.name.clone(), meta.id);
        self.reg.groups.insert(meta.id, group);
        self.undo.push(Undo::Created(meta.id));
        self.touch(meta.id);
        self.published.insert(meta.id);
    }

    /// Recreates an exported group with its id and fields. The exported default
    /// group takes the place of this registry's (empty) default group.
    pub fn import_group(&mut self, meta: GroupMeta) -> Result<()> {
        group::check_name(&meta.name)?;
        group::check_labels(&meta.labels)?;
        if self.reg.groups.contains_key(&meta.id) {
            return Err(RegistryError::conflict(format!(
                "a control plane with id {} already exists",
                meta.id
            )));
        }
        if meta.is_default {
            let old = self
                .reg
                .groups
                .values()
                .find(|g| g.meta.is_default)
                .map(|g| g.meta.id);
            if let Some(old) = old
                && let Some(g) = self.reg.groups.remove(&old)
            {
                self.reg.names.remove(&g.meta.name);
                self.undo.push(Undo::Deleted(Box::new(g)));
                self.deleted.insert(old);
            }
        }
        if self.reg.names.contains_key(&meta.name) {
            return Err(RegistryError::conflict(format!(
                "a control plane named '{}' already exists",
                meta.name
            )));
        }
        self.insert_group(meta);
        Ok(())
    }

    pub fn create_group(&mut self, req: CreateGroup) -> Result<GroupMeta> {
        group::check_name(&req.name)?;
        if let Some(d) = &req.description {
            group::check_description(d)?;
        }
        group::check_labels(&req.labels)?;
        let cluster_type = match req.cluster_type.as_deref() {
            None => ClusterType::ControlPlane,
            Some(s) => ClusterType::parse(s).ok_or_else(|| {
                RegistryError::invalid(format!(
                    "unknown cluster_type '{s}': use CLUSTER_TYPE_CONTROL_PLANE, CLUSTER_TYPE_K8S_INGRESS_CONTROLLER or CLUSTER_TYPE_CONTROL_PLANE_GROUP"
                ))
            })?,
        };
        if self.reg.names.contains_key(&req.name) {
            return Err(RegistryError::conflict(format!(
                "a control plane named '{}' already exists",
                req.name
            )));
        }
        if let Some(max) = self.reg.settings.max_groups
            && self.reg.groups.len() >= max
        {
            return Err(RegistryError::conflict(format!(
                "the organisation already has {} control planes, its limit (max_groups = {max})",
                self.reg.groups.len()
            )));
        }
        let t = now();
        let meta = GroupMeta {
            id: Uuid::new_v4(),
            name: req.name,
            description: req.description,
            cluster_type,
            labels: req.labels,
            is_default: false,
            created_at: t.clone(),
            updated_at: t,
        };
        self.insert_group(meta.clone());
        Ok(meta)
    }

    pub fn update_group(&mut self, id: Uuid, req: UpdateGroup) -> Result<GroupMeta> {
        let old = self.reg.group(id)?.meta.clone();
        let mut meta = old.clone();
        if let Some(ct) = &req.cluster_type
            && ClusterType::parse(ct) != Some(old.cluster_type)
        {
            return Err(RegistryError::invalid(
                "`cluster_type` is fixed at creation and can't be changed",
            ));
        }
        if let Some(d) = req.is_default
            && d != old.is_default
        {
            return Err(RegistryError::invalid(
                "the default group is fixed: `is_default` can't be changed or moved",
            ));
        }
        if let Some(name) = req.name {
            group::check_name(&name)?;
            if name != old.name && self.reg.names.contains_key(&name) {
                return Err(RegistryError::conflict(format!(
                    "a control plane named '{name}' already exists"
                )));
            }
            meta.name = name;
        }
        if let Some(d) = req.description {
            group::check_description(&d)?;
            meta.description = if d.is_empty() { None } else { Some(d) };
        }
        if let Some(labels) = req.labels {
            for (k, v) in labels {
                match v {
                    Some(v) => meta.labels.insert(k, v),
                    None => meta.labels.remove(&k),
                };
            }
            group::check_labels(&meta.labels)?;
        }
        if meta == old {
            return Ok(old);
        }
        meta.updated_at = now();
        self.reg.names.remove(&old.name);
        self.reg.names.insert(meta.name.clone(), id);
        self.undo.push(Undo::Meta(id, old.clone()));
        self.group_mut(id)?.meta = meta.clone();
        self.touch(id);
        if meta.name != old.name {
            // Findings name members by group name: re-enter the member under its new name.
            if let Kind::Standard { config, .. } = &self.reg.group(id)?.kind {
                let config = config.clone();
                let member = Member::build(
                    member_info(&meta),
                    &config.blob.bytes,
                    config.blob.format,
                    &self.reg.interner,
                );
                self.set_config(
                    id,
                    Arc::new(Config {
                        hash: config.hash.clone(),
                        blob: config.blob.clone(),
                        member: Arc::new(member),
                    }),
                )?;
            }
        }
        Ok(meta)
    }

    pub fn delete_group(&mut self, id: Uuid) -> Result<()> {
        let g = self.reg.group(id)?;
        if g.meta.is_default {
            return Err(RegistryError::conflict(
                "the default group can't be deleted",
            ));
        }
        let releases: Vec<Uuid> = match &g.kind {
            Kind::Standard { composites, .. } if !composites.is_empty() => {
                let names: Vec<String> = composites
                    .iter()
                    .filter_map(|c| self.reg.groups.get(c))
                    .map(|c| format!("'{}'", c.meta.name))
                    .collect();
                return Err(RegistryError::conflict(format!(
                    "control plane '{}' is a member of {}: remove it from every composite first",
                    g.meta.name,
                    names.join(", ")
                )));
            }
            Kind::Standard { .. } => Vec::new(),
            Kind::Composite { members, .. } => members.iter().copied().collect(),
        };
        for m in releases {
            let Kind::Standard { composites, .. } = &self.reg.group(m)?.kind else {
                continue;
            };
            let before = composites.clone();
            self.undo.push(Undo::Composites(m, before));
            if let Kind::Standard { composites, .. } = &mut self.group_mut(m)?.kind {
                composites.remove(&id);
            }
            self.touch(m);
        }
        let Some(g) = self.reg.groups.remove(&id) else {
            return Ok(());
        };
        self.reg.names.remove(&g.meta.name);
        self.undo.push(Undo::Deleted(Box::new(g)));
        self.touched.remove(&id);
        self.published.remove(&id);
        self.deleted.insert(id);
        Ok(())
    }

    // ---- configs ----

    /// Replaces a standard group's config. `member` was built outside the
    /// writer; it is rebuilt here only if the group was renamed meanwhile.
    pub fn put_config(&mut self, id: Uuid, blob: Blob, member: Member) -> Result<ConfigOutcome> {
        let g = self.reg.group(id)?;
        if g.meta.cluster_type.is_composite() {
            return Err(RegistryError::read_only(format!(
                "control plane group '{}' is read-only: write the config of one of its members instead",
                g.meta.name
            )));
        }
        let info = member_info(&g.meta);
        let member = if member.info.name == info.name
            && member.info.is_default == info.is_default
            && member.interner_id == self.reg.interner.id()
        {
            member
        } else {
            Member::build(info, &blob.bytes, blob.format, &self.reg.interner)
        };
        let valid = member.is_valid();
        let hash = blob.hash();
        self.blobs.push((hash.clone(), blob.clone()));
        self.set_config(
            id,
            Arc::new(Config {
                hash,
                blob,
                member: Arc::new(member),
            }),
        )?;
        let outcome = self.config_outcome(id)?;
        if !valid {
            // Report the errors as the composites see them (cross-member references named).
            let name = self.reg.group(id)?.meta.name.clone();
            let mut errors = Vec::new();
            for c in &outcome.composites {
                errors.extend(c.report.errors.iter().filter(|e| e.member == name).cloned());
            }
            if outcome.composites.is_empty() {
                if let Kind::Standard { config, .. } = &self.reg.group(id)?.kind {
                    errors = config.member.errors.clone();
                }
            } else {
                errors.sort();
                errors.dedup();
            }
            let report = Report::new(Vec::new(), Vec::new(), errors);
            return Err(RegistryError {
                kind: ErrorKind::Invalid,
                title: "Invalid member config",
                detail: format!(
                    "the config has {} member error(s); nothing was changed",
                    report.errors.len()
                ),
                report: Some(Box::new(report)),
            });
        }
        Ok(outcome)
    }

    fn config_outcome(&self, id: Uuid) -> Result<ConfigOutcome> {
        let g = self.reg.group(id)?;
        let Kind::Standard { composites, .. } = &g.kind else {
            return Err(RegistryError::invalid("not a standard group"));
        };
        let mut out = Vec::new();
        for c in composites {
            let cg = self.reg.group(*c)?;
            out.push(CompositeOutcome {
                id: *c,
                name: cg.meta.name.clone(),
                report: self.reg.composite_report(*c)?,
            });
        }
        Ok(ConfigOutcome {
            version: g.snapshot.version,
            hash: g.snapshot.body.hash().to_string(),
            composites: out,
        })
    }

    /// Installs `config` on a standard group and re-merges every composite it is in.
    fn set_config(&mut self, id: Uuid, config: Arc<Config>) -> Result<()> {
        let composites: Vec<Uuid> = match &mut self.group_mut(id)?.kind {
            Kind::Standard {
                config: slot,
                composites,
            } => {
                let old = std::mem::replace(slot, config.clone());
                let comps = composites.iter().copied().collect();
                self.undo.push(Undo::Config(id, old));
                comps
            }
            Kind::Composite { .. } => return Err(RegistryError::invalid("not a standard group")),
        };
        self.touch(id);
        self.republish(id)?;
        for c in composites {
            if let Kind::Composite { composite, .. } = &mut self.group_mut(c)?.kind {
                let prev = composite.upsert(config.member.clone());
                self.undo
                    .push(Undo::Upserted(c, config.member.info.id.clone(), prev));
            }
            self.republish(c)?;
        }
        Ok(())
    }

    /// Publishes a new snapshot version if the group's effective config changed
    /// (for a composite: only while it is conflict-free).
    fn republish(&mut self, id: Uuid) -> Result<()> {
        let g = self.reg.group(id)?;
        let (body, sources, members): (Body, Vec<(Uuid, String)>, Vec<Arc<Member>>) = match &g.kind
        {
            Kind::Standard { config, .. } => (
                Body::assemble(std::iter::once(config.member.as_ref())),
                vec![(id, config.hash.clone())],
                vec![config.member.clone()],
            ),
            Kind::Composite { composite, .. } => {
                if composite.state() != State::Ok {
                    return Ok(());
                }
                let members: Vec<Arc<Member>> = composite.members().cloned().collect();
                let sources = members
                    .iter()
                    .filter_map(|m| {
                        let mid = Uuid::parse_str(&m.info.id).ok()?;
                        match &self.reg.groups.get(&mid)?.kind {
                            Kind::Standard { config, .. } => Some((mid, config.hash.clone())),
                            Kind::Composite { .. } => None,
                        }
                    })
                    .collect();
                (composite.assemble(), sources, members)
            }
        };
        if body.hash() == g.snapshot.body.hash() && sources == g.snapshot.sources {
            return Ok(());
        }
        let version = if body.hash() == g.snapshot.body.hash() {
            g.snapshot.version
        } else {
            g.snapshot.version + 1
        };
        let provenance = crate::compose::snapshot::provenance(members.iter().map(|m| m.as_ref()));
        let new = Arc::new(Published {
            version,
            body,
            sources,
            provenance,
        });
        let old = std::mem::replace(&mut self.group_mut(id)?.snapshot, new);
        self.undo.push(Undo::Snapshot(id, old));
        self.touch(id);
        self.published.insert(id);
        Ok(())
    }

    // ---- memberships ----

    fn composite_members(&self, cid: Uuid) -> Result<&BTreeSet<Uuid>> {
        let g = self.reg.group(cid)?;
        match &g.kind {
            Kind::Composite { members, .. } => Ok(members),
            Kind::Standard { .. } => Err(RegistryError::invalid(format!(
                "control plane '{}' is not a control plane group (composite): only composites have members",
                g.meta.name
            ))),
        }
    }

    fn check_request_ids(ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Err(RegistryError::invalid(
                "`members` must list at least one control plane",
            ));
        }
        if ids.len() > MAX_PER_REQUEST {
            return Err(RegistryError::invalid(format!(
                "one request can add or remove at most {MAX_PER_REQUEST} members; this one lists {}",
                ids.len()
            )));
        }
        let unique: BTreeSet<&Uuid> = ids.iter().collect();
        if unique.len() != ids.len() {
            return Err(RegistryError::invalid(
                "`members` lists the same control plane twice",
            ));
        }
        Ok(())
    }

    /// Adds members to a composite: all of them, or (on any refusal) none.
    pub fn add_members(&mut self, cid: Uuid, ids: &[Uuid]) -> Result<Report> {
        Self::check_request_ids(ids)?;
        let current = self.composite_members(cid)?.clone();
        let cname = self.reg.group(cid)?.meta.name.clone();
        if current.len() + ids.len() > MAX_MEMBERS {
            return Err(RegistryError::conflict(format!(
                "composite '{cname}' has {} members; adding {} would pass the limit of {MAX_MEMBERS}",
                current.len(),
                ids.len()
            )));
        }
        for id in ids {
            let g = self.reg.group(*id).map_err(|_| {
                RegistryError::invalid(format!("no control plane with id {id} (nothing was added)"))
            })?;
            let name = &g.meta.name;
            match (&g.kind, g.meta.cluster_type) {
                (Kind::Composite { .. }, _) => {
                    return Err(RegistryError::invalid(format!(
                        "'{name}' is a composite: a composite can't be a member of a composite"
                    )));
                }
                (_, ClusterType::K8sIngressController) => {
                    return Err(RegistryError::invalid(format!(
                        "'{name}' is a Kong Ingress Controller group, which can't be a member of a composite"
                    )));
                }
                (Kind::Standard { composites, .. }, _) => {
                    if current.contains(id) {
                        return Err(RegistryError::conflict(format!(
                            "'{name}' is already a member of '{cname}'"
                        )));
                    }
                    if composites.len() >= MAX_COMPOSITES_PER_GROUP {
                        return Err(RegistryError::conflict(format!(
                            "'{name}' is already a member of {MAX_COMPOSITES_PER_GROUP} composites, the most a group can join"
                        )));
                    }
                    let active = self.reg.active_nodes(g);
                    if active > 0 {
                        return Err(RegistryError::conflict(format!(
                            "'{name}' has {active} connected runtime instance(s): a member's instances must connect to the composite, so disconnect them first"
                        )));
                    }
                }
            }
        }
        self.undo.push(Undo::Members(cid, current));
        for id in ids {
            let Kind::Standard { config, composites } = &self.reg.group(*id)?.kind else {
                continue;
            };
            let (member, before) = (config.member.clone(), composites.clone());
            self.undo.push(Undo::Composites(*id, before));
            if let Kind::Standard { composites, .. } = &mut self.group_mut(*id)?.kind {
                composites.insert(cid);
            }
            self.touch(*id);
            if let Kind::Composite { members, composite } = &mut self.group_mut(cid)?.kind {
                members.insert(*id);
                let prev = composite.upsert(member.clone());
                self.undo
                    .push(Undo::Upserted(cid, member.info.id.clone(), prev));
            }
        }
        self.touch(cid);
        self.republish(cid)?;
        self.reg.composite_report(cid)
    }

    pub fn remove_members(&mut self, cid: Uuid, ids: &[Uuid]) -> Result<Report> {
        Self::check_request_ids(ids)?;
        let current = self.composite_members(cid)?.clone();
        for id in ids {
            if !current.contains(id) {
                let what = self
                    .reg
                    .groups
                    .get(id)
                    .map(|g| format!("'{}'", g.meta.name))
                    .unwrap_or_else(|| id.to_string());
                return Err(RegistryError::invalid(format!(
                    "{what} is not a member of this composite (nothing was removed)"
                )));
            }
        }
        self.undo.push(Undo::Members(cid, current));
        for id in ids {
            if let Kind::Standard { composites, .. } = &self.reg.group(*id)?.kind {
                let before = composites.clone();
                self.undo.push(Undo::Composites(*id, before));
            }
            if let Kind::Standard { composites, .. } = &mut self.group_mut(*id)?.kind {
                composites.remove(&cid);
            }
            self.touch(*id);
            if let Kind::Composite { members, composite } = &mut self.group_mut(cid)?.kind {
                members.remove(id);
                if let Some(old) = composite.remove(&id.to_string()) {
                    self.undo.push(Undo::Removed(cid, old));
                }
            }
        }
        self.touch(cid);
        self.republish(cid)?;
        self.reg.composite_report(cid)
    }

    // ---- nodes ----

    pub fn heartbeat(&mut self, gid: Uuid, hb: Heartbeat) -> Result<Node> {
        let g = self.reg.group(gid)?;
        if let Kind::Standard { composites, .. } = &g.kind
            && !composites.is_empty()
        {
            return Err(RegistryError::conflict(format!(
                "'{}' is a member of a composite: runtime instances must connect to the composite, not to a member",
                g.meta.name
            )));
        }
        if hb.hostname.trim().is_empty() || hb.hostname.len() > 255 {
            return Err(RegistryError::invalid(
                "`hostname` must be 1 to 255 characters",
            ));
        }
        let id = hb.id.unwrap_or_else(|| hb.hostname.clone());
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(RegistryError::invalid(
                "node `id` must be 1 to 255 printable characters",
            ));
        }
        let node = Node {
            id: id.clone(),
            hostname: hb.hostname,
            ip: hb.ip,
            version: hb.version,
            config_hash: hb.config_hash,
            last_seen_ms: now_ms(),
        };
        let old = g.nodes.get(&id);
        // Only registration and what the node runs are worth a disk write;
        // `last_seen` alone changes every few seconds.
        let durable = match old {
            None => true,
            Some(o) => {
                o.config_hash != node.config_hash
                    || o.hostname != node.hostname
                    || o.ip != node.ip
                    || o.version != node.version
            }
        };
        let before = g.nodes.clone();
        self.undo.push(Undo::Nodes(gid, before));
        self.group_mut(gid)?.nodes.insert(id, node.clone());
        if durable {
            self.touch(gid);
        }
        Ok(node)
    }

    pub fn delete_node(&mut self, gid: Uuid, node_id: &str) -> Result<()> {
        let g = self.reg.group(gid)?;
        if !g.nodes.contains_key(node_id) {
            return Err(RegistryError::not_found(format!(
                "no node '{node_id}' in control plane '{}'",
                g.meta.name
            )));
        }
        let before = g.nodes.clone();
        self.undo.push(Undo::Nodes(gid, before));
        self.group_mut(gid)?.nodes.remove(node_id);
        self.touch(gid);
        Ok(())
    }
}

impl Registry {
    fn apply_undo(&mut self, u: Undo) {
        match u {
            Undo::Created(id) => {
                if let Some(g) = self.groups.remove(&id) {
                    self.names.remove(&g.meta.name);
                }
            }
            Undo::Deleted(g) => {
                self.names.insert(g.meta.name.clone(), g.meta.id);
                self.groups.insert(g.meta.id, *g);
            }
            Undo::Meta(id, meta) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    self.names.remove(&g.meta.name);
                    self.names.insert(meta.name.clone(), id);
                    g.meta = meta;
                }
            }
            Undo::Config(id, old) => {
                if let Some(Kind::Standard { config, .. }) =
                    self.groups.get_mut(&id).map(|g| &mut g.kind)
                {
                    *config = old;
                }
            }
            Undo::Composites(id, old) => {
                if let Some(Kind::Standard { composites, .. }) =
                    self.groups.get_mut(&id).map(|g| &mut g.kind)
                {
                    *composites = old;
                }
            }
            Undo::Members(id, old) => {
                if let Some(Kind::Composite { members, .. }) =
                    self.groups.get_mut(&id).map(|g| &mut g.kind)
                {
                    *members = old;
                }
            }
            Undo::Upserted(cid, mid, prev) => {
                if let Some(Kind::Composite { composite, .. }) =
                    self.groups.get_mut(&cid).map(|g| &mut g.kind)
                {
                    match prev {
                        Some(p) => {
                            composite.upsert(p);
                        }
                        None => {
                            composite.remove(&mid);
                        }
                    }
                }
            }
            Undo::Removed(cid, m) => {
                if let Some(Kind::Composite { composite, .. }) =
                    self.groups.get_mut(&cid).map(|g| &mut g.kind)
                {
                    composite.upsert(m);
                }
            }
            Undo::Snapshot(id, old) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.snapshot = old;
                }
            }
            Undo::Nodes(id, old) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.nodes = old;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(names: &[&str]) -> Blob {
        let mut s = String::from("_format_version: \"3.0\"\nservices:\n");
        for n in names {
            s.push_str(&format!("- name: {n}\n  host: {n}.internal\n"));
        }
        Blob {
            format: Format::Yaml,
            bytes: s.into_bytes(),
        }
    }

    fn put(reg: &mut Registry, id: Uuid, blob: Blob, interner: &Interner) {
        let info = member_info(&reg.group(id).unwrap().meta);
        let member = Member::build(info, &blob.bytes, blob.format, interner);
        let mut tx = reg.begin();
        tx.put_config(id, blob, member).unwrap();
        drop(tx);
    }

    #[test]
    fn compaction_keeps_every_answer_and_old_members_are_rebuilt() {
        let mut reg = Registry::new(Arc::new(Interner::new()), Settings::default());
        let mut tx = reg.begin();
        let comp = tx
            .create_group(CreateGroup {
                name: "shared".into(),
                cluster_type: Some("CLUSTER_TYPE_CONTROL_PLANE_GROUP".into()),
                ..Default::default()
            })
            .unwrap()
            .id;
        let blue = tx
            .create_group(CreateGroup {
                name: "blue".into(),
                ..Default::default()
            })
            .unwrap()
            .id;
        let yellow = tx
            .create_group(CreateGroup {
                name: "yellow".into(),
                ..Default::default()
            })
            .unwrap()
            .id;
        tx.add_members(comp, &[blue, yellow]).unwrap();
        drop(tx);
        let old = reg.interner().clone();
        // Churn: many names that no config keeps.
        for round in 0..20 {
            let names: Vec<String> = (0..50).map(|i| format!("churn-{round}-{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            put(&mut reg, blue, yaml(&refs), &old);
        }
        put(&mut reg, blue, yaml(&["shared-svc", "blue-only"]), &old);
        put(&mut reg, yellow, yaml(&["shared-svc"]), &old);
        let report = reg.composite_report(comp).unwrap();
        assert_eq!(report.conflicts.len(), 1);
        let snapshot = reg.group(comp).unwrap().snapshot.body.hash().to_string();

        let (before, after) = reg.compact_interner(0).expect("mostly garbage: compacted");
        assert!(after < before / 4, "{before} -> {after}");
        assert_ne!(reg.interner().id(), old.id());
        assert_eq!(reg.composite_report(comp).unwrap(), report);
        assert_eq!(reg.group(comp).unwrap().snapshot.body.hash(), snapshot);
        // The incrementally kept composite still equals a fresh merge.
        let Kind::Composite { composite, .. } = &reg.group(comp).unwrap().kind else {
            unreachable!()
        };
        let fresh = Composite::from_members(
            reg.interner().clone(),
            composite.members().cloned().collect::<Vec<_>>(),
        );
        assert_eq!(composite.report(), fresh.report());
        assert_eq!(composite.assemble().to_vec(), fresh.assemble().to_vec());

        // A member built with the old interner (in flight during compaction)
        // is rebuilt, so its keys still meet the others'.
        put(&mut reg, yellow, yaml(&["blue-only"]), &old);
        let r = reg.composite_report(comp).unwrap();
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        assert_eq!(r.conflicts[0].value, "blue-only");
        assert!(reg.compact_interner(0).is_none(), "nothing left to drop");
    }
}

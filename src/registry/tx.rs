//! A write in progress. Every step records its inverse in an undo log, so a
//! refused request, a dry run or a write the store could not make durable
//! leaves no trace. [`transact`] is the one place that runs a write from
//! begin to commit or rollback: the engine, import, the bench and the tests
//! all go through it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use super::record::{Blob, Change, Pin, TeamRecord};
use super::{
    Certificates, Config, Group, GroupMeta, GroupView, History, Kind, Node, Published, Refusal,
    Registry, Result,
};
use crate::member::Member;

/// The inverse of one step of a write.
pub(super) enum Undo {
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
    /// A node's record before a heartbeat or a deletion (`None`: no node).
    Node(Uuid, String, Option<Arc<Node>>),
    /// The group began joining a composite (`NodeTable::begin_join`).
    Joining(Uuid),
    History(Uuid, Arc<History>),
    Pin(Uuid, Option<Pin>),
    /// A team as it was before (`None`: it did not exist).
    Team(String, Option<Box<TeamRecord>>),
    AccessKey(Option<[u8; 32]>),
    Certificates(Uuid, Certificates),
}

/// A write in progress: the registry plus how to undo what was done so far.
pub struct Tx<'a> {
    pub(super) reg: &'a mut Registry,
    pub(super) undo: Vec<Undo>,
    /// Groups whose persisted record changed.
    pub(super) touched: BTreeSet<Uuid>,
    /// Groups readers must see anew (a superset of `touched`: a heartbeat's
    /// `last_seen` changes the view, not the record).
    pub(super) viewed: BTreeSet<Uuid>,
    pub(super) deleted: BTreeSet<Uuid>,
    /// Blobs this write brought (with the member built from each, when
    /// there is one to freeze): stored if a record still names them at the end.
    pub(super) blobs: Vec<(String, Blob, Option<Arc<Member>>)>,
    pub(super) published: BTreeSet<Uuid>,
    /// Each group's history as it was before this write first changed it
    /// (empty for a group it created): the store gets the difference.
    pub(super) history_before: BTreeMap<Uuid, Arc<History>>,
    /// What this write is, for the history entries it publishes.
    pub(super) change: String,
    /// Who asked for it, once requests carry an identity.
    pub(super) actor: Option<String>,
    /// Teams whose record changed (or that were deleted).
    pub(super) teams: BTreeSet<String>,
    pub(super) access_key: bool,
    /// Nodes this write deleted: (group, node id).
    pub(super) nodes_deleted: Vec<(Uuid, String)>,
}

/// What a committed write changed, for the store and for readers.
#[derive(Debug, Default)]
pub struct Effects {
    pub changes: Vec<Change>,
    /// Groups whose snapshot changed (or that were created).
    pub published: Vec<(Uuid, Arc<Published>)>,
    pub deleted: Vec<Uuid>,
    /// Fresh views of every group the write changed.
    pub views: Vec<(Uuid, Arc<GroupView>)>,
    /// Teams, tokens or grants changed: readers need a new access view
    /// (`Registry::access_view`).
    pub access_changed: bool,
    /// Groups that joined a composite: their node tables settle after the
    /// commit (`Registry::settle_nodes`).
    pub joined: Vec<Uuid>,
}

/// Whether a write is kept or only previewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
}

/// Runs `f` as one transaction on `reg`. On success (and `Mode::Apply`) the
/// effects go to `commit` (the store); if that fails, or `f` refuses, or this
/// is a dry run, everything is undone. A panic inside `f` is undone too and
/// reported as an internal refusal. Returns the effects to publish.
///
/// The writer batches writes instead ([`stage`], then one commit for many
/// [`Staged`] writes); this is the one-write form, for everything else.
pub fn transact<R>(
    reg: &mut Registry,
    mode: Mode,
    commit: impl FnOnce(&Effects) -> std::result::Result<(), String>,
    f: impl FnOnce(&mut Tx) -> Result<R>,
) -> Result<(R, Effects)> {
    match stage(reg, mode, f)? {
        (r, None) => Ok((r, Effects::default())),
        (r, Some(staged)) => match commit(&staged.effects) {
            Err(e) => {
                staged.rollback(reg);
                tracing::error!(error = %e, "write not made durable; undone");
                Err(Refusal::storage(format!("{e}; nothing was changed")))
            }
            Ok(()) => {
                reg.settle_nodes(&staged.effects);
                Ok((r, staged.effects))
            }
        },
    }
}

/// A write applied in memory but not yet durable: its effects (what to
/// store and publish) and how to undo it. The writer stages several, makes
/// them durable in one store commit, then publishes each in order; if the
/// commit fails it rolls them back newest first.
#[must_use = "a staged write is kept in memory until rolled back"]
pub struct Staged {
    undo: Vec<Undo>,
    pub effects: Effects,
}

impl Staged {
    /// Undoes the write. Writes staged after it must be rolled back first.
    pub fn rollback(self, reg: &mut Registry) {
        for u in self.undo.into_iter().rev() {
            reg.apply_undo(u);
        }
    }
}

/// Applies `f` as one transaction on `reg`, without making it durable: a
/// refusal (or a panic) is undone at once and returned; a dry run is undone
/// and answered; a write that changed nothing needs nothing more. Otherwise
/// the write stays applied and is returned [`Staged`], for the caller to
/// commit (then [`Registry::settle_nodes`] and publish) or roll back.
pub fn stage<R>(
    reg: &mut Registry,
    mode: Mode,
    f: impl FnOnce(&mut Tx) -> Result<R>,
) -> Result<(R, Option<Staged>)> {
    let mut tx = reg.begin();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut tx)))
        .unwrap_or_else(|_| {
            tracing::error!("a write panicked; undoing it");
            Err(Refusal::internal(
                "internal error while applying the write; nothing was changed",
            ))
        });
    match result {
        Err(e) => {
            tx.rollback();
            Err(e)
        }
        Ok(r) if mode == Mode::DryRun => {
            tx.rollback();
            Ok((r, None))
        }
        Ok(r) if tx.undo.is_empty() => Ok((r, None)),
        Ok(r) => {
            let effects = tx.effects();
            Ok((
                r,
                Some(Staged {
                    undo: std::mem::take(&mut tx.undo),
                    effects,
                }),
            ))
        }
    }
}

impl Registry {
    pub fn begin(&mut self) -> Tx<'_> {
        Tx {
            reg: self,
            undo: Vec::new(),
            touched: BTreeSet::new(),
            viewed: BTreeSet::new(),
            deleted: BTreeSet::new(),
            blobs: Vec::new(),
            published: BTreeSet::new(),
            history_before: BTreeMap::new(),
            change: "change".into(),
            actor: None,
            teams: BTreeSet::new(),
            access_key: false,
            nodes_deleted: Vec::new(),
        }
    }
}

impl<'a> Tx<'a> {
    pub fn registry(&self) -> &Registry {
        self.reg
    }

    /// Names what this write does, for the history entries it publishes
    /// (`config of 'blue'`, `members added: …`).
    pub fn because(&mut self, change: impl Into<String>) {
        self.change = change.into();
    }

    /// Who is writing: recorded with every version this write publishes.
    pub fn set_actor(&mut self, actor: Option<String>) {
        self.actor = actor;
    }

    pub(super) fn group_mut(&mut self, id: Uuid) -> Result<&mut Group> {
        self.reg
            .groups
            .get_mut(&id)
            .ok_or_else(|| Refusal::not_found(format!("no control plane with id {id}")))
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
        let reg: &Registry = self.reg;
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
                    for e in g.history.iter() {
                        dead.extend(e.sources.iter().map(|(_, h)| h.clone()));
                    }
                }
                _ => {}
            }
        }
        // Kept versions: new ones written, dropped ones deleted (a deleted
        // group's go with its record).
        let mut history = Vec::new();
        for (id, before) in &self.history_before {
            let Some(g) = self.reg.groups.get(id) else {
                continue;
            };
            for e in g.history.iter() {
                if !before.iter().any(|b| Arc::ptr_eq(b, e)) {
                    history.push(Change::PutHistory(*id, Box::new((**e).clone())));
                }
            }
            for b in before.iter() {
                if !g.history.iter().any(|e| Arc::ptr_eq(b, e)) {
                    dead.extend(b.sources.iter().map(|(_, h)| h.clone()));
                    if !g.history.iter().any(|e| e.version == b.version) {
                        history.push(Change::DeleteHistory(*id, b.version));
                    }
                }
            }
        }
        // Whether a record names a blob: most candidates are named by a group
        // this write touched (the previous config is in its own history), so
        // those are asked first; the few left are looked up everywhere.
        let near = if self.blobs.is_empty() && dead.is_empty() {
            Default::default()
        } else {
            reg.live_blob_refs_of(self.touched.iter())
        };
        let stamp = (!self.blobs.is_empty())
            .then(|| crate::member::validation_stamp(&reg.settings.kong))
            .flatten();
        for (h, b, member) in &self.blobs {
            if near.contains(h.as_str()) || reg.names_blob(h) {
                effects.changes.push(Change::PutBlob(h.clone(), b.clone()));
                if let Some(m) = member {
                    effects.changes.extend(reg.frozen(h, m, stamp.as_deref()));
                }
            }
        }
        dead.retain(|h| !near.contains(h.as_str()));
        let far = (dead.len() > 16).then(|| reg.live_blob_refs());
        let is_live = |h: &str| match &far {
            Some(all) => all.contains(h),
            None => reg.names_blob(h),
        };
        for h in dead {
            if !is_live(&h) {
                effects.changes.push(Change::DeleteBlob(h));
            }
        }
        for id in &self.viewed {
            if let Some(g) = self.reg.groups.get(id) {
                effects.views.push((*id, Arc::new(self.reg.view(g))));
            }
        }
        for id in &self.touched {
            if let Some(g) = self.reg.groups.get(id) {
                effects
                    .changes
                    .push(Change::PutGroup(Box::new(self.reg.record(g))));
            }
        }
        effects.changes.extend(history);
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
        if self.access_key
            && let Some(key) = &self.reg.access.key
        {
            effects
                .changes
                .push(Change::PutAccessKey(super::record::encode_key(key)));
        }
        for name in &self.teams {
            effects.changes.push(match self.reg.access.teams.get(name) {
                Some(t) => Change::PutTeam(Box::new(t.clone())),
                None => Change::DeleteTeam(name.clone()),
            });
        }
        effects.access_changed = self.access_key || !self.teams.is_empty();
        for (gid, node) in &self.nodes_deleted {
            if self.reg.groups.contains_key(gid) {
                effects.changes.push(Change::DeleteNode(*gid, node.clone()));
            }
        }
        for u in &self.undo {
            if let Undo::Joining(id) = u {
                effects.joined.push(*id);
            }
        }
        effects
    }

    pub(super) fn touch(&mut self, id: Uuid) {
        self.touched.insert(id);
        self.viewed.insert(id);
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
            Undo::Node(gid, id, old) => self.restore_node(gid, id, old),
            Undo::Joining(id) => {
                if let Some(g) = self.groups.get(&id) {
                    g.nodes.end_join(None);
                }
            }
            Undo::History(id, old) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.history = old;
                }
            }
            Undo::Pin(id, old) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.pin = old;
                }
            }
            Undo::Team(name, old) => match old {
                Some(t) => {
                    self.access.teams.insert(name, *t);
                }
                None => {
                    self.access.teams.remove(&name);
                }
            },
            Undo::AccessKey(old) => self.access.key = old,
            Undo::Certificates(id, old) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.certificates = old;
                }
            }
        }
    }
}

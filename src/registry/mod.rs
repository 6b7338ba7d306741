//! Groups, memberships and their rules, runtime instances, and the snapshots
//! each group publishes.
//!
//! The registry is plain state with methods; it is driven by one writer (see
//! `engine`). Every write runs inside a [`Tx`] (see `tx`), which records how
//! to undo it. Files by noun: `groups`, `memberships`, `configs`, `nodes`,
//! `access` (teams, tokens, grants), `certificates` (pinned DP client
//! certificates), `tx` (the transaction and its undo log), `record` (the
//! persisted form and restore), `history` (kept versions, pins, and
//! restoring an exported snapshot), `views` (what readers see, and the
//! per-member conflict entries of a group status), `refusal` (why a write
//! was refused, and the field at fault).
//! Knows nothing of HTTP or storage.

mod access;
mod certificates;
mod configs;
mod follow;
mod groups;
mod history;
mod memberships;
mod nodes;
pub mod record;
mod refusal;
mod tx;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use uuid::Uuid;

pub use access::{
    AccessView, BOOTSTRAP_TEAM, Credential, MAX_SESSIONS_PER_TEAM, NewTeam, SESSION_TTL_MS,
    TOKEN_PREFIX, TokenCheck, new_key, new_session_cookie, new_token_secret,
};
pub use certificates::{
    Certificates, DpCertificate, MAX_CERT_BYTES, MAX_CERTIFICATES, MAX_TITLE, NewCertificate,
};
pub use configs::{CompositeOutcome, ConfigOutcome, ConfigWrite, STALE_FIELD};
pub use groups::{
    AuthType, ClusterType, GroupMeta, GroupUpdate, MAX_DESCRIPTION, MAX_LABELS, MAX_NAME,
    MAX_PROXY_URLS, NewGroup, ProxyUrl, now,
};
pub use history::{DEFAULT_SNAPSHOT_HISTORY, PinOutcome, assemble_version, kept_range};
pub use memberships::{MAX_COMPOSITES_PER_GROUP, MAX_MEMBERS, MAX_PER_REQUEST};
pub use nodes::{
    AffectedResource, Beat, CheckedReport, Compatibility, CompatibilityIssue, FULLY_COMPATIBLE,
    HybridInfo, MAX_COMPATIBILITY_ISSUES, Node, NodeReport, NodeTable, SyncStatus, member_refusal,
    now_ms, rfc3339_ms, this_month,
};
pub use refusal::{Refusal, RefusalKind, Result};
pub use tx::{Effects, Mode, Staged, Tx, stage, transact};
pub use views::*;

pub use record::{
    AuditEntry, AuditFilter, GroupRole, Right, SessionRecord, TeamRecord, TokenRecord,
};

use crate::compose::{Body, Composite, ProvenanceRun};
use crate::config::KongTarget;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::report::Report;
use record::{Blob, Change, HistoryEntry, Pin};

#[derive(Clone, Debug)]
pub struct Settings {
    pub max_groups: Option<usize>,
    pub active_window_ms: u64,
    /// What the data planes run (`--kong-edition`, `--plugins`): configs are
    /// judged against it.
    pub kong: KongTarget,
    /// Snapshots kept per group (`--snapshot-history`); at least 1.
    pub snapshot_history: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_groups: None,
            active_window_ms: 30_000,
            kong: KongTarget::default(),
            snapshot_history: DEFAULT_SNAPSHOT_HISTORY,
        }
    }
}

impl Settings {
    /// How many versions each group keeps: never fewer than one, the served one.
    pub fn history_len(&self) -> usize {
        self.snapshot_history.max(1)
    }
}

/// A group's kept versions, oldest first; the last is the served one.
pub type History = VecDeque<Arc<HistoryEntry>>;

/// A published snapshot and what it was assembled from.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    /// When this version was published, Unix milliseconds (for a store older
    /// than the field: its group's creation).
    pub published_ms: u64,
    /// Kong's declarative form: what data planes load. Its hash is the ETag.
    pub body: Body,
    /// The same snapshot in decK's form (`?format=deck`); unchanged
    /// collections share their bytes with `body`.
    pub deck: Body,
    /// (member group id, config blob hash), in merge order.
    pub sources: Vec<(Uuid, String)>,
    /// Which member each run of entities came from, by collection name.
    pub provenance: Vec<(&'static str, Vec<ProvenanceRun>)>,
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
    /// The served snapshot: the current merge, or the pinned version.
    pub snapshot: Arc<Published>,
    /// Its runtime instances, shared with every published view of it.
    pub nodes: Arc<NodeTable>,
    pub certificates: Certificates,
    /// The last `snapshot_history` published versions; the served one last.
    pub history: Arc<History>,
    pub pin: Option<Pin>,
}

/// Teams, their credentials, tokens and grants (see `access`).
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Keys token hashes; `None` until bootstrapped.
    pub(crate) key: Option<[u8; 32]>,
    pub(crate) teams: BTreeMap<String, record::TeamRecord>,
}

pub struct Registry {
    interner: Arc<Interner>,
    groups: BTreeMap<Uuid, Group>,
    names: HashMap<String, Uuid>,
    settings: Settings,
    /// Store changes a restore found necessary (see `take_restore_changes`).
    restore_changes: Vec<Change>,
    /// Configs whose member a restore built: frozen for the store by
    /// `take_frozen_changes` (not before: a PostgreSQL store keeps none).
    unfrozen: Vec<Arc<Config>>,
    /// How the restore that made this registry got its members.
    restored: Restored,
    access: Access,
}

/// Members a restore thawed (frozen by this binary for this target),
/// members it had to build from their configs, and members it thawed from
/// another binary's rows to serve while they are rebuilt
/// ([`RestoreOptions::stale`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub thawed: usize,
    pub built: usize,
    pub stale: usize,
}

/// How a restore gets its members.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestoreOptions<'a> {
    /// Thaw a member frozen by another binary (an upgrade) under its own
    /// stamp instead of building it: the stored snapshots are served at
    /// once, and a second restore rebuilds the members in the background.
    /// The snapshots' hashes are checked as ever, so a member that no
    /// longer assembles its snapshot fails the restore.
    pub stale: bool,
    /// Counted up as each group's member is thawed or built.
    pub progress: Option<&'a std::sync::atomic::AtomicUsize>,
}

impl Registry {
    /// A registry with only the default group.
    pub fn new(interner: Arc<Interner>, settings: Settings) -> Registry {
        let mut reg = Registry {
            interner,
            groups: BTreeMap::new(),
            names: HashMap::new(),
            settings,
            restore_changes: Vec::new(),
            unfrozen: Vec::new(),
            restored: Restored::default(),
            access: Access::default(),
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
            auth_type: AuthType::default(),
            cloud_gateway: false,
            proxy_urls: Vec::new(),
        };
        let group = reg.new_group(meta);
        reg.names.insert(group.meta.name.clone(), group.meta.id);
        reg.groups.insert(group.meta.id, group);
        reg
    }

    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
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
            published_ms: now_ms(),
            body: Body::empty(),
            deck: Body::empty(),
            sources: Vec::new(),
            provenance: Vec::new(),
        });
        let first = HistoryEntry {
            version: 1,
            hash: snapshot.body.hash().to_string(),
            sources: Vec::new(),
            published_at: meta.created_at.clone(),
            state: crate::report::State::Ok,
            change: "created".into(),
            actor: None,
            pin_of: None,
        };
        Group {
            meta,
            kind,
            snapshot,
            nodes: Arc::default(),
            history: Arc::new(VecDeque::from([Arc::new(first)])),
            pin: None,
            certificates: Arc::default(),
        }
    }

    // ---- reads ----

    pub fn group(&self, id: Uuid) -> Result<&Group> {
        self.groups
            .get(&id)
            .ok_or_else(|| Refusal::not_found(format!("no control plane with id {id}")))
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.names.get(name).and_then(|id| self.groups.get(id))
    }

    pub fn active_nodes(&self, g: &Group) -> usize {
        g.nodes.active(now_ms(), self.settings.active_window_ms)
    }

    /// The view of the group with this id, if it exists.
    pub fn view_of(&self, id: Uuid) -> Option<Arc<GroupView>> {
        self.groups.get(&id).map(|g| Arc::new(self.view(g)))
    }

    /// A composite's report, with members named by group name.
    pub fn composite_report(&self, id: Uuid) -> Result<Report> {
        match &self.group(id)?.kind {
            Kind::Composite { composite, .. } => Ok(composite.report()),
            Kind::Standard { .. } => Err(Refusal::invalid(format!(
                "control plane {id} is not a composite (control plane group)"
            ))),
        }
    }
}

impl GroupMeta {
    /// Who this group is as a member of a composite (its UUID fixes the merge order).
    pub fn member_info(&self) -> MemberInfo {
        MemberInfo::new(self.id.to_string(), self.name.clone(), self.is_default)
    }
}

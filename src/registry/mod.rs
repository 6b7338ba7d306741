//! Groups, memberships and their rules, runtime instances, and the snapshots
//! each group publishes.
//!
//! The registry is plain state with methods; it is driven by one writer (see
//! `engine`). Every write runs inside a [`Tx`] (see `tx`), which records how
//! to undo it. Files by noun: `groups`, `memberships`, `configs`, `nodes`,
//! `certificates` (pinned DP client certificates), `tx` (the transaction and
//! its undo log), `record` (the persisted form and restore), `views` (what
//! readers see, and the per-member conflict entries of a group status),
//! `refusal` (why a write was refused, and the field at fault).
//! Knows nothing of HTTP or storage.

mod certificates;
mod configs;
mod groups;
mod memberships;
mod nodes;
pub mod record;
mod refusal;
mod tx;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;

pub use certificates::{
    Certificates, DpCertificate, MAX_CERT_BYTES, MAX_CERTIFICATES, MAX_TITLE, NewCertificate,
};
pub use configs::{CompositeOutcome, ConfigOutcome, ConfigWrite};
pub use groups::{
    AuthType, ClusterType, GroupMeta, GroupUpdate, MAX_DESCRIPTION, MAX_LABELS, MAX_NAME,
    MAX_PROXY_URLS, NewGroup, ProxyUrl, now,
};
pub use memberships::{MAX_COMPOSITES_PER_GROUP, MAX_MEMBERS, MAX_PER_REQUEST};
pub use nodes::{
    AffectedResource, Compatibility, CompatibilityIssue, FULLY_COMPATIBLE,
    MAX_COMPATIBILITY_ISSUES, Node, NodeReport, SyncStatus, now_ms, rfc3339_ms, this_month,
};
pub use refusal::{Refusal, RefusalKind, Result};
pub use tx::{Effects, Mode, Tx, transact};
pub use views::*;

use crate::compose::{Body, Composite, ProvenanceRun};
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::report::Report;
use record::Blob;

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
    /// When this version was published, Unix milliseconds (for a store older
    /// than the field: its group's creation).
    pub published_ms: u64,
    pub body: Body,
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
    pub snapshot: Arc<Published>,
    pub nodes: Arc<BTreeMap<String, Node>>,
    pub certificates: Certificates,
}

pub struct Registry {
    interner: Arc<Interner>,
    groups: BTreeMap<Uuid, Group>,
    names: HashMap<String, Uuid>,
    settings: Settings,
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
            sources: Vec::new(),
            provenance: Vec::new(),
        });
        Group {
            meta,
            kind,
            snapshot,
            nodes: Arc::new(BTreeMap::new()),
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
        let now = now_ms();
        g.nodes
            .values()
            .filter(|n| n.is_active(now, self.settings.active_window_ms))
            .count()
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

fn member_info(meta: &GroupMeta) -> MemberInfo {
    MemberInfo {
        id: meta.id.to_string(),
        name: meta.name.clone(),
        is_default: meta.is_default,
    }
}

//! What readers see: an immutable view of each group, built by the writer
//! after a commit and published next to the snapshots. Every GET is answered
//! from views, so reads never queue behind writes and never see a write half
//! done. A view names other groups by id only, so renaming one group never
//! leaves another's view stale.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::record::Pin;
use super::{Config, Group, GroupMeta, History, Kind, Node, Published, Registry};
use crate::config::Format;
use crate::report::{Report, State};

/// One group as readers see it.
#[derive(Debug)]
pub struct GroupView {
    pub meta: GroupMeta,
    /// The served snapshot (the pinned content while pinned).
    pub snapshot: Arc<Published>,
    pub nodes: Arc<BTreeMap<String, Node>>,
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

#[derive(Debug)]
pub struct CompositeView {
    /// Member group ids, in merge order.
    pub members: Vec<Uuid>,
    /// The composite's report now (its served snapshot may be older).
    pub report: Arc<Report>,
}

/// A member config as it was written: its bytes and their media type.
pub struct ConfigText<'a> {
    pub media_type: &'static str,
    pub bytes: &'a [u8],
}

impl StandardView {
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

    /// Instances seen within `window_ms` of `now_ms`.
    pub fn active_instances(&self, now_ms: u64, window_ms: u64) -> usize {
        self.nodes
            .values()
            .filter(|n| n.is_active(now_ms, window_ms))
            .count()
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

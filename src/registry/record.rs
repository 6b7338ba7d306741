//! The persisted form of the registry: what the store keeps of each group,
//! config blobs by content address, the changes a write makes, and how a
//! registry is rebuilt from them. `store` depends on this module; the
//! registry never calls the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A node record, as the store keeps it.
pub use super::Node;
use super::{
    Access, Config, DpCertificate, Group, GroupMeta, Kind, Published, Registry, RestoreOptions,
    Restored, Settings,
};
use crate::compose::{Body, Composite, ProvenanceRun};
use crate::config::{Coll, Format};
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::report::State;

/// How a restore got a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Made {
    /// Thawed, frozen by this binary for this target.
    Thawed,
    /// Thawed from another binary's row: served until it is rebuilt.
    Stale,
    /// Built from its config: to be frozen for the next start-up.
    Built,
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
    /// Nodes, in stores written before they had a table of their own
    /// (`Change::PutNode`); restore moves them there. Never written now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    /// Pinned data plane client certificates (absent in older stores).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<DpCertificate>,
    /// The kept version the group is pinned to, if any (issue 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
    /// A standard group's config was free of errors for the binary and
    /// target this names (`member::validation_stamp`): a restore by the same
    /// binary for the same target skips the checks that only find errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<String>,
}

/// One kept snapshot of a group: what it was assembled from, when and why it
/// was published. The store keeps each in its `history` table, apart from the
/// group's record, so a publish writes one entry, not the whole history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub hash: String,
    /// (member group id, config blob hash), in merge order.
    pub sources: Vec<(Uuid, String)>,
    pub published_at: String,
    /// The group's state when this version was published (a composite is
    /// `OK` unless a pin published it while in conflict).
    pub state: State,
    /// What made it: `created`, `config of 'blue'`, `members added: …`,
    /// `pin to version 3`, `unpin`, `import`, …
    pub change: String,
    /// Who made the change, once requests carry an identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// This version re-serves kept version `pin_of` (a pin published it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_of: Option<u64>,
}

/// A pin: the group serves kept version `version` (re-published as
/// `served_as`) until it is unpinned, whatever its members do meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub version: u64,
    pub hash: String,
    /// The version number the pinned content is served under.
    pub served_as: u64,
    pub pinned_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub version: u64,
    pub hash: String,
    pub sources: Vec<(Uuid, String)>,
    /// When it was published, Unix milliseconds (absent in older stores).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub published_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A member config as stored: its bytes and the syntax they are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub format: Format,
    pub bytes: Vec<u8>,
}

impl Blob {
    /// The content address: blake3 of format tag and bytes, lowercase hex.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&[self.tag()]);
        h.update(&self.bytes);
        h.finalize().to_hex().to_string()
    }
    fn tag(&self) -> u8 {
        match self.format {
            Format::Json => b'j',
            Format::Yaml => b'y',
        }
    }
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.bytes.len() + 1);
        v.push(self.tag());
        v.extend_from_slice(&self.bytes);
        v
    }
    pub(crate) fn decode(v: &[u8]) -> Option<Blob> {
        let (&tag, bytes) = v.split_first()?;
        let format = match tag {
            b'j' => Format::Json,
            b'y' => Format::Yaml,
            _ => return None,
        };
        Some(Blob {
            format,
            bytes: bytes.to_vec(),
        })
    }
}

/// One step of a write.
#[derive(Clone, Debug)]
pub enum Change {
    PutGroup(Box<GroupRecord>),
    DeleteGroup(uuid::Uuid),
    PutBlob(String, Blob),
    /// The built member of the blob with this hash, frozen
    /// (`member::frozen`): a restart thaws it instead of building it. A
    /// cache: `DeleteBlob` drops it, and a store without it builds.
    PutMember(String, bytes::Bytes),
    DeleteBlob(String),
    /// Keeps (or replaces) one history entry of a group.
    PutHistory(Uuid, Box<HistoryEntry>),
    /// Drops one history entry of a group. (`DeleteGroup` drops them all.)
    DeleteHistory(Uuid, u64),
    /// A team as it now stands (access control, README: Access control).
    PutTeam(Box<TeamRecord>),
    DeleteTeam(String),
    /// The per-store secret that keys token hashes, lowercase hex.
    PutAccessKey(String),
    /// A runtime instance of a group as it last reported (persisted in
    /// batches: node state is soft). `DeleteGroup` drops a group's nodes.
    PutNode(Uuid, Box<Node>),
    DeleteNode(Uuid, String),
}

/// Everything the store holds.
#[derive(Debug, Default)]
pub struct Loaded {
    pub groups: Vec<GroupRecord>,
    pub blobs: HashMap<String, Blob>,
    /// Frozen members (`Change::PutMember`) by blob hash.
    pub members: HashMap<String, Vec<u8>>,
    /// Each group's kept history entries, in any order.
    pub history: HashMap<Uuid, Vec<HistoryEntry>>,
    /// `None` in a store written before access control (or a new one): the
    /// engine then bootstraps it.
    pub access: Option<AccessRecord>,
    /// Each group's nodes from the node table, in any order.
    pub nodes: HashMap<Uuid, Vec<Node>>,
}

/// A team's role on one group. `node` is for runtime instances and sidecars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRole {
    Viewer,
    Editor,
    Admin,
    Node,
}

/// What a request needs on a group; a [`GroupRole`] holds some of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Read the group: its fields, config, status, memberships, nodes.
    View,
    /// Read the served snapshot.
    ReadSnapshot,
    /// Report as a runtime instance.
    Heartbeat,
    /// Write the member config (a dry run included).
    Edit,
    /// Rename, label, delete; for a composite, change its membership.
    Administer,
}

impl GroupRole {
    pub const ALL: [GroupRole; 4] = [
        GroupRole::Viewer,
        GroupRole::Editor,
        GroupRole::Admin,
        GroupRole::Node,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::Viewer => "viewer",
            GroupRole::Editor => "editor",
            GroupRole::Admin => "admin",
            GroupRole::Node => "node",
        }
    }

    pub fn parse(s: &str) -> Option<GroupRole> {
        GroupRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role holds `right`.
    pub fn allows(self, right: Right) -> bool {
        use GroupRole::*;
        use Right::*;
        match (self, right) {
            (Node, Heartbeat | ReadSnapshot) => true,
            (Node, _) | (_, Heartbeat) => false,
            (Viewer, View | ReadSnapshot) => true,
            (Viewer, _) => false,
            (Editor, View | ReadSnapshot | Edit) => true,
            (Editor, _) => false,
            (Admin, _) => true,
        }
    }
}

impl Right {
    /// The least role that holds this right, for messages.
    pub fn least_role(self) -> GroupRole {
        match self {
            Right::View | Right::ReadSnapshot => GroupRole::Viewer,
            Right::Heartbeat => GroupRole::Node,
            Right::Edit => GroupRole::Editor,
            Right::Administer => GroupRole::Admin,
        }
    }
}

/// A team: a name, the credentials that identify its members, and its roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Every right on every group, and the admin API.
    #[serde(default)]
    pub org_admin: bool,
    /// Unix users (`SO_PEERCRED` uid) who act as this team.
    #[serde(default)]
    pub uids: BTreeSet<u32>,
    /// Unix groups (the peer's primary gid) whose members act as this team.
    #[serde(default)]
    pub gids: BTreeSet<u32>,
    #[serde(default)]
    pub tokens: Vec<TokenRecord>,
    #[serde(default)]
    pub grants: BTreeMap<Uuid, GroupRole>,
    pub created_at: String,
    pub updated_at: String,
    /// Page sessions signed in with this team's tokens: kept with the team
    /// so they are stored, followed and deleted like its tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionRecord>,
}

/// A page session as stored: never its cookie, only the cookie's keyed hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// blake3 keyed by a key derived from the store's access key, lowercase hex.
    pub hash: String,
    /// The token it was exchanged for: the session holds only while it does.
    pub token_id: Uuid,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// A bearer token as stored: never the token, only its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    /// blake3 keyed by the store's access key, lowercase hex.
    pub hash: String,
    /// The token's first characters, to recognise it (`rgmpat_1a2b`).
    pub hint: String,
    pub created_at: String,
    /// Unix milliseconds.
    pub expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// The access state as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRecord {
    /// Lowercase hex of the 32-byte token-hash key.
    pub key: String,
    pub teams: Vec<TeamRecord>,
}

/// One line of the audit log: who did what, when, and how it ended. Never a
/// token, never a request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned when the entry is made durable; increasing.
    #[serde(default)]
    pub seq: u64,
    /// RFC 3339, UTC, fixed width (sorts as a string).
    pub time: String,
    /// The teams the caller acted as (empty when unidentified).
    #[serde(default)]
    pub teams: Vec<String>,
    /// `uid`, `gid`, `token` or `none`.
    pub credential: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Uuid>,
    pub status: u16,
    /// `ok`, `refused` (the request was wrong or collided), `unauthorized`
    /// (401), `forbidden` (403) or `error`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Which audit entries to read: newest first, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub group: Option<Uuid>,
    pub team: Option<String>,
    /// Inclusive bounds on `time`, in the entries' own format.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only entries with a smaller `seq` (the next page).
    pub before: Option<u64>,
    pub limit: usize,
}

impl AuditFilter {
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.group.is_none_or(|g| e.group == Some(g))
            && self.team.as_ref().is_none_or(|t| e.teams.contains(t))
            && self
                .since
                .as_ref()
                .is_none_or(|s| e.time.as_str() >= s.as_str())
            && self
                .until
                .as_ref()
                .is_none_or(|u| e.time.as_str() <= u.as_str())
            && self.before.is_none_or(|b| e.seq < b)
    }
}

impl Registry {
    /// Everything the store must hold to restore this registry: every
    /// group's record, its history and every config it names.
    pub fn all_changes(&self) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .groups
            .values()
            .map(|g| Change::PutGroup(Box::new(self.record(g))))
            .collect();
        let stamp = crate::member::validation_stamp(&self.settings.kong);
        for g in self.groups.values() {
            if let Kind::Standard { config, .. } = &g.kind {
                changes.push(Change::PutBlob(config.hash.clone(), config.blob.clone()));
                changes.extend(self.frozen(&config.hash, &config.member, stamp.as_deref()));
            }
            for e in g.history.iter() {
                changes.push(Change::PutHistory(g.meta.id, Box::new((**e).clone())));
            }
            for n in g.nodes.list() {
                changes.push(Change::PutNode(g.meta.id, Box::new((*n).clone())));
            }
        }
        changes.extend(self.access_changes());
        changes
    }

    /// What the store must hold of the access state.
    pub fn access_changes(&self) -> Vec<Change> {
        let Some(key) = &self.access.key else {
            return Vec::new();
        };
        let mut changes = vec![Change::PutAccessKey(encode_key(key))];
        changes.extend(
            self.access
                .teams
                .values()
                .map(|t| Change::PutTeam(Box::new(t.clone()))),
        );
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
                published_ms: g.snapshot.published_ms,
            },
            nodes: Vec::new(),
            pin: g.pin.clone(),
            certificates: g.certificates.values().cloned().collect(),
            validated: self.stamp_of(g),
        }
    }

    /// The `validated` stamp of `g`'s record: a standard group's config free
    /// of errors carries this binary's (`member::validation_stamp`).
    fn stamp_of(&self, g: &Group) -> Option<String> {
        match &g.kind {
            Kind::Standard { config, .. } if config.member.is_clean() => {
                crate::member::validation_stamp(&self.settings.kong)
            }
            _ => None,
        }
    }

    /// The member built from blob `hash`, frozen under `stamp` for the
    /// store, if it is clean.
    pub(super) fn frozen(
        &self,
        hash: &str,
        member: &Member,
        stamp: Option<&str>,
    ) -> Option<Change> {
        let frozen = member.freeze(&self.interner, stamp?, hash)?;
        Some(Change::PutMember(hash.to_string(), frozen.into()))
    }

    /// Whether some record names blob `hash`: a config, a published
    /// snapshot's source or a kept version's source. Asked of a write's few
    /// candidate blobs; allocates nothing.
    pub fn names_blob(&self, hash: &str) -> bool {
        self.groups.values().any(|g| {
            matches!(&g.kind, Kind::Standard { config, .. } if config.hash == hash)
                || g.snapshot.sources.iter().any(|(_, h)| h == hash)
                || g.history
                    .iter()
                    .any(|e| e.sources.iter().any(|(_, h)| h == hash))
        })
    }

    /// Every blob a record names: configs, the sources of published
    /// snapshots and of every kept version.
    pub fn live_blobs(&self) -> HashSet<String> {
        self.live_blob_refs()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    pub(super) fn live_blob_refs(&self) -> HashSet<&str> {
        self.live_blob_refs_of(self.groups.keys())
    }

    /// The blobs the given groups' records name.
    pub(super) fn live_blob_refs_of<'a>(
        &'a self,
        ids: impl Iterator<Item = &'a Uuid>,
    ) -> HashSet<&'a str> {
        let mut live = HashSet::new();
        for g in ids.filter_map(|id| self.groups.get(id)) {
            if let Kind::Standard { config, .. } = &g.kind {
                live.insert(config.hash.as_str());
            }
            live.extend(g.snapshot.sources.iter().map(|(_, h)| h.as_str()));
            for e in g.history.iter() {
                live.extend(e.sources.iter().map(|(_, h)| h.as_str()));
            }
        }
        live
    }

    /// What restoring found to tidy in the store (history entries past
    /// `--snapshot-history`, the served version of a store written before
    /// history was kept). The engine commits them once at start-up.
    pub fn take_restore_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.restore_changes)
    }

    /// The members the restore had to build, frozen for the store so the
    /// next start-up thaws them. Apart from `take_restore_changes`: they
    /// can be stored after start-up, and a PostgreSQL store keeps none.
    pub fn take_frozen_changes(&mut self) -> Vec<Change> {
        let stamp = crate::member::validation_stamp(&self.settings.kong);
        let unfrozen = std::mem::take(&mut self.unfrozen);
        unfrozen
            .par_iter()
            .filter_map(|c| self.frozen(&c.hash, &c.member, stamp.as_deref()))
            .collect()
    }

    /// Forgets what restoring found to tidy, for a store this daemon does
    /// not tidy (PostgreSQL: shared, and it keeps no frozen members).
    pub fn drop_restore_changes(&mut self) {
        self.restore_changes.clear();
        self.unfrozen.clear();
    }

    /// How the restore that made this registry got its members.
    pub fn restored(&self) -> Restored {
        self.restored
    }

    /// The member `info` holds of config `b` (hash `h`): thawed from
    /// `frozen` when that was frozen under `stamp` (or, with `stale`, under
    /// any stamp) for a holder like `info`, otherwise built (trusted when
    /// the holder's record is stamped `validated == stamp`). And how it was
    /// made: a built one is to be frozen anew, a stale one rebuilt.
    #[allow(clippy::too_many_arguments)]
    fn thaw_or_build(
        &self,
        info: MemberInfo,
        validated: Option<&str>,
        h: &str,
        b: &Blob,
        frozen: Option<Vec<u8>>,
        stamp: Option<&str>,
        stale: bool,
    ) -> (Member, Made) {
        if let (Some(row), Some(s)) = (frozen, stamp) {
            // Another binary's stamp is read only when stale members may
            // serve: an ordinary start-up thaws under its own stamp.
            let own = stale
                .then(|| Member::frozen_stamp(&row))
                .flatten()
                .filter(|own| *own != s)
                .map(str::to_string);
            let (s, made) = match &own {
                Some(own) => (own.as_str(), Made::Stale),
                None => (s, Made::Thawed),
            };
            match Member::thaw(info.clone(), row, &self.interner, s, h) {
                Ok(m) => return (m, made),
                Err(crate::member::Unthawed::Stale) => {}
                Err(crate::member::Unthawed::Damaged(why)) => tracing::warn!(
                    member = %info.id,
                    %why,
                    "a frozen member does not decode; building it from its config"
                ),
            }
        }
        let checks = match (stamp, validated) {
            (Some(s), Some(v)) if s == v => crate::config::Checks::Trusted,
            _ => crate::config::Checks::All,
        };
        let member = Member::build_checked(
            info,
            &b.bytes,
            b.format,
            &self.interner,
            &self.settings.kong,
            checks,
        );
        (member, Made::Built)
    }

    /// Rebuilds the registry from the store's contents, checking that every
    /// published snapshot still assembles to the bytes it had.
    pub fn restore(
        interner: Arc<Interner>,
        settings: Settings,
        loaded: Loaded,
    ) -> std::result::Result<Registry, String> {
        Registry::restore_with(interner, settings, loaded, RestoreOptions::default())
    }

    /// [`restore`](Registry::restore), stale frozen members thawed or not.
    pub fn restore_with(
        interner: Arc<Interner>,
        settings: Settings,
        loaded: Loaded,
        opts: RestoreOptions,
    ) -> std::result::Result<Registry, String> {
        // Fixed now, at start-up, so a binary replaced while this one runs
        // never lends its identity to what this one checks.
        let stamp = crate::member::validation_stamp(&settings.kong);
        let access = match &loaded.access {
            Some(a) => Access {
                key: Some(decode_key(&a.key)?),
                teams: a
                    .teams
                    .iter()
                    .map(|t| (t.name.clone(), t.clone()))
                    .collect(),
            },
            None => Access::default(),
        };
        if loaded.groups.is_empty() {
            let mut reg = Registry::new(interner, settings);
            reg.access = access;
            return Ok(reg);
        }
        let mut reg = Registry {
            interner,
            groups: BTreeMap::new(),
            names: HashMap::new(),
            settings,
            restore_changes: Vec::new(),
            unfrozen: Vec::new(),
            restored: Restored::default(),
            access,
        };
        let mut kept = loaded.history;
        let mut node_rows = loaded.nodes;
        let mut blobs = loaded.blobs;
        let mut frozen = loaded.members;
        // Each config's blob moves into its `Config` (copied only when several
        // groups hold the same bytes) rather than every blob being copied.
        let mut users: HashMap<&str, usize> = HashMap::new();
        for h in loaded.groups.iter().filter_map(|r| r.config.as_deref()) {
            *users.entry(h).or_default() += 1;
        }
        let mut jobs = Vec::with_capacity(users.len());
        for r in &loaded.groups {
            let Some(h) = r.config.as_deref() else {
                continue;
            };
            let last = users.get_mut(h).map(|n| {
                *n -= 1;
                *n == 0
            });
            let (b, f) = if last == Some(true) {
                (blobs.remove(h), frozen.remove(h))
            } else {
                (blobs.get(h).cloned(), frozen.get(h).cloned())
            };
            jobs.push((
                r,
                h,
                b.ok_or_else(|| format!("config blob {h} is missing"))?,
                f,
            ));
        }
        // Every standard group's member, in parallel: thawed where this
        // binary froze it for this target, otherwise built (the expensive
        // part) and frozen for the next start-up. A config this binary
        // already found clean for this target is trusted: only what builds
        // the member is run.
        // The third of each: whether it was built (and is to be frozen).
        let built: Vec<(Uuid, Arc<Config>, Made)> = jobs
            .into_par_iter()
            .map(|(r, h, b, f)| {
                let (member, built) = reg.thaw_or_build(
                    r.meta.member_info(),
                    r.validated.as_deref(),
                    h,
                    &b,
                    f,
                    stamp.as_deref(),
                    opts.stale,
                );
                if let Some(p) = opts.progress {
                    p.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let config = Config {
                    hash: h.to_string(),
                    blob: b,
                    member: Arc::new(member),
                };
                (r.meta.id, Arc::new(config), built)
            })
            .collect();
        let mut configs = HashMap::new();
        for (id, c, made) in built {
            match made {
                Made::Built => {
                    reg.restored.built += 1;
                    reg.unfrozen.push(c.clone());
                }
                Made::Thawed => reg.restored.thawed += 1,
                Made::Stale => reg.restored.stale += 1,
            }
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
                        // An older blob, or one a current config took.
                        let b = blobs
                            .get(h)
                            .or_else(|| configs.values().find(|c| &c.hash == h).map(|c| &c.blob))
                            .ok_or_else(|| format!("config blob {h} is missing"))?;
                        let (m, _) = reg.thaw_or_build(
                            MemberInfo::unnamed(mid),
                            None,
                            h,
                            b,
                            frozen.get(h).cloned(),
                            stamp.as_deref(),
                            opts.stale,
                        );
                        Arc::new(m)
                    }
                };
                members.push(m);
            }
            let body = Body::assemble_kong(members.iter().map(|m| m.as_ref()));
            let deck = Body::assemble(members.iter().map(|m| m.as_ref()));
            // A store written before snapshots were served in Kong's form
            // recorded the decK form's hash: the same snapshot, served now in
            // Kong's form as the next version so data planes move to it.
            let version = if body.hash() == r.snapshot.hash {
                r.snapshot.version
            } else if deck.hash() == r.snapshot.hash {
                r.snapshot.version + 1
            } else {
                return Err(format!(
                    "the snapshot of control plane '{}' (version {}) no longer assembles to its recorded hash {}",
                    r.meta.name, r.snapshot.version, r.snapshot.hash
                ));
            };
            let provenance = named_provenance(&members, &loaded.groups);
            let published_ms = match r.snapshot.published_ms {
                0 => rfc3339_to_ms(&r.meta.created_at),
                ms => ms,
            };
            let snapshot = Arc::new(Published {
                version,
                published_ms,
                body,
                deck,
                sources: r.snapshot.sources.clone(),
                provenance,
            });
            let nodes = Arc::new(restored_nodes(r, &mut reg.restore_changes, &mut node_rows));
            let entries = kept.remove(&r.meta.id).unwrap_or_default();
            let (history, tidy) = restored_history(r, entries, reg.settings.history_len());
            reg.restore_changes.extend(tidy);
            let certificates = Arc::new(r.certificates.iter().map(|c| (c.id, c.clone())).collect());
            reg.names.insert(r.meta.name.clone(), r.meta.id);
            reg.groups.insert(
                r.meta.id,
                Group {
                    meta: r.meta.clone(),
                    kind,
                    snapshot,
                    nodes,
                    history: Arc::new(history),
                    pin: r.pin.clone(),
                    certificates,
                },
            );
        }
        if !reg.groups.values().any(|g| g.meta.is_default) {
            return Err("no default group in the store".into());
        }
        // Stamps this start-up would write differently (another binary or
        // target, a store older than stamps) are written back once, so the
        // next start-up trusts what this one checked in full.
        let restamped: Vec<Change> = loaded
            .groups
            .iter()
            .filter_map(|r| {
                let g = reg.groups.get(&r.meta.id)?;
                (reg.stamp_of(g) != r.validated).then(|| Change::PutGroup(Box::new(reg.record(g))))
            })
            .collect();
        reg.restore_changes.extend(restamped);
        Ok(reg)
    }
}

/// A group's nodes: the node table's, and (from a store older than it) the
/// record's, which move to the table (the table's win).
fn restored_nodes(
    r: &GroupRecord,
    tidy: &mut Vec<Change>,
    table: &mut HashMap<Uuid, Vec<Node>>,
) -> super::NodeTable {
    let id = r.meta.id;
    let mut nodes: BTreeMap<String, Node> =
        r.nodes.iter().map(|n| (n.id.clone(), n.clone())).collect();
    nodes.extend(
        table
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n.id.clone(), n)),
    );
    if !r.nodes.is_empty() {
        for n in &r.nodes {
            if let Some(now) = nodes.get(&n.id) {
                tidy.push(Change::PutNode(id, Box::new(now.clone())));
            }
        }
        let mut rec = r.clone();
        rec.nodes.clear();
        tidy.push(Change::PutGroup(Box::new(rec)));
    }
    // Whether it is a member is set once every group is restored.
    super::NodeTable::restored(nodes.into_values(), false)
}

/// A group's kept history as the store had it, trimmed to `keep` entries and
/// ending with the served version (a store written before history was kept
/// has none: the served version becomes its first entry). Returns the
/// changes that make the store agree.
fn restored_history(
    r: &GroupRecord,
    mut entries: Vec<HistoryEntry>,
    keep: usize,
) -> (VecDeque<Arc<HistoryEntry>>, Vec<Change>) {
    let id = r.meta.id;
    let mut tidy = Vec::new();
    entries.sort_by_key(|e| e.version);
    // Entries past the served version can't exist (they are written with
    // it); drop any, as the served snapshot is the truth.
    while entries
        .last()
        .is_some_and(|e| e.version > r.snapshot.version)
    {
        if let Some(e) = entries.pop() {
            tidy.push(Change::DeleteHistory(id, e.version));
        }
    }
    let head_ok = entries.last().is_some_and(|e| {
        e.version == r.snapshot.version
            && e.hash == r.snapshot.hash
            && e.sources == r.snapshot.sources
    });
    if !head_ok {
        if entries
            .last()
            .is_some_and(|e| e.version == r.snapshot.version)
        {
            entries.pop();
        }
        let e = HistoryEntry {
            version: r.snapshot.version,
            hash: r.snapshot.hash.clone(),
            sources: r.snapshot.sources.clone(),
            published_at: r.meta.updated_at.clone(),
            state: State::Ok,
            change: "restored".into(),
            actor: None,
            pin_of: r.pin.as_ref().map(|p| p.version),
        };
        tidy.push(Change::PutHistory(id, Box::new(e.clone())));
        entries.push(e);
    }
    let excess = entries.len().saturating_sub(keep.max(1));
    for e in entries.drain(..excess) {
        tidy.push(Change::DeleteHistory(id, e.version));
    }
    (entries.into_iter().map(Arc::new).collect(), tidy)
}

/// Lowercase hex.
pub fn encode_key(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32-byte key from its hex form.
pub fn decode_key(hex: &str) -> std::result::Result<[u8; 32], String> {
    let bad = || "the access key in the store is not 64 hex digits".to_string();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

/// An RFC 3339 time as Unix milliseconds (0 if it is not one).
fn rfc3339_to_ms(s: &str) -> u64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        .unwrap_or(0)
}

/// Provenance keyed by collection name, as readers see it.
pub(super) fn named_collections(
    p: Vec<(Coll, Vec<ProvenanceRun>)>,
) -> Vec<(&'static str, Vec<ProvenanceRun>)> {
    p.into_iter().map(|(c, runs)| (c.name(), runs)).collect()
}

fn named_provenance(
    members: &[Arc<Member>],
    records: &[GroupRecord],
) -> Vec<(&'static str, Vec<ProvenanceRun>)> {
    let mut p = crate::compose::snapshot::provenance(members.iter().map(|m| m.as_ref()));
    // Each id spelled once: a search per run formatted every record's id
    // again (a tenth of a start-up's single-threaded time at 256 members).
    let names: std::collections::HashMap<String, &str> = records
        .iter()
        .map(|r| (r.meta.id.to_string(), r.meta.name.as_str()))
        .collect();
    for (_, runs) in &mut p {
        for run in runs {
            if let Some(name) = names.get(&run.member_id) {
                run.member = (*name).to_string();
            }
        }
    }
    named_collections(p)
}

//! Runtime instances (data plane nodes).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tx::Undo;
use super::{Kind, Refusal, Registry, Result, Tx};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub version: String,
    /// Hash of the snapshot the node runs.
    #[serde(default)]
    pub config_hash: String,
    /// Unix milliseconds.
    pub last_seen_ms: u64,
    /// Its first heartbeat, Unix milliseconds (0 in records older than the field).
    #[serde(default)]
    pub created_ms: u64,
    /// The last heartbeat that changed what it reports, Unix milliseconds.
    #[serde(default)]
    pub updated_ms: u64,
    /// What it is (`gateway` unless it says otherwise).
    #[serde(default = "gateway")]
    pub node_type: String,
    /// Whether it can run this group's config, as it reports.
    #[serde(default)]
    pub compatibility: Compatibility,
    /// What a data plane connected in hybrid mode told us; `None` for a node
    /// that reports by heartbeat (the sidecar). Shared, so a ping does not
    /// copy its `process_conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<Arc<HybridInfo>>,
}

/// What a hybrid-mode data plane reports in its `basic_info`, and whether a
/// daemon holds its connection now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HybridInfo {
    #[serde(default)]
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// Shared by the nodes that sent the same one (tens of KB each).
    #[serde(default)]
    pub process_conf: Arc<serde_json::Value>,
    /// `(name, version)` of every plugin it has; shared by the nodes that
    /// sent the same list (a fleet runs a few).
    #[serde(default)]
    pub plugins: Arc<Vec<(String, String)>>,
    /// True while connected; false once the connection closed (a daemon that
    /// died holding it leaves true, which the active window then outlives).
    #[serde(default)]
    pub connected: bool,
}

fn gateway() -> String {
    "gateway".into()
}

/// A node's compatibility with the config it is given, as Konnect shows it:
/// a state such as `COMPATIBILITY_STATE_FULLY_COMPATIBLE` and the issues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compatibility {
    pub state: String,
    #[serde(default)]
    pub issues: Vec<CompatibilityIssue>,
}

impl Default for Compatibility {
    fn default() -> Compatibility {
        Compatibility {
            state: FULLY_COMPATIBLE.into(),
            issues: Vec::new(),
        }
    }
}

pub const FULLY_COMPATIBLE: &str = "COMPATIBILITY_STATE_FULLY_COMPATIBLE";
/// Most issues a heartbeat may report.
pub const MAX_COMPATIBILITY_ISSUES: usize = 100;

/// Konnect's `NodeCompatibilityIssue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatibilityIssue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected_resources: Vec<AffectedResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

/// Konnect's `NodeCompatibilityIssueAffectedResource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffectedResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    InSync,
    OutOfSync,
}

impl Node {
    pub fn sync_status(&self, current_hash: &str) -> SyncStatus {
        if self.config_hash == current_hash {
            SyncStatus::InSync
        } else {
            SyncStatus::OutOfSync
        }
    }

    pub fn is_active(&self, now_ms: u64, window_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_seen_ms) <= window_ms
    }

    /// First seen; a record from before the field says its last heartbeat.
    pub fn created_at_ms(&self) -> u64 {
        if self.created_ms == 0 {
            self.last_seen_ms
        } else {
            self.created_ms
        }
    }

    pub fn updated_at_ms(&self) -> u64 {
        if self.updated_ms == 0 {
            self.last_seen_ms
        } else {
            self.updated_ms
        }
    }

    /// Why the Kong Gateway release this node runs is at (or near) its end
    /// of life on `today` (`(year, month)`), and what to upgrade to; `None`
    /// when it is supported or not a Kong version.
    pub fn end_of_life(&self, today: (i32, u8)) -> Option<String> {
        end_of_life(&self.version, today)
    }
}

/// `(major, minor)` of a Kong Gateway release line.
type ReleaseLine = (u64, u64);
/// A month: (year, month 1–12).
type YearMonth = (i32, u8);

/// The end of support of Kong Gateway release lines (year, month), from
/// Kong's version support policy: long-term support (LTS) lines for three
/// years, the others for one. Lines not listed are current.
const SUPPORT_ENDS: &[(ReleaseLine, YearMonth)] = &[
    ((2, 8), (2025, 3)),
    ((3, 0), (2023, 9)),
    ((3, 1), (2023, 12)),
    ((3, 2), (2024, 2)),
    ((3, 3), (2024, 5)),
    ((3, 4), (2026, 8)),
    ((3, 5), (2024, 11)),
    ((3, 6), (2025, 2)),
    ((3, 7), (2025, 5)),
    ((3, 8), (2025, 9)),
    ((3, 9), (2025, 12)),
    ((3, 10), (2028, 3)),
];

/// The long-term support line to move to.
const CURRENT_LTS: &str = "3.10";

/// How far ahead an end of support is announced, in months.
const EOL_NOTICE_MONTHS: i32 = 3;

fn end_of_life(version: &str, (year, month): (i32, u8)) -> Option<String> {
    let mut parts = version
        .trim()
        .trim_start_matches(['v', 'V'])
        .split(['.', '-', ' ']);
    let major: u64 = parts.next()?.parse().ok()?;
    let minor: u64 = parts.next()?.parse().ok()?;
    let line = format!("{major}.{minor}");
    let ends = if (major, minor) < (2, 8) {
        Some((2022, 1))
    } else {
        SUPPORT_ENDS
            .iter()
            .find(|(l, _)| *l == (major, minor))
            .map(|(_, e)| *e)
    }?;
    let months = |(y, m): (i32, u8)| y * 12 + i32::from(m);
    let left = months(ends) - months((year, month));
    let upgrade = format!(
        "upgrade to Kong Gateway {CURRENT_LTS} (LTS), the closest long-term support version"
    );
    if left < 0 {
        Some(format!(
            "Kong Gateway {line} reached its end of life in {}-{:02}: {upgrade}",
            ends.0, ends.1
        ))
    } else if left <= EOL_NOTICE_MONTHS {
        Some(format!(
            "Kong Gateway {line} reaches its end of life in {}-{:02}: {upgrade}",
            ends.0, ends.1
        ))
    } else {
        None
    }
}

/// Today as (year, month), in UTC.
pub fn this_month() -> (i32, u8) {
    let t = time::OffsetDateTime::now_utc();
    (t.year(), u8::from(t.month()))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What a node says about itself in a heartbeat.
#[derive(Clone, Debug, Default)]
pub struct NodeReport {
    /// Defaults to the hostname.
    pub id: Option<String>,
    pub hostname: String,
    pub ip: String,
    pub version: String,
    pub config_hash: String,
    /// `gateway` when absent.
    pub node_type: Option<String>,
    /// Fully compatible when absent.
    pub compatibility: Option<Compatibility>,
    /// Set by the cluster endpoint for a hybrid-mode data plane.
    pub hybrid: Option<Arc<HybridInfo>>,
}

/// A heartbeat's fields, checked: what a node record is made of.
#[derive(Clone, Debug)]
pub struct CheckedReport {
    id: String,
    hostname: String,
    ip: String,
    version: String,
    config_hash: String,
    node_type: String,
    compatibility: Compatibility,
    hybrid: Option<Arc<HybridInfo>>,
}

impl NodeReport {
    /// Checks the fields a node reports (the same refusals whichever path
    /// the heartbeat takes).
    pub fn check(self) -> Result<CheckedReport> {
        if self.hostname.trim().is_empty() || self.hostname.len() > 255 {
            return Err(Refusal::invalid("`hostname` must be 1 to 255 characters").on("hostname"));
        }
        let id = self.id.unwrap_or_else(|| self.hostname.clone());
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(
                Refusal::invalid("node `id` must be 1 to 255 printable characters").on("id"),
            );
        }
        let node_type = self.node_type.unwrap_or_else(gateway);
        if node_type.is_empty() || node_type.len() > 64 || node_type.chars().any(char::is_control) {
            return Err(Refusal::invalid("`type` must be 1 to 64 printable characters").on("type"));
        }
        let compatibility = self.compatibility.unwrap_or_default();
        check_compatibility(&compatibility)?;
        Ok(CheckedReport {
            id,
            hostname: self.hostname,
            ip: self.ip,
            version: self.version,
            config_hash: self.config_hash,
            node_type,
            compatibility,
            hybrid: self.hybrid,
        })
    }
}

/// The refusal of a heartbeat to a member of a composite.
pub fn member_refusal(group_name: &str) -> Refusal {
    Refusal::conflict(format!(
        "'{group_name}' is a member of a composite: runtime instances must connect to the composite, not to a member"
    ))
}

/// A group's runtime instances: soft state that heartbeats update in place,
/// without the writer and without copying the table (a heartbeat is O(log
/// nodes)). The registry's group and every published view of it share one
/// table, so readers always see the latest reports.
///
/// The store learns of reports in batches: each heartbeat marks its node
/// dirty and the writer persists the dirty ones about once a second (see
/// `engine`). Deleting a node is a write like any other.
///
/// Whether the group may take nodes is decided here too, under the table's
/// lock, so a heartbeat and a membership change can't cross: a group joining
/// a composite holds a join while its write is in flight ([`Self::begin_join`]),
/// and heartbeats meanwhile are [`Beat::Settling`] (the engine hands them to
/// the writer, which runs them once the join is settled).
#[derive(Default)]
pub struct NodeTable {
    inner: parking_lot::RwLock<Table>,
}

#[derive(Default)]
struct Table {
    nodes: BTreeMap<String, Arc<Node>>,
    /// Node ids whose state the store may not have yet.
    dirty: HashSet<String>,
    /// A member of a composite: heartbeats are refused.
    member: bool,
    /// Membership writes in flight that would make the group a member.
    joining: u32,
    /// The group is deleted: heartbeats find no group.
    closed: bool,
}

/// What a heartbeat came to.
#[derive(Debug)]
pub enum Beat {
    Done(Node),
    Refused(Refusal),
    /// A membership change of this group is in flight: ask again once it
    /// is settled.
    Settling,
}

impl std::fmt::Debug for NodeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.inner.read().nodes.iter())
            .finish()
    }
}

impl NodeTable {
    /// A table of restored nodes (all of them as the store has them).
    pub fn restored(nodes: impl IntoIterator<Item = Node>, member: bool) -> NodeTable {
        NodeTable {
            inner: parking_lot::RwLock::new(Table {
                nodes: nodes
                    .into_iter()
                    .map(|n| (n.id.clone(), Arc::new(n)))
                    .collect(),
                member,
                ..Table::default()
            }),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Node>> {
        self.inner.read().nodes.get(id).cloned()
    }

    /// Every node, by id.
    pub fn list(&self) -> Vec<Arc<Node>> {
        self.inner.read().nodes.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nodes seen within `window_ms` of `now_ms`.
    pub fn active(&self, now_ms: u64, window_ms: u64) -> usize {
        self.inner
            .read()
            .nodes
            .values()
            .filter(|n| n.is_active(now_ms, window_ms))
            .count()
    }

    /// Records a heartbeat (see [`Beat`]); `group_name` names the group in a
    /// refusal.
    pub fn beat(&self, gid: Uuid, group_name: &str, report: &CheckedReport, now: u64) -> Beat {
        let mut t = self.inner.write();
        if t.closed {
            return Beat::Refused(Refusal::not_found(format!(
                "no control plane with id {gid}"
            )));
        }
        if t.member {
            return Beat::Refused(member_refusal(group_name));
        }
        if t.joining > 0 {
            return Beat::Settling;
        }
        let node = t.put(report, now);
        Beat::Done(node)
    }

    /// A heartbeat inside a write (the writer, tests): no membership check
    /// (the caller made it); returns the node and the record it replaced.
    fn put(&self, report: &CheckedReport, now: u64) -> (Node, Option<Arc<Node>>) {
        let mut t = self.inner.write();
        let old = t.nodes.get(&report.id).cloned();
        (t.put(report, now), old)
    }

    /// Puts `old` back as node `id`'s record (`None`: no such node).
    fn restore(&self, id: String, old: Option<Arc<Node>>) {
        let mut t = self.inner.write();
        t.dirty.insert(id.clone());
        match old {
            Some(n) => t.nodes.insert(id, n),
            None => t.nodes.remove(&id),
        };
    }

    /// Takes `node` as another daemon stored it (a shared store), unless
    /// this table has heard from it since: the newer `last_seen` wins. Not
    /// dirty: the store has it already. True if the table changed.
    pub fn absorb(&self, node: Node) -> bool {
        let mut t = self.inner.write();
        if t.closed {
            return false;
        }
        match t.nodes.get(&node.id) {
            Some(n) if n.last_seen_ms >= node.last_seen_ms => false,
            _ => {
                t.nodes.insert(node.id.clone(), Arc::new(node));
                true
            }
        }
    }

    /// Removes node `id`; its old record, if it had one.
    pub(super) fn remove(&self, id: &str) -> Option<Arc<Node>> {
        let mut t = self.inner.write();
        // The removal itself is made durable by the write that does it.
        t.dirty.remove(id);
        t.nodes.remove(id)
    }

    /// A write would make this group a member of a composite: refused with
    /// the number of active nodes if it has any; else heartbeats wait until
    /// [`Self::settle`] or [`Self::end_join`].
    pub fn begin_join(&self, now_ms: u64, window_ms: u64) -> std::result::Result<(), usize> {
        let mut t = self.inner.write();
        let active = t
            .nodes
            .values()
            .filter(|n| n.is_active(now_ms, window_ms))
            .count();
        if active > 0 {
            return Err(active);
        }
        t.joining += 1;
        Ok(())
    }

    /// A join is over (its write undone, or committed and `member` is what
    /// the group now is).
    pub fn end_join(&self, member: Option<bool>) {
        let mut t = self.inner.write();
        t.joining = t.joining.saturating_sub(1);
        if let Some(m) = member {
            t.member = m;
        }
    }

    /// Whether the group is now a member of a composite (after a commit).
    pub fn set_member(&self, member: bool) {
        self.inner.write().member = member;
    }

    /// The group is gone: later heartbeats find nothing.
    pub fn close(&self) {
        self.inner.write().closed = true;
    }

    /// The dirty nodes, now clean: (id, its record, `None` if it is gone).
    /// Give them back with [`Self::mark_dirty`] if they can't be stored.
    pub fn take_dirty(&self) -> Vec<(String, Option<Arc<Node>>)> {
        let mut t = self.inner.write();
        if t.dirty.is_empty() {
            return Vec::new();
        }
        let dirty = std::mem::take(&mut t.dirty);
        dirty
            .into_iter()
            .map(|id| {
                let n = t.nodes.get(&id).cloned();
                (id, n)
            })
            .collect()
    }

    pub fn mark_dirty(&self, ids: impl IntoIterator<Item = String>) {
        self.inner.write().dirty.extend(ids);
    }
}

impl Table {
    fn put(&mut self, r: &CheckedReport, now: u64) -> Node {
        let old = self.nodes.get(&r.id);
        let changed = old.is_none_or(|o| {
            o.config_hash != r.config_hash
                || o.hostname != r.hostname
                || o.ip != r.ip
                || o.version != r.version
                || o.node_type != r.node_type
                || o.compatibility != r.compatibility
                || o.hybrid != r.hybrid
        });
        let node = Node {
            id: r.id.clone(),
            hostname: r.hostname.clone(),
            ip: r.ip.clone(),
            version: r.version.clone(),
            config_hash: r.config_hash.clone(),
            last_seen_ms: now,
            created_ms: old.map_or(now, |o| o.created_at_ms()),
            updated_ms: match old {
                Some(o) if !changed => o.updated_at_ms(),
                _ => now,
            },
            node_type: r.node_type.clone(),
            compatibility: r.compatibility.clone(),
            hybrid: r.hybrid.clone(),
        };
        if !self.dirty.contains(&r.id) {
            self.dirty.insert(r.id.clone());
        }
        self.nodes.insert(r.id.clone(), Arc::new(node.clone()));
        node
    }
}

impl Tx<'_> {
    /// A heartbeat as a step of a write (tests, the bench): undone with it.
    /// The daemon's heartbeats skip the writer ([`NodeTable::beat`]).
    pub fn heartbeat(&mut self, gid: Uuid, hb: NodeReport) -> Result<Node> {
        let g = self.reg.group(gid)?;
        if let Kind::Standard { composites, .. } = &g.kind
            && !composites.is_empty()
        {
            return Err(member_refusal(&g.meta.name));
        }
        let report = hb.check()?;
        let (node, old) = g.nodes.put(&report, now_ms());
        self.undo.push(Undo::Node(gid, report.id, old));
        self.viewed.insert(gid);
        Ok(node)
    }

    pub fn delete_node(&mut self, gid: Uuid, node_id: &str) -> Result<()> {
        let g = self.reg.group(gid)?;
        let Some(old) = g.nodes.remove(node_id) else {
            return Err(Refusal::not_found(format!(
                "no node '{node_id}' in control plane '{}'",
                g.meta.name
            )));
        };
        self.undo
            .push(Undo::Node(gid, node_id.to_string(), Some(old)));
        self.nodes_deleted.push((gid, node_id.to_string()));
        self.viewed.insert(gid);
        Ok(())
    }
}

impl Registry {
    /// Undoes one heartbeat or node deletion.
    pub(super) fn restore_node(&self, gid: Uuid, id: String, old: Option<Arc<Node>>) {
        if let Some(g) = self.groups.get(&gid) {
            g.nodes.restore(id, old);
        }
    }

    /// After a commit: each changed group's table learns whether the group
    /// is a member now, and the joins of the write end.
    pub fn settle_nodes(&self, effects: &super::Effects) {
        let member = |id: &Uuid| {
            self.groups.get(id).map(|g| {
                (
                    g,
                    matches!(&g.kind, Kind::Standard { composites, .. } if !composites.is_empty()),
                )
            })
        };
        for (id, _) in &effects.views {
            if let Some((g, m)) = member(id) {
                g.nodes.set_member(m);
            }
        }
        for id in &effects.joined {
            if let Some((g, m)) = member(id) {
                g.nodes.end_join(Some(m));
            }
        }
    }

    /// Sets every table's membership flag from the registry (at start).
    pub fn settle_all_nodes(&self) {
        for g in self.groups.values() {
            let m = matches!(&g.kind, Kind::Standard { composites, .. } if !composites.is_empty());
            g.nodes.set_member(m);
        }
    }

    /// Whether group `g` may join a composite as far as its nodes go (see
    /// [`NodeTable::begin_join`]); the caller records `Undo::Joining`.
    pub(super) fn begin_join(&self, g: &super::Group) -> std::result::Result<(), usize> {
        g.nodes.begin_join(now_ms(), self.settings.active_window_ms)
    }
}

fn check_compatibility(c: &Compatibility) -> Result<()> {
    if c.state.is_empty() || c.state.len() > 64 || c.state.chars().any(char::is_control) {
        return Err(Refusal::invalid(
            "`compatibility_status.state` must be 1 to 64 printable characters",
        )
        .on("compatibility_status.state"));
    }
    if c.issues.len() > MAX_COMPATIBILITY_ISSUES {
        return Err(Refusal::invalid(format!(
            "at most {MAX_COMPATIBILITY_ISSUES} compatibility issues, found {}",
            c.issues.len()
        ))
        .on("compatibility_status.issues"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Interner;
    use crate::registry::record::{Change, Loaded};
    use crate::registry::{RefusalKind, Settings};

    fn report(id: &str, hash: &str) -> CheckedReport {
        NodeReport {
            id: Some(id.into()),
            hostname: format!("{id}.internal"),
            config_hash: hash.into(),
            ..NodeReport::default()
        }
        .check()
        .expect("a valid report")
    }

    #[test]
    fn a_join_holds_heartbeats_and_a_member_or_a_deleted_group_refuses_them() {
        let t = NodeTable::default();
        let g = Uuid::nil();
        assert_eq!(t.begin_join(1_000, 30_000), Ok(()));
        assert!(matches!(
            t.beat(g, "blue", &report("a", "h"), 1_000),
            Beat::Settling
        ));
        t.end_join(None);
        assert!(matches!(
            t.beat(g, "blue", &report("a", "h"), 1_000),
            Beat::Done(_)
        ));
        assert_eq!(t.begin_join(2_000, 30_000), Err(1), "an active node");
        assert_eq!(t.begin_join(40_000, 30_000), Ok(()), "no node seen lately");
        t.end_join(Some(true));
        match t.beat(g, "blue", &report("b", "h"), 41_000) {
            Beat::Refused(e) => {
                assert_eq!(e.kind, RefusalKind::Conflict);
                assert!(
                    e.detail.contains("'blue' is a member of a composite"),
                    "{e:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        t.set_member(false);
        t.close();
        assert!(matches!(
            t.beat(g, "blue", &report("b", "h"), 41_000),
            Beat::Refused(e) if e.kind == RefusalKind::NotFound
        ));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn reports_keep_first_seen_and_last_change_and_are_stored_once() {
        let t = NodeTable::default();
        let g = Uuid::nil();
        let Beat::Done(n) = t.beat(g, "blue", &report("a", "h1"), 1_000) else {
            panic!("taken")
        };
        assert_eq!(
            (n.created_ms, n.updated_ms, n.last_seen_ms),
            (1_000, 1_000, 1_000)
        );
        let Beat::Done(n) = t.beat(g, "blue", &report("a", "h1"), 2_000) else {
            panic!("taken")
        };
        assert_eq!(
            (n.created_ms, n.updated_ms, n.last_seen_ms),
            (1_000, 1_000, 2_000)
        );
        let Beat::Done(n) = t.beat(g, "blue", &report("a", "h2"), 3_000) else {
            panic!("taken")
        };
        assert_eq!((n.created_ms, n.updated_ms), (1_000, 3_000));
        let dirty = t.take_dirty();
        assert_eq!(dirty.len(), 1, "three heartbeats, one record to store");
        assert_eq!(
            dirty[0].1.as_ref().map(|n| n.config_hash.as_str()),
            Some("h2")
        );
        assert!(t.take_dirty().is_empty());
        // A store that failed gets them again.
        t.mark_dirty(dirty.into_iter().map(|(id, _)| id));
        assert_eq!(t.take_dirty().len(), 1);
    }

    /// A store from before the node table kept nodes in group records:
    /// they load, and restore moves them to the table (the record is
    /// rewritten without them); a newer row in the table wins.
    #[test]
    fn nodes_in_old_group_records_move_to_the_node_table() {
        let reg = Registry::new(Arc::new(Interner::new()), Settings::default());
        let mut loaded = Loaded::default();
        for c in reg.all_changes() {
            match c {
                Change::PutGroup(r) => loaded.groups.push(*r),
                Change::PutBlob(h, b) => {
                    loaded.blobs.insert(h, b);
                }
                _ => {}
            }
        }
        let node = |id: &str, seen: u64| Node {
            id: id.into(),
            hostname: id.into(),
            ip: String::new(),
            version: String::new(),
            config_hash: String::new(),
            last_seen_ms: seen,
            created_ms: 0,
            updated_ms: 0,
            node_type: "gateway".into(),
            compatibility: Compatibility::default(),
            hybrid: None,
        };
        let gid = loaded.groups[0].meta.id;
        loaded.groups[0].nodes = vec![node("old", 5), node("both", 5)];
        loaded
            .nodes
            .insert(gid, vec![node("both", 9), node("new", 9)]);
        let mut reg =
            Registry::restore(Arc::new(Interner::new()), Settings::default(), loaded).unwrap();
        let g = reg.group(gid).unwrap();
        let seen: Vec<(String, u64)> = g
            .nodes
            .list()
            .iter()
            .map(|n| (n.id.clone(), n.last_seen_ms))
            .collect();
        assert_eq!(
            seen,
            [("both".into(), 9), ("new".into(), 9), ("old".into(), 5)]
        );
        let tidy = reg.take_restore_changes();
        let moved: Vec<(String, u64)> = tidy
            .iter()
            .filter_map(|c| match c {
                Change::PutNode(id, n) if *id == gid => Some((n.id.clone(), n.last_seen_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(moved, [("old".into(), 5), ("both".into(), 9)]);
        assert!(
            tidy.iter().any(
                |c| matches!(c, Change::PutGroup(r) if r.meta.id == gid && r.nodes.is_empty())
            )
        );
        // Records are written without nodes from now on.
        assert!(reg.record(reg.group(gid).unwrap()).nodes.is_empty());
    }

    #[test]
    fn end_of_life_by_release_line() {
        let nov_2026 = (2026, 11);
        assert!(end_of_life("2.8.4.14", nov_2026).is_some_and(|m| m.contains("2.8")));
        assert!(end_of_life("3.4.3.12", nov_2026).is_some());
        assert!(end_of_life("2.1.0", nov_2026).is_some());
        assert!(end_of_life("3.10.0.1", nov_2026).is_none());
        assert!(end_of_life("3.12.0.0", nov_2026).is_none());
        assert!(end_of_life("rgmerge-sidecar/0.1.0", nov_2026).is_none());
        assert!(end_of_life("", nov_2026).is_none());
        // Announced three months ahead.
        assert!(end_of_life("3.4.0", (2026, 5)).is_some_and(|m| m.contains("reaches")));
        assert!(end_of_life("3.4.0", (2026, 1)).is_none());
    }
}

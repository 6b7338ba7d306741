//! The pages' data: what each table shows, built from published views, and
//! the askama templates (`templates/ui/`, checked at compile time) that
//! render it. No HTTP here: the bench renders the groups page directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use uuid::Uuid;

use crate::engine::Engine;
use crate::registry::{ClusterType, GroupView, Node, SyncStatus, now_ms, rfc3339_ms};
use crate::report::text::{describe_conflict, help_for_conflict};
use crate::report::{Conflict, MemberError, Report, State as ReportState};

/// What every page carries: its title, the form token, the change counter
/// the live updates start from, and who is signed in.
pub struct Chrome {
    pub title: String,
    pub csrf: String,
    pub changes: u64,
    pub signed_in: Option<String>,
    pub can_sign_out: bool,
}

/// A state said in words and a symbol; colour only repeats it.
#[derive(Clone, Copy)]
pub struct Badge {
    pub text: &'static str,
    pub icon: &'static str,
    pub class: &'static str,
}

impl Badge {
    pub fn of(state: ReportState) -> Badge {
        match state {
            ReportState::Ok => Badge {
                text: "OK",
                icon: "✔",
                class: "badge-ok",
            },
            ReportState::Conflict => Badge {
                text: "CONFLICT",
                icon: "✖",
                class: "badge-conflict",
            },
            ReportState::Invalid => Badge {
                text: "INVALID",
                icon: "✖",
                class: "badge-invalid",
            },
        }
    }

    /// A report's badges: one per state that holds, so a composite with
    /// member errors and conflicts shows INVALID and CONFLICT.
    pub fn all(report: &Report) -> Vec<Badge> {
        if report.states.is_empty() {
            return vec![Badge::of(report.state)];
        }
        report.states.iter().map(|s| Badge::of(*s)).collect()
    }
}

/// The runtime type column: Kong Gateway for every group we serve.
fn kind_of(v: &GroupView) -> &'static str {
    match v.meta.cluster_type {
        ClusterType::ControlPlane => "Kong Gateway",
        ClusterType::ControlPlaneGroup => "Kong Gateway (composite)",
        ClusterType::K8sIngressController => "Kong Ingress Controller",
    }
}

fn labels_of(v: &GroupView) -> Vec<String> {
    v.meta
        .labels
        .iter()
        .map(|(k, val)| format!("{k}:{val}"))
        .collect()
}

// ---------------------------------------------------------------- groups list

pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub kind: &'static str,
    pub is_default: bool,
    pub active: usize,
    pub labels: Vec<String>,
    /// A composite's badges (none for a standard group: no state of its own).
    pub badges: Vec<Badge>,
    pub attention: bool,
}

/// The groups table's filter: a name fragment (any case) and a label, as
/// `key`, `key:value` or `key=value`.
#[derive(Default)]
pub struct GroupFilter {
    pub name: String,
    pub label: String,
}

impl GroupFilter {
    fn is_set(&self) -> bool {
        !self.name.trim().is_empty() || !self.label.trim().is_empty()
    }

    fn matches(&self, v: &GroupView, name_lower: &str) -> bool {
        let name = name_lower.trim();
        if !name.is_empty() && !v.meta.name.to_lowercase().contains(name) {
            return false;
        }
        let label = self.label.trim();
        if label.is_empty() {
            return true;
        }
        match label.split_once([':', '=']) {
            Some((k, val)) => v.meta.labels.get(k.trim()).map(String::as_str) == Some(val.trim()),
            None => v.meta.labels.contains_key(label),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/groups.html")]
pub struct GroupsPage {
    pub chrome: Chrome,
    pub filter_name: String,
    pub filter_label: String,
    pub filtered: bool,
    pub total: usize,
    pub rows: Vec<GroupRow>,
}

/// The groups table's rows for `views` (those `visible` lets through), by
/// name; and how many groups there are in all.
pub fn group_rows(
    views: &[Arc<GroupView>],
    filter: &GroupFilter,
    window_ms: u64,
) -> (Vec<GroupRow>, usize) {
    let now = now_ms();
    let name_lower = filter.name.to_lowercase();
    let mut rows: Vec<GroupRow> = views
        .iter()
        .filter(|v| filter.matches(v, &name_lower))
        .map(|v| {
            let badges = v
                .composite()
                .map(|c| Badge::all(&c.report))
                .unwrap_or_default();
            GroupRow {
                id: v.meta.id,
                name: v.meta.name.clone(),
                kind: kind_of(v),
                is_default: v.meta.is_default,
                active: v.active_instances(now, window_ms),
                labels: labels_of(v),
                attention: badges.iter().any(|b| b.text != "OK"),
                badges,
            }
        })
        .collect();
    rows.sort_by_cached_key(|r| (r.name.to_lowercase(), r.id));
    (rows, views.len())
}

/// The groups page for every group `engine` holds: what the bench measures.
pub fn groups_page(
    engine: &Engine,
    views: &[Arc<GroupView>],
    filter: GroupFilter,
    chrome: Chrome,
) -> Result<String, askama::Error> {
    let (rows, total) = group_rows(views, &filter, engine.active_window_ms());
    GroupsPage {
        chrome,
        filtered: filter.is_set(),
        filter_name: filter.name,
        filter_label: filter.label,
        total,
        rows,
    }
    .render()
}

// ----------------------------------------------------------------- conflicts

pub struct ConflictSide {
    pub member: String,
    pub member_id: String,
    pub path: String,
}

pub struct ConflictView {
    pub code: &'static str,
    pub title: String,
    pub entity: String,
    pub field: String,
    pub value: String,
    pub sides: Vec<ConflictSide>,
    pub help: &'static str,
}

/// Longest value shown in a conflict; the report's own values are clipped
/// already, this only bounds the page.
const MAX_VALUE_CHARS: usize = 200;

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_VALUE_CHARS).collect();
    out.push('…');
    out
}

/// Every conflict with its members side by side; `id_of` finds a member's
/// group id by name (members are named by group name in reports).
pub fn conflict_views(
    conflicts: &[Conflict],
    id_of: &impl Fn(&str) -> Option<Uuid>,
) -> Vec<ConflictView> {
    conflicts
        .iter()
        .map(|c| ConflictView {
            code: c.kind.code(),
            title: describe_conflict(c),
            entity: c.entity.clone(),
            field: if c.field.is_empty() {
                "Value".into()
            } else {
                c.field.clone()
            },
            value: clip(&c.value),
            sides: c
                .members
                .iter()
                .map(|m| ConflictSide {
                    member: m.clone(),
                    member_id: id_of(m).map(|id| id.to_string()).unwrap_or_default(),
                    path: c.paths.get(m).cloned().unwrap_or_default(),
                })
                .collect(),
            help: help_for_conflict(c.kind),
        })
        .collect()
}

pub struct ErrorView {
    pub code: &'static str,
    pub member: String,
    pub path: String,
    pub message: String,
}

pub fn error_views(errors: &[MemberError]) -> Vec<ErrorView> {
    errors
        .iter()
        .map(|e| ErrorView {
            code: e.kind.code(),
            member: e.member.clone(),
            path: e.path.clone(),
            message: clip(&e.message),
        })
        .collect()
}

// ----------------------------------------------------------------- instances

/// The instances table's sortable columns (the seed: Last Seen, Sync Status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    LastSeen,
    SyncStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    /// Most recently seen first.
    fn default() -> Sort {
        Sort {
            key: SortKey::LastSeen,
            descending: true,
        }
    }
}

impl Sort {
    /// `?sort=last_seen|sync_status&order=asc|desc`; anything else is the default.
    pub fn parse(sort: Option<&str>, order: Option<&str>) -> Sort {
        let key = match sort {
            Some("sync_status") => SortKey::SyncStatus,
            _ => SortKey::LastSeen,
        };
        let descending = match order {
            Some("asc") => false,
            Some("desc") => true,
            // Newest first; out of sync first: what people look for.
            _ => true,
        };
        Sort { key, descending }
    }
}

/// A sortable column header: its `aria-sort`, the link that sorts by it
/// (the other way round when it is already the key), and an arrow.
pub struct SortHeader {
    pub aria: &'static str,
    pub href: String,
    pub arrow: &'static str,
}

fn sort_header(id: Uuid, current: Sort, key: SortKey) -> SortHeader {
    let name = match key {
        SortKey::LastSeen => "last_seen",
        SortKey::SyncStatus => "sync_status",
    };
    let (aria, arrow, next_desc) = if current.key == key {
        if current.descending {
            ("descending", " ▼", false)
        } else {
            ("ascending", " ▲", true)
        }
    } else {
        ("none", "", true)
    };
    SortHeader {
        aria,
        href: format!(
            "/ui/groups/{id}?sort={name}&order={}#instances",
            if next_desc { "desc" } else { "asc" }
        ),
        arrow,
    }
}

pub struct InstanceRow {
    pub host: String,
    pub ip: String,
    pub last_seen: String,
    pub last_seen_iso: String,
    pub last_seen_ms: u64,
    pub version: String,
    pub in_sync: bool,
    pub sync_code: &'static str,
    pub active: bool,
    /// What keeps the config from it, one line each (empty: compatible).
    pub compat_issues: Vec<String>,
    /// Connected in hybrid mode (else a sidecar heartbeat).
    pub hybrid: bool,
    pub connected: bool,
}

/// Sorted by `sort`; ties by last seen (newest first), then id.
pub fn instance_rows(view: &GroupView, sort: Sort, window_ms: u64) -> Vec<InstanceRow> {
    let sync = crate::server::nodes::InSync::of(view);
    let now = now_ms();
    let all = view.nodes.list();
    let mut nodes: Vec<&Node> = all.iter().map(|n| n.as_ref()).collect();
    let by_seen = |a: &&Node, b: &&Node| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id));
    match sort.key {
        SortKey::LastSeen => {
            nodes.sort_by(|a, b| {
                let o = a.last_seen_ms.cmp(&b.last_seen_ms);
                let o = if sort.descending { o.reverse() } else { o };
                o.then(a.id.cmp(&b.id))
            });
        }
        SortKey::SyncStatus => {
            nodes.sort_by(|a, b| {
                // In Sync < Out of Sync, as the words sort.
                let o = sync.status(a).cmp(&sync.status(b));
                let o = if sort.descending { o.reverse() } else { o };
                o.then_with(|| by_seen(a, b))
            });
        }
    }
    nodes
        .into_iter()
        .map(|n| {
            let in_sync = sync.status(n) == SyncStatus::InSync;
            let iso = rfc3339_ms(n.last_seen_ms);
            InstanceRow {
                host: n.hostname.clone(),
                ip: n.ip.clone(),
                last_seen: display_time(&iso),
                last_seen_iso: iso,
                last_seen_ms: n.last_seen_ms,
                version: n.version.clone(),
                in_sync,
                sync_code: if in_sync { "IN_SYNC" } else { "OUT_OF_SYNC" },
                active: crate::server::nodes::is_active(n, now, window_ms),
                compat_issues: n
                    .compatibility
                    .issues
                    .iter()
                    .filter(|i| i.severity.as_deref() != Some("warning"))
                    .filter_map(|i| i.description.clone())
                    .collect(),
                hybrid: n.hybrid.is_some(),
                connected: n.hybrid.as_ref().is_some_and(|h| h.connected),
            }
        })
        .collect()
}

/// `2026-11-30T22:45:01.123Z` → `2026-11-30 22:45:01 UTC`.
fn display_time(iso: &str) -> String {
    match (iso.get(..10), iso.get(11..19)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => iso.to_string(),
    }
}

// ---------------------------------------------------------------- group page

pub struct MemberRow {
    pub id: Uuid,
    pub name: String,
    pub entities: usize,
    /// This member's errors in the composite (INVALID).
    pub errors: usize,
    pub conflicts: usize,
}

pub struct CompositeLink {
    pub id: Uuid,
    pub name: String,
    pub badges: Vec<Badge>,
}

pub struct HistoryRow {
    pub version: u64,
    pub published_at: String,
    pub state: &'static str,
    pub change: String,
    pub hash: String,
    pub short_hash: String,
    pub served: bool,
}

pub struct LastGood {
    pub version: u64,
    pub hash: String,
    pub published_at: String,
    /// Served because of a pin rather than as the last conflict-free merge.
    pub pinned: bool,
}

pub struct GroupHead {
    pub id: Uuid,
    pub name: String,
    pub kind: &'static str,
    pub labels: Vec<String>,
}

pub struct WarningView {
    pub code: &'static str,
    pub message: String,
    pub members: String,
}

#[derive(Template)]
#[template(path = "ui/group.html")]
pub struct GroupPage {
    pub chrome: Chrome,
    pub g: GroupHead,
    pub description: Option<String>,
    pub badges: Vec<Badge>,
    /// Every state that holds, in words (`INVALID and CONFLICT`).
    pub state: String,
    pub version: u64,
    pub hash: String,
    pub pin: Option<u64>,
    pub is_composite: bool,
    pub last_good: Option<LastGood>,
    pub members: Vec<MemberRow>,
    pub conflicts: Vec<ConflictView>,
    pub errors: Vec<ErrorView>,
    pub warnings: Vec<WarningView>,
    pub composites: Vec<CompositeLink>,
    pub member_of_composite: bool,
    pub instances: Vec<InstanceRow>,
    pub active: usize,
    pub out_of_sync: usize,
    pub sort_last_seen: SortHeader,
    pub sort_sync: SortHeader,
    pub history: Vec<HistoryRow>,
    /// Whether the viewer may pre-flight and apply configs here (editor).
    pub can_edit: bool,
}

/// A group's page: `lookup` finds other groups' views (members, composites).
pub fn group_page(
    view: &GroupView,
    lookup: &impl Fn(Uuid) -> Option<Arc<GroupView>>,
    sort: Sort,
    window_ms: u64,
    can_edit: bool,
    chrome: Chrome,
) -> Result<String, askama::Error> {
    let id = view.meta.id;
    let served = &view.snapshot;
    let mut page = GroupPage {
        chrome,
        can_edit,
        g: GroupHead {
            id,
            name: view.meta.name.clone(),
            kind: kind_of(view),
            labels: labels_of(view),
        },
        description: view.meta.description.clone().filter(|d| !d.is_empty()),
        badges: Vec::new(),
        state: "OK".into(),
        version: served.version,
        hash: served.body.hash().to_string(),
        pin: view.pin.as_ref().map(|p| p.pin.version),
        is_composite: false,
        last_good: None,
        members: Vec::new(),
        conflicts: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        composites: Vec::new(),
        member_of_composite: false,
        instances: instance_rows(view, sort, window_ms),
        active: view.active_instances(now_ms(), window_ms),
        out_of_sync: 0,
        sort_last_seen: sort_header(id, sort, SortKey::LastSeen),
        sort_sync: sort_header(id, sort, SortKey::SyncStatus),
        history: view
            .history
            .iter()
            .rev()
            .map(|e| HistoryRow {
                version: e.version,
                published_at: display_time(&e.published_at),
                state: e.state.as_str(),
                change: e.change.clone(),
                hash: e.hash.clone(),
                short_hash: e.hash.chars().take(12).collect(),
                served: e.version == served.version,
            })
            .collect(),
    };
    page.out_of_sync = page.instances.iter().filter(|n| !n.in_sync).count();
    if let Some(c) = view.composite() {
        let report: &Report = &c.report;
        page.is_composite = true;
        page.state = report.states_words();
        page.badges = Badge::all(report);
        let members: Vec<Arc<GroupView>> = c.members.iter().filter_map(|m| lookup(*m)).collect();
        let id_of = |name: &str| {
            members
                .iter()
                .find(|m| m.meta.name == name)
                .map(|m| m.meta.id)
        };
        let entities: BTreeMap<&str, usize> = report
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.entities))
            .collect();
        page.members = members
            .iter()
            .map(|m| MemberRow {
                id: m.meta.id,
                name: m.meta.name.clone(),
                entities: entities.get(m.meta.name.as_str()).copied().unwrap_or(0),
                errors: report
                    .errors
                    .iter()
                    .filter(|e| e.member == m.meta.name)
                    .count(),
                conflicts: report
                    .conflicts
                    .iter()
                    .filter(|x| x.members.iter().any(|n| *n == m.meta.name))
                    .count(),
            })
            .collect();
        page.conflicts = conflict_views(&report.conflicts, &id_of);
        page.errors = error_views(&report.errors);
        page.warnings = report
            .warnings
            .iter()
            .map(|w| WarningView {
                code: w.kind.code(),
                message: clip(&w.message),
                members: w.members.join(", "),
            })
            .collect();
        if report.state != ReportState::Ok {
            let entry = view.history.iter().find(|e| e.version == served.version);
            page.last_good = Some(LastGood {
                version: served.version,
                hash: served.body.hash().to_string(),
                published_at: entry
                    .map(|e| display_time(&e.published_at))
                    .unwrap_or_default(),
                pinned: view.pin.is_some(),
            });
        }
    }
    if let Some(st) = view.standard() {
        page.member_of_composite = !st.composites.is_empty();
        page.composites = st
            .composites
            .iter()
            .filter_map(|c| lookup(*c))
            .map(|c| CompositeLink {
                id: c.meta.id,
                name: c.meta.name.clone(),
                badges: c.composite().map_or_else(
                    || vec![Badge::of(ReportState::Ok)],
                    |x| Badge::all(&x.report),
                ),
            })
            .collect();
    }
    page.render()
}

// ----------------------------------------------------------------- preflight

pub struct CompositeResult {
    pub id: Uuid,
    pub name: String,
    pub before: Vec<Badge>,
    pub after: Vec<Badge>,
    pub conflicts: Vec<ConflictView>,
}

pub struct PreflightResult {
    pub applied: bool,
    pub badge: Badge,
    pub summary: String,
    pub errors: Vec<ErrorView>,
    pub composites: Vec<CompositeResult>,
    /// Conflicts in all the composites after the change.
    pub conflicts: usize,
    /// Why there is no Apply button, if there isn't.
    pub cannot_apply: Option<String>,
    /// Connected data planes the config would be held back from, one line
    /// per group and reason.
    pub held_back: Vec<String>,
}

#[derive(Template)]
#[template(path = "ui/preflight.html")]
pub struct PreflightPage {
    pub chrome: Chrome,
    pub id: Uuid,
    pub name: String,
    pub can_edit: bool,
    pub text: String,
    pub result: Option<PreflightResult>,
}

// ------------------------------------------------------------------ messages

#[derive(Template)]
#[template(path = "ui/login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub next: String,
    pub note: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
}

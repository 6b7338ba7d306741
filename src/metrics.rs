//! Prometheus metrics: request counts and latencies, write (merge) durations,
//! conflicts, member errors and states per composite, snapshot versions. Process-wide series are
//! recorded through the `metrics` facade and rendered by
//! `metrics-exporter-prometheus`; per-group series are rendered at scrape
//! time from what the caller passes (the published views), so a deleted
//! group's series are gone with it instead of lingering at zero, and each is
//! labelled with the group's id and its current name.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use uuid::Uuid;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process; later calls reuse it.
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ])
            .ok()?
            // Batch sizes are counts, not seconds.
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("rgmerge_write_batch_size".into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            )
            .ok()?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok()?;
        Some(handle)
    });
}

/// One group's per-group series.
#[derive(Clone, Debug)]
pub struct GroupSeries<'a> {
    pub id: &'a Uuid,
    pub name: &'a str,
    /// The served snapshot's version.
    pub version: u64,
    /// A composite's conflicts now; `None` for a standard group.
    pub conflicts: Option<usize>,
    /// A composite's member errors now; `None` for a standard group.
    pub errors: Option<usize>,
    pub pinned: bool,
}

/// The Prometheus text exposition of every metric, the given groups' own
/// series included.
pub fn render(groups: &[GroupSeries]) -> String {
    let mut out = match HANDLE.get() {
        Some(Some(h)) => h.render(),
        _ => String::new(),
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let mut groups = groups.to_vec();
    groups.sort_by(|a, b| a.id.cmp(b.id));
    let g = &groups;
    family(
        &mut out,
        "rgmerge_snapshot_version",
        "The version of the snapshot a group serves.",
        g.iter().map(|g| (labels(g), Some(g.version as f64))),
    );
    family(
        &mut out,
        "rgmerge_composite_conflicts",
        "The conflicts a composite has now.",
        g.iter().map(|g| (labels(g), g.conflicts.map(|c| c as f64))),
    );
    family(
        &mut out,
        "rgmerge_composite_member_errors",
        "The member errors a composite has now (INVALID while above 0).",
        g.iter().map(|g| (labels(g), g.errors.map(|c| c as f64))),
    );
    // One series per state, 1 while it holds: a composite with member
    // errors and conflicts is INVALID and CONFLICT at once.
    family(
        &mut out,
        "rgmerge_composite_state",
        "1 for each state a composite is in now (INVALID and CONFLICT may both be 1).",
        g.iter()
            .filter_map(|g| Some((labels(g), g.errors?, g.conflicts?)))
            .flat_map(|(l, errors, conflicts)| {
                [
                    ("OK", errors == 0 && conflicts == 0),
                    ("INVALID", errors > 0),
                    ("CONFLICT", conflicts > 0),
                ]
                .map(|(state, on)| {
                    (
                        format!("{l},state=\"{state}\""),
                        Some(if on { 1.0 } else { 0.0 }),
                    )
                })
            }),
    );
    family(
        &mut out,
        "rgmerge_snapshot_pinned",
        "1 while a group is pinned to a kept version.",
        g.iter()
            .map(|g| (labels(g), Some(if g.pinned { 1.0 } else { 0.0 }))),
    );
    out
}

/// One gauge family: its rows (labels, value), those with a value; none
/// and the family is left out.
fn family(
    out: &mut String,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (String, Option<f64>)>,
) {
    let rows: Vec<(String, f64)> = rows.filter_map(|(l, v)| Some((l, v?))).collect();
    if rows.is_empty() {
        return;
    }
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (l, v) in rows {
        out.push_str(&format!("{name}{{{l}}} {v}\n"));
    }
}

fn labels(g: &GroupSeries) -> String {
    format!(
        "group_id=\"{}\",group_name=\"{}\"",
        g.id,
        escape_label(g.name)
    )
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("rgmerge_http_requests_total", &labels).increment(1);
    metrics::histogram!("rgmerge_http_request_duration_seconds", &labels[..2])
        .record(took.as_secs_f64());
}

pub fn write_finished(took: Duration) {
    metrics::histogram!("rgmerge_write_duration_seconds").record(took.as_secs_f64());
}

/// A request refused for its identity (401) or rights (403).
pub fn auth_failure(reason: &'static str) {
    metrics::counter!("rgmerge_auth_failures_total", "reason" => reason).increment(1);
}

/// An audit entry of a refused request dropped because too many were queued.
pub fn audit_dropped() {
    metrics::counter!("rgmerge_audit_dropped_total").increment(1);
}

/// A write's audit entry was stored with a status other than its answer's
/// (a second entry records the answer).
pub fn audit_corrected() {
    metrics::counter!("rgmerge_audit_corrections_total").increment(1);
}

pub fn audit_write_failed() {
    metrics::counter!("rgmerge_audit_write_failures_total").increment(1);
}

/// How the daemon stands with its store, as `/metrics` shows it.
#[derive(Clone, Debug)]
pub struct StoreSeries {
    /// `redb` or `postgres`.
    pub kind: &'static str,
    pub reachable: bool,
    /// The change log position applied (a shared store only).
    pub position: Option<u64>,
    pub lag_changes: u64,
    pub lag_seconds: f64,
}

/// Appends the store's gauges, labelled with its kind.
pub fn render_store(out: &mut String, s: &StoreSeries) {
    let mut gauge = |name: &str, help: &str, v: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{store=\"{}\"}} {v}\n",
            s.kind
        ));
    };
    gauge(
        "rgmerge_store_reachable",
        "1 while the store answers; writes are refused otherwise.",
        if s.reachable { 1.0 } else { 0.0 },
    );
    if let Some(p) = s.position {
        gauge(
            "rgmerge_store_log_position",
            "The shared change log position this daemon has applied.",
            p as f64,
        );
    }
    gauge(
        "rgmerge_store_lag_changes",
        "Changes committed to the shared store that this daemon has not applied.",
        s.lag_changes as f64,
    );
    gauge(
        "rgmerge_store_lag_seconds",
        "Seconds since this daemon last knew it was caught up with the shared store.",
        s.lag_seconds,
    );
}

/// How many writes one store commit made durable (group commit).
pub fn write_batch(writes: usize) {
    metrics::histogram!("rgmerge_write_batch_size").record(writes as f64);
}

/// A heartbeat taken (answered without the writer; stored in a later batch).
pub fn heartbeat() {
    metrics::counter!("rgmerge_heartbeats_total").increment(1);
}

/// How the last start-up got its members: thawed from the store, or built
/// from their configs (every member, after an upgrade).
pub fn members_restored(thawed: usize, built: usize) {
    metrics::gauge!("rgmerge_startup_members_thawed").set(thawed as f64);
    metrics::gauge!("rgmerge_startup_members_built").set(built as f64);
}

/// A batch of node reports stored: `nodes` records, and every heartbeat
/// up to number `heartbeats` is now durable (compare `rgmerge_heartbeats_total`).
pub fn nodes_stored(nodes: usize, heartbeats: u64) {
    metrics::counter!("rgmerge_node_reports_stored_total").increment(nodes as u64);
    metrics::gauge!("rgmerge_heartbeats_stored").set(heartbeats as f64);
}

/// A data plane connected (`1`) to the cluster endpoint or left it (`-1`).
pub fn cluster_connection(delta: i64) {
    metrics::gauge!("rgmerge_cluster_connections").increment(delta as f64);
}

/// A connection to the cluster endpoint refused before the upgrade, by why.
pub fn cluster_refused(reason: &'static str) {
    metrics::counter!("rgmerge_cluster_refused_total", "reason" => reason).increment(1);
}

/// A config sent to a data plane, and its compressed size.
pub fn cluster_config_sent(bytes: usize) {
    metrics::counter!("rgmerge_cluster_configs_sent_total").increment(1);
    metrics::counter!("rgmerge_cluster_config_bytes_sent_total").increment(bytes as u64);
}

/// A served version held back from a data plane that could not load it.
pub fn cluster_held_back() {
    metrics::counter!("rgmerge_cluster_configs_held_back_total").increment(1);
}

/// A request refused by `--api-rate-limit`.
pub fn rate_limited() {
    metrics::counter!("rgmerge_rate_limited_total").increment(1);
}

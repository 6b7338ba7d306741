//! Prometheus metrics: request counts and latencies, write (merge) durations,
//! conflicts per composite, snapshot versions. Recorded through the `metrics`
//! facade; rendered by `metrics-exporter-prometheus` for `GET /metrics`.

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
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok()?;
        Some(handle)
    });
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    match HANDLE.get() {
        Some(Some(h)) => h.render(),
        _ => String::new(),
    }
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

pub fn snapshot_published(group: &Uuid, version: u64) {
    metrics::gauge!("rgmerge_snapshot_version", "group" => group.to_string()).set(version as f64);
}

pub fn composite_conflicts(group: &Uuid, conflicts: usize) {
    metrics::gauge!("rgmerge_composite_conflicts", "group" => group.to_string())
        .set(conflicts as f64);
}

pub fn group_deleted(group: &Uuid) {
    metrics::gauge!("rgmerge_snapshot_version", "group" => group.to_string()).set(0.0);
    metrics::gauge!("rgmerge_composite_conflicts", "group" => group.to_string()).set(0.0);
}

/// A request refused for its identity (401) or rights (403).
pub fn auth_failure(reason: &'static str) {
    metrics::counter!("rgmerge_auth_failures_total", "reason" => reason).increment(1);
}

/// An audit entry of a refused request dropped because too many were queued.
pub fn audit_dropped() {
    metrics::counter!("rgmerge_audit_dropped_total").increment(1);
}

pub fn audit_write_failed() {
    metrics::counter!("rgmerge_audit_write_failures_total").increment(1);
}

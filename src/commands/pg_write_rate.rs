//! `rgmerge bench --postgres URL`: durable writes per second on a
//! PostgreSQL store, through the engine as the daemon runs it (group
//! commit, `src/engine/pg_commit.rs`), with no HTTP in between. Each writer
//! owns a group and replaces its config back to back, as
//! `scripts/pg_bench.py`'s throughput phase does through two daemons.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::engine::{AuditOptions, Engine};
use crate::registry::{Mode, NewGroup, Settings};
use crate::store::postgres::PgStore;

/// Writes/s, p50/p99 of `writers` concurrent writers for `seconds` on the
/// database at `url`, which must be empty or hold only groups this
/// benchmark made (it makes its own, named `bench-w<k>-<pid>`).
pub fn measure(url: &str, writers: usize, seconds: f64) -> Value {
    match run(url, writers.max(1), seconds.max(0.1)) {
        Ok(v) => v,
        Err(e) => json!({ "error": e, "store": crate::store::postgres::redact(url) }),
    }
}

fn run(url: &str, writers: usize, seconds: f64) -> Result<Value, String> {
    let store = PgStore::open(url).map_err(|e| e.to_string())?;
    let engine = Arc::new(
        Engine::start_postgres(store, Settings::default(), AuditOptions::default())
            .map_err(|e| e.to_string())?,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime for the writers: {e}"))?;
    let result = runtime.block_on(async {
        let mut groups = Vec::with_capacity(writers);
        let pid = std::process::id();
        for k in 0..writers {
            let view = engine
                .create_group(NewGroup {
                    name: format!("bench-w{k}-{pid}"),
                    ..NewGroup::default()
                })
                .await
                .map_err(|e| format!("creating a group: {e:?}"))?;
            groups.push(view.meta.id);
        }
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(k, id)| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut failed = 0u64;
                    let mut n = 0u64;
                    while Instant::now() < until {
                        n += 1;
                        let body = format!(
                            r#"{{"_format_version":"3.0","services":[{{"name":"w{k}-svc","host":"h{n}.internal"}}]}}"#
                        );
                        let t = Instant::now();
                        let r = engine
                            .put_config(
                                id,
                                body.into_bytes(),
                                Some("application/json"),
                                Mode::Apply,
                                None,
                            )
                            .await;
                        match r {
                            Ok(_) => latencies.push(t.elapsed()),
                            Err(_) => failed += 1,
                        }
                    }
                    (latencies, failed)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut failed = 0;
        for t in tasks {
            let (l, f) = t.await.map_err(|e| format!("a writer stopped: {e}"))?;
            latencies.extend(l);
            failed += f;
        }
        let elapsed = started.elapsed().as_secs_f64();
        engine.close().await;
        Ok::<_, String>((latencies, failed, elapsed))
    });
    let (mut latencies, failed, elapsed) = result?;
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let round = |x: f64| (x * 10.0).round() / 10.0;
    Ok(json!({
        "writers": writers,
        "seconds": round(elapsed),
        "writes": latencies.len(),
        "failed": failed,
        "writes_per_s": round(latencies.len() as f64 / elapsed),
        "p50_ms": round(pick(0.5)),
        "p99_ms": round(pick(0.99)),
        "store": crate::store::postgres::redact(url),
    }))
}

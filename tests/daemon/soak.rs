//! Soak: many concurrent clients over the socket for a bounded time (10 s;
//! `RGMERGE_SOAK_SECS` to change it) mixing config writes (valid, colliding,
//! invalid), membership changes, snapshot long-polls, heartbeats and reads,
//! with more clients than `--max-connections`. Afterwards every composite's
//! group-status equals a from-scratch library merge of the configs the daemon
//! acknowledged (fetched back with GET /config), every OK composite serves
//! exactly `Composite::assemble`'s bytes and hash, and the daemon's RSS has
//! not grown without bound.
//!
//! Also: connections past `--max-connections` wait and are served in turn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Client, Daemon, V2, hang_guard, serve_accepts};
use rgmerge::compose::Composite;
use rgmerge::config::Format;
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny deterministic PRNG (xorshift), so a failing run can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Configs drawn from small pools so members collide: shared service names,
/// ids, consumer keys and vault prefixes; one in ten is invalid.
fn config(r: &mut Rng) -> (String, &'static str) {
    let names = ["orders", "users", "billing", "search"];
    if r.below(10) == 0 {
        return (
            "{\"_format_version\":\"3.0\",\"routes\":[{\"name\":\"x\",\"paths\":[\"/\"],\"service\":{\"name\":\"ghost\"}}]}".into(),
            "application/json",
        );
    }
    let mut services = Vec::new();
    for _ in 0..r.below(3) {
        let n = names[r.below(names.len())];
        let mut s = json!({"name": format!("{n}-{}", r.below(6)), "host": format!("{n}.internal"),
            "routes": [{"name": format!("{n}-r{}", r.below(20)), "paths": [format!("/{n}")]}]});
        if r.below(8) == 0 {
            s["id"] = json!(format!("9b1a7c3e-0000-4000-8000-00000000000{}", r.below(3)));
        }
        if r.below(8) == 0 {
            s["host"] = json!(format!("{{vault://{}/host}}", ["env", "p1"][r.below(2)]));
        }
        services.push(s);
    }
    let mut doc = json!({"_format_version": "3.0", "services": services});
    if r.below(4) == 0 {
        doc["consumers"] = json!([{"username": format!("u{}", r.below(4)),
            "keyauth_credentials": [{"key": format!("k{}", r.below(4))}]}]);
    }
    if r.below(6) == 0 {
        doc["vaults"] = json!([{"name": "env", "prefix": "p1"}]);
    }
    if r.below(2) == 0 {
        (
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
            "application/yaml",
        )
    } else {
        (doc.to_string(), "application/json")
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Counts per kind of request, to show the mix really happened.
#[derive(Default)]
struct Counts {
    writes: AtomicU64,
    refused_writes: AtomicU64,
    membership: AtomicU64,
    polls_changed: AtomicU64,
    polls: AtomicU64,
    heartbeats: AtomicU64,
    reads: AtomicU64,
}

fn allowed(status: u16, what: &str, body: &str) {
    assert!(
        matches!(status, 200 | 201 | 204 | 304 | 400 | 409),
        "{what}: unexpected {status}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_clients_then_incremental_equals_from_scratch() {
    let secs: u64 = std::env::var("RGMERGE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let d = Daemon::builder()
        .flag("--max-connections", 16)
        .flag("--max-in-flight", 8)
        .flag("--max-wait-secs", 1)
        .start();
    let c = d.client();
    let mut stds = Vec::new();
    for i in 0..6 {
        stds.push(c.standard(&format!("team-{i}")).await);
    }
    let comps = vec![c.composite("eu").await, c.composite("us").await];
    let edge = c.standard("edge").await;
    c.add(&comps[0], &[&stds[0], &stds[1], &stds[2]])
        .await
        .expect(204);
    c.add(&comps[1], &[&stds[2], &stds[3]]).await.expect(204);

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    let seed = 0x5eed_u64;
    // 24 clients, each with its own connection pool, against 16 connections.
    for w in 0..24u64 {
        let c = Client::new(&d.socket);
        let (stop, counts) = (stop.clone(), counts.clone());
        let (stds, comps, edge) = (stds.clone(), comps.clone(), edge.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = Rng(seed + w * 7919);
            let mut versions: BTreeMap<String, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                match w % 6 {
                    // config writes, sometimes dry runs
                    0 | 1 => {
                        let g = &stds[r.below(stds.len())];
                        let (body, ct) = config(&mut r);
                        let dry = if r.below(5) == 0 { "?dry_run=true" } else { "" };
                        let resp = c
                            .send(
                                "PUT",
                                &format!("{V2}/{g}/config{dry}"),
                                &[("content-type", ct)],
                                Some(body.into_bytes()),
                            )
                            .await;
                        allowed(resp.status, "config write", &resp.text());
                        if resp.status == 200 {
                            counts.writes.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counts.refused_writes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // membership changes
                    2 => {
                        let comp = &comps[r.below(comps.len())];
                        let m = &stds[r.below(stds.len())];
                        let resp = if r.below(2) == 0 {
                            c.add(comp, &[m]).await
                        } else {
                            c.remove(comp, &[m]).await
                        };
                        allowed(resp.status, "membership", &resp.text());
                        counts.membership.fetch_add(1, Ordering::Relaxed);
                    }
                    // long-polls on a composite or a member
                    3 => {
                        let g = if r.below(3) == 0 {
                            &stds[r.below(stds.len())]
                        } else {
                            &comps[r.below(comps.len())]
                        };
                        let known = versions.get(g).copied().unwrap_or(0);
                        let resp = c
                            .get(&format!("{V2}/{g}/snapshot?wait=1&version={known}"))
                            .await;
                        allowed(resp.status, "long-poll", &resp.text());
                        let v: u64 = resp
                            .header("x-snapshot-version")
                            .and_then(|v| v.parse().ok())
                            .expect("x-snapshot-version");
                        assert!(v >= known, "snapshot version went back: {known} -> {v}");
                        if resp.status == 200 {
                            serde_json::from_slice::<Value>(&resp.body).expect("snapshot is JSON");
                            counts.polls_changed.fetch_add(1, Ordering::Relaxed);
                        }
                        versions.insert(g.clone(), v);
                        counts.polls.fetch_add(1, Ordering::Relaxed);
                    }
                    // heartbeats from nodes of the composites and of `edge`
                    4 => {
                        let g = if r.below(3) == 0 {
                            &edge
                        } else {
                            &comps[r.below(comps.len())]
                        };
                        let node = format!("dp-{w}-{}", r.below(4));
                        let resp = c.heartbeat(g, &node, &format!("h{}", r.below(3))).await;
                        allowed(resp.status, "heartbeat", &resp.text());
                        assert_eq!(resp.status, 200, "{}", resp.text());
                        counts.heartbeats.fetch_add(1, Ordering::Relaxed);
                    }
                    // reads
                    _ => {
                        let comp = &comps[r.below(comps.len())];
                        let paths = [
                            format!("{V2}/{comp}/group-status"),
                            V2.to_string(),
                            format!("{V2}/{comp}/nodes?sort=sync_status"),
                            "/metrics".to_string(),
                        ];
                        let resp = c.get(&paths[r.below(paths.len())]).await;
                        assert_eq!(resp.status, 200, "{}", resp.text());
                        counts.reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let pid = d.pid();
    tokio::time::sleep(Duration::from_secs(2.min(secs))).await;
    let warm = rss_kb(pid);
    tokio::time::sleep(Duration::from_secs(secs.saturating_sub(2))).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    let end = rss_kb(pid);
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "soak {secs}s: {} config writes ({} refused), {} membership changes, {} long-polls ({} with news), {} heartbeats, {} reads; RSS {warm} kB after warm-up, {end} kB at the end",
        n(&counts.writes),
        n(&counts.refused_writes),
        n(&counts.membership),
        n(&counts.polls),
        n(&counts.polls_changed),
        n(&counts.heartbeats),
        n(&counts.reads)
    );
    for (what, v) in [
        ("config writes", &counts.writes),
        ("refused writes", &counts.refused_writes),
        ("membership changes", &counts.membership),
        ("long-polls with news", &counts.polls_changed),
        ("heartbeats", &counts.heartbeats),
        ("reads", &counts.reads),
    ] {
        assert!(n(v) > 0, "no {what} happened");
    }
    // Generous: the working set is a few small configs; growth past this is a leak.
    assert!(
        end <= warm * 2 + 64 * 1024,
        "RSS grew from {warm} kB to {end} kB"
    );

    // Incremental == from scratch, against what the daemon acknowledged.
    c.get("/healthz").await.expect(200);
    let mut conflicts_seen = 0;
    for comp in &comps {
        let status = c.status(comp).await["item"].clone();
        let details = c.get_json(&format!("{V2}/{comp}/details")).await;
        let members = c.get_json(&format!("{V2}/{comp}/group-memberships")).await["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let interner = Arc::new(Interner::new());
        let mut built = Vec::new();
        for m in &members {
            let id = m["id"].as_str().expect("id");
            let cfg = c.get(&format!("{V2}/{id}/config")).await.expect(200);
            let format = match cfg.header("content-type").as_deref() {
                Some("application/yaml") => Format::Yaml,
                _ => Format::Json,
            };
            let member = c.get_json(&format!("{V2}/{id}/details")).await;
            let info = MemberInfo::new(
                id.to_string(),
                m["name"].as_str().expect("name").to_string(),
                member["is_default"] == true,
            );
            built.push(Arc::new(Member::build(info, &cfg.body, format, &interner)));
        }
        let scratch = Composite::from_members(interner, built);
        let report = scratch.report();
        // The full structured report (an extension) is the from-scratch one.
        assert_eq!(details["report"], json!(report), "{comp}");
        assert_eq!(status["state"], report.state.as_str(), "{status}");
        // group-status lists each conflict once per member (at most 256),
        // with Konnect's fields added to the report's, but an entity of a
        // member only once: a second conflict on the same entity (a service
        // whose name and id both collide) adds no entry (registry::views).
        let listed: Vec<Value> = status["conflicts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                if let Some(o) = c.as_object_mut() {
                    for k in ["cluster_id", "description", "resource", "path"] {
                        o.remove(k);
                    }
                }
                c
            })
            .collect();
        let mut listed_entities = BTreeSet::new();
        let mut want: Vec<Value> = Vec::new();
        for c in &report.conflicts {
            for m in &c.members {
                let path = c.paths.get(m).map_or("", String::as_str);
                // `services[0].name` → `services[0]`: the entity it is in.
                let entity = match path.rfind(']') {
                    Some(end) => path[..=end].to_string(),
                    None => format!("{}:{}", c.entity, c.value),
                };
                if listed_entities.insert((m.clone(), entity)) {
                    want.push(json!(c));
                }
            }
        }
        want.truncate(256);
        assert_eq!(json!(listed), json!(want), "{comp}");
        conflicts_seen += report.conflicts.len();
        if report.state == rgmerge::report::State::Ok {
            let snap = c.snapshot(comp).await;
            let body = scratch.assemble();
            assert_eq!(snap.body, body.to_vec(), "{comp}: snapshot bytes");
            assert_eq!(
                snap.header("etag"),
                Some(format!("\"{}\"", body.hash())),
                "{comp}: snapshot hash"
            );
        }
    }
    eprintln!("soak: {conflicts_seen} conflict(s) standing at the end");
    assert!(
        d.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        d.log()
    );
}

/// Sends one request on a fresh connection and reads the answer's status line.
async fn one_request(socket: &std::path::Path) -> std::io::Result<String> {
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

#[tokio::test]
async fn connections_past_the_limit_wait_and_are_served_in_turn() {
    // The idle connections below send nothing: a header read timeout far
    // longer than the test keeps the daemon from closing them meanwhile.
    let mut b = Daemon::builder().flag("--max-connections", 4);
    if serve_accepts("--header-read-timeout-secs") {
        b = b.flag("--header-read-timeout-secs", 3600);
    }
    let d = b.start();
    let c = d.client();
    c.get("/healthz").await.expect(200);
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fds_before = open_fds(d.pid());

    // Four idle connections take every permit.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::UnixStream::connect(&d.socket)
                .await
                .expect("connect"),
        );
    }
    // 32 more clients: none is refused, none is served while the four idle.
    let waiting: Vec<_> = (0..32)
        .map(|_| {
            let socket = d.socket.clone();
            tokio::spawn(async move { one_request(&socket).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        waiting.iter().all(|t| !t.is_finished()),
        "a client was served past --max-connections"
    );
    let fds = open_fds(d.pid());
    assert!(
        fds <= fds_before + 4 + 2,
        "{fds} fds open (before: {fds_before}): connections past the limit were taken"
    );
    // Free the permits: everyone is served, in turn.
    drop(idle);
    let started = Instant::now();
    for t in waiting {
        // A hang guard only (hang_guard()): being served at all is the outcome.
        let line = tokio::time::timeout(hang_guard(), t)
            .await
            .expect("served")
            .expect("task")
            .expect("answered, not refused");
        assert_eq!(line, "HTTP/1.1 200 OK");
    }
    eprintln!("32 queued clients served in {:?}", started.elapsed());

    // Pooled keep-alive clients, 3x more than connections: the daemon answers
    // `Connection: close` while others wait, so none starves.
    let started = Instant::now();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let c = Client::new(&d.socket);
            tokio::spawn(async move {
                for _ in 0..20 {
                    c.get("/healthz").await.expect(200);
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(hang_guard(), t)
            .await
            .expect("pooled clients starved")
            .expect("task");
    }
    eprintln!("12 pooled clients x 20 requests in {:?}", started.elapsed());
    d.client().get("/healthz").await.expect(200);
}

/// The interner is append-only, so every distinct name, id or key ever
/// submitted — even in a refused config or a dry run — would stay in memory
/// for the life of the daemon (before compaction: 120 dry runs × 5000 fresh
/// consumer names took RSS from 30 MB to 150 MB). The writer now compacts it
/// when it is mostly garbage.
#[tokio::test]
async fn distinct_strings_in_dry_runs_do_not_grow_memory_forever() {
    let d = Daemon::start();
    let c = d.client();
    let g = c.standard("gg").await;
    let mut r = Rng(42);
    let mut dry_runs = |n: usize| {
        let docs: Vec<String> = (0..n)
            .map(|_| {
                let consumers: Vec<Value> = (0..5000)
                    .map(|_| json!({"username": format!("{:016x}{:016x}", r.next(), r.next())}))
                    .collect();
                json!({"_format_version": "3.0", "consumers": consumers}).to_string()
            })
            .collect();
        docs
    };
    let path = format!("{V2}/{g}/config?dry_run=true");
    for doc in dry_runs(20) {
        c.send(
            "PUT",
            &path,
            &[("content-type", "application/json")],
            Some(doc.into_bytes()),
        )
        .await
        .expect(200);
    }
    let warm = rss_kb(d.pid());
    for doc in dry_runs(100) {
        c.send(
            "PUT",
            &path,
            &[("content-type", "application/json")],
            Some(doc.into_bytes()),
        )
        .await
        .expect(200);
    }
    let end = rss_kb(d.pid());
    assert!(
        end <= warm + 32 * 1024,
        "dry runs that changed nothing grew RSS from {warm} kB to {end} kB"
    );
}

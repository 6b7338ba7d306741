//! A fleet of fake Kong 3.10 data planes for load-testing the control plane.
//!
//! ```text
//! cargo run --release --example fleet -- --addr 127.0.0.1:PORT \
//!     --server-name NAME --ca CA.pem --cert CERT.pem --key KEY.pem \
//!     --nodes 10000 --seconds 60 --ping-interval 10 \
//!     [--version 3.10.0] [--connect-rate N] [--expect-hash HASH --until-synced]
//! ```
//!
//! Opens `--nodes` data planes (`tests/common/dataplane.rs`, which follows
//! Kong's `kong/clustering/data_plane.lua`) at `--connect-rate` per second,
//! keeps them connected for `--seconds` (a node that loses its connection
//! reconnects 5-10 s later, as Kong does; a failed connect is retried after
//! the same delay), then prints one JSON line: connected count, failed
//! connects by reason, pings sent, pongs received, configs received and
//! applied, the hashes held, and for each config hash that replaced another
//! while running the time from the first node holding it to each node
//! holding it (p50/p99/max ms); `hash_change_spread` is that of the last
//! change.
//!
//! With `--expect-hash HASH --until-synced` it stops as soon as every node
//! holds HASH (exit 0, printing how long it took) or fails after
//! `--seconds` (exit 1).
//!
//! Per node it keeps the hash and the config size, never the config.
//!
//! With `--trace` (for `scripts/crashloop.py`) it also keeps, per node, the
//! `config_hash` of every reconfigure frame it was sent, in order, and prints
//! them as `trace` (a list per node); the run then also ends when its stdin
//! closes, so the caller decides how long it lasts. `--reconnect LO:HI`
//! sets the reconnect and connect-retry delay in seconds (default `5:10`,
//! Kong's).

#[path = "../tests/common/dataplane.rs"]
mod dataplane;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::{DataPlane, DpError, DpEvent, DpOptions};
use serde_json::{Value, json};

struct Args {
    addr: SocketAddr,
    server_name: String,
    ca: String,
    cert: String,
    key: String,
    nodes: usize,
    seconds: f64,
    ping_interval: f64,
    version: String,
    connect_rate: f64,
    expect_hash: Option<String>,
    until_synced: bool,
    trace: bool,
    reconnect: (f64, f64),
}

fn usage(msg: &str) -> ! {
    eprintln!("fleet: {msg}");
    eprintln!(
        "usage: fleet --addr HOST:PORT --server-name NAME --ca CA.pem --cert CERT.pem --key KEY.pem \
         [--nodes N] [--seconds S] [--ping-interval S] [--version V] [--connect-rate N] \
         [--expect-hash HASH --until-synced] [--trace] [--reconnect LO:HI]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut flags = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--") else {
            usage(&format!("unexpected argument {a:?}"))
        };
        if name == "until-synced" || name == "trace" {
            flags.push(name.to_string());
            continue;
        }
        let (k, v) = match name.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match it.next() {
                Some(v) => (name.to_string(), v),
                None => usage(&format!("--{name} needs a value")),
            },
        };
        m.insert(k, v);
    }
    let req = |k: &str| {
        m.get(k)
            .cloned()
            .unwrap_or_else(|| usage(&format!("--{k} is required")))
    };
    let num = |k: &str, d: f64| match m.get(k) {
        None => d,
        Some(v) => v
            .parse::<f64>()
            .unwrap_or_else(|_| usage(&format!("--{k}: not a number: {v}"))),
    };
    let args = Args {
        addr: req("addr")
            .parse()
            .unwrap_or_else(|e| usage(&format!("--addr: {e}"))),
        server_name: req("server-name"),
        ca: req("ca"),
        cert: req("cert"),
        key: req("key"),
        nodes: num("nodes", 100.0) as usize,
        seconds: num("seconds", 60.0),
        ping_interval: num("ping-interval", 30.0),
        version: m
            .get("version")
            .cloned()
            .unwrap_or_else(|| dataplane::KONG_VERSION.to_string()),
        connect_rate: num("connect-rate", 500.0),
        expect_hash: m.get("expect-hash").cloned(),
        until_synced: flags.iter().any(|f| f == "until-synced"),
        trace: flags.iter().any(|f| f == "trace"),
        reconnect: match m.get("reconnect") {
            None => (5.0, 10.0),
            Some(v) => v
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .filter(|&(a, b): &(f64, f64)| a >= 0.0 && b >= a)
                .unwrap_or_else(|| usage(&format!("--reconnect: not LO:HI seconds: {v}"))),
        },
    };
    if args.until_synced && args.expect_hash.is_none() {
        usage("--until-synced needs --expect-hash");
    }
    if args.nodes == 0 || args.ping_interval <= 0.0 || args.connect_rate <= 0.0 {
        usage("--nodes, --ping-interval and --connect-rate must be positive");
    }
    args
}

/// Raise the soft open-files limit to the hard one (each node is a socket).
fn raise_nofile(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < want {
            let mut new = rl;
            new.rlim_cur = rl.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                rl = new;
            }
        }
        rl.rlim_cur
    }
}

/// How the fleet's nodes stand, fed by every node's observer.
#[derive(Default)]
struct Fleet {
    /// node id → index
    index: HashMap<String, usize>,
    /// The hash each node holds (None before its first config).
    held: Vec<Option<Arc<str>>>,
    /// Per hash: when the first node came to hold it, and for every node
    /// that moved to it from another hash, how long after that first one.
    hashes: HashMap<Arc<str>, HashTiming>,
    order: Vec<Arc<str>>,
    /// Nodes holding --expect-hash.
    synced: usize,
    first_synced: Option<Instant>,
    /// With --trace: per node, the hash of every reconfigure frame, in order.
    trace: Vec<Vec<Arc<str>>>,
}

struct HashTiming {
    first: Instant,
    changes_ms: Vec<f64>,
}

#[derive(Default)]
struct Counters {
    connects: AtomicUsize,
    disconnects: AtomicUsize,
    pings: AtomicUsize,
    pongs: AtomicUsize,
    received: AtomicUsize,
    applied: AtomicUsize,
    errors: AtomicUsize,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn reason(e: &DpError) -> String {
    let s = match e {
        DpError::Handshake { status, .. } => format!("handshake status {status:?}"),
        other => other.to_string(),
    };
    s.chars().take(160).collect()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| usage(&format!("{p}: {e}")));
    let (ca, cert, key) = (read(&args.ca), read(&args.cert), read(&args.key));
    let nofile = raise_nofile(args.nodes as u64 + 256);
    if nofile < args.nodes as u64 + 64 {
        eprintln!(
            "fleet: warning: open-files limit {nofile} is below {} nodes",
            args.nodes
        );
    }

    let start = Instant::now();
    // The wall clock at `start`, so a caller can relate `first_at_ms` to
    // when it made a change (issue 30: from a member's write to each node).
    let start_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let expect: Option<Arc<str>> = args.expect_hash.as_deref().map(Arc::from);

    let mut base = DpOptions::new(args.addr, args.server_name.clone(), ca, cert, key);
    base.version = args.version.clone();
    base.ping_interval = Duration::from_secs_f64(args.ping_interval);
    // data_plane.lua L209, L437-441: reconnect after math.random(5, 10) s.
    let (lo, hi) = args.reconnect;
    let retry_ms = ((lo * 1000.0) as u64, (hi * 1000.0) as u64);
    base.reconnect = Some((Duration::from_secs_f64(lo), Duration::from_secs_f64(hi)));
    base.keep_config = false;
    base.record_events = false;

    let fleet = Arc::new(Mutex::new(Fleet {
        held: vec![None; args.nodes],
        trace: vec![Vec::new(); if args.trace { args.nodes } else { 0 }],
        ..Fleet::default()
    }));
    let counters = Arc::new(Counters::default());
    let node_ids: Vec<String> = (0..args.nodes)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    {
        let mut f = fleet.lock().unwrap();
        for (i, id) in node_ids.iter().enumerate() {
            f.index.insert(id.clone(), i);
        }
    }
    {
        let fleet = fleet.clone();
        let counters = counters.clone();
        let expect = expect.clone();
        base.observer = Some(Arc::new(move |node: &str, ev: &DpEvent| match ev {
            DpEvent::Connected => {
                counters.connects.fetch_add(1, Ordering::Relaxed);
            }
            DpEvent::Disconnected { .. } => {
                counters.disconnects.fetch_add(1, Ordering::Relaxed);
            }
            DpEvent::PingSent { .. } => {
                counters.pings.fetch_add(1, Ordering::Relaxed);
            }
            DpEvent::Pong { .. } => {
                counters.pongs.fetch_add(1, Ordering::Relaxed);
            }
            DpEvent::Reconfigure { hash, .. } => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                let mut f = fleet.lock().unwrap();
                if let Some(&i) = f.index.get(node)
                    && let Some(t) = f.trace.get_mut(i)
                {
                    t.push(Arc::from(hash.as_str()));
                }
            }
            DpEvent::Error(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            DpEvent::Applied { hash } => {
                counters.applied.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let mut f = fleet.lock().unwrap();
                let Some(&i) = f.index.get(node) else { return };
                let prev = f.held[i].clone();
                if prev.as_deref() == Some(hash.as_str()) {
                    return;
                }
                let h: Arc<str> = match f.hashes.get_key_value(hash.as_str()) {
                    Some((k, _)) => k.clone(),
                    None => {
                        let k: Arc<str> = Arc::from(hash.as_str());
                        f.hashes.insert(
                            k.clone(),
                            HashTiming {
                                first: now,
                                changes_ms: Vec::new(),
                            },
                        );
                        f.order.push(k.clone());
                        k
                    }
                };
                if prev.is_some() {
                    let t = f.hashes.get_mut(&h).expect("inserted above");
                    let ms = now.duration_since(t.first).as_secs_f64() * 1000.0;
                    t.changes_ms.push(ms);
                }
                if let Some(e) = &expect {
                    if prev.as_ref() == Some(e) {
                        f.synced -= 1;
                    }
                    if h == *e {
                        f.synced += 1;
                        f.first_synced.get_or_insert(now);
                    }
                }
                f.held[i] = Some(h);
            }
            _ => {}
        }));
    }

    // Connect at --connect-rate per second; a failed connect is retried
    // after 5-10 s, as Kong's communicate() does (L211-221).
    let failed: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let attempts = Arc::new(AtomicUsize::new(0));
    let nodes: Arc<Mutex<Vec<DataPlane>>> = Arc::new(Mutex::new(Vec::with_capacity(args.nodes)));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.connect_rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let connector = {
        let nodes = nodes.clone();
        let failed = failed.clone();
        let attempts = attempts.clone();
        tokio::spawn(async move {
            for (i, id) in node_ids.into_iter().enumerate() {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let mut o = base.clone();
                o.node_id = id;
                o.hostname = format!("fake-dp-{i}");
                let nodes = nodes.clone();
                let failed = failed.clone();
                let attempts = attempts.clone();
                tokio::spawn(async move {
                    loop {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        match DataPlane::connect(o.clone()).await {
                            Ok(dp) => {
                                nodes.lock().unwrap().push(dp);
                                return;
                            }
                            Err(e) => {
                                *failed.lock().unwrap().entry(reason(&e)).or_default() += 1;
                                let wait = Duration::from_millis(
                                    retry_ms.0
                                        + (uuid::Uuid::new_v4().as_u128()
                                            % (retry_ms.1 - retry_ms.0 + 1) as u128)
                                            as u64,
                                );
                                if Instant::now() + wait >= deadline {
                                    return;
                                }
                                tokio::time::sleep(wait).await;
                            }
                        }
                    }
                });
            }
        })
    };

    // --trace: the run also ends when stdin closes.
    let stdin_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.trace {
        let closed = stdin_closed.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            closed.store(true, Ordering::Relaxed);
        });
    }
    let mut synced_at = None;
    let mut last_report = Instant::now();
    while Instant::now() < deadline && !stdin_closed.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if args.until_synced && fleet.lock().unwrap().synced == args.nodes {
            synced_at = Some(Instant::now());
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let connected = nodes
                .lock()
                .unwrap()
                .iter()
                .filter(|d| d.is_connected())
                .count();
            eprintln!(
                "fleet: {:.0}s connected {connected}/{} pings {} pongs {} configs {}",
                start.elapsed().as_secs_f64(),
                args.nodes,
                counters.pings.load(Ordering::Relaxed),
                counters.pongs.load(Ordering::Relaxed),
                counters.received.load(Ordering::Relaxed),
            );
        }
    }
    connector.abort();
    let elapsed = start.elapsed();

    let out = {
        let handles = nodes.lock().unwrap();
        let connected = handles.iter().filter(|d| d.is_connected()).count();
        let f = fleet.lock().unwrap();
        let mut held: BTreeMap<&str, usize> = BTreeMap::new();
        for h in &f.held {
            *held.entry(h.as_deref().unwrap_or("none")).or_default() += 1;
        }
        let mut changes = Vec::new();
        for h in &f.order {
            let t = &f.hashes[h];
            if t.changes_ms.is_empty() {
                continue;
            }
            let mut v = t.changes_ms.clone();
            v.sort_by(f64::total_cmp);
            changes.push(json!({
                "hash": &**h,
                "nodes": v.len(),
                "first_at_ms": round(t.first.duration_since(start).as_secs_f64() * 1000.0),
                "p50_ms": round(percentile(&v, 0.50)),
                "p99_ms": round(percentile(&v, 0.99)),
                "max_ms": round(percentile(&v, 1.0)),
            }));
        }
        let spread = changes.last().cloned().unwrap_or(Value::Null);
        let mut out = json!({
            "nodes": args.nodes,
            "connected": connected,
            "connect_attempts": attempts.load(Ordering::Relaxed),
            "failed_connects": *failed.lock().unwrap(),
            "connections": counters.connects.load(Ordering::Relaxed),
            "disconnects": counters.disconnects.load(Ordering::Relaxed),
            "pings_sent": counters.pings.load(Ordering::Relaxed),
            "pongs_received": counters.pongs.load(Ordering::Relaxed),
            "configs_received": counters.received.load(Ordering::Relaxed),
            "configs_applied": counters.applied.load(Ordering::Relaxed),
            "errors": counters.errors.load(Ordering::Relaxed),
            "distinct_hashes": held.keys().filter(|k| **k != "none").count(),
            "hashes_held": held,
            "hash_changes": changes,
            "hash_change_spread": spread,
            "elapsed_s": round(elapsed.as_secs_f64()),
            "start_unix_ms": round(start_unix_ms),
            "open_files_limit": nofile,
        });
        if args.trace {
            out["trace"] = json!(
                f.trace
                    .iter()
                    .map(|t| t.iter().map(|h| &**h).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            );
        }
        if let Some(e) = &expect {
            out["expect_hash"] = json!(&**e);
            out["synced_nodes"] = json!(f.synced);
            out["synced"] = json!(f.synced == args.nodes);
            if let Some(t) = synced_at {
                out["sync_ms"] = json!(round(t.duration_since(start).as_secs_f64() * 1000.0));
                if let Some(first) = f.first_synced {
                    out["sync_from_first_ms"] =
                        json!(round(t.duration_since(first).as_secs_f64() * 1000.0));
                }
            }
        }
        out
    };
    println!("{out}");

    // Close every node as Kong does on shutdown (an empty close frame), for
    // at most a few seconds.
    let all: Vec<DataPlane> = std::mem::take(&mut *nodes.lock().unwrap());
    let closing = futures_util::future::join_all(all.into_iter().map(DataPlane::close));
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;

    if args.until_synced && synced_at.is_none() {
        std::process::exit(1);
    }
}

//! Several daemons on one real PostgreSQL server (issue 16): state survives
//! restarts, writes through any daemon reach every other with the same
//! versions and hashes, nothing acknowledged is lost when a daemon is
//! killed, a stopped database is waited out, sidecars fail over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::postgres::PgServer;
use crate::common::{
    Client, Daemon, Sidecar, V2, hang_guard, rgmerge, rgmerge_ok, service, wait_for, wait_for_some,
};

fn daemon(url: &str) -> Daemon {
    Daemon::builder().postgres(url).start()
}

/// Every group's (name, served version, snapshot hash), by id.
async fn served(c: &Client) -> BTreeMap<String, (String, String, String)> {
    let list = c.get_json(&format!("{V2}?page[size]=1000")).await;
    let mut out = BTreeMap::new();
    for g in list["data"].as_array().expect("data") {
        let id = g["id"].as_str().expect("id").to_string();
        let r = c.get(&format!("{V2}/{id}/snapshot")).await;
        if r.status != 200 {
            // Deleted between the list and the read.
            continue;
        }
        let version = r.header("x-snapshot-version").unwrap_or_default();
        let etag = r.header("etag").unwrap_or_default();
        out.insert(
            id,
            (g["name"].as_str().unwrap_or("").to_string(), version, etag),
        );
    }
    out
}

/// Waits until every daemon has applied the same change log position and
/// serves exactly the same groups, versions and hashes; returns that state.
async fn converged(daemons: &[&Daemon]) -> BTreeMap<String, (String, String, String)> {
    let deadline = Instant::now() + hang_guard();
    loop {
        let mut states = Vec::new();
        let mut positions = Vec::new();
        for d in daemons {
            positions.push(d.client().health().await["store"]["position"].clone());
            states.push(served(&d.client()).await);
        }
        if positions.windows(2).all(|w| w[0] == w[1]) && states.windows(2).all(|w| w[0] == w[1]) {
            return states.swap_remove(0);
        }
        if Instant::now() > deadline {
            panic!("daemons did not converge: {states:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_daemon_keeps_its_state_in_postgres_across_restarts() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("single");
    let mut d = daemon(&url);
    let c = d.client();
    let h = c.health().await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["store"]["kind"], "postgres");
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    let comp = c.composite("shared").await;
    c.add(&comp, &[&blue, &yellow]).await.expect(204);
    c.put_config(&blue, &service("a", "a.internal"))
        .await
        .expect(200);
    c.put_config(&yellow, &service("b", "b.internal"))
        .await
        .expect(200);
    let before = served(&c).await;
    let body = c.snapshot(&comp).await.text();
    assert!(
        body.contains("a.internal") && body.contains("b.internal"),
        "{body}"
    );

    d.kill9();
    d.restart();
    let c = d.client();
    assert_eq!(
        served(&c).await,
        before,
        "the same versions and hashes after a restart"
    );
    assert_eq!(c.snapshot(&comp).await.text(), body);
    // The rows are in PostgreSQL, one log entry per write.
    let groups = server.psql("single", "SELECT count(*) FROM groups");
    assert_eq!(groups, before.len().to_string());
    let members = server.psql(
        "single",
        &format!("SELECT count(*) FROM memberships WHERE composite_id = '{comp}'"),
    );
    assert_eq!(members, "2");
    let log: u64 = server
        .psql("single", "SELECT pos FROM log_head")
        .parse()
        .expect("number");
    assert!(log >= 6, "a log entry per write: {log}");
    assert_eq!(c.health().await["store"]["position"], log);
}

#[tokio::test]
async fn writes_through_every_daemon_converge_to_the_same_versions_and_hashes() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("three");
    let a = daemon(&url);
    let b = daemon(&url);
    let c3 = daemon(&url);
    let (ca, cb, cc) = (a.client(), b.client(), c3.client());
    // One default group, made once by whichever daemon started first.
    let first = converged(&[&a, &b, &c3]).await;
    assert_eq!(first.len(), 1, "{first:?}");

    let blue = ca.standard("blue").await;
    let yellow = cb.standard("yellow").await;
    let green = cc.standard("green").await;
    let comp = cb.composite("shared").await;
    cc.add(&comp, &[&blue, &yellow]).await.expect(204);
    ca.put_config(&blue, &service("a", "a.internal"))
        .await
        .expect(200);
    cb.put_config(&yellow, &service("b", "b.internal"))
        .await
        .expect(200);
    // A conflict: the composite keeps serving its last good version.
    cc.put_config(&green, &service("a", "elsewhere"))
        .await
        .expect(200);
    cb.add(&comp, &[&green]).await.expect(204);
    let state = converged(&[&a, &b, &c3]).await;
    for d in [&ca, &cb, &cc] {
        assert_eq!(d.status(&comp).await["item"]["state"], "CONFLICT");
    }
    // Removing the conflicting member publishes again, on every daemon.
    ca.remove(&comp, &[&green]).await.expect(204);
    cc.patch_json(
        &format!("{V2}/{yellow}"),
        &serde_json::json!({"name": "amber"}),
    )
    .await
    .expect(200);
    cb.put_config(&yellow, &service("c", "c.internal"))
        .await
        .expect(200);
    ca.delete(&format!("{V2}/{green}")).await.expect(204);
    let after = converged(&[&a, &b, &c3]).await;
    assert_ne!(after[&comp], state[&comp], "the composite published again");
    assert!(!after.contains_key(&green));
    assert_eq!(after[&yellow].0, "amber");
    for d in [&ca, &cb, &cc] {
        let body = d.snapshot(&comp).await.text();
        assert!(
            body.contains("c.internal") && !body.contains("elsewhere"),
            "{body}"
        );
        assert_eq!(d.status(&comp).await["item"]["state"], "OK");
    }
    // Every write is one log entry, and every daemon applied all of them.
    let head: u64 = server
        .psql("three", "SELECT pos FROM log_head")
        .parse()
        .expect("number");
    for d in [&ca, &cb, &cc] {
        let h = wait_for_some(&format!("position {head}"), || async {
            let h = d.health().await;
            (h["store"]["position"] == head).then_some(h)
        })
        .await;
        assert_eq!(h["status"], "ok");
    }
}

/// The service host of write `n` by writer `k`.
fn host(k: usize, n: usize) -> String {
    format!("w{k}-{n}.internal")
}

#[tokio::test]
async fn kill_9_under_concurrent_writes_loses_nothing_acknowledged() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("kill");
    let mut daemons = [daemon(&url), daemon(&url), daemon(&url)];
    let clients: Vec<Client> = daemons.iter().map(Daemon::client).collect();
    const WRITERS: usize = 6;
    let mut groups = Vec::new();
    for k in 0..WRITERS {
        groups.push(clients[k % 3].standard(&format!("g{k}")).await);
    }
    let comp = clients[0].composite("all").await;
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    clients[1].add(&comp, &refs).await.expect(204);
    // Each writer writes its own group through every daemon in turn and
    // records the last write a daemon acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (k, g) in groups.iter().enumerate() {
        let (g, clients, stop) = (g.clone(), clients.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = None;
            let mut failed = 0;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 400 {
                let c = &clients[(k + n) % clients.len()];
                let yaml = service(&format!("s{k}"), &host(k, n));
                match c
                    .try_send(
                        "PUT",
                        &format!("{V2}/{g}/config"),
                        &[("content-type", "application/yaml")],
                        Some(yaml.into_bytes()),
                    )
                    .await
                {
                    Ok(r) if r.status == 200 => acked = Some(n),
                    _ => failed += 1,
                }
                n += 1;
            }
            (g, acked, failed, n)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemons[2].kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("writer"));
    }
    assert!(
        results.iter().any(|(_, _, failed, _)| *failed > 0),
        "some writes went to the killed daemon: {results:?}"
    );
    // The two survivors go on accepting writes.
    clients[0]
        .put_config(&groups[0], &service("s0", "after.internal"))
        .await
        .expect(200);
    clients[1]
        .put_config(&groups[1], &service("s1", "after.internal"))
        .await
        .expect(200);
    let alive = [&daemons[0], &daemons[1]];
    converged(&alive).await;
    // Every acknowledged write is there: each group serves its last
    // acknowledged write, or a later one (committed, then its daemon died
    // before answering).
    for (k, (g, acked, _, sent)) in results.iter().enumerate().skip(2) {
        let acked = acked.expect("some write was acknowledged");
        let body = clients[0].snapshot(g).await.text();
        let n = (0..*sent)
            .find(|n| body.contains(&host(k, *n)))
            .unwrap_or_else(|| panic!("group {k} serves no write of its own: {body}"));
        assert!(
            n >= acked,
            "group {k}: acknowledged write {acked} lost, serves {n}"
        );
    }
    // The killed daemon comes back and catches up with the same versions.
    daemons[2].restart();
    let all = [&daemons[0], &daemons[1], &daemons[2]];
    let state = converged(&all).await;
    assert!(state.contains_key(&comp));
}

#[tokio::test]
async fn a_stopped_database_is_waited_out_serving_reads_and_refusing_writes() {
    let Some(mut server) = PgServer::start() else {
        return;
    };
    let url = server.database("outage");
    let a = daemon(&url);
    let b = daemon(&url);
    let (ca, cb) = (a.client(), b.client());
    let blue = ca.standard("blue").await;
    ca.put_config(&blue, &service("a", "a.internal"))
        .await
        .expect(200);
    let before = converged(&[&a, &b]).await;
    let body = cb.snapshot(&blue).await.text();

    server.stop_server();
    for c in [&ca, &cb] {
        // Reads go on, from what was published.
        assert_eq!(c.snapshot(&blue).await.text(), body);
        assert_eq!(served(c).await, before);
        // Writes are refused, clearly.
        let r = c
            .put_config(&blue, &service("a", "b.internal"))
            .await
            .expect(503);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let detail = r.json()["detail"].as_str().unwrap_or("").to_string();
        assert!(
            detail.contains("unreachable") && detail.contains("refused"),
            "{detail}"
        );
        let h = c.health().await;
        assert_eq!(h["status"], "degraded", "{h}");
        assert_eq!(h["store"]["reachable"], false);
        let m = c.get("/metrics").await.expect(200).text();
        assert!(
            m.contains("rgmerge_store_reachable{store=\"postgres\"} 0"),
            "{m}"
        );
    }

    server.start_server();
    // Each daemon notices by itself, then writes are accepted again.
    for c in [&ca, &cb] {
        wait_for("the store to recover", || async {
            c.health().await["status"] == "ok"
        })
        .await;
    }
    cb.put_config(&blue, &service("a", "c.internal"))
        .await
        .expect(200);
    let after = converged(&[&a, &b]).await;
    assert_ne!(after[&blue], before[&blue]);
    assert!(ca.snapshot(&blue).await.text().contains("c.internal"));
    let m = ca.get("/metrics").await.expect(200).text();
    assert!(
        m.contains("rgmerge_store_reachable{store=\"postgres\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("rgmerge_store_lag_changes{store=\"postgres\"} 0"),
        "{m}"
    );
}

#[tokio::test]
async fn a_sidecar_fails_over_when_its_daemon_is_killed_and_never_goes_backwards() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("failover");
    let mut a = daemon(&url);
    let b = daemon(&url);
    let (ca, cb) = (a.client(), b.client());
    let blue = ca.standard("blue").await;
    ca.put_config(&blue, &service("first", "first.internal"))
        .await
        .expect(200);
    converged(&[&a, &b]).await;

    let out = b.dir.path().join("kong.json");
    let version_file = b.dir.path().join("kong.json.version");
    let _sidecar = Sidecar::builder("blue", "dp-1")
        .socket(&a.socket)
        .socket(&b.socket)
        .out(&out)
        .log(&b.path("sidecar.log"))
        .spawn();
    // Versions the file held, in the order seen: they never go down.
    let mut seen: Vec<u64> = Vec::new();
    let wait_for_file = |needle: &'static str, seen: &mut Vec<u64>| {
        let deadline = Instant::now() + hang_guard();
        loop {
            if let Some(v) = std::fs::read_to_string(&version_file)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                && seen.last() != Some(&v)
            {
                seen.push(v);
            }
            if std::fs::read_to_string(&out).is_ok_and(|s| s.contains(needle)) {
                return;
            }
            assert!(Instant::now() < deadline, "the file never held {needle}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for_file("first.internal", &mut seen);
    // Heartbeats through the first socket reach both daemons.
    wait_for("a heartbeat", || async {
        let nodes = cb.get_json(&format!("{V2}/{blue}/nodes")).await;
        nodes["items"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;

    a.kill9();
    cb.put_config(&blue, &service("second", "second.internal"))
        .await
        .expect(200);
    wait_for_file("second.internal", &mut seen);
    cb.put_config(&blue, &service("third", "third.internal"))
        .await
        .expect(200);
    wait_for_file("third.internal", &mut seen);
    let served: u64 = cb
        .snapshot(&blue)
        .await
        .header("x-snapshot-version")
        .and_then(|v| v.parse().ok())
        .expect("version");
    // The version file follows the snapshot file.
    let deadline = Instant::now() + hang_guard();
    while seen.last() != Some(&served) {
        assert!(Instant::now() < deadline, "{seen:?} never reached {served}");
        wait_for_file("third.internal", &mut seen);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "went backwards: {seen:?}"
    );
}

#[tokio::test]
async fn an_embedded_store_moves_into_postgres_and_back_with_the_same_snapshots() {
    let Some(server) = PgServer::start() else {
        return;
    };
    // State worth moving: a composite, a conflict that keeps an older
    // merge served, a rename.
    let mut embedded = Daemon::start();
    let c = embedded.client();
    let (comp, [blue, yellow]) = c
        .composite_with(
            "shared",
            [
                ("blue", &service("a", "a.internal")),
                ("yellow", &service("b", "b.internal")),
            ],
        )
        .await;
    c.put_config(&yellow, &service("a", "clash.internal"))
        .await
        .expect(200);
    c.patch_json(
        &format!("{V2}/{blue}"),
        &serde_json::json!({"name": "azure"}),
    )
    .await
    .expect(200);
    let before = served(&c).await;
    let comp_body = c.snapshot(&comp).await.text();
    assert!(
        comp_body.contains("b.internal"),
        "the last good merge is served"
    );
    assert_eq!(embedded.stop().code(), Some(0));

    // One command moves it.
    let url = server.database("moved");
    let data = embedded.data.to_str().expect("utf-8").to_string();
    let said = rgmerge_ok(&["migrate", "--data-dir", &data, "--to", &url]);
    assert!(said.contains("moved 4 control plane(s)"), "{said}");
    assert!(!said.contains("secret"));
    let on_pg = daemon(&url);
    let pc = on_pg.client();
    assert_eq!(
        served(&pc).await,
        before,
        "same groups, versions and hashes"
    );
    assert_eq!(pc.snapshot(&comp).await.text(), comp_body);
    assert_eq!(pc.status(&comp).await["item"]["state"], "CONFLICT");
    // A second migration into the same database is refused.
    let again = rgmerge(&["migrate", "--data-dir", &data, "--to", &url]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds state"));

    // Export from PostgreSQL while its daemon runs; import into a database
    // a daemon already serves (it follows the import), and into a data
    // directory.
    let out = server.dir.path().join("export");
    let out_s = out.to_str().expect("utf-8").to_string();
    rgmerge_ok(&["export", "--store", &url, &out_s]);
    let url2 = server.database("second");
    let live = daemon(&url2);
    rgmerge_ok(&["import", "--store", &url2, &out_s]);
    let lc = live.client();
    wait_for("the running daemon to follow the import", || async {
        served(&lc).await == before
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let back = dir.path().join("data");
    let back_s = back.to_str().expect("utf-8").to_string();
    rgmerge_ok(&["import", "--data-dir", &back_s, &out_s]);
    let mut again = Daemon::start();
    again.kill9();
    std::fs::remove_dir_all(&again.data).ok();
    std::fs::rename(&back, &again.data).expect("move the imported store in");
    again.restart();
    assert_eq!(served(&again.client()).await, before);
}

#[test]
fn a_database_newer_than_the_binary_is_refused_with_a_clear_message() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("newer");
    // Migrated by this binary (an export of an empty database says so).
    let out = rgmerge(&["export", "--store", &url, "/nonexistent/x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no rgmerge state"));
    let tables = server.psql("newer", "SELECT count(*) FROM schema_migrations");
    assert_eq!(tables, "1");
    server.psql(
        "newer",
        "INSERT INTO schema_migrations (version) VALUES (99)",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("rg.sock");
    let out = rgmerge(&[
        "serve",
        "--store",
        &url,
        "--socket",
        socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema version 99, newer than this rgmerge knows (1)"),
        "{err}"
    );
    assert!(!socket.exists(), "nothing was served");
}

#[tokio::test]
async fn a_sidecar_never_writes_a_version_older_than_the_one_applied() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("older");
    let a = daemon(&url);
    let ca = a.client();
    let blue = ca.standard("blue").await;
    ca.put_config(&blue, &service("now", "now.internal"))
        .await
        .expect(200);
    // The data plane already runs version 1000 (from a daemon further on).
    let out = a.dir.path().join("kong.json");
    std::fs::write(&out, "newer").expect("write");
    std::fs::write(a.dir.path().join("kong.json.version"), "1000").expect("write");
    let log_path = a.dir.path().join("sidecar.log");
    let _sidecar = Sidecar::builder(&blue, "dp-1")
        .socket(&a.socket)
        .out(&out)
        .log(&log_path)
        .spawn();
    wait_for("the sidecar to refuse the older version", || async {
        std::fs::read_to_string(&log_path).is_ok_and(|s| s.contains("older than the applied 1000"))
    })
    .await;
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "newer");
    assert_eq!(
        std::fs::read_to_string(a.dir.path().join("kong.json.version")).expect("read"),
        "1000"
    );
}

/// Issue 27, item 5: a reload from the database (here forced by a gap in
/// the change log) keeps the node reports taken since the last batch was
/// stored, and stores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_node_reports_not_yet_stored() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("reload");
    // At info, the log says when the daemon reloaded.
    let mut d = Daemon::builder()
        .postgres(&url)
        .env("RUST_LOG", "info")
        .start();
    let c = d.client();
    let g = c.standard("fleet").await;
    for round in 0..5 {
        let node = format!("dp-{round}");
        c.heartbeat(&g, &node, "").await.expect(200);
        // A gap at once: the log's head moves past what this daemon read.
        server.psql(
            "reload",
            "UPDATE log_head SET pos = pos + 1; SELECT pg_notify('rgmerge_log', 'gap');",
        );
        wait_for("the reload", async || {
            d.log()
                .matches("reloaded the state from the database")
                .count()
                > round
        })
        .await;
        let listed = c.get(&format!("{V2}/{g}/nodes")).await.expect(200).json();
        let ids: Vec<&str> = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|n| n["id"].as_str())
            .collect();
        assert!(
            ids.contains(&node.as_str()),
            "round {round}: {node} lost in {ids:?}"
        );
    }
    // And they reach the store.
    d.stop();
    d.restart();
    let listed = d
        .client()
        .get(&format!("{V2}/{g}/nodes"))
        .await
        .expect(200)
        .json();
    assert_eq!(listed["page"]["total_count"], 5, "{listed}");
}

/// Issue 26, item 1: writes queued together on a daemon share one database
/// transaction, yet each stays one log entry; both daemons apply the same
/// entries in the same order, and each write's audit entry is stored with it.
#[tokio::test]
async fn concurrent_writes_share_commits_and_stay_one_log_entry_each() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("batched");
    let a = daemon(&url);
    let b = daemon(&url);
    let (ca, cb) = (a.client(), b.client());
    const WRITERS: usize = 12;
    const WRITES: usize = 15;
    let mut groups = Vec::new();
    for k in 0..WRITERS {
        groups.push(ca.standard(&format!("g{k}")).await);
    }
    let before = converged(&[&a, &b]).await;
    let count = |sql: &str| -> u64 { server.psql("batched", sql).parse().expect("number") };
    let head_before = count("SELECT pos FROM log_head");
    let audit_before = count("SELECT count(*) FROM audit");
    let mut tasks = Vec::new();
    for (k, g) in groups.iter().enumerate() {
        let c = if k % 2 == 0 { ca.clone() } else { cb.clone() };
        let g = g.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..WRITES {
                c.put_config(&g, &service(&format!("s{k}"), &host(k, n)))
                    .await
                    .expect(200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let state = converged(&[&a, &b]).await;
    assert_eq!(
        count("SELECT pos FROM log_head") - head_before,
        (WRITERS * WRITES) as u64,
        "one log entry per write"
    );
    assert_eq!(
        count("SELECT count(*) FROM audit") - audit_before,
        (WRITERS * WRITES) as u64,
        "one audit entry per write"
    );
    for (k, g) in groups.iter().enumerate() {
        // Every write published a version of its own, on both daemons.
        let version = |s: &BTreeMap<String, (String, String, String)>| -> u64 {
            s[g].1.parse().expect("version")
        };
        assert_eq!(
            version(&state) - version(&before),
            WRITES as u64,
            "group {k}"
        );
        for c in [&ca, &cb] {
            let body = c.snapshot(g).await.text();
            assert!(body.contains(&host(k, WRITES - 1)), "{body}");
        }
    }
}

/// Issue 26, item 1: a dry run first applies what other daemons committed,
/// so it judges the state they wrote, not the one this daemon last heard of.
#[tokio::test]
async fn a_dry_run_first_catches_up_with_what_other_daemons_wrote() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("dryrun");
    let a = daemon(&url);
    let b = daemon(&url);
    let (ca, cb) = (a.client(), b.client());
    let comp = ca.composite("dry").await;
    converged(&[&a, &b]).await;
    for i in 0..5 {
        // Made through A, then at once judged through B.
        let g = ca.standard(&format!("new{i}")).await;
        ca.put_config(&g, &service("svc", &format!("x{i}.internal")))
            .await
            .expect(200);
        let r = cb
            .post_json(
                &format!("{V2}/{comp}/group-memberships/add?dry_run=true"),
                &serde_json::json!({"members": [{"id": g}]}),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(r["dry_run"], true);
        assert_eq!(r["members"][0]["name"], format!("new{i}"), "{r}");
    }
}

/// `rgmerge bench --postgres URL` writes through the engine's group commit
/// on a real server (issue 26): the figure is filled in, no write failed,
/// and every write it counted is durable — a daemon started afterwards on
/// the same database serves each writer's group at the version of its
/// last write. (The rate itself is a benchmark, never asserted.)
#[tokio::test]
async fn bench_measures_the_postgres_write_rate_with_durable_writes() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("bench");
    let o = rgmerge(&[
        "bench",
        "--members",
        "2",
        "--entities",
        "10",
        "--startup-runs",
        "0",
        "--dense-consumers",
        "0",
        "--no-validate-memory",
        "--json",
        "--postgres",
        &url,
        "--postgres-writers",
        "4",
        "--postgres-seconds",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rgmerge bench failed: {stderr}");
    let figures: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bench JSON");
    let rate = &figures["postgres_write_rate"];
    assert_eq!(rate["writers"], 4, "{rate}");
    assert_eq!(rate["failed"], 0, "{rate}");
    let writes = rate["writes"].as_u64().expect("writes");
    assert!(writes >= 4, "{rate}");
    assert!(
        rate["writes_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{rate}"
    );

    let d = daemon(&url);
    let c = d.client();
    let list = c.get_json(&format!("{V2}?page[size]=1000")).await;
    let mut served_writes = 0;
    let mut bench_groups = 0;
    for g in list["data"].as_array().expect("data") {
        if !g["name"].as_str().is_some_and(|n| n.starts_with("bench-w")) {
            continue;
        }
        bench_groups += 1;
        let id = g["id"].as_str().expect("id");
        let r = c.get(&format!("{V2}/{id}/snapshot")).await.expect(200);
        let version: u64 = r
            .header("x-snapshot-version")
            .and_then(|v| v.parse().ok())
            .expect("x-snapshot-version");
        // Version 1 is the group's empty config; each write adds one.
        served_writes += version - 1;
    }
    assert_eq!(bench_groups, 4, "{list}");
    assert_eq!(
        served_writes, writes,
        "acknowledged writes against the versions served"
    );
}

//! Nothing acknowledged is ever lost (issue 5): restarts, SIGKILL under
//! concurrent writes, damaged stores, a full disk, export and import.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{Daemon, V2, assert_same_snapshot, rgmerge, rgmerge_exit, service};
use serde_json::json;

async fn state_of(c: &crate::common::Client) -> serde_json::Value {
    let groups = c.get_json(&format!("{V2}?page[size]=1000")).await;
    let mut out = serde_json::Map::new();
    for g in groups["data"].as_array().unwrap() {
        let id = g["id"].as_str().unwrap();
        let snap = c.snapshot(id).await;
        let details = c.get_json(&format!("{V2}/{id}/details")).await;
        let certificates = c
            .get_json(&format!("{V2}/{id}/dp-client-certificates"))
            .await["items"]
            .clone();
        // The endpoints say where this daemon listens, not what it stores.
        let mut config = g["config"].clone();
        if let Some(o) = config.as_object_mut() {
            o.remove("control_plane_endpoint");
            o.remove("telemetry_endpoint");
        }
        let mut v = json!({
            "meta": {"name": g["name"], "description": g["description"], "labels": g["labels"], "config": config, "is_default": details["is_default"], "created_at": g["created_at"]},
            "version": snap.header("x-snapshot-version"),
            "etag": snap.header("etag"),
            "snapshot": snap.text(),
            "certificates": certificates,
        });
        if g["config"]["cluster_type"] == "CLUSTER_TYPE_CONTROL_PLANE_GROUP" {
            v["status"] = c.status(id).await["item"]["state"].clone();
            v["members"] = c.get_json(&format!("{V2}/{id}/group-memberships")).await["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].clone())
                .collect();
        } else {
            v["config"] = json!(c.get(&format!("{V2}/{id}/config")).await.expect(200).text());
        }
        out.insert(id.to_string(), v);
    }
    serde_json::Value::Object(out)
}

/// A series of `/metrics` (its first sample), 0 if absent.
/// Replaces group `g`'s config with one service named `name`, as the
/// concurrent writers do; a dropped connection (the daemon killed) is `Err`.
async fn put_service(
    c: &crate::common::Client,
    g: &str,
    name: &str,
) -> Result<crate::common::Resp, reqwest::Error> {
    let body = service(name, "h.internal").into_bytes();
    c.try_send(
        "PUT",
        &format!("{V2}/{g}/config"),
        &[("content-type", "application/yaml")],
        Some(body),
    )
    .await
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Waits until every heartbeat answered so far is in the store.
async fn heartbeats_stored(c: &crate::common::Client) {
    let taken = metric(
        &c.get("/metrics").await.expect(200).text(),
        "rgmerge_heartbeats_total",
    );
    assert!(taken >= 1.0, "the heartbeats are counted");
    for _ in 0..200 {
        let m = c.get("/metrics").await.expect(200).text();
        if metric(&m, "rgmerge_heartbeats_stored") >= taken {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node reports were never stored");
}

#[tokio::test]
async fn restart_restores_everything_and_versions_keep_growing() {
    let mut d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    c.patch_json(
        &format!("{V2}/{blue}"),
        &json!({
            "labels": {"team": "blue"},
            "description": "team blue",
            "auth_type": "pki_client_certs",
            "proxy_urls": [{"host": "blue.example.com", "port": 443, "protocol": "https"}]
        }),
    )
    .await
    .expect(200);
    // Pinned certificates are stored with their group, a composite's too.
    for (group, host) in [(&comp, "dp-1.example.com"), (&blue, "dp-2.example.com")] {
        let pem = rcgen::generate_simple_self_signed(vec![host.to_string()])
            .unwrap()
            .cert
            .pem();
        c.post_json(
            &format!("{V2}/{group}/dp-client-certificates"),
            &json!({"cert": pem, "title": host}),
        )
        .await
        .expect(201);
    }
    c.add(&comp, &[&blue, &yellow]).await.expect(204);
    c.put_config(&blue, &service("svc", "blue.internal"))
        .await
        .expect(200);
    c.put_config(&yellow, &service("yellow-svc", "yellow.internal"))
        .await
        .expect(200);
    // A conflict after a good snapshot: the last good one must survive the restart too.
    c.put_config(&yellow, &service("svc", "yellow.internal"))
        .await
        .expect(200);
    let hash = c.etag(&comp).await;
    c.heartbeat(&comp, "dp-1", &hash).await.expect(200);
    // Node reports are stored in batches (about a second): a SIGKILL before
    // may lose the last ones. Wait until the daemon says they are stored.
    heartbeats_stored(&c).await;
    let before = state_of(&c).await;
    assert_eq!(before[&comp]["status"], "CONFLICT");
    assert_eq!(before[&comp]["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(
        before[&blue]["meta"]["config"]["auth_type"],
        "pki_client_certs"
    );

    d.kill9();
    d.restart();
    let c = d.client();
    let after = state_of(&c).await;
    assert_eq!(before, after, "state after restart");
    // Every member came back thawed (the default group, blue and yellow),
    // none was built again: the store kept them frozen with their configs.
    let restored = |m: &str| {
        (
            metric(m, "rgmerge_startup_members_thawed"),
            metric(m, "rgmerge_startup_members_built"),
        )
    };
    let m = c.get("/metrics").await.expect(200).text();
    assert_eq!(restored(&m), (3.0, 0.0), "{m}");
    let nodes = c.get_json(&format!("{V2}/{comp}/nodes")).await;
    assert_eq!(
        nodes["items"][0]["sync_status"], "IN_SYNC",
        "a node in sync stays in sync"
    );

    // Versions continue from where they were.
    let v = c
        .snapshot(&comp)
        .await
        .header("x-snapshot-version")
        .unwrap()
        .parse::<u64>()
        .unwrap();
    c.put_config(&yellow, &service("yellow-svc-2", "yellow.internal"))
        .await
        .expect(200);
    let v2 = c
        .snapshot(&comp)
        .await
        .header("x-snapshot-version")
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(v2, v + 1);
    // And a clean shutdown keeps everything as well.
    let before = state_of(&c).await;
    assert!(d.stop().success());
    d.restart();
    assert_eq!(before, state_of(&d.client()).await);
    let m = d.client().get("/metrics").await.expect(200).text();
    assert_eq!(restored(&m), (3.0, 0.0), "{m}");

    // Frozen members that no longer decode (a damaged row, or one another
    // binary wrote) are built from their configs: the same state is
    // served, and the writer stores them frozen again for the next start.
    assert!(d.stop().success());
    {
        use rgmerge::registry::record::Change;
        let mut store = rgmerge::store::Store::open(&d.data).expect("store");
        let loaded = store.load().expect("load");
        assert!(!loaded.members.is_empty(), "the store keeps frozen members");
        let damaged: Vec<Change> = loaded
            .members
            .keys()
            .map(|h| Change::PutMember(h.clone(), bytes::Bytes::from_static(b"not a member")))
            .collect();
        store.commit(&damaged).expect("commit");
    }
    d.restart();
    assert_eq!(before, state_of(&d.client()).await);
    let m = d.client().get("/metrics").await.expect(200).text();
    assert_eq!(restored(&m), (0.0, 3.0), "{m}");
    assert!(d.stop().success());
    d.restart();
    assert_eq!(before, state_of(&d.client()).await);
    let m = d.client().get("/metrics").await.expect(200).text();
    assert_eq!(restored(&m), (3.0, 0.0), "{m}");
}

/// Writers hammer the daemon; SIGKILL lands at a random moment; after each
/// restart every acknowledged write is there and the composites agree with
/// their members' configs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_concurrent_writes_loses_nothing_acknowledged() {
    let mut d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let mut groups = Vec::new();
    for i in 0..4 {
        groups.push(c.standard(&format!("team{i}")).await);
    }
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    c.add(&comp, &refs).await.expect(204);

    // Per group: the last write acknowledged, and the last one attempted.
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut counter = 0u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    for round in 0..8 {
        let c = d.client();
        let mut tasks = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let (c, g) = (c.clone(), g.clone());
            let start = counter + (gi as u64) * 10_000 + round * 100_000;
            tasks.push(tokio::spawn(async move {
                let mut last_ok = None;
                let mut last_try = None;
                for n in start..start + 1000 {
                    last_try = Some(n);
                    match put_service(&c, &g, &format!("t{gi}-v{n}")).await {
                        Ok(r) if r.status == 200 => last_ok = Some(n),
                        _ => break,
                    }
                }
                (g, last_ok, last_try)
            }));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(30 + seed % 150)).await;
        d.kill9();
        for t in tasks {
            // Requests in flight at the kill fail: that is expected; they were not acknowledged.
            if let Ok((g, Some(ok), _)) = t.await {
                acked.insert(g, ok);
            }
        }
        counter += 1000;
        d.restart();
        let c = d.client();
        for g in &groups {
            let cfg = c.get(&format!("{V2}/{g}/config")).await.expect(200).text();
            if let Some(n) = acked.get(g) {
                let current: u64 = cfg
                    .split("-v")
                    .nth(1)
                    .and_then(|s| s.split(|ch: char| !ch.is_ascii_digit()).next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                assert!(
                    current >= *n,
                    "round {round}: group {g} lost acknowledged write v{n}, has {cfg}"
                );
            }
        }
        // No half-applied change: the composite's snapshot is the merge of the members' configs.
        let st = c.status(&comp).await;
        assert_eq!(st["item"]["state"], "OK", "{st}");
        let snap = c.snapshot(&comp).await.json();
        // No `services` when the kill came before any write landed (a
        // loaded machine); then no member config has a service either.
        let mut in_snapshot: Vec<String> = snap["services"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut expected = Vec::new();
        for g in &groups {
            let cfg = c.get(&format!("{V2}/{g}/config")).await.expect(200).text();
            if let Some(name) = cfg.lines().find_map(|l| l.strip_prefix("- name: ")) {
                expected.push(name.to_string());
            }
        }
        in_snapshot.sort();
        expected.sort();
        assert_eq!(in_snapshot, expected, "round {round}");
    }
    assert!(!acked.is_empty(), "some writes were acknowledged");
}

/// Group commit (issue 17): 32 writers, each on its own group (eight
/// composites of four members), share store commits; SIGKILL lands in the
/// middle of batches. After each restart every acknowledged write is there,
/// and no batch is half there: each composite is the merge of its members'
/// configs as stored. The daemon must have batched (some commit carried
/// more than one write) or this test proves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_batch_loses_nothing_acknowledged_and_applies_no_half() {
    const WRITERS: usize = 32;
    let mut d = Daemon::start();
    let c = d.client();
    let mut groups = Vec::new();
    let mut composites = Vec::new();
    for k in 0..WRITERS / 4 {
        let comp = c.composite(&format!("shared{k}")).await;
        let mut members = Vec::new();
        for i in 0..4 {
            members.push(c.standard(&format!("team{k}-{i}")).await);
        }
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        c.add(&comp, &refs).await.expect(204);
        composites.push((comp, members.clone()));
        groups.extend(members);
    }
    let mut acked: HashMap<String, u64> = HashMap::new();
    // Acknowledged writes per group, over every round.
    let mut acked_count: HashMap<String, usize> = HashMap::new();
    let mut batched = false;
    let mut seed = 0x2545f4914f6cdd1du64;
    for round in 0..5u64 {
        let c = d.client();
        let mut tasks = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let (c, g) = (c.clone(), g.clone());
            let start = round * 1_000_000 + gi as u64 * 10_000;
            tasks.push(tokio::spawn(async move {
                let mut last_ok = None;
                let mut oks = 0usize;
                for n in start..start + 5000 {
                    match put_service(&c, &g, &format!("t{gi}-v{n}")).await {
                        Ok(r) if r.status == 200 => {
                            last_ok = Some(n);
                            oks += 1;
                        }
                        Ok(r) => {
                            eprintln!("status {} {}", r.status, r.text());
                            break;
                        }
                        Err(_) => break,
                    }
                }
                (g, last_ok, oks)
            }));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(600 + seed % 600)).await;
        if let Ok(r) = c.try_send("GET", "/metrics", &[], None).await {
            let m = r.text();
            batched |= metric(&m, "rgmerge_write_batch_size_sum")
                > metric(&m, "rgmerge_write_batch_size_count");
        }
        d.kill9();
        for t in tasks {
            if let Ok((g, last, oks)) = t.await {
                *acked_count.entry(g.clone()).or_default() += oks;
                if let Some(ok) = last {
                    acked.insert(g, ok);
                }
            }
        }
        d.restart();
        let c = d.client();
        let mut stored = HashMap::new();
        for g in &groups {
            let cfg = c.get(&format!("{V2}/{g}/config")).await.expect(200).text();
            let name = cfg
                .lines()
                .find_map(|l| l.strip_prefix("- name: "))
                .unwrap_or_default()
                .to_string();
            if let Some(n) = acked.get(g) {
                let current: u64 = name
                    .split("-v")
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                assert!(
                    current >= *n,
                    "round {round}: group {g} lost acknowledged write v{n}, has {cfg}"
                );
            }
            stored.insert(g.clone(), name);
        }
        for (comp, members) in &composites {
            let st = c.status(comp).await;
            assert_eq!(st["item"]["state"], "OK", "{st}");
            let snap = c.snapshot(comp).await.json();
            let mut in_snapshot: Vec<String> = snap["services"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect();
            let mut expected: Vec<String> = members
                .iter()
                .map(|m| stored[m].clone())
                .filter(|n| !n.is_empty())
                .collect();
            in_snapshot.sort();
            expected.sort();
            assert_eq!(in_snapshot, expected, "round {round}: composite {comp}");
        }
    }
    assert!(
        acked.len() == WRITERS,
        "every writer had writes acknowledged: {}",
        acked.len()
    );
    assert!(batched, "some store commit carried more than one write");
    // Each write's audit entry is in the write's own commit: no crash keeps
    // an acknowledged write without it.
    let c = d.client();
    for (g, n) in &acked_count {
        let mut audited = 0;
        let mut before: Option<u64> = None;
        loop {
            let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let page = c
                .get_json(&format!("/v2/audit-log?group={g}&page[size]=1000{q}"))
                .await;
            audited += page["data"]
                .as_array()
                .expect("data")
                .iter()
                .filter(|e| e["method"] == "PUT" && e["status"] == 200)
                .count();
            match page["meta"]["next_before"].as_u64() {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        assert!(
            audited >= *n,
            "group {g}: {n} writes acknowledged, {audited} audited"
        );
    }
}

#[test]
fn a_damaged_store_is_refused_never_overwritten() {
    let mut d = Daemon::start();
    d.kill9();
    let file = d.data.join("rgmerge.redb");
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(len > 0);
    for damage in ["truncate", "empty", "garbage"] {
        let original = std::fs::read(&file).unwrap();
        let damaged: Vec<u8> = match damage {
            "truncate" => original[..original.len() / 3].to_vec(),
            "empty" => Vec::new(),
            _ => original
                .iter()
                .enumerate()
                .map(|(i, b)| if i < 4096 { b ^ 0x5a } else { *b })
                .collect(),
        };
        std::fs::write(&file, &damaged).unwrap();
        let out = rgmerge(&[
            "serve",
            "--data-dir",
            d.data.to_str().unwrap(),
            "--socket",
            d.socket.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{damage}: {err}");
        assert!(err.contains("refusing to start"), "{damage}: {err}");
        assert!(
            std::fs::read(&file).unwrap() == damaged,
            "{damage}: the damaged file was left as it was"
        );
        std::fs::write(&file, &original).unwrap();
    }
    d.restart();
    d.kill9();
}

#[tokio::test]
async fn a_full_disk_fails_the_write_and_the_daemon_keeps_serving() {
    let mut d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    c.put_config(&blue, &service("small", "s"))
        .await
        .expect(200);
    d.kill9();
    let size = std::fs::metadata(d.data.join("rgmerge.redb"))
        .unwrap()
        .len();
    d.set_file_size_limit(Some(size + 64 * 1024));
    d.restart();
    let c = d.client();
    let before = c.snapshot(&blue).await;
    // A config far larger than what is left on the "disk".
    let mut big = String::from("_format_version: \"3.0\"\nservices:\n");
    for i in 0..20_000 {
        big.push_str(&format!("- name: svc-{i}\n  host: host-{i}.internal\n"));
    }
    // Service Unavailable: the spec's status for a failure that passes.
    let r = c.put_config(&blue, &big).await.expect(503).json();
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{r}"
    );
    // Still serving, nothing changed.
    c.get("/healthz").await.expect(200);
    assert_same_snapshot(&before, &c.snapshot(&blue).await);
    assert!(c.config(&blue).await.contains("small"));
    // Small writes that fit still work.
    c.put_config(&blue, &service("still-small", "s"))
        .await
        .expect(200);
    // After a restart without the limit, the state is the acknowledged one.
    d.kill9();
    d.set_file_size_limit(None);
    d.restart();
    assert!(
        d.client()
            .get(&format!("{V2}/{blue}/config"))
            .await
            .expect(200)
            .text()
            .contains("still-small")
    );
}

#[tokio::test]
async fn export_validate_bundle_and_import_round_trip() {
    let mut d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    let evil = c.standard("../evil name").await;
    c.add(&comp, &[&blue, &evil]).await.expect(204);
    c.put_config(&blue, &service("blue-svc", "b"))
        .await
        .expect(200);
    c.put_config_json(
        &evil,
        r#"{"_format_version":"3.0","services":[{"name":"blue-svc","host":"e"}]}"#,
    )
    .await
    .expect(200);
    let before = state_of(&c).await;
    // Export needs the store, which the running daemon holds.
    let out_dir = d.dir.path().join("export");
    rgmerge_exit(
        &[
            "export",
            "--data-dir",
            d.data.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ],
        2,
    );
    assert!(d.stop().success());

    rgmerge_exit(
        &[
            "export",
            "--data-dir",
            d.data.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ],
        0,
    );
    assert!(out_dir.join("members/blue.yaml").exists());
    assert!(
        out_dir.join("members/%2E.%2Fevil%20name.json").exists(),
        "names can't escape the directory"
    );
    // The bundle validates: the composite is in conflict (both define blue-svc).
    let v = rgmerge_exit(
        &[
            "validate",
            "--format",
            "json",
            "--bundle",
            out_dir.join("bundle.yaml").to_str().unwrap(),
        ],
        1,
    );
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(report["composites"][0]["name"], "shared");
    assert_eq!(
        report["composites"][0]["conflicts"][0]["type"],
        "duplicate_name"
    );

    // Import into a fresh data directory, and serve from it.
    let data2 = d.dir.path().join("data2");
    rgmerge_exit(
        &[
            "import",
            "--data-dir",
            data2.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ],
        0,
    );
    // Importing twice is refused: the directory now holds state.
    let again = rgmerge(&[
        "import",
        "--data-dir",
        data2.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds state"));

    let mut d2 = Daemon::start();
    d2.kill9();
    std::fs::remove_dir_all(&d2.data).ok();
    std::fs::rename(&data2, &d2.data).unwrap();
    d2.restart();
    let after = state_of(&d2.client()).await;
    // An export carries what each group served: versions, hashes and bytes
    // come back as they were, the conflicted composite's last good one included.
    assert_eq!(
        before.as_object().unwrap().len(),
        after.as_object().unwrap().len()
    );
    for (id, g) in before.as_object().unwrap() {
        assert_eq!(
            Some(g),
            after.get(id),
            "group {id}: same fields, config, memberships and snapshot bytes"
        );
    }
}

/// A frozen member that checks out (this binary's stamp, the right blob,
/// a sound checksum) but is not the member its config builds, as when two
/// builds share a stamp: the composite's snapshot no longer assembles to
/// its hash, and start-up builds every member from its config instead of
/// refusing to start.
#[test]
fn a_frozen_member_that_is_not_what_the_config_builds_is_built_again() {
    use rgmerge::commands::{bench, synth};
    use rgmerge::config::{Format, KongTarget};
    use rgmerge::intern::Interner;
    use rgmerge::member::{Member, MemberInfo, validation_stamp};
    use rgmerge::registry::record::Change;
    use rgmerge::store::Store;

    let dir = tempfile::tempdir().expect("tempdir");
    let spec = synth::Spec {
        entities: 20,
        conflicts: 0.0,
        seed: 3,
    };
    bench::write_startup_fixture(dir.path(), 4, &spec).expect("fixture");
    let stamp = validation_stamp(&KongTarget::default()).expect("a stamp");
    {
        let mut store = Store::open(dir.path()).expect("open");
        let loaded = store.load().expect("load");
        let blobs: Vec<&String> = loaded
            .groups
            .iter()
            .filter(|g| !g.meta.is_default)
            .filter_map(|g| g.config.as_ref())
            .collect();
        assert_eq!(blobs.len(), 4, "four members");
        // Member 1's config, frozen as if it were member 0's.
        let interner = Interner::new();
        let other = &loaded.blobs[blobs[1]];
        let m = Member::build(
            MemberInfo::unnamed("x"),
            &other.bytes,
            Format::Json,
            &interner,
        );
        let row = m.freeze(&interner, &stamp, blobs[0]).expect("freezes");
        let forged = Change::PutMember(blobs[0].clone(), row.into());
        store.commit(&[forged]).expect("commit");
        // With it, the store does not restore as it stands.
        let settings = rgmerge::registry::Settings::default();
        let loaded = store.load().expect("load");
        let restored = rgmerge::registry::Registry::restore(
            std::sync::Arc::new(Interner::new()),
            settings,
            loaded,
        );
        let why = restored.err().expect("the forged member is caught");
        assert!(why.contains("no longer assembles"), "{why}");
    }
    let engine = bench::start_up(dir.path()).expect("starts, building every member");
    drop(engine);
    bench::wait_until_closed(dir.path());
    // And the writer froze them again: the next start-up thaws.
    let engine = bench::start_up(dir.path()).expect("starts");
    drop(engine);
    bench::wait_until_closed(dir.path());
    let store = Store::open(dir.path()).expect("open");
    let loaded = store.load().expect("load");
    let interner = Interner::new();
    for g in loaded.groups.iter().filter(|g| g.config.is_some()) {
        let h = g.config.as_ref().expect("a config");
        let row = loaded.members.get(h).expect("frozen").clone();
        let blob = &loaded.blobs[h];
        let thawed = Member::thaw(g.meta.member_info(), row, &interner, &stamp, h).expect("thaws");
        let built = Member::build(g.meta.member_info(), &blob.bytes, blob.format, &interner);
        assert_eq!(
            format!("{thawed:?}"),
            format!("{built:?}"),
            "{}",
            g.meta.name
        );
    }
}

//! The daemon end to end: the real binary on a temporary Unix socket, driven
//! over HTTP (issue 4).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::{Daemon, V2, assert_same_snapshot, hang_guard, service};
use serde_json::json;

#[tokio::test]
async fn serving_basics_health_metrics_socket_mode_and_json_errors() {
    let d = Daemon::start();
    let c = d.client();
    assert_eq!(c.get_json("/healthz").await["status"], "ok");
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode");
    let nf = c.get("/nope").await.expect(404).json();
    assert_eq!(nf["status"], 404);
    assert!(nf["detail"].as_str().unwrap().contains("no such endpoint"));
    let na = c
        .send("PUT", "/healthz", &[], None)
        .await
        .expect(405)
        .json();
    assert_eq!(na["status"], 405);
    c.get(V2).await.expect(200);
    let m = c.get("/metrics").await.expect(200).text();
    assert!(m.contains("rgmerge_http_requests_total"), "{m}");
    assert!(m.contains("rgmerge_http_request_duration_seconds"), "{m}");
    assert!(m.contains("rgmerge_snapshot_version"), "{m}");
}

#[tokio::test]
async fn stale_socket_is_removed_and_a_foreign_file_is_refused() {
    let mut d = Daemon::start();
    d.kill9();
    assert!(d.socket.exists(), "a crashed run leaves its socket behind");
    d.restart();
    d.client().get("/healthz").await.expect(200);
    // SIGTERM: clean exit, socket removed.
    let status = d.stop();
    assert!(status.success(), "{status:?}");
    assert!(!d.socket.exists());
    // A regular file where the socket should go is not ours to replace.
    std::fs::write(&d.socket, b"precious").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rgmerge"))
        .args(["serve", "--data-dir"])
        .arg(&d.data)
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&d.socket).unwrap(), b"precious");
}

#[tokio::test]
async fn default_group_rules() {
    let d = Daemon::start();
    let c = d.client();
    let list = c.get_json(V2).await;
    let def = &list["data"][0];
    assert_eq!(def["name"], "default");
    let id = def["id"].as_str().unwrap();
    let details =
        |c: crate::common::Client| async move { c.get_json(&format!("{V2}/{id}/details")).await };
    assert_eq!(details(c.clone()).await["is_default"], true);
    // Renamable, never deletable, never un-defaulted.
    let r = c
        .patch_json(&format!("{V2}/{id}"), &json!({"name": "platform"}))
        .await
        .expect(200)
        .json();
    assert_eq!(r["name"], "platform");
    assert_eq!(details(c.clone()).await["is_default"], true);
    c.delete(&format!("{V2}/{id}")).await.expect(400);
    c.patch_json(&format!("{V2}/{id}"), &json!({"is_default": false}))
        .await
        .expect(400);
    assert_eq!(c.get_json(&format!("{V2}/{id}")).await["name"], "platform");
}

#[tokio::test]
async fn groups_create_list_filter_page_rename_label_delete() {
    let d = Daemon::start();
    let c = d.client();
    let r = c.post_json(V2, &json!({"name": "blue", "description": "team blue", "labels": {"team": "blue", "env": "prod"}})).await.expect(201).json();
    let blue = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["config"]["cluster_type"], "CLUSTER_TYPE_CONTROL_PLANE");
    assert!(r["created_at"].as_str().unwrap().ends_with('Z'));
    c.post_json(
        V2,
        &json!({"name": "yellow", "labels": {"team": "yellow", "env": "prod"}}),
    )
    .await
    .expect(201);
    c.post_json(
        V2,
        &json!({"name": "kic", "cluster_type": "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER"}),
    )
    .await
    .expect(201);
    // The legacy spellings are the same types.
    let legacy = c
        .post_json(
            V2,
            &json!({"name": "old", "cluster_type": "CLUSTER_TYPE_COMPOSITE"}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(
        legacy["config"]["cluster_type"],
        "CLUSTER_TYPE_CONTROL_PLANE_GROUP"
    );
    // Unique names, case-sensitive.
    c.post_json(V2, &json!({"name": "blue"})).await.expect(409);
    c.post_json(V2, &json!({"name": "Blue"})).await.expect(201);

    // The names a list query answers.
    let names = |query: &'static str| {
        let c = c.clone();
        async move {
            let v = c.get_json(&format!("{V2}{query}")).await;
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string())
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(names("?filter[name][eq]=blue").await, vec!["blue"]);
    assert_eq!(names("?labels=team:yellow").await, vec!["yellow"]);
    assert_eq!(names("?labels=env:prod").await.len(), 2);
    assert_eq!(
        names("?filter[cluster_type][eq]=CLUSTER_TYPE_K8S_INGRESS_CONTROLLER").await,
        vec!["kic"]
    );
    let p1 = c
        .get_json(&format!("{V2}?page[size]=2&page[number]=1"))
        .await;
    let p3 = c
        .get_json(&format!("{V2}?page[size]=2&page[number]=3"))
        .await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    assert_eq!(p1["meta"]["page"]["total"], 6);
    assert_eq!(p3["data"].as_array().unwrap().len(), 2);
    c.get(&format!("{V2}?page[size]=0")).await.expect(400);
    // An unknown filter is refused, never ignored.
    c.get(&format!(
        "{V2}?cluster_type=CLUSTER_TYPE_K8S_INGRESS_CONTROLLER"
    ))
    .await
    .expect(400);

    // Rename and label (a null label value removes it), cluster_type fixed.
    let r = c
        .patch_json(
            &format!("{V2}/{blue}"),
            &json!({"name": "navy", "labels": {"env": null, "tier": "gold"}}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(r["name"], "navy");
    assert_eq!(r["labels"], json!({"team": "blue", "tier": "gold"}));
    c.patch_json(
        &format!("{V2}/{blue}"),
        &json!({"cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP"}),
    )
    .await
    .expect(400);
    // Taken: a 400, since the spec's update lists no 409.
    c.patch_json(&format!("{V2}/{blue}"), &json!({"name": "yellow"}))
        .await
        .expect(400);

    c.delete(&format!("{V2}/{blue}")).await.expect(204);
    c.get(&format!("{V2}/{blue}")).await.expect(404);
}

#[tokio::test]
async fn group_field_rules() {
    let d = Daemon::start();
    let c = d.client();
    let long = "x".repeat(257);
    c.post_json(V2, &json!({"name": long})).await.expect(400);
    c.post_json(V2, &json!({"name": "x".repeat(256)}))
        .await
        .expect(201);
    c.post_json(V2, &json!({"name": ""})).await.expect(400);
    c.post_json(V2, &json!({"name": "x"})).await.expect(400);
    c.post_json(V2, &json!({"name": "dd", "description": "x".repeat(2049)}))
        .await
        .expect(400);
    for bad in [
        json!({"kong-team": "a"}),
        json!({"_x": "a"}),
        json!({"KIC": "a"}),
        json!({"a": ""}),
        json!({"a": "x".repeat(64)}),
    ] {
        let r = c
            .post_json(V2, &json!({"name": "labelled", "labels": bad}))
            .await
            .expect(400)
            .json();
        assert!(r["detail"].as_str().unwrap().contains("label"), "{r}");
    }
    let many: serde_json::Map<String, serde_json::Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    c.post_json(V2, &json!({"name": "many", "labels": many}))
        .await
        .expect(400);
    c.post_json(
        V2,
        &json!({"name": "ct", "cluster_type": "CLUSTER_TYPE_NOPE"}),
    )
    .await
    .expect(400);
    c.post_json(V2, &json!({"name": "extra", "colour": "red"}))
        .await
        .expect(400);
}

#[tokio::test]
async fn max_groups_reproduces_the_enterprise_plan() {
    let d = Daemon::builder().flag("--max-groups", 3).start();
    let c = d.client();
    c.standard("one").await;
    c.standard("two").await;
    let r = c
        .post_json(V2, &json!({"name": "three"}))
        .await
        .expect(409)
        .json();
    assert!(r["detail"].as_str().unwrap().contains("max_groups"), "{r}");
}

#[tokio::test]
async fn membership_rules_each_refusal_changes_nothing() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let other = c.composite("other").await;
    let blue = c.standard("blue").await;
    let kic = c.create("kic", "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER").await;
    let busy = c.standard("busy").await;
    c.heartbeat(&busy, "dp-1", "").await.expect(200);

    let members = |c: crate::common::Client, id: String| async move {
        c.get_json(&format!("{V2}/{id}/group-memberships")).await["meta"]["page"]["total"]
            .as_u64()
            .unwrap()
    };
    // Nesting, KIC, connected instances, unknown ids, duplicates: refused, nothing added.
    assert!(
        c.add(&comp, &[&blue, &other]).await.expect(400).json()["detail"]
            .as_str()
            .unwrap()
            .contains("composite can't be a member")
    );
    assert!(
        c.add(&comp, &[&blue, &kic]).await.expect(400).json()["detail"]
            .as_str()
            .unwrap()
            .contains("Ingress Controller")
    );
    assert!(
        c.add(&comp, &[&blue, &busy]).await.expect(400).json()["detail"]
            .as_str()
            .unwrap()
            .contains("connected runtime instance")
    );
    c.add(&comp, &[&blue, "00000000-0000-4000-8000-000000000000"])
        .await
        .expect(400);
    c.add(&comp, &[&blue, &blue]).await.expect(400);
    c.add(&comp, &[]).await.expect(400);
    assert_eq!(
        members(c.clone(), comp.clone()).await,
        0,
        "refused requests add nothing"
    );
    // Adding to a standard group is refused.
    c.add(&blue, &[&busy]).await.expect(400);

    c.add(&comp, &[&blue]).await.expect(204);
    c.add(&comp, &[&blue]).await.expect(400);
    assert_eq!(members(c.clone(), comp.clone()).await, 1);
    let ms = c
        .get_json(&format!("{V2}/{blue}/group-member-status"))
        .await;
    assert_eq!(ms, json!({"is_member": true}));
    let details = c.get_json(&format!("{V2}/{blue}/details")).await;
    assert_eq!(details["composites"][0]["name"], "shared");

    // A member refuses nodes; its config may be written, the composite's may not.
    c.heartbeat(&blue, "dp-2", "").await.expect(409);
    let ro = c
        .put_config(&comp, &service("x", "x.internal"))
        .await
        .expect(405)
        .json();
    assert!(ro["detail"].as_str().unwrap().contains("read-only"), "{ro}");
    // A member can't be deleted; removing a non-member is refused.
    c.delete(&format!("{V2}/{blue}")).await.expect(400);
    c.remove(&comp, &[&busy]).await.expect(400);
    c.remove(&comp, &[&blue]).await.expect(204);
    assert_eq!(members(c.clone(), comp.clone()).await, 0);
    assert_eq!(
        c.get_json(&format!("{V2}/{blue}/group-member-status"))
            .await,
        json!({"is_member": false})
    );
}

#[tokio::test]
async fn limits_51_per_request_257_members_6_composites() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("big").await;
    let mut ids = Vec::new();
    for i in 0..257 {
        ids.push(c.standard(&format!("m{i}")).await);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let r = c.add(&comp, &refs[..51]).await.expect(400).json();
    assert!(r["detail"].as_str().unwrap().contains("at most 50"), "{r}");
    for chunk in refs[..256].chunks(50) {
        c.add(&comp, chunk).await.expect(204);
    }
    let r = c.add(&comp, &refs[256..]).await.expect(400).json();
    assert!(r["detail"].as_str().unwrap().contains("256"), "{r}");
    let total = c
        .get_json(&format!("{V2}/{comp}/group-memberships?page[size]=1000"))
        .await;
    assert_eq!(total["meta"]["page"]["total"], 256);

    // A group may be in 5 composites, not 6.
    let g = &ids[256];
    for i in 0..5 {
        let cid = c.composite(&format!("c{i}")).await;
        c.add(&cid, &[g]).await.expect(204);
    }
    let sixth = c.composite("c5").await;
    assert!(
        c.add(&sixth, &[g]).await.expect(400).json()["detail"]
            .as_str()
            .unwrap()
            .contains("5 composites")
    );
}

#[tokio::test]
async fn conflict_lifecycle_keeps_the_last_good_snapshot() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    // A new composite serves the empty config as version 1.
    let s = c.snapshot(&comp).await;
    assert_eq!(s.header("x-snapshot-version").as_deref(), Some("1"));
    assert_eq!(s.json(), json!({"_format_version": "3.0"}));

    c.add(&comp, &[&blue, &yellow]).await.expect(204);
    c.put_config(&blue, &service("example_service", "blue.internal"))
        .await
        .expect(200);
    let good = c.snapshot(&comp).await;
    assert_eq!(good.header("x-snapshot-version").as_deref(), Some("2"));
    assert_eq!(c.status(&comp).await["item"]["state"], "OK");

    // Conflict: detected at once, without any instance connected.
    let r = c
        .put_config(&yellow, &service("example_service", "yellow.internal"))
        .await
        .expect(200)
        .json();
    assert_eq!(r["state"], "CONFLICT");
    let st = c.status(&comp).await;
    assert_eq!(st["item"]["state"], "CONFLICT");
    let conflicts = st["item"]["conflicts"].as_array().unwrap();
    assert_eq!(
        conflicts.len(),
        4,
        "two keys (service name, route name) × two members: {st}"
    );
    let svc = conflicts
        .iter()
        .find(|c| c["entity"] == "services" && c["cluster_id"] == json!(blue))
        .unwrap();
    assert_json_include!(svc, {
        "type": "duplicate_name",
        "value": "example_service",
        "members": ["blue", "yellow"],
        "resource": {"type": "service"}
    });
    assert!(
        svc["description"]
            .as_str()
            .unwrap()
            .contains("example_service")
    );
    // Instances keep the last conflict-free snapshot.
    let during = c.snapshot(&comp).await;
    assert_eq!(during.body, good.body);
    assert_eq!(during.header("etag"), good.header("etag"));

    // Resolved: the first conflict-free merge publishes a new version.
    c.put_config(&yellow, &service("yellow_service", "yellow.internal"))
        .await
        .expect(200);
    assert_eq!(c.status(&comp).await["item"]["state"], "OK");
    let after = c.snapshot(&comp).await;
    assert_eq!(after.header("x-snapshot-version").as_deref(), Some("3"));
    let doc = after.json();
    let names: Vec<&str> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"yellow_service") && names.contains(&"example_service"));
    // Provenance says who contributed what, apart from the snapshot.
    let prov = c
        .get_json(&format!("{V2}/{comp}/snapshot/provenance"))
        .await;
    let runs = prov["collections"]["services"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .any(|r| r["member"] == "blue" && r["count"] == 1)
    );
}

#[tokio::test]
async fn dry_runs_answer_and_change_nothing() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    c.put_config(&blue, &service("svc", "blue.internal"))
        .await
        .expect(200);
    c.put_config(&yellow, &service("svc", "yellow.internal"))
        .await
        .expect(200);
    c.add(&comp, &[&blue]).await.expect(204);
    let before = c.snapshot(&comp).await;

    // Adding yellow would conflict: the dry run says so and adds nothing.
    let body = json!({"members": [{"id": yellow}]});
    let r = c
        .post_json(
            &format!("{V2}/{comp}/group-memberships/add?dry_run=true"),
            &body,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["state"], "CONFLICT");
    assert_eq!(r["conflicts"][0]["type"], "duplicate_name");
    assert_eq!(
        c.get_json(&format!("{V2}/{comp}/group-memberships")).await["meta"]["page"]["total"],
        1
    );

    // Replacing the members (PUT, Konnect's upsert) in a dry run: the report, no change.
    let r = c
        .send(
            "PUT",
            &format!("{V2}/{comp}/group-memberships?dry_run=true"),
            &[("content-type", "application/json")],
            Some(
                json!({"members": [{"id": yellow}]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["members"], json!([{"name": "yellow", "entities": 2}]));
    assert_eq!(
        c.get_json(&format!("{V2}/{comp}/group-memberships")).await["data"][0]["id"],
        json!(blue)
    );

    // A config that would conflict: reported per composite, not applied.
    let r = c
        .send(
            "PUT",
            &format!("{V2}/{blue}/config?dry_run=true"),
            &[("content-type", "application/yaml")],
            Some(service("other", "x").into_bytes()),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["composites"][0]["report"]["state"], "OK");
    let cfg = c
        .get(&format!("{V2}/{blue}/config"))
        .await
        .expect(200)
        .text();
    assert!(cfg.contains("svc"), "config unchanged: {cfg}");
    // An invalid config in a dry run: its errors, nothing applied.
    let r = c
        .send(
            "PUT",
            &format!("{V2}/{blue}/config?dry_run=true"),
            &[("content-type", "application/yaml")],
            Some(b"_format_version: \"3.0\"\nservices:\n- name: nohost\n".to_vec()),
        )
        .await
        .expect(400)
        .json();
    // The same status as the real request would get, and it says it changed nothing.
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["state"], "INVALID");
    assert_eq!(r["errors"][0]["type"], "schema_error");
    // Removing in a dry run.
    let r = c
        .post_json(
            &format!("{V2}/{comp}/group-memberships/remove?dry_run=true"),
            &json!({"members": [{"id": blue}]}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        c.get_json(&format!("{V2}/{comp}/group-memberships")).await["meta"]["page"]["total"],
        1
    );
    let after = c.snapshot(&comp).await;
    assert_eq!(before.body, after.body);
    assert_eq!(
        before.header("x-snapshot-version"),
        after.header("x-snapshot-version")
    );
}

#[tokio::test]
async fn rejected_config_lists_every_error_and_changes_nothing() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    c.put_config(
        &yellow,
        "_format_version: \"3.0\"\nservices:\n- name: orders\n  host: yellow.internal\n",
    )
    .await
    .expect(200);
    c.add(&comp, &[&blue, &yellow]).await.expect(204);
    c.put_config(&blue, &service("blue-svc", "b"))
        .await
        .expect(200);
    let before = c.snapshot(&blue).await;
    let bad = "_format_version: \"3.0\"\nservices:\n- name: a\n  port: eighty\n  host: a\nroutes:\n- name: r2\n  paths: [/x]\n  service: {name: orders}\n";
    let r = c.put_config(&blue, bad).await.expect(400).json();
    assert_eq!(r["status"], 400);
    let errors = r["errors"].as_array().unwrap();
    let kinds: Vec<&str> = errors.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"schema_error"), "{r}");
    // The route names a service of another member: said so, with the member.
    let cross = errors
        .iter()
        .find(|e| e["type"] == "cross_member_reference")
        .expect("cross_member_reference");
    assert_eq!(cross["path"], "routes[0].service");
    assert!(
        cross["message"].as_str().unwrap().contains("yellow"),
        "{cross}"
    );
    assert_same_snapshot(&before, &c.snapshot(&blue).await);
    assert!(c.config(&blue).await.contains("blue-svc"));
    // The default group alone may hold application registration.
    let app = "_format_version: \"3.0\"\nplugins:\n- name: konnect-application-auth\n  config:\n    scope: 9b1f2cf4-2a5b-4e3c-9d0e-5f6a7b8c9d0e\n";
    let r = c.put_config(&blue, app).await.expect(400).json();
    assert_eq!(r["errors"][0]["type"], "app_registration_outside_default");
    let def = c.get_json(&format!("{V2}?filter[name][eq]=default")).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.put_config(&def, app).await.expect(200);
    // JSON works the same as YAML, and comes back as written.
    let js = r#"{"_format_version":"3.0","services":[{"name":"j","host":"j"}]}"#;
    c.send(
        "PUT",
        &format!("{V2}/{blue}/config"),
        &[("content-type", "application/json")],
        Some(js.as_bytes().to_vec()),
    )
    .await
    .expect(200);
    let got = c.get(&format!("{V2}/{blue}/config")).await.expect(200);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(got.text(), js);
}

#[tokio::test]
async fn etag_304_and_long_poll_wakes_on_publish() {
    let d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    let s = c.snapshot(&blue).await;
    let etag = s.header("etag").unwrap();
    let r = c
        .send(
            "GET",
            &format!("{V2}/{blue}/snapshot"),
            &[("if-none-match", etag.as_str())],
            None,
        )
        .await
        .expect(304);
    assert_eq!(r.header("etag"), Some(etag.clone()));
    // A long-poll times out with 304 when nothing changes.
    let t = std::time::Instant::now();
    c.send(
        "GET",
        &format!("{V2}/{blue}/snapshot?wait=0.3"),
        &[("if-none-match", etag.as_str())],
        None,
    )
    .await
    .expect(304);
    assert!(t.elapsed() >= Duration::from_millis(250));
    // ...and wakes as soon as a new snapshot is published.
    let poller = {
        let c = c.clone();
        let (blue, etag) = (blue.clone(), etag.clone());
        tokio::spawn(async move {
            c.send(
                "GET",
                &format!("{V2}/{blue}/snapshot?wait=30"),
                &[("if-none-match", etag.as_str())],
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.put_config(&blue, &service("woken", "w"))
        .await
        .expect(200);
    // It woke: 200 with the new version, not the 304 of `wait=30` running
    // out. The timeout is a hang guard only.
    let r = tokio::time::timeout(hang_guard(), poller)
        .await
        .expect("long-poll woke")
        .unwrap()
        .expect(200);
    assert_eq!(r.header("x-snapshot-version").as_deref(), Some("2"));
    assert!(r.text().contains("woken"));
    assert_ne!(r.header("etag"), Some(etag));
    // ?version= works like If-None-Match.
    c.send(
        "GET",
        &format!("{V2}/{blue}/snapshot?version=2&wait=0.1"),
        &[],
        None,
    )
    .await
    .expect(304);
    c.send("GET", &format!("{V2}/{blue}/snapshot?version=1"), &[], None)
        .await
        .expect(200);
    c.get(&format!("{V2}/{blue}/snapshot?wait=abc"))
        .await
        .expect(400);
}

#[tokio::test]
async fn nodes_heartbeat_list_sort_and_sync_status() {
    let d = Daemon::builder().flag("--active-window-secs", 30).start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    c.add(&comp, &[&blue]).await.expect(204);
    c.put_config(&blue, &service("svc", "b")).await.expect(200);
    let hash = c.etag(&comp).await;
    let n = c.heartbeat(&comp, "dp-a", &hash).await.expect(200).json();
    assert_eq!(n["sync_status"], "IN_SYNC");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let n = c.heartbeat(&comp, "dp-b", "stale").await.expect(200).json();
    assert_eq!(n["sync_status"], "OUT_OF_SYNC");
    let list = c
        .get_json(&format!("{V2}/{comp}/nodes?sort=last_seen"))
        .await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["dp-b", "dp-a"], "most recently seen first");
    let list = c
        .get_json(&format!("{V2}/{comp}/nodes?sort=sync_status"))
        .await;
    assert_eq!(list["items"][0]["sync_status"], "IN_SYNC");
    assert_eq!(
        c.get_json(&format!("{V2}/{comp}/details")).await["active_instances"],
        2
    );
    c.get(&format!("{V2}/{comp}/nodes?sort=colour"))
        .await
        .expect(400);
    // Sorted (ours) and paged by cursor (Konnect's): the `next` link goes on.
    for (sort, first, second) in [("hostname", "dp-a", "dp-b"), ("-hostname", "dp-b", "dp-a")] {
        let p1 = c
            .get_json(&format!("{V2}/{comp}/nodes?sort={sort}&page[size]=1"))
            .await;
        assert_eq!(p1["items"][0]["id"], first, "{p1}");
        assert_eq!(p1["page"]["total_count"], 2);
        let next = p1["page"]["next"].as_str().expect("a next page");
        let p2 = c.get_json(&format!("/v2{next}")).await;
        assert_eq!(p2["items"][0]["id"], second, "{p2}");
        assert!(p2["page"].get("next").is_none(), "{p2}");
    }
    // A new snapshot flips the synced node to OUT_OF_SYNC until it reports the new hash.
    c.put_config(&blue, &service("svc2", "b")).await.expect(200);
    let list = c
        .get_json(&format!("{V2}/{comp}/nodes?sort=sync_status"))
        .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["sync_status"] == "OUT_OF_SYNC")
    );
    c.delete(&format!("{V2}/{comp}/nodes/dp-b"))
        .await
        .expect(204);
    c.delete(&format!("{V2}/{comp}/nodes/dp-b"))
        .await
        .expect(404);
    c.post_json(&format!("{V2}/{comp}/nodes"), &json!({"hostname": ""}))
        .await
        .expect(400);
}

#[tokio::test]
async fn deleting_a_composite_releases_its_members() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    c.add(&comp, &[&blue]).await.expect(204);
    c.delete(&format!("{V2}/{comp}")).await.expect(204);
    assert_eq!(
        c.get_json(&format!("{V2}/{blue}/group-member-status"))
            .await,
        json!({"is_member": false})
    );
    c.get(&format!("{V2}/{comp}/snapshot")).await.expect(404);
    c.heartbeat(&blue, "dp", "").await.expect(200);
    c.delete(&format!("{V2}/{blue}")).await.expect(204);
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let d = Daemon::builder().flag("--max-body-bytes", 4096).start();
    let c = d.client();
    let blue = c.standard("blue").await;
    c.put_config(&blue, &service("keep", "k")).await.expect(200);
    // (method, path, content type or "", body, status)
    const JSON: &str = "application/json";
    let cfg = format!("{V2}/{blue}/config");
    let nil = "00000000-0000-4000-8000-000000000000";
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000)).into_bytes();
    let cases: Vec<(&str, String, &str, Vec<u8>, u16)> = vec![
        ("POST", V2.into(), JSON, b"{\"name\":".to_vec(), 400),
        ("POST", V2.into(), "text/html", b"<b>".to_vec(), 415),
        ("POST", V2.into(), JSON, vec![], 400),
        (
            "POST",
            V2.into(),
            JSON,
            b"{\"name\":\"\xff\"}".to_vec(),
            400,
        ),
        (
            "POST",
            V2.into(),
            JSON,
            b"{\"name\":\"a\",\"name\":\"b\"}".to_vec(),
            400,
        ),
        ("POST", V2.into(), JSON, b"{\"name\":7}".to_vec(), 400),
        ("GET", format!("{V2}/not-a-uuid"), "", vec![], 400),
        ("GET", format!("{V2}/{nil}"), "", vec![], 404),
        ("GET", format!("{V2}/{nil}/snapshot"), "", vec![], 404),
        ("PUT", cfg.clone(), "application/xml", b"<x/>".to_vec(), 415),
        ("PUT", cfg.clone(), JSON, vec![b'['; 5000], 413),
        (
            "PUT",
            cfg.clone(),
            JSON,
            br#"{"_format_version":"3.0","services":[{"name":"x""#.to_vec(),
            400,
        ),
        ("PUT", cfg.clone(), JSON, deep, 400),
        ("PUT", format!("{cfg}?dry_run=maybe"), "", vec![], 400),
        (
            "POST",
            format!("{V2}/{blue}/group-memberships/add"),
            JSON,
            br#"{"members":[{"id":"../../etc"}]}"#.to_vec(),
            400,
        ),
    ];
    for (method, path, ct, body, status) in cases {
        let headers: Vec<(&str, &str)> = if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type", ct)]
        };
        let r = c.send(method, &path, &headers, Some(body)).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        let j = r.json();
        assert_eq!(j["status"], status, "{j}");
        assert!(!j["detail"].as_str().unwrap_or("").is_empty(), "{j}");
    }
    c.get("/healthz").await.expect(200);
    assert!(
        c.get(&format!("{V2}/{blue}/config"))
            .await
            .expect(200)
            .text()
            .contains("keep")
    );
    assert_eq!(
        c.snapshot(&blue)
            .await
            .header("x-snapshot-version")
            .as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_do_not_hold_the_in_flight_limit() {
    let d = Daemon::builder().flag("--max-in-flight", 2).start();
    let c = d.client();
    let blue = c.standard("blue").await;
    let etag = c.snapshot(&blue).await.header("etag").unwrap();
    // More waiting pollers than the in-flight limit...
    let mut polls = Vec::new();
    for _ in 0..6 {
        let (c, blue, etag) = (c.clone(), blue.clone(), etag.clone());
        polls.push(tokio::spawn(async move {
            c.send(
                "GET",
                &format!("{V2}/{blue}/snapshot?wait=20"),
                &[("if-none-match", etag.as_str())],
                None,
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and a write still goes through, and wakes them all: every poll
    // answers 200 with it, none the 304 of `wait=20` running out (as they
    // would if the write had waited for them). The timeouts are hang guards.
    tokio::time::timeout(hang_guard(), c.put_config(&blue, &service("go", "g")))
        .await
        .expect("the write was not blocked by waiting long-polls")
        .expect(200);
    for p in polls {
        let r = tokio::time::timeout(hang_guard(), p)
            .await
            .unwrap()
            .unwrap()
            .expect(200);
        assert!(r.text().contains("go"));
    }
}

/// Heartbeats skip the writer (issue 17), yet they and a membership change
/// can't cross: a group that joins a composite has no active node
/// afterwards, however the two race; a group with a node is refused. And a
/// member refuses heartbeats, a group deleted mid-stream takes its nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_racing_a_membership_change_never_leave_a_member_with_nodes() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let (mut joined, mut refused) = (0, 0);
    for round in 0..12 {
        let g = c.standard(&format!("racer{round}")).await;
        let beats = {
            let (c, g) = (c.clone(), g.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for n in 0..40 {
                    let r = c.heartbeat(&g, &format!("dp-{n}"), "h").await;
                    statuses.push(r.status);
                }
                statuses
            })
        };
        // Let a few heartbeats through in some rounds, none in others.
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let add = c.add(&comp, &[&g]).await;
        let statuses = beats.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 409),
            "{statuses:?}"
        );
        let nodes = c.get_json(&format!("{V2}/{g}/nodes")).await;
        let listed = nodes["page"]["total_count"].as_u64().unwrap();
        match add.status {
            204 => {
                joined += 1;
                assert_eq!(listed, 0, "round {round}: a member holds nodes: {nodes}");
                // Everything after the join was refused.
                let first_refusal = statuses.iter().position(|s| *s == 409);
                if let Some(i) = first_refusal {
                    assert!(statuses[i..].iter().all(|s| *s == 409), "{statuses:?}");
                }
                c.heartbeat(&g, "late", "h").await.expect(409);
            }
            400 => {
                refused += 1;
                assert!(
                    add.text().contains("connected runtime instance"),
                    "{}",
                    add.text()
                );
                assert!(listed > 0, "round {round}: refused though it has no node");
                assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
            }
            s => panic!("round {round}: adding answered {s}: {}", add.text()),
        }
    }
    assert!(joined + refused == 12);
    // A deleted group's nodes go with it.
    let gone = c.standard("gone").await;
    c.heartbeat(&gone, "dp-1", "h").await.expect(200);
    c.delete(&format!("{V2}/{gone}")).await.expect(204);
    c.heartbeat(&gone, "dp-1", "h").await.expect(404);
    c.get(&format!("{V2}/{gone}/nodes")).await.expect(404);
}

//! Snapshot history, pins, disaster recovery and per-group metrics (issue 15):
//! the real binary on a real socket.

use std::collections::{BTreeMap, HashSet};

use crate::common::{Client, Daemon, Resp, V2, hang_guard, rgmerge_exit, service};
use serde_json::{Value, json};

/// What a group serves: (version, hash, bytes).
async fn served(c: &Client, id: &str) -> (u64, String, Vec<u8>) {
    let r = c.snapshot(id).await;
    (r.version(), r.etag(), r.body)
}

async fn history(c: &Client, id: &str) -> Value {
    c.get_json(&format!("{V2}/{id}/snapshot/history")).await
}

async fn pin(c: &Client, id: &str, v: u64) -> Resp {
    c.put_json(&format!("{V2}/{id}/snapshot/pin"), &json!({"version": v}))
        .await
}

async fn default_id(c: &Client) -> String {
    let groups = c.get_json(&format!("{V2}?page[size]=1000")).await;
    // Which group is the default one is an extension: `/details` says.
    for g in groups["data"].as_array().unwrap() {
        let id = g["id"].as_str().unwrap().to_string();
        let d = c.get_json(&format!("{V2}/{id}/details")).await;
        if d["is_default"] == true {
            return id;
        }
    }
    panic!("a default group");
}

#[tokio::test]
async fn kept_versions_are_served_exactly_404_past_the_oldest_and_survive_a_restart() {
    let mut d = Daemon::builder().flag("--snapshot-history", 3).start();
    let c = d.client();
    let blue = c.standard("blue").await;
    let mut seen: BTreeMap<u64, (String, Vec<u8>)> = BTreeMap::new();
    for i in 0..5 {
        c.put_config(&blue, &service(&format!("svc-{i}"), "b.internal"))
            .await
            .expect(200);
        let (v, h, body) = served(&c, &blue).await;
        seen.insert(v, (h, body));
    }
    let versions: Vec<u64> = seen.keys().copied().collect();
    assert_eq!(versions, vec![2, 3, 4, 5, 6], "one version per change");

    // The listing: the last three, newest first, the served one marked.
    let h = history(&c, &blue).await;
    let listed: Vec<u64> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![6, 5, 4], "{h}");
    assert_json_include!(h, {
        "kept": {"oldest": 4},
        "served": {"version": 6},
        "data": [
            {"served": true},
            {
                "served": false,
                "change": "config of 'blue'",
                "state": "OK",
                "hash": seen[&5].0,
                "published_at": "[..]"
            },
            "{...}"
        ],
        "pin": null
    });

    // ?version=V answers exactly V: its bytes, hash and number.
    for v in [4u64, 5, 6] {
        let r = c
            .get(&format!("{V2}/{blue}/snapshot?version={v}"))
            .await
            .expect(200);
        assert_eq!(r.version(), v);
        assert_eq!(r.etag(), seen[&v].0);
        assert_eq!(
            r.body, seen[&v].1,
            "version {v}: the bytes it was served with"
        );
    }
    // ...with If-None-Match against that version's hash.
    let tag = format!("\"{}\"", seen[&5].0);
    c.send(
        "GET",
        &format!("{V2}/{blue}/snapshot?version=5"),
        &[("if-none-match", tag.as_str())],
        None,
    )
    .await
    .expect(304);
    // Gone, or never published: 404 naming what is kept.
    for v in [2u64, 99] {
        let r = c
            .get(&format!("{V2}/{blue}/snapshot?version={v}"))
            .await
            .expect(404)
            .json();
        assert_eq!(r["oldest_kept"], 4, "{r}");
        assert_eq!(r["newest_kept"], 6, "{r}");
        assert!(r["detail"].as_str().unwrap().contains("not kept"), "{r}");
    }

    // Durable: the same after SIGKILL.
    d.kill9();
    d.restart();
    let c = d.client();
    assert_eq!(history(&c, &blue).await, h);
    let r = c
        .get(&format!("{V2}/{blue}/snapshot?version=4"))
        .await
        .expect(200);
    assert_eq!(r.body, seen[&4].1);
    // Keeping fewer after a restart drops the oldest for good.
    d.kill9();
    d.set_args(&["--snapshot-history", "2"]);
    d.restart();
    let c = d.client();
    let h = history(&c, &blue).await;
    assert_eq!(h["kept"]["oldest"], 5, "{h}");
    c.get(&format!("{V2}/{blue}/snapshot?version=4"))
        .await
        .expect(404);
    let r = c
        .get(&format!("{V2}/{blue}/snapshot?version=5"))
        .await
        .expect(200);
    assert_eq!(r.body, seen[&5].1);
}

#[tokio::test]
async fn a_pin_is_served_while_members_change_survives_restart_and_unpin_moves_forward() {
    let mut d = Daemon::start();
    let c = d.client();
    let (comp, [blue, yellow]) = c
        .composite_with(
            "shared",
            [
                ("blue", &service("blue-svc", "b")),
                ("yellow", &service("yellow-svc", "y")),
            ],
        )
        .await;
    let (good_v, good_hash, good_body) = served(&c, &comp).await;
    // A bad change goes out.
    c.put_config(&yellow, &service("yellow-bad", "y"))
        .await
        .expect(200);
    let (bad_v, bad_hash, _) = served(&c, &comp).await;
    assert_eq!(bad_v, good_v + 1);

    // Roll back: the good content, as the next version, so a data plane
    // long-polling with the version it has moves to it.
    let poll = {
        let c = c.clone();
        let comp = comp.clone();
        tokio::spawn(async move {
            c.get(&format!("{V2}/{comp}/snapshot?version={bad_v}&wait=60"))
                .await
        })
    };
    let r = pin(&c, &comp, good_v).await.expect(200).json();
    assert_json_include!(r, {
        "published": true,
        "served": {"version": bad_v + 1, "hash": good_hash},
        "pin": {"version": good_v, "served_as": bad_v + 1}
    });
    let woke = tokio::time::timeout(hang_guard(), poll)
        .await
        .expect("the long-poll woke")
        .unwrap()
        .expect(200);
    assert_eq!(woke.version(), bad_v + 1);
    assert_eq!(woke.body, good_body);
    let s = c.snapshot(&comp).await;
    assert_eq!(s.header("x-snapshot-pinned"), Some(good_v.to_string()));
    assert_eq!(s.etag(), good_hash);
    let pinned_v = bad_v + 1;

    // Members go on changing: nothing new is served, and the pin says what it hides.
    c.put_config(&yellow, &service("yellow-fixed", "y"))
        .await
        .expect(200);
    assert_eq!(
        served(&c, &comp).await,
        (pinned_v, good_hash.clone(), good_body.clone())
    );
    let h = history(&c, &comp).await;
    assert_json_include!(h["data"][0], {
        "version": pinned_v,
        "pin_of": good_v,
        "change": format!("pin to version {good_v}")
    });
    assert_json_include!(h["pin"]["hides"], {"state": "OK", "differs": true});
    assert_eq!(
        h["pin"]["hides"]["members"],
        json!([{"id": yellow, "name": "yellow", "change": "changed"}]),
        "{h}"
    );
    assert_ne!(h["pin"]["hides"]["current_hash"], json!(good_hash));
    // The pin is ours, so it is shown where our extras live: `/details`.
    let g = c.get_json(&format!("{V2}/{comp}/details")).await;
    assert_eq!(g["snapshot"]["pin"]["version"], good_v, "{g}");
    let m = c.get("/metrics").await.expect(200).text();
    assert!(
        m.contains(&format!(
            "rgmerge_snapshot_pinned{{group_id=\"{comp}\",group_name=\"shared\"}} 1"
        )),
        "{m}"
    );
    // The bad version is still kept and readable.
    let r = c
        .get(&format!("{V2}/{comp}/snapshot?version={bad_v}"))
        .await
        .expect(200);
    assert_eq!(r.etag(), bad_hash);

    // Durable.
    d.kill9();
    d.restart();
    let c = d.client();
    assert_eq!(
        served(&c, &comp).await,
        (pinned_v, good_hash.clone(), good_body.clone())
    );
    assert_eq!(history(&c, &comp).await["pin"]["version"], good_v);

    // Refusals change nothing.
    pin(&c, &comp, 999).await.expect(404);
    c.send(
        "PUT",
        &format!("{V2}/{comp}/snapshot/pin"),
        &[("content-type", "application/json")],
        Some(br#"{"version":"x"}"#.to_vec()),
    )
    .await
    .expect(400);
    assert_eq!(served(&c, &comp).await.0, pinned_v);

    // Unpin: the current merge goes out as a newer version; a waiting poller gets it.
    let poll = {
        let c = c.clone();
        let comp = comp.clone();
        tokio::spawn(async move {
            c.get(&format!("{V2}/{comp}/snapshot?version={pinned_v}&wait=60"))
                .await
        })
    };
    let r = c
        .delete(&format!("{V2}/{comp}/snapshot/pin"))
        .await
        .expect(200)
        .json();
    assert_eq!(r["published"], true, "{r}");
    assert_eq!(r["pin"], Value::Null);
    assert_eq!(r["served"]["version"], pinned_v + 1);
    let woke = tokio::time::timeout(hang_guard(), poll)
        .await
        .expect("the long-poll woke")
        .unwrap()
        .expect(200);
    assert_eq!(woke.version(), pinned_v + 1);
    assert!(woke.text().contains("yellow-fixed"));
    assert!(
        c.snapshot(&comp)
            .await
            .header("x-snapshot-pinned")
            .is_none()
    );
    c.delete(&format!("{V2}/{comp}/snapshot/pin"))
        .await
        .expect(404);
    assert_eq!(history(&c, &comp).await["data"][0]["change"], "unpin");
    // The pin and the unpin were audited in their own commits with the
    // statuses they answered: nothing needed correcting.
    let metrics = c.get("/metrics").await.expect(200).text();
    assert!(
        !metrics.contains("rgmerge_audit_corrections_total"),
        "{metrics}"
    );

    // A standard group pins the same way.
    let (bv, bhash, _) = served(&c, &blue).await;
    c.put_config(&blue, &service("blue-svc-2", "b"))
        .await
        .expect(200);
    pin(&c, &blue, bv).await.expect(200);
    c.put_config(&blue, &service("blue-svc-3", "b"))
        .await
        .expect(200);
    let (v, h, _) = served(&c, &blue).await;
    assert_eq!((v, h), (bv + 2, bhash));
    // Pinning the served version publishes nothing.
    let r = pin(&c, &blue, bv + 2).await.expect(200).json();
    assert_eq!(r["published"], false, "{r}");
    assert_eq!(r["served"]["version"], bv + 2);
}

#[tokio::test]
async fn wait_without_a_known_version_answers_at_once() {
    let d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    // No If-None-Match and no version: nothing to wait against, so the
    // served snapshot comes back (a poll that waited would end in 304).
    let r = tokio::time::timeout(
        hang_guard(),
        c.get(&format!("{V2}/{blue}/snapshot?wait=300")),
    )
    .await
    .expect("answered")
    .expect(200);
    assert_eq!(r.version(), 1);
    // With the version the caller has, it waits (and times out with 304).
    c.get(&format!("{V2}/{blue}/snapshot?wait=0.2&version=1"))
        .await
        .expect(304);
}

#[tokio::test]
async fn metrics_name_groups_and_forget_deleted_ones() {
    let d = Daemon::start();
    let c = d.client();
    let comp = c.composite("shared \"eu\"").await;
    let blue = c.standard("blue").await;
    c.add(&comp, &[&blue]).await.expect(204);
    let m = c.get("/metrics").await.expect(200).text();
    assert!(
        m.contains(&format!(
            "rgmerge_snapshot_version{{group_id=\"{blue}\",group_name=\"blue\"}} 1"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "rgmerge_composite_conflicts{{group_id=\"{comp}\",group_name=\"shared \\\"eu\\\"\"}} 0"
        )),
        "{m}"
    );
    c.delete(&format!("{V2}/{comp}")).await.expect(204);
    c.delete(&format!("{V2}/{blue}")).await.expect(204);
    let m = c.get("/metrics").await.expect(200).text();
    assert!(
        !m.contains(&comp),
        "a deleted composite's series are gone: {m}"
    );
    assert!(!m.contains(&blue), "a deleted group's series are gone: {m}");
    assert!(m.contains("rgmerge_snapshot_version{"), "{m}");
}

/// Each distinct conflict as (type, entity, value), sorted: group-status
/// lists a conflict once per member, the report once.
fn conflict_keys(list: &Value) -> Vec<Value> {
    let mut keys: Vec<Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["type"], c["entity"], c["value"]]))
        .collect();
    keys.sort_by_key(|k| k.to_string());
    keys.dedup();
    keys
}

/// Every group's (version, hash, bytes), status and pin, by id.
async fn everything(c: &Client) -> BTreeMap<String, Value> {
    let groups = c.get_json(&format!("{V2}?page[size]=1000")).await;
    let mut out = BTreeMap::new();
    for g in groups["data"].as_array().unwrap() {
        let id = g["id"].as_str().unwrap().to_string();
        let (v, h, body) = served(c, &id).await;
        let hist = history(c, &id).await;
        let mut e = json!({
            "name": g["name"],
            "version": v,
            "hash": h,
            "body": String::from_utf8_lossy(&body),
            "pin": hist["pin"],
            "head": hist["data"][0],
        });
        if g["config"]["cluster_type"] == "CLUSTER_TYPE_CONTROL_PLANE_GROUP" {
            let s = c.status(&id).await;
            e["state"] = s["item"]["state"].clone();
            e["conflicts"] = json!(conflict_keys(&s["item"]["conflicts"]));
        }
        out.insert(id, e);
    }
    out
}

#[tokio::test]
async fn disaster_recovery_export_under_conflict_import_serves_exactly_what_was_served() {
    let mut d = Daemon::start();
    let c = d.client();
    // A composite that had a good merge, then went into conflict.
    let (shared, [_, yellow]) = c
        .composite_with(
            "shared",
            [
                ("blue", &service("blue-svc", "b")),
                ("yellow", &service("yellow-svc", "y")),
            ],
        )
        .await;
    let good = served(&c, &shared).await;
    c.put_config(&yellow, &service("blue-svc", "y"))
        .await
        .expect(200);
    assert_eq!(c.status(&shared).await["item"]["state"], "CONFLICT");
    assert_eq!(
        served(&c, &shared).await,
        good,
        "in conflict: the last good one"
    );
    // A composite pinned to an older version.
    let edge = c.composite("edge").await;
    let green = c.standard("green").await;
    c.add(&edge, &[&green]).await.expect(204);
    c.put_config(&green, &service("green-v1", "g"))
        .await
        .expect(200);
    let (gv1, _, _) = served(&c, &edge).await;
    c.put_config(&green, &service("green-v2", "g"))
        .await
        .expect(200);
    pin(&c, &edge, gv1).await.expect(200);
    c.put_config(&green, &service("green-v3", "g"))
        .await
        .expect(200);
    // The default group, renamed, holds application registration and is a
    // member of a composite: only the manifest can say it is the default.
    let def = default_id(&c).await;
    c.patch_json(&format!("{V2}/{def}"), &json!({"name": "platform-default"}))
        .await
        .expect(200);
    c.put_config(
        &def,
        "_format_version: \"3.0\"\nplugins:\n- name: konnect-application-auth\n  config:\n    scope: 9b1f2cf4-2a5b-4e3c-9d0e-5f6a7b8c9d0e\n",
    )
    .await
    .expect(200);
    let apps = c.composite("apps").await;
    let teal_upper = c.standard("Teal").await;
    let teal_lower = c.standard("teal").await;
    c.add(&apps, &[&def, &teal_upper]).await.expect(204);
    c.put_config_json(
        &teal_upper,
        r#"{"_format_version":"3.0","services":[{"name":"teal-a","host":"t"}]}"#,
    )
    .await
    .expect(200);
    c.put_config(&teal_lower, &service("teal-b", "t"))
        .await
        .expect(200);
    assert_eq!(c.status(&apps).await["item"]["state"], "OK");

    let before = everything(&c).await;
    assert!(d.stop().success());
    let out_dir = d.dir.path().join("export");
    rgmerge_exit(
        &[
            "export",
            "--data-dir",
            d.data.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ],
        0,
    );

    // File names are unique ignoring case, and `Teal`/`teal` both kept.
    let names: Vec<String> = std::fs::read_dir(out_dir.join("members"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let stems: HashSet<String> = names
        .iter()
        .map(|n| n.rsplit_once('.').unwrap().0.to_lowercase())
        .collect();
    assert_eq!(stems.len(), names.len(), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("Teal-")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("teal-")), "{names:?}");
    assert!(names.contains(&"blue.yaml".to_string()), "{names:?}");
    // The default group is marked, not guessed.
    let bundle = std::fs::read_to_string(out_dir.join("bundle.yaml")).unwrap();
    assert!(
        bundle.contains("default_member: members/platform-default.yaml"),
        "{bundle}"
    );
    // validate --bundle gives the daemon's verdict on every composite.
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
    let report: Value = serde_json::from_slice(&v.stdout).unwrap();
    for r in report["composites"].as_array().unwrap() {
        let (_, daemon) = before
            .iter()
            .find(|(_, g)| g["name"] == r["name"])
            .expect("a composite of the daemon");
        assert_eq!(r["state"], daemon["state"], "{}: {r}", r["name"]);
        assert_eq!(
            json!(conflict_keys(&r["conflicts"])),
            daemon["conflicts"],
            "{}",
            r["name"]
        );
        assert_eq!(r["errors"], json!([]), "{}: {r}", r["name"]);
    }

    // Import into a fresh data directory and serve it.
    let mut d2 = Daemon::start();
    d2.kill9();
    std::fs::remove_dir_all(&d2.data).ok();
    rgmerge_exit(
        &[
            "import",
            "--data-dir",
            d2.data.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ],
        0,
    );
    d2.restart();
    let c2 = d2.client();
    let after = everything(&c2).await;
    assert_eq!(before.len(), after.len());
    for (id, g) in &before {
        let a = &after[id];
        for key in ["name", "version", "hash", "body", "state", "conflicts"] {
            assert_eq!(g.get(key), a.get(key), "group {} {key}", g["name"]);
        }
        assert_eq!(g["pin"]["version"], a["pin"]["version"], "{}", g["name"]);
        assert_eq!(g["head"]["version"], a["head"]["version"], "{}", g["name"]);
        assert_eq!(g["head"]["change"], a["head"]["change"], "{}", g["name"]);
    }
    assert_eq!(after[&shared]["version"], json!(good.0));
    // And life goes on from there: resolving the conflict publishes the next version.
    c2.put_config(&yellow, &service("yellow-svc-2", "y"))
        .await
        .expect(200);
    assert_eq!(served(&c2, &shared).await.0, good.0 + 1);
    let r = c2
        .delete(&format!("{V2}/{edge}/snapshot/pin"))
        .await
        .expect(200)
        .json();
    assert!(
        served(&c2, &edge)
            .await
            .2
            .windows(8)
            .any(|w| w == b"green-v3"),
        "{r}"
    );
}

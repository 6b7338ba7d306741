//! Honest states (issue 27): a composite with a member error and a conflict
//! at once says both — INVALID and CONFLICT — on the page, in `/details`
//! and in the metrics; Konnect's `group-status`, which has no INVALID, says
//! CONFLICT with one entry per member error naming the member and its error.
//!
//! The daemon refuses an invalid config, so the member becomes invalid the
//! way it does in practice: it was valid for the data planes the daemon
//! was started for (Enterprise: consumer groups), and the daemon is
//! restarted for OSS data planes.

use serde_json::{Value, json};

use crate::common::{Client, Daemon, V2, openapi, service};

async fn details(c: &Client, id: &str) -> Value {
    c.get(&format!("{V2}/{id}/details"))
        .await
        .expect(200)
        .json()
}

/// The value of the metrics line that starts with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().to_string())
}

#[tokio::test]
async fn a_member_error_and_a_conflict_read_as_both() {
    let mut d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    let green = c.standard("green").await;
    let comp = c.composite("shared").await;
    c.put_config(
        &blue,
        "_format_version: \"3.0\"\nconsumer_groups:\n- name: gold\nservices:\n- name: blue-svc\n  host: blue.internal\n",
    )
    .await
    .expect(200);
    c.put_config(&yellow, &service("orders", "yellow.internal"))
        .await
        .expect(200);
    c.put_config(&green, &service("orders", "green.internal"))
        .await
        .expect(200);
    c.add(&comp, &[&blue, &yellow, &green]).await.expect(204);

    // A conflict alone: CONFLICT everywhere, no member error.
    let det = details(&c, &comp).await;
    assert_eq!(det["state"], "CONFLICT");
    assert_eq!(det["states"], json!(["CONFLICT"]));
    // The service and its route, each a side in yellow and in green.
    let conflicts = det["report"]["conflicts"].as_array().map_or(0, Vec::len);
    assert_eq!(conflicts, 2, "{det}");
    let st = c.status(&comp).await;
    assert_eq!(st["item"]["state"], "CONFLICT");
    let entries = st["item"]["conflicts"]
        .as_array()
        .expect("conflicts")
        .clone();
    assert_eq!(entries.len(), 4, "{st}");

    // Restarted for OSS data planes: blue's consumer group is now an error.
    d.set_args(&["--kong-edition", "oss"]);
    d.restart();
    let c = d.client();

    let det = details(&c, &comp).await;
    assert_eq!(det["state"], "INVALID", "the single value, as before");
    assert_eq!(det["states"], json!(["INVALID", "CONFLICT"]));
    let report = &det["report"];
    assert_eq!(report["states"], json!(["INVALID", "CONFLICT"]));
    let errors = report["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "{report}");
    assert!(errors.iter().all(|e| e["member"] == "blue"), "{report}");
    assert_eq!(
        report["conflicts"].as_array().map(Vec::len),
        Some(conflicts)
    );

    // Konnect's group-status: CONFLICT, the conflict's entries as before,
    // and one entry per member error naming the member and its error.
    let st = c.status(&comp).await;
    let item = &st["item"];
    assert_eq!(item["state"], "CONFLICT");
    let all = item["conflicts"].as_array().expect("conflicts");
    let (errs, sides): (Vec<&Value>, Vec<&Value>) =
        all.iter().partition(|e| e.get("message").is_some());
    assert_eq!(sides, entries.iter().collect::<Vec<_>>(), "unchanged");
    assert_eq!(errs.len(), errors.len(), "{item}");
    for (e, error) in errs.iter().zip(errors) {
        assert_eq!(e["cluster_id"], json!(blue));
        let desc = e["description"].as_str().expect("description");
        assert!(desc.contains("invalid member 'blue'"), "{desc}");
        assert!(desc.contains(&blue), "{desc}");
        let msg = error["message"].as_str().expect("message");
        assert!(desc.contains(msg), "{desc}");
        assert!(msg.contains("Enterprise"), "{msg}");
        assert_eq!(e["type"], error["type"]);
        assert_eq!(e["resource"]["type"], "consumer_group", "{e}");
        let rid = e["resource"]["id"].as_str().expect("resource id");
        assert!(uuid::Uuid::parse_str(rid).is_ok(), "{rid}");
    }
    // Still Konnect's GroupStatus, by its published schema.
    if let Some(spec) = openapi::load(openapi::CONTROL_PLANES, "group-status") {
        let schema = spec.schema("GroupStatus").expect("GroupStatus");
        let problems = openapi::validate(&schema, item);
        assert!(problems.is_empty(), "{problems:#?}");
    }
    // The same ids from a second look (stable, not random).
    assert_eq!(
        c.status(&comp).await["item"]["conflicts"],
        item["conflicts"]
    );

    // The metrics: one series per state, INVALID and CONFLICT both 1.
    let text = c.get("/metrics").await.expect(200).text();
    let labels = format!("{{group_id=\"{comp}\",group_name=\"shared\"");
    let state = |s: &str| {
        metric(
            &text,
            &format!("rgmerge_composite_state{labels},state=\"{s}\"}}"),
        )
    };
    assert_eq!(state("INVALID").as_deref(), Some("1"), "{text}");
    assert_eq!(state("CONFLICT").as_deref(), Some("1"), "{text}");
    assert_eq!(state("OK").as_deref(), Some("0"), "{text}");
    assert_eq!(
        metric(&text, &format!("rgmerge_composite_member_errors{labels}}}")),
        Some(errors.len().to_string())
    );
    assert_eq!(
        metric(&text, &format!("rgmerge_composite_conflicts{labels}}}")),
        Some(conflicts.to_string())
    );

    // The page: both badges, blue's errors, the conflict.
    let page = c
        .get(&format!("/ui/groups/{comp}"))
        .await
        .expect(200)
        .text();
    let head = page
        .split("<span id=\"state\">")
        .nth(1)
        .and_then(|s| s.split("</h1>").next())
        .expect("the state badges");
    assert!(
        head.contains("✖ INVALID") && head.contains("✖ CONFLICT"),
        "{head}"
    );
    assert!(
        page.contains("✖ INVALID and CONFLICT:"),
        "the last-good alert"
    );
    assert!(page.contains(&format!("Member errors ({})", errors.len())));
    assert!(
        page.contains("<strong>blue</strong>"),
        "the member is named"
    );
    let list = c.get("/ui/groups").await.expect(200).text();
    assert!(
        list.contains("✖ INVALID</span> <span class=\"badge badge-conflict\">✖ CONFLICT"),
        "the groups table shows both"
    );

    // Fixing the conflict leaves INVALID alone; fixing blue leaves OK.
    c.put_config(&green, &service("billing", "green.internal"))
        .await
        .expect(200);
    let det = details(&c, &comp).await;
    assert_eq!(det["states"], json!(["INVALID"]));
    let st = c.status(&comp).await;
    assert_eq!(st["item"]["state"], "CONFLICT");
    assert_eq!(
        st["item"]["conflicts"].as_array().map(Vec::len),
        Some(errors.len())
    );
    c.put_config(&blue, &service("blue-svc", "blue.internal"))
        .await
        .expect(200);
    let det = details(&c, &comp).await;
    assert_eq!(det["states"], json!(["OK"]));
    let st = c.status(&comp).await;
    assert_eq!(st["item"]["state"], "OK");
    assert_eq!(st["item"]["conflicts"], json!([]));
}

/// Two entities of one member with the same unresolved vault reference are
/// two conflicts, and group-status lists both (it once folded them into
/// one, as if they were one entity: found by the soak test).
#[tokio::test]
async fn each_entity_with_a_conflict_has_its_own_entry() {
    let d = crate::common::Daemon::start();
    let c = d.client();
    let team = c.standard("team-v").await;
    let comp = c.composite("shared-v").await;
    c.add(&comp, &[&team]).await.expect(204);
    let cfg = "_format_version: \"3.0\"\nservices:\n- name: a\n  host: \"{vault://p1/host}\"\n- name: b\n  host: \"{vault://p1/host}\"\n";
    c.put_config(&team, cfg).await.expect(200);
    let status = c.status(&comp).await;
    let entries = status["item"]["conflicts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let paths: Vec<&str> = entries.iter().filter_map(|e| e["path"].as_str()).collect();
    assert_eq!(entries.len(), 2, "{status}");
    assert_ne!(
        entries[0]["resource"]["id"], entries[1]["resource"]["id"],
        "{paths:?}"
    );
}

/// One entity of a member in two conflicts (its name with one team, its id
/// with another) is one entry of that member: Konnect lists resources in
/// conflict, not findings. The report keeps both conflicts (found by the
/// soak test, whose expectation counted one entry per conflict).
#[tokio::test]
async fn an_entity_in_two_conflicts_is_one_entry() {
    let d = crate::common::Daemon::start();
    let c = d.client();
    let id = "9b1a7c3e-0000-4000-8000-000000000001";
    let (a, b, z) = (
        c.standard("team-a").await,
        c.standard("team-b").await,
        c.standard("team-z").await,
    );
    let comp = c.composite("shared-e").await;
    let svc = |name: &str, id: Option<&str>| {
        let id = id.map_or(String::new(), |id| format!("  id: {id}\n"));
        format!(
            "_format_version: \"3.0\"\nservices:\n- name: {name}\n{id}  host: {name}.internal\n"
        )
    };
    c.put_config(&a, &svc("orders-1", Some(id)))
        .await
        .expect(200);
    c.put_config(&b, &svc("orders-1", None)).await.expect(200);
    c.put_config(&z, &svc("users-2", Some(id)))
        .await
        .expect(200);
    c.add(&comp, &[&a, &b, &z]).await.expect(204);
    let report = details(&c, &comp).await["report"].clone();
    let conflicts = report["conflicts"].as_array().cloned().unwrap_or_default();
    assert_eq!(conflicts.len(), 2, "the name and the id: {report}");
    let status = c.status(&comp).await;
    let entries = status["item"]["conflicts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut per_member: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["cluster_id"].as_str())
        .collect();
    per_member.sort();
    let mut want = vec![a.as_str(), b.as_str(), z.as_str()];
    want.sort();
    assert_eq!(per_member, want, "{status}");
}

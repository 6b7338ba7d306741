//! Bad input against the running daemon (the real binary on a Unix socket):
//! truncated and non-UTF-8 bodies, bodies over the limit, 10,000-deep
//! nesting, 1 MB strings, a million tiny entities, duplicate keys, wrong
//! types in every field kind, path traversal in ids, unknown ids, and raw
//! protocol garbage. Each is answered with a clear 4xx JSON error (or, where
//! the input is legal, accepted), the daemon stays up, and nothing accepted
//! before is changed.

use std::time::{Duration, Instant};

use crate::common::expect::assert_file;
use crate::common::{Client, Daemon, Resp, V2, guard, hang_guard, service};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MB: usize = 1024 * 1024;
const LIMIT: usize = 2 * MB;

/// One bad request. The answer it must get is its line in
/// `fixtures/abuse/expected.txt`: `WHAT => STATUS FORM FIRST-ERROR`, where
/// FORM is `problem` (Konnect's `application/problem+json` with its status
/// and a detail) or `message` (the DP certificates' legacy
/// `application/json` `{"message"}`), and FIRST-ERROR the `type` of the
/// first member error of a refused config (`-`: none).
/// `UPDATE_EXPECT=1 cargo test --test daemon abuse::` rewrites the file.
struct Case {
    what: String,
    method: &'static str,
    path: String,
    ct: Option<&'static str>,
    body: Vec<u8>,
}

fn case(what: impl Into<String>, method: &'static str, path: String) -> Case {
    Case {
        what: what.into(),
        method,
        path,
        ct: None,
        body: Vec::new(),
    }
}

fn expected_file() -> std::path::PathBuf {
    crate::common::fixtures().join("abuse/expected.txt")
}

impl Case {
    fn json(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.ct = Some("application/json");
        self.body = body.into();
        self
    }
    fn yaml(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.ct = Some("application/yaml");
        self.body = body.into();
        self
    }
}

/// What must not change: blue's config, every snapshot, the group list.
async fn observe(c: &Client, ids: &[&str]) -> Vec<String> {
    let mut out = vec![
        c.get_json(V2).await["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|g| {
                format!(
                    "{} {} {} {}",
                    g["id"], g["name"], g["labels"], g["updated_at"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    ];
    for id in ids {
        let s = c.snapshot(id).await;
        out.push(format!(
            "{id} v{:?} {:?} {}",
            s.header("x-snapshot-version"),
            s.header("etag"),
            s.body.len()
        ));
    }
    out
}

/// Sends one case; asserts what holds of every answer (a JSON error of
/// its form with a reason, a parse error's line, a bounded size) and
/// returns its line for the expected file.
async fn check(c: &Client, k: &Case) -> String {
    let headers: Vec<(&str, &str)> = k.ct.iter().map(|ct| ("content-type", *ct)).collect();
    // No bound on how long an answer takes (a debug build on a busy 2-core
    // machine took 14.7 s for the 1 MB top-level key): a hang guard only.
    let r = guard(
        &k.what,
        c.send(k.method, &k.path, &headers, Some(k.body.clone())),
    )
    .await;
    let body = r.text();
    let short: String = body.chars().take(400).collect();
    let j = r.json();
    let form = match r.header("content-type").as_deref() {
        // Konnect's problem details (RFC 9457).
        Some("application/problem+json") => {
            assert_eq!(j["status"], r.status, "{}: {short}", k.what);
            assert!(
                j["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{}: {short}",
                k.what
            );
            "problem"
        }
        Some("application/json") => {
            assert!(
                j["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{}: {short}",
                k.what
            );
            "message"
        }
        other => panic!("{}: content type {other:?}: {short}", k.what),
    };
    let first = &j["errors"][0];
    let error = first["type"].as_str().unwrap_or("-");
    if error == "parse_error" {
        assert!(first["line"].is_u64(), "{}: no line: {short}", k.what);
    }
    // An answer stays within a small multiple of the question (an unknown 1 MB
    // key is quoted as entity, path and in the message: 3x).
    assert!(
        body.len() <= 4 * k.body.len() + 64 * 1024,
        "{}: {} byte answer to {} bytes",
        k.what,
        body.len(),
        k.body.len()
    );
    format!("{} => {} {form} {error}", k.what, r.status)
}

fn deep(open: &str, close: &str, n: usize) -> String {
    format!("{}{}", open.repeat(n), close.repeat(n))
}

/// A config with one service whose `field` is `value` (raw JSON).
fn svc_with(field: &str, value: &str) -> Vec<u8> {
    format!(
        r#"{{"_format_version":"3.0","services":[{{"name":"s","host":"h","{field}":{value}}}]}}"#
    )
    .into_bytes()
}

fn route_with(field: &str, value: &str) -> Vec<u8> {
    format!(
        r#"{{"_format_version":"3.0","routes":[{{"name":"r","hosts":["a"],"{field}":{value}}}]}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn bad_input_is_refused_with_json_and_changes_nothing() {
    // green's node must stay connected however slowly a loaded machine
    // gets through the cases: a window no run reaches.
    let d = Daemon::builder()
        .args(&[
            "--max-body-bytes",
            &LIMIT.to_string(),
            "--max-wait-secs",
            "1",
            "--active-window-secs",
            "86400",
        ])
        .start();
    let c = d.client();
    let blue = c.standard("blue").await;
    let green = c.standard("green").await;
    let comp = c.composite("comp").await;
    let good = service("keep", "k");
    c.put_config(&blue, &good).await.expect(200);
    c.add(&comp, &[&blue]).await.expect(204);
    c.heartbeat(&green, "dp-1", "h").await.expect(200);
    let before = observe(&c, &[&blue, &green, &comp]).await;

    let cfg = |b: &str| format!("{V2}/{b}/config");
    let blue_cfg = cfg(&blue);
    let one_mb = "x".repeat(MB);
    let nil = "00000000-0000-4000-8000-000000000000";
    let valid_json = br#"{"_format_version":"3.0","services":[{"name":"a","host":"h","routes":[{"name":"r","paths":["/"]}]}]}"#;
    let certs = format!("{V2}/{comp}/dp-client-certificates");
    let cases = vec![
        // -- truncated, not UTF-8, empty
        case("truncated JSON config", "PUT", blue_cfg.clone())
            .json(&valid_json[..valid_json.len() / 2]),
        case("truncated YAML config", "PUT", blue_cfg.clone())
            .yaml("_format_version: \"3.0\"\nservices:\n- name: \"kee"),
        case("truncated YAML flow", "PUT", blue_cfg.clone())
            .yaml("_format_version: \"3.0\"\nservices: [{name: a, host: h"),
        case("non-UTF-8 JSON config", "PUT", blue_cfg.clone())
            .json(b"{\"_format_version\":\"3.0\",\"services\":[{\"name\":\"\xc3\x28\",\"host\":\"h\"}]}".to_vec()),
        case("non-UTF-8 YAML config", "PUT", blue_cfg.clone())
            .yaml(b"_format_version: \"3.0\"\nservices:\n- name: \xff\xfe\n  host: h\n".to_vec()),
        case("NUL in YAML config", "PUT", blue_cfg.clone())
            .yaml(b"_format_version: \"3.0\"\n\0services: []\n".to_vec()),
        case("empty config", "PUT", blue_cfg.clone()).yaml(""),
        case("truncated request body", "POST", V2.into()).json("{\"name\":\"x"),
        case("non-UTF-8 request body", "POST", V2.into())
            .json(b"{\"name\":\"\xff\"}".to_vec()),
        case("empty request body", "POST", V2.into()).json(""),
        case("non-UTF-8 heartbeat", "POST", format!("{V2}/{green}/nodes"))
        .json(b"{\"hostname\":\"\xc0\xaf\"}".to_vec()),
        // -- 10,000-deep nesting
        case("10k-deep JSON config", "PUT", blue_cfg.clone())
            .json(svc_with("x", &deep("[", "]", 10_000))),
        case("10k-deep JSON objects", "PUT", blue_cfg.clone())
            .json(svc_with("x", &format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)))),
        case("10k-deep YAML flow sequences", "PUT", blue_cfg.clone())
            .yaml(format!("_format_version: \"3.0\"\nx: {}", deep("[", "]", 10_000))),
        case("10k-deep YAML flow mappings", "PUT", blue_cfg.clone())
            .yaml(format!("_format_version: \"3.0\"\nx: {}1{}", "{a: ".repeat(10_000), "}".repeat(10_000))),
        case("10k-deep YAML block sequences", "PUT", blue_cfg.clone())
            .yaml(format!("{}a\n", "- ".repeat(10_000))),
        case("10k-deep request body", "POST", V2.into()).json(format!(
            "{{\"name\":\"x\",\"labels\":{}\"v\"{}}}",
            "{\"a\":".repeat(10_000),
            "}".repeat(10_000)
        )),
        case("YAML alias bomb", "PUT", blue_cfg.clone())
            .yaml(alias_bomb()),
        // -- over the limit, 1 MB strings
        case("1 MB group name", "POST", V2.into())
            .json(json!({"name": one_mb}).to_string()),
        case("1 MB description", "POST", V2.into())
            .json(json!({"name": "n", "description": one_mb}).to_string()),
        case("1 MB label value", "POST", V2.into())
            .json(json!({"name": "n", "labels": {"team": one_mb}}).to_string()),
        case("1 MB label key", "PATCH", format!("{V2}/{green}"))
            .json(json!({"labels": {one_mb.clone(): "v"}}).to_string()),
        case("1 MB node hostname", "POST", format!("{V2}/{green}/nodes"))
            .json(json!({"hostname": one_mb}).to_string()),
        case("1 MB node id", "POST", format!("{V2}/{green}/nodes"))
            .json(json!({"id": one_mb, "hostname": "h"}).to_string()),
        case("1 MB top-level key", "PUT", blue_cfg.clone())
            .json(format!("{{\"_format_version\":\"3.0\",\"{one_mb}\":[]}}")),
        case("1 MB member id", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(json!({"members": [{"id": one_mb}]}).to_string()),
        // -- duplicate keys
        case("duplicate JSON key", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.0","_format_version":"3.0"}"#),
        case("duplicate key in an entity", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.0","services":[{"name":"a","host":"h","host":"i"}]}"#),
        case("duplicate YAML key", "PUT", blue_cfg.clone())
            .yaml("_format_version: \"3.0\"\nservices:\n- name: a\n  host: h\n  name: b\n"),
        case("duplicate key in a request", "POST", V2.into())
            .json(r#"{"name":"a","name":"b"}"#),
        case("duplicate key in a heartbeat", "POST", format!("{V2}/{green}/nodes"))
            .json(r#"{"hostname":"a","hostname":"b"}"#),
        case("duplicate key in members", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(format!(r#"{{"members":[{{"id":"{green}","id":"{green}"}}]}}"#)),
        // -- wrong types, every kind of config field
        case("string field as number", "PUT", blue_cfg.clone())
            .json(svc_with("path", "5")),
        case("integer field as string", "PUT", blue_cfg.clone())
            .json(svc_with("port", "\"80\"")),
        case("integer field as float", "PUT", blue_cfg.clone())
            .json(svc_with("retries", "1.5")),
        case("number field as string", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.0","graphql_ratelimiting_cost_decorations":[{"type_path":"a","add_constant":"x"}]}"#),
        case("boolean field as string", "PUT", blue_cfg.clone())
            .json(svc_with("enabled", "\"yes\"")),
        case("object field as list", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.0","plugins":[{"name":"cors","config":[]}]}"#),
        case("list field as object", "PUT", blue_cfg.clone())
            .json(route_with("sources", "{}")),
        case("string-list field with a number", "PUT", blue_cfg.clone())
            .json(route_with("paths", "[1]")),
        case("collection as object", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.0","services":{}}"#),
        case("entity as number", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.0","services":[5]}"#),
        case("nested collection as string", "PUT", blue_cfg.clone())
            .json(svc_with("routes", "\"r\"")),
        case("id not a UUID", "PUT", blue_cfg.clone())
            .json(svc_with("id", "\"../../etc/passwd\"")),
        case("name with a control character", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.0","services":[{"name":"a\u0007b","host":"h"}]}"#),
        case("_format_version 3.1", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":"3.1"}"#),
        case("_format_version as a list", "PUT", blue_cfg.clone())
            .json(r#"{"_format_version":["3.0"]}"#),
        case("root is a list", "PUT", blue_cfg.clone()).json("[]"),
        case("root is a scalar", "PUT", blue_cfg.clone())
            .yaml("just a string"),
        case("number out of range", "PUT", blue_cfg.clone())
            .json(svc_with("port", "1e400")),
        case("config of a composite", "PUT", cfg(&comp)).json(valid_json.to_vec()),
        case("config as XML", "PUT", blue_cfg.clone()).json("<x/>").ct("application/xml"),
        // -- wrong types in request bodies
        case("name as number", "POST", V2.into()).json(r#"{"name":7}"#),
        case("description as list", "POST", V2.into()).json(r#"{"name":"n","description":[]}"#),
        case("cluster_type as object", "POST", V2.into()).json(r#"{"name":"n","cluster_type":{}}"#),
        case("unknown cluster_type", "POST", V2.into()).json(r#"{"name":"n","cluster_type":"CLUSTER_TYPE_X"}"#),
        case("labels as string", "POST", V2.into()).json(r#"{"name":"n","labels":"a:b"}"#),
        case("label value as number", "POST", V2.into()).json(r#"{"name":"n","labels":{"a":1}}"#),
        case("reserved label key", "POST", V2.into()).json(r#"{"name":"n","labels":{"kong-x":"1"}}"#),
        case("unknown field", "POST", V2.into()).json(r#"{"name":"n","owner":"me"}"#),
        case("missing name", "POST", V2.into()).json("{}"),
        case("body is null", "POST", V2.into()).json("null"),
        case("body is a list", "POST", V2.into()).json("[]"),
        case("name taken", "POST", V2.into()).json(r#"{"name":"blue"}"#),
        // The spec's update lists no 409.
        case("rename to a taken name", "PATCH", format!("{V2}/{green}")).json(r#"{"name":"blue"}"#),
        case("rename to empty", "PATCH", format!("{V2}/{green}")).json(r#"{"name":" "}"#),
        case("labels as list", "PATCH", format!("{V2}/{green}")).json(r#"{"labels":[]}"#),
        case("is_default as string", "PATCH", format!("{V2}/{green}")).json(r#"{"is_default":"yes"}"#),
        case("is_default moved", "PATCH", format!("{V2}/{green}")).json(r#"{"is_default":true}"#),
        case("cluster_type changed", "PATCH", format!("{V2}/{green}"))
            .json(r#"{"cluster_type":"CLUSTER_TYPE_CONTROL_PLANE_GROUP"}"#),
        case("members missing", "POST", format!("{V2}/{comp}/group-memberships/add")).json("{}"),
        case("members as object", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(r#"{"members":{}}"#),
        case("member id as number", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(r#"{"members":[{"id":5}]}"#),
        case("no members", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(r#"{"members":[]}"#),
        case("51 members", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(json!({"members": (0..51).map(|i| json!({"id": format!("00000000-0000-4000-8000-{i:012}")})).collect::<Vec<_>>()}).to_string()),
        case("hostname as number", "POST", format!("{V2}/{green}/nodes")).json(r#"{"hostname":5}"#),
        case("ip as list", "POST", format!("{V2}/{green}/nodes")).json(r#"{"hostname":"h","ip":[]}"#),
        case("version as object", "POST", format!("{V2}/{green}/nodes")).json(r#"{"hostname":"h","version":{}}"#),
        case("config_hash as bool", "POST", format!("{V2}/{green}/nodes")).json(r#"{"hostname":"h","config_hash":true}"#),
        case("node id as number", "POST", format!("{V2}/{green}/nodes")).json(r#"{"id":1,"hostname":"h"}"#),
        case("node id with a control character", "POST", format!("{V2}/{green}/nodes"))
            .json(r#"{"id":"a\u0000b","hostname":"h"}"#),
        case("heartbeat to a member", "POST", format!("{V2}/{blue}/nodes")).json(r#"{"hostname":"h"}"#),
        case("heartbeat as form", "POST", format!("{V2}/{green}/nodes"))
            .json("hostname=h")
            .ct("multipart/form-data"),
        // -- path traversal in ids, unknown ids
        case("traversal as group id", "GET", format!("{V2}/..%2F..%2Fetc%2Fpasswd")),
        // The client resolves `%2e%2e` as `..` (WHATWG URL rules): the daemon sees
        // /v2/config, which is no route. The literal form is sent raw below.
        case("dot-dot as group id", "GET", format!("{V2}/%2e%2e/config")),
        case("non-UTF-8 group id", "GET", format!("{V2}/%FF%FE/snapshot")),
        case("traversal as node id", "DELETE", format!("{V2}/{green}/nodes/..%2F..%2Fetc%2Fpasswd")),
        case("NUL as node id", "DELETE", format!("{V2}/{green}/nodes/%00")),
        case("non-UTF-8 node id", "DELETE", format!("{V2}/{green}/nodes/%C0%AF")),
        case("traversal as member id", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(r#"{"members":[{"id":"../../etc/passwd"}]}"#),
        case("unknown group", "GET", format!("{V2}/{nil}")),
        case("patch unknown group", "PATCH", format!("{V2}/{nil}")).json(r#"{"name":"zz"}"#),
        case("delete unknown group", "DELETE", format!("{V2}/{nil}")),
        case("config of unknown group", "PUT", cfg(nil)).json(valid_json.to_vec()),
        case("get config of unknown group", "GET", cfg(nil)),
        case("snapshot of unknown group", "GET", format!("{V2}/{nil}/snapshot")),
        case("status of unknown group", "GET", format!("{V2}/{nil}/group-status")),
        case("status of a standard group", "GET", format!("{V2}/{green}/group-status")),
        case("nodes of unknown group", "GET", format!("{V2}/{nil}/nodes")),
        case("heartbeat to unknown group", "POST", format!("{V2}/{nil}/nodes")).json(r#"{"hostname":"h"}"#),
        case("add unknown member", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(json!({"members": [{"id": nil}]}).to_string()),
        case("remove a non-member", "POST", format!("{V2}/{comp}/group-memberships/remove"))
            .json(json!({"members": [{"id": green}]}).to_string()),
        case("add to unknown composite", "POST", format!("{V2}/{nil}/group-memberships/add"))
            .json(json!({"members": [{"id": green}]}).to_string()),
        case("add to a standard group", "POST", format!("{V2}/{green}/group-memberships/add"))
            .json(json!({"members": [{"id": blue}]}).to_string()),
        case("add a composite", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(json!({"members": [{"id": comp}]}).to_string()),
        case("add a group with nodes", "POST", format!("{V2}/{comp}/group-memberships/add"))
            .json(json!({"members": [{"id": green}]}).to_string()),
        case("delete a member", "DELETE", format!("{V2}/{blue}")),
        case("delete unknown node", "DELETE", format!("{V2}/{green}/nodes/nope")),
        case("unknown endpoint", "GET", format!("{V2}/{blue}/secrets")),
        case("wrong method", "PUT", "/healthz".into()),
        // -- query strings
        case("wait negative", "GET", format!("{V2}/{blue}/snapshot?wait=-1")),
        case("wait NaN", "GET", format!("{V2}/{blue}/snapshot?wait=NaN")),
        case("wait infinite", "GET", format!("{V2}/{blue}/snapshot?wait=inf")),
        case("version not a number", "GET", format!("{V2}/{blue}/snapshot?version=-1")),
        case("page size 0", "GET", format!("{V2}?page[size]=0")),
        case("page number huge", "GET", format!("{V2}?page[number]=99999999999999999999999")),
        case("dry_run maybe", "PUT", format!("{}?dry_run=maybe", blue_cfg)).json(valid_json.to_vec()),
        case("sort unknown", "GET", format!("{V2}/{green}/nodes?sort=ip")),
        case("unknown list filter", "GET", format!("{V2}?filter[colour][eq]=red")),
        case("unknown list parameter", "GET", format!("{V2}?cluster_type=CLUSTER_TYPE_CONTROL_PLANE")),
        case("name filter oeq", "GET", format!("{V2}?filter[name][oeq]=a,b")),
        case("sort by name", "GET", format!("{V2}?sort=name")),
        case("cursor not ours", "GET", format!("{V2}/{comp}/group-memberships?page[after]=zz")),
        // -- DP certificates answer in the spec's legacy form: `{"message"}` as
        // application/json. Nothing is pinned.
        case("certificate: not PEM", "POST", certs.clone())
            .json(json!({"cert": "hello"}).to_string()),
        case("certificate: PEM, not X.509", "POST", certs.clone())
            .json(json!({"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}) .to_string()),
        case("certificate: a private key", "POST", certs.clone())
            .json(json!({"cert": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}) .to_string()),
        case("certificate: 1 MB cert", "POST", certs.clone())
            .json(json!({"cert": one_mb}).to_string()),
        case("certificate: cert as number", "POST", certs.clone())
            .json(r#"{"cert":5}"#),
        case("certificate: no cert", "POST", certs.clone())
            .json(r#"{"title":"t"}"#),
        case("certificate: unknown group", "GET", format!("{V2}/{nil}/dp-client-certificates")),
        case("certificate: group id not a UUID", "GET", format!("{V2}/nope/dp-client-certificates")),
        case("certificate: unknown certificate", "GET", format!("{certs}/{nil}")),
        case("certificate: certificate id not a UUID", "DELETE", format!("{certs}/..%2F..%2Fetc")),
    ];
    let mut answers = Vec::new();
    for (i, k) in cases.iter().enumerate() {
        answers.push(check(&c, k).await);
        if i % 16 == 0 {
            c.get("/healthz").await.expect(200);
        }
    }
    assert_file(&expected_file(), &(answers.join("\n") + "\n"));

    assert_eq!(c.get_json(&certs).await["page"]["total_count"], 0);

    // Over the limit: the daemon reads and drops the body (up to a bound),
    // then answers 413; sent raw, as a client that keeps writing would.
    for (what, method, path) in [
        ("config over --max-body-bytes", "PUT", blue_cfg.as_str()),
        ("request body over --max-body-bytes", "POST", V2),
    ] {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            LIMIT + 1
        )
        .into_bytes();
        req.resize(req.len() + LIMIT + 1, b' ');
        let (status, body) = raw(&d, &req, true).await;
        assert_eq!(status, Some(413), "{what}: {body}");
        assert!(body.contains("\"status\":413"), "{what}: {body}");
    }

    // ?wait= past u64::MAX seconds is clamped to --max-wait-secs (it used to panic).
    // With --max-wait-secs 1 the 304 comes after a second; the guard only
    // tells a clamped wait from one of 1e20 seconds.
    let etag = c.snapshot(&blue).await.header("etag").expect("etag");
    let r = tokio::time::timeout(
        hang_guard(),
        c.send(
            "GET",
            &format!("{V2}/{blue}/snapshot?wait=1e20"),
            &[("if-none-match", &etag)],
            None,
        ),
    )
    .await
    .expect("?wait=1e20 was clamped to --max-wait-secs");
    assert_eq!(r.status, 304);

    // Nothing accepted before has changed.
    c.get("/healthz").await.expect(200);
    assert_eq!(
        c.get(&blue_cfg).await.expect(200).text(),
        good,
        "blue's config"
    );
    assert_eq!(observe(&c, &[&blue, &green, &comp]).await, before);
    let status = c.status(&comp).await;
    assert_eq!(status["item"]["state"], "OK");
    assert!(
        d.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        d.log()
    );
}

impl Case {
    fn ct(mut self, ct: &'static str) -> Case {
        self.ct = Some(ct);
        self
    }
}

/// Nine levels of ten aliases each: 10^9 nodes if expanded.
fn alias_bomb() -> String {
    let mut s = String::from("_format_version: \"3.0\"\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = format!("*a{}", i - 1);
        s.push_str(&format!("a{i}: &a{i} [{}]\n", [p.as_str(); 10].join(", ")));
    }
    s
}

/// Legal but odd values are data, not paths: they are stored verbatim and
/// address exactly what they name.
#[tokio::test]
async fn traversal_strings_are_opaque_names() {
    let d = Daemon::start();
    let c = d.client();
    let r = c
        .post_json(V2, &json!({"name": "../../etc/passwd"}))
        .await
        .expect(201)
        .json();
    let id = r["id"].as_str().expect("id").to_string();
    assert_eq!(r["name"], "../../etc/passwd");
    let list = c
        .get_json(&format!("{V2}?filter[name][eq]=..%2F..%2Fetc%2Fpasswd"))
        .await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    c.heartbeat(&id, "../../etc/shadow", "h").await.expect(200);
    let nodes = c.get_json(&format!("{V2}/{id}/nodes")).await;
    assert_eq!(nodes["items"][0]["id"], "../../etc/shadow");
    c.delete(&format!("{V2}/{id}/nodes/..%2F..%2Fetc%2Fshadow"))
        .await
        .expect(204);
    let nodes = c.get_json(&format!("{V2}/{id}/nodes")).await;
    assert_eq!(nodes["page"]["total_count"], 0);
    // A literal `../` in the request target matches no route (no normalisation).
    let (status, body) = raw(
        &d,
        b"GET /v2/control-planes/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        true,
    )
    .await;
    assert_eq!(status, Some(404), "{body}");
    assert!(body.contains("\"status\":404"), "{body}");
    assert!(!d.dir.path().join("etc").exists());
}

/// Sends raw bytes, returns the status and body of the answer (None if the
/// daemon hung up without one). With `want_answer` it waits for a whole
/// answer or a hang-up (hang_guard() as a hang guard only); without, it looks
/// for 3 s, and an answer that comes later (or the daemon still waiting for
/// more bytes) is None, which such a case accepts.
/// The write half stays open: hyper takes a half-close for a hang-up.
async fn raw(d: &Daemon, bytes: &[u8], want_answer: bool) -> (Option<u16>, String) {
    let mut s = tokio::net::UnixStream::connect(&d.socket)
        .await
        .expect("connect");
    let (mut rd, mut wr) = s.split();
    let write = async {
        // The daemon may answer and close before reading everything.
        let _ = wr.write_all(bytes).await;
        std::future::pending::<()>().await
    };
    let read = async {
        let patience = if want_answer {
            hang_guard()
        } else {
            Duration::from_secs(3)
        };
        let mut out = Vec::new();
        let whole = &mut out;
        let _ = tokio::time::timeout(patience, async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = rd.read(&mut buf).await {
                whole.extend_from_slice(&buf[..n]);
                if is_whole_answer(whole) {
                    break;
                }
            }
        })
        .await;
        out
    };
    let out = tokio::select! {
        out = read => out,
        () = write => unreachable!("the writer never finishes"),
    };
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok());
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A response head and as many body bytes as its Content-Length says.
fn is_whole_answer(out: &[u8]) -> bool {
    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| out.len() >= end + 4 + len)
}

/// Below the router: bytes that aren't HTTP, lying lengths, header floods.
/// hyper answers or hangs up; either way the daemon keeps serving.
#[tokio::test]
async fn protocol_garbage_keeps_the_daemon_up() {
    let d = Daemon::builder().flag("--max-body-bytes", 65536).start();
    let c = d.client();
    let blue = c.standard("blue").await;
    c.put_config(&blue, &service("keep", "k")).await.expect(200);
    let cfg = format!("/v2/control-planes/{blue}/config");
    let long_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(MB)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..10_000)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let chunked_over = {
        let mut b = format!(
            "PUT {cfg} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..20 {
            b.extend_from_slice(format!("{:x}\r\n{}\r\n", 8192, " ".repeat(8192)).as_bytes());
        }
        b.extend_from_slice(b"0\r\n\r\n");
        b
    };
    let lying_length = format!(
        "PUT {cfg} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"_format_version\":"
    );
    let huge_length = format!(
        "PUT {cfg} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999\r\nConnection: close\r\n\r\n{{}}"
    );
    let inputs: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(), None),
        ("bad request line", b"GET\r\n\r\n".to_vec(), None),
        ("HTTP/0.9", b"GET /healthz\r\n".to_vec(), None),
        ("1 MB header", long_header.into_bytes(), None),
        ("10,000 headers", many_headers.into_bytes(), None),
        ("chunked body over the limit", chunked_over, Some(413)),
        ("body shorter than Content-Length", lying_length.into_bytes(), None),
        ("Content-Length past the limit", huge_length.into_bytes(), Some(413)),
        ("bad chunk size", format!("PUT {cfg} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n").into_bytes(), None),
    ];
    for (what, bytes, want) in inputs {
        let (status, body) = raw(&d, &bytes, want.is_some()).await;
        if let Some(w) = want {
            assert_eq!(status, Some(w), "{what}: {body}");
            assert!(body.contains(&format!("\"status\":{w}")), "{what}: {body}");
        } else if let Some(s) = status {
            assert!((400..500).contains(&s), "{what}: answered {s}: {body}");
        }
        c.get("/healthz").await.expect(200);
    }
    assert!(
        c.get(&cfg).await.expect(200).text().contains("keep"),
        "the accepted config is still there"
    );
    assert_eq!(
        c.snapshot(&blue)
            .await
            .header("x-snapshot-version")
            .as_deref(),
        Some("2")
    );
}

/// A million tiny entities is answered (JSON: accepted; YAML: refused by the
/// YAML parser's node budget of 250,000), many invalid ones are refused with
/// the first 1000 errors, and the daemon answers health checks meanwhile.
#[tokio::test]
async fn a_million_tiny_entities_are_answered_and_the_daemon_stays_responsive() {
    let d = Daemon::start();
    let c = d.client();
    let big = c.standard("big").await;
    let keep = c.standard("keep").await;
    c.put_config(&keep, &service("keep", "k")).await.expect(200);
    let n = 1_000_000;
    let cfg = format!("{V2}/{big}/config");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::timeout(hang_guard(), c.get("/healthz"))
                    .await
                    .expect("a health check was answered during the big uploads")
                    .expect(200);
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            worst
        })
    };

    let json_doc = format!(
        "{{\"_format_version\":\"3.0\",\"partials\":[{}]}}",
        vec!["{\"type\":\"redis-ce\"}"; n].join(",")
    );
    let (r, json_took) = put_timed(&c, &cfg, "application/json", json_doc).await;
    expect_error_or(&r, 200);

    let yaml_doc = format!(
        "_format_version: \"3.0\"\npartials:\n{}",
        "- {type: redis-ce}\n".repeat(n)
    );
    let (r, yaml_took) = put_timed(&c, &cfg, "application/yaml", yaml_doc).await;
    // The YAML reader's limits scale with the input, so YAML is read like JSON:
    // the same million entities, accepted, and (same content) no new version.
    expect_error_or(&r, 200);

    // 200,000 invalid ones are enough to show the cap (a million took 19.5 s
    // in debug and answered 133 MB before it).
    let bad = format!(
        "{{\"_format_version\":\"3.0\",\"services\":[{}]}}",
        vec!["{}"; 200_000].join(",")
    );
    let (r, bad_took) = put_timed(&c, &cfg, "application/json", bad).await;
    let j = expect_error_or(&r, 400);
    let errors = j["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1001, "the first 1000 and a count");
    let last = errors[1000]["message"].as_str().unwrap_or_default();
    assert!(last.starts_with("199000 more member error(s)"), "{last}");
    assert!(r.body.len() < MB, "{} byte answer", r.body.len());

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // Every health check meanwhile was answered 200 (the outcome); how long
    // the slowest took is printed, not asserted: a loaded machine stretches it.
    let worst = prober.await.expect("prober");
    eprintln!(
        "a million entities: JSON accepted in {json_took:?}, YAML accepted in {yaml_took:?}, \
         invalid refused in {bad_took:?}; slowest /healthz meanwhile {worst:?}"
    );
    // The accepted million is what `big` serves; `keep` is untouched.
    let snap = c.snapshot(&big).await;
    assert_eq!(snap.header("x-snapshot-version").as_deref(), Some("2"));
    let doc: Value = serde_json::from_slice(&snap.body).expect("snapshot JSON");
    assert_eq!(doc["partials"].as_array().map(Vec::len), Some(n));
    assert_eq!(
        c.snapshot(&keep)
            .await
            .header("x-snapshot-version")
            .as_deref(),
        Some("2")
    );
}

/// PUTs a config body of type `ct`: the answer, and how long it took
/// (printed, never asserted).
async fn put_timed(c: &Client, path: &str, ct: &str, body: String) -> (Resp, Duration) {
    let t = Instant::now();
    let r = c
        .send(
            "PUT",
            path,
            &[("content-type", ct)],
            Some(body.into_bytes()),
        )
        .await;
    (r, t.elapsed())
}

/// Asserts the status (showing the start of a long body); for an error,
/// that the body says the same status. The body as JSON.
fn expect_error_or(r: &Resp, status: u16) -> Value {
    assert_eq!(
        r.status,
        status,
        "{}",
        r.text().chars().take(300).collect::<String>()
    );
    if status < 400 {
        return Value::Null;
    }
    let j = r.json();
    assert_eq!(j["status"], status);
    j
}

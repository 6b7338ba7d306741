//! The sidecar beside a data plane: it follows its group's snapshot, writes it
//! atomically, heartbeats the hash it applied, and rides out daemon restarts.

use std::time::Duration;

use crate::common::{Client, Daemon, Sidecar, V2, service, wait_for};

/// The first node's (sync status, config hash), once it has reported.
async fn node_status(c: &Client, comp: &str) -> Option<(String, String)> {
    let r = c.get(&format!("{V2}/{comp}/nodes")).await;
    if r.status != 200 {
        return None;
    }
    let v = r.json();
    v["items"].as_array().and_then(|a| a.first()).map(|n| {
        (
            n["sync_status"].as_str().unwrap_or("").to_string(),
            n["config_hash"].as_str().unwrap_or("").to_string(),
        )
    })
}

/// Waits until the node reports the composite's current hash IN_SYNC,
/// then checks the file Kong loads holds `needle`.
async fn applied(c: &Client, comp: &str, out: &std::path::Path, needle: &str) {
    let hash = c.etag(comp).await;
    wait_for(&format!("the snapshot with {needle} applied"), || async {
        node_status(c, comp)
            .await
            .is_some_and(|(s, h)| s == "IN_SYNC" && h == hash)
    })
    .await;
    let file = std::fs::read_to_string(out).unwrap();
    assert!(file.contains(needle), "{file}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_applies_snapshots_and_sync_status_follows() {
    let mut d = Daemon::start();
    let c = d.client();
    let comp = c.composite("edge").await;
    let blue = c.standard("blue").await;
    c.add(&comp, &[&blue]).await.expect(204);
    c.put_config(&blue, &service("first", "first.internal"))
        .await
        .expect(200);

    let out = d.dir.path().join("kong.json");
    let _sidecar = Sidecar::builder("edge", "dp-1")
        .flag("--hostname", "dp-1.local")
        .socket(&d.socket)
        .out(&out)
        .log(&d.path("sidecar.log"))
        .spawn();

    // It fetches, writes the file Kong loads, and reports the hash: IN_SYNC.
    wait_for("first snapshot applied", || async {
        node_status(&c, &comp)
            .await
            .is_some_and(|(s, _)| s == "IN_SYNC")
    })
    .await;
    let snap = c.snapshot(&comp).await;
    assert_eq!(
        std::fs::read(&out).unwrap(),
        snap.body,
        "the file holds the snapshot bytes"
    );

    // A new snapshot: the node is OUT_OF_SYNC until the sidecar applies it, then IN_SYNC again.
    c.put_config(&blue, &service("second", "second.internal"))
        .await
        .expect(200);
    applied(&c, &comp, &out, "second").await;

    // The daemon restarts; the sidecar carries on and applies what comes next.
    d.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.restart();
    let c = d.client();
    c.put_config(&blue, &service("third", "third.internal"))
        .await
        .expect(200);
    applied(&c, &comp, &out, "third").await;
}

/// With `--kong-admin`, each snapshot is POSTed to Kong's `/config`; the node
/// reports the hash only once Kong took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_posts_to_a_kong_admin_config_endpoint() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let app = {
        let received = received.clone();
        axum::Router::new().route(
            "/config",
            axum::routing::post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    received.lock().unwrap().push(body.to_vec());
                    (axum::http::StatusCode::CREATED, "{}")
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    c.put_config(&blue, &service("svc", "svc.internal"))
        .await
        .expect(200);
    let out = d.dir.path().join("kong.json");
    let _sidecar = Sidecar::builder(&blue, "dp-k")
        .flag("--kong-admin", &admin)
        .socket(&d.socket)
        .out(&out)
        .spawn();
    let snap = c.snapshot(&blue).await;
    wait_for("Kong received the snapshot", || {
        let received = received.clone();
        async move { !received.lock().unwrap().is_empty() }
    })
    .await;
    assert_eq!(received.lock().unwrap()[0], snap.body);
    wait_for("node in sync", || {
        let c = c.clone();
        let blue = blue.clone();
        async move {
            c.get(&format!("{V2}/{blue}/nodes")).await.json()["items"][0]["sync_status"]
                == "IN_SYNC"
        }
    })
    .await;
}

/// What the stand-in Kong admin API does with `POST /config`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KongAnswer {
    Accept,
    /// 400 with Kong's flattened errors (`?flatten_errors=1`).
    Refuse,
    /// Never answers within the sidecar's `--kong-timeout-secs`.
    Stall,
}

/// A stand-in Kong admin API on loopback: `GET /` says its version, `POST
/// /config` answers as `answer` says (changeable while it runs).
async fn stand_in_kong(
    answer: std::sync::Arc<std::sync::Mutex<KongAnswer>>,
    received: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) -> String {
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { r#"{"version":"3.10.0.2","tagline":"Welcome to kong"}"# }),
        )
        .route(
            "/config",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (answer, received) = (answer.clone(), received.clone());
                async move {
                    let now = *answer.lock().unwrap();
                    match now {
                        KongAnswer::Accept => {
                            received.lock().unwrap().push(body.to_vec());
                            (axum::http::StatusCode::CREATED, "{}".to_string())
                        }
                        KongAnswer::Refuse => (
                            axum::http::StatusCode::BAD_REQUEST,
                            serde_json::json!({
                                "code": 14,
                                "name": "invalid declarative configuration",
                                "message": "declarative config is invalid: {}",
                                "flattened_errors": [{
                                    "entity_type": "service",
                                    "entity_name": "bad",
                                    "entity_id": "9e1d7a5c-0000-4000-8000-000000000001",
                                    "errors": [{"field": "host", "message": "invalid value: bad host", "type": "field"}],
                                }],
                            })
                            .to_string(),
                        ),
                        KongAnswer::Stall => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            (axum::http::StatusCode::CREATED, "{}".to_string())
                        }
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    admin
}

/// Kong decides before the file is written: a refused snapshot never reaches
/// the file Kong restarts from, the last accepted one stays, Kong's errors
/// show in the node list as its compatibility status, and the node reports
/// Kong's own version. A Kong that doesn't answer keeps the file too. One
/// table of what Kong answers and what must follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_ships_only_what_kong_accepted() {
    use std::sync::{Arc, Mutex};
    let answer = Arc::new(Mutex::new(KongAnswer::Accept));
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let admin = stand_in_kong(answer.clone(), received.clone()).await;

    let d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    c.put_config(&blue, &service("good", "good.internal"))
        .await
        .expect(200);
    let out = d.dir.path().join("kong.json");
    let _sidecar = Sidecar::builder(&blue, "dp-k")
        .flag("--kong-timeout-secs", "1")
        .flag("--kong-admin", &admin)
        .socket(&d.socket)
        .out(&out)
        .spawn();
    let node = |c: crate::common::Client, blue: String| async move {
        let r = c.get(&format!("{V2}/{blue}/nodes")).await;
        r.json()["items"][0].clone()
    };
    // (what Kong answers, the service the next config names, whether Kong takes it)
    let steps = [
        (KongAnswer::Accept, "good", true),
        (KongAnswer::Refuse, "refused", false),
        (KongAnswer::Stall, "stalled", false),
        (KongAnswer::Accept, "later", true),
    ];
    let mut accepted_bytes: Option<Vec<u8>> = None;
    for (i, (kong, svc, takes)) in steps.into_iter().enumerate() {
        *answer.lock().unwrap() = kong;
        if i > 0 {
            c.put_config(&blue, &service(svc, &format!("{svc}.internal")))
                .await
                .expect(200);
        }
        let hash = c.etag(&blue).await;
        let what = format!("step {i}: Kong answers {kong:?}");
        match (kong, takes) {
            (_, true) => {
                wait_for(&format!("{what}: node in sync"), || {
                    let (c, blue, h) = (c.clone(), blue.clone(), hash.clone());
                    async move {
                        let n = node(c, blue).await;
                        n["config_hash"] == h.as_str() && n["sync_status"] == "IN_SYNC"
                    }
                })
                .await;
                let file = std::fs::read(&out).unwrap();
                assert!(String::from_utf8_lossy(&file).contains(svc), "{what}: file");
                assert_eq!(received.lock().unwrap().last(), Some(&file), "{what}");
                let n = node(c.clone(), blue.clone()).await;
                assert_eq!(n["version"], "3.10.0.2", "{what}: Kong's own version");
                assert_ne!(
                    n["compatibility_status"]["state"], "COMPATIBILITY_STATE_INCOMPATIBLE",
                    "{what}: {n}"
                );
                accepted_bytes = Some(file);
            }
            (KongAnswer::Refuse, false) => {
                wait_for(
                    &format!("{what}: Kong's errors reach the node list"),
                    || {
                        let (c, blue) = (c.clone(), blue.clone());
                        async move {
                            node(c, blue).await["compatibility_status"]["state"]
                                == "COMPATIBILITY_STATE_INCOMPATIBLE"
                        }
                    },
                )
                .await;
                let n = node(c.clone(), blue.clone()).await;
                let issue = n["compatibility_status"]["issues"][0].to_string();
                assert!(
                    issue.contains("bad host") && issue.contains("service"),
                    "{what}: {n}"
                );
                assert_eq!(n["sync_status"], "OUT_OF_SYNC", "{what}");
                assert_eq!(
                    Some(std::fs::read(&out).unwrap()),
                    accepted_bytes,
                    "{what}: file kept"
                );
            }
            (_, false) => {
                // Kong can't answer: the sidecar retries, the file stays.
                tokio::time::sleep(Duration::from_secs(3)).await;
                assert_eq!(
                    Some(std::fs::read(&out).unwrap()),
                    accepted_bytes,
                    "{what}: file kept"
                );
                assert_eq!(
                    node(c.clone(), blue.clone()).await["sync_status"],
                    "OUT_OF_SYNC"
                );
            }
        }
    }
}

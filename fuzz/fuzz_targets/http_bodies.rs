//! The daemon's request handling, in process: the real router over a real
//! engine (no store, no socket), fed arbitrary methods, paths, queries,
//! content types and bodies through `tower::ServiceExt::oneshot`.
//!
//! Invariants, for every request:
//! - no panic, and never a 5xx (the daemon's only 5xx is 503, a storage
//!   failure, and this engine has no store);
//! - every 4xx/5xx is Konnect's `application/problem+json` `{"status",
//!   "title", "detail", "instance"}` whose `status` is the HTTP status and
//!   whose `instance` is the request's path, with `invalid_parameters` on a
//!   400 — except on the DP-certificate paths, whose errors are the spec's
//!   legacy `application/json` `{"message"}`; every JSON success parses;
//! - a refused request (4xx) or a dry run changes nothing: the registry's
//!   groups, memberships, configs and snapshots are as before.
//!
//! Input: requests separated by the 4 bytes `\0RQ\0`. Each request is 6
//! selector bytes (method, path, group id, content type, query, headers),
//! then its body. A selector that asks for a raw path, id, content type or
//! query takes it from the body's first line (consumed). `@blue@`, `@green@`,
//! `@comp@` and `@default@` in a body stand for those groups' ids.
#![no_main]
// `RegistryError` is the engine's error type; its size is not this target's to change.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use rgmerge::engine::Engine;
use rgmerge::registry::{Mode, NewGroup, NodeReport, Settings};
use rgmerge::server::{AppState, ServeOptions, router};
use tower::ServiceExt;
use uuid::Uuid;

const SEP: &[u8] = b"\0RQ\0";
const V2: &str = "/v2/control-planes";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

struct Ids {
    default: Uuid,
    blue: Uuid,
    green: Uuid,
    comp: Uuid,
}

/// A registry with a default group, two standard groups (blue holds a
/// config and is a member of comp; green has a node) and a composite.
async fn setup(engine: &Engine) -> Ids {
    let mk = |name: &str, ct: &str| NewGroup {
        name: name.into(),
        cluster_type: Some(ct.into()),
        ..NewGroup::default()
    };
    let default = engine
        .views()
        .iter()
        .find(|g| g.meta.is_default)
        .map(|g| g.meta.id)
        .expect("default group");
    let id = |v: std::sync::Arc<rgmerge::registry::GroupView>| v.meta.id;
    let blue = id(engine
        .create_group(mk("blue", "CLUSTER_TYPE_CONTROL_PLANE"))
        .await
        .expect("blue"));
    let green = id(engine
        .create_group(mk("green", "CLUSTER_TYPE_CONTROL_PLANE"))
        .await
        .expect("green"));
    let comp = id(engine
        .create_group(mk("comp", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"))
        .await
        .expect("comp"));
    engine
        .add_members(comp, vec![blue], Mode::Apply)
        .await
        .expect("add");
    let cfg = b"_format_version: \"3.0\"\nservices:\n- name: keep\n  host: k\n  routes:\n  - name: keep-r\n    paths: [/k]\n";
    engine
        .put_config(blue, cfg.to_vec(), Some("application/yaml"), Mode::Apply, None)
        .await
        .expect("config");
    engine
        .heartbeat(
            green,
            NodeReport {
                id: Some("node-1".into()),
                hostname: "dp1".into(),
                ..Default::default()
            },
        )
        .await
        .expect("node");
    Ids {
        default,
        blue,
        green,
        comp,
    }
}

/// Everything a refused request must leave as it was (node `last_seen`
/// excluded: it is not state a refusal could touch, but time moves).
async fn dump(engine: &Engine) -> String {
    let mut views = engine.views();
    views.sort_by_key(|v| v.meta.id);
    let mut out = String::new();
    for g in views {
        out.push_str(&format!(
            "{:?} v{} {} nodes={:?} certificates={:?}",
            g.meta,
            g.snapshot.version,
            g.snapshot.body.hash(),
            g.nodes
                .list()
                .iter()
                .map(|n| (n.id.clone(), n.hostname.clone(), n.config_hash.clone()))
                .collect::<Vec<_>>(),
            g.certificates
        ));
        if let Some(st) = g.standard() {
            out.push_str(&format!(
                " config={} in={:?}\n",
                String::from_utf8_lossy(st.config().bytes),
                st.composites
            ));
        }
        if let Some(c) = g.composite() {
            out.push_str(&format!(" members={:?} report={:?}\n", c.members, c.report));
        }
    }
    out
}

struct Cursor<'a> {
    head: &'a [u8],
    body: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn sel(&mut self) -> u8 {
        match self.head.split_first() {
            Some((b, rest)) => {
                self.head = rest;
                *b
            }
            None => 0,
        }
    }
    /// The body's first line, consumed.
    fn line(&mut self) -> String {
        let end = self
            .body
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.body.len());
        let l = String::from_utf8_lossy(&self.body[..end]).into_owned();
        self.body = self.body.get(end + 1..).unwrap_or(&[]);
        l
    }
}

struct Built {
    req: Request<Body>,
    dry_run: bool,
    /// A DP-certificate path: errors in the spec's legacy form.
    legacy: bool,
    head: bool,
}

fn build(chunk: &[u8], ids: &Ids) -> Option<Built> {
    let (head, body) = chunk.split_at(chunk.len().min(6));
    let mut c = Cursor { head, body };
    let method = match c.sel() % 8 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PUT,
        3 => Method::PATCH,
        4 => Method::DELETE,
        5 => Method::HEAD,
        6 => Method::OPTIONS,
        _ => Method::from_bytes(b"BREW").ok()?,
    };
    let (path_sel, id_sel, ct_sel, q_sel, hdr) = (c.sel(), c.sel(), c.sel(), c.sel(), c.sel());
    let id = match id_sel % 9 {
        0 => ids.default.to_string(),
        1 => ids.blue.to_string(),
        2 => ids.comp.to_string(),
        3 => ids.green.to_string(),
        4 => Uuid::nil().to_string(),
        5 => "not-a-uuid".into(),
        6 => "%FF%FE".into(),
        7 => "..%2F..%2Fetc%2Fpasswd".into(),
        _ => c.line(),
    };
    let path = match path_sel % 21 {
        0 => "/healthz".to_string(),
        1 => "/metrics".to_string(),
        2 => V2.to_string(),
        3 => format!("{V2}/{id}"),
        4 => format!("{V2}/{id}/group-memberships"),
        5 => format!("{V2}/{id}/group-memberships/add"),
        6 => format!("{V2}/{id}/group-memberships/remove"),
        7 => format!("{V2}/{id}/group-status"),
        8 => format!("{V2}/{id}/group-member-status"),
        9 => format!("{V2}/{id}/config"),
        10 => format!("{V2}/{id}/snapshot"),
        11 => format!("{V2}/{id}/snapshot/provenance"),
        12 => format!("{V2}/{id}/nodes"),
        13 => format!("{V2}/{id}/nodes/{}", c.line()),
        14 => format!("{V2}/{id}/details"),
        15 => format!("{V2}/{id}/nodes/eol"),
        16 => format!("{V2}/{id}/expected-config-hash"),
        17 => format!("{V2}/{id}/dp-client-certificates"),
        18 => format!("{V2}/{id}/dp-client-certificates/{}", c.line()),
        19 => format!("{V2}/{id}/expected-config-version"),
        _ => c.line(),
    };
    let ct: Option<String> = match ct_sel % 8 {
        0 => None,
        1 => Some("application/json".into()),
        2 => Some("application/yaml".into()),
        3 => Some("text/plain".into()),
        4 => Some("application/x-www-form-urlencoded".into()),
        5 => Some("text/html".into()),
        6 => Some("application/json; charset=utf-8".into()),
        _ => Some(c.line()),
    };
    let query = match q_sel % 12 {
        0 => String::new(),
        1 => "dry_run=true".into(),
        2 => "wait=1".into(),
        3 => "version=1".into(),
        4 => "page[size]=1&page[number]=2".into(),
        5 => "sort=sync_status".into(),
        6 => c.line(),
        7 => "dry_run=maybe".into(),
        8 => "page[size]=1&page[after]=6e6f6465".into(),
        9 => "filter[name][contains]=e&labels=team&sort=created_at%20desc".into(),
        10 => "filter[bogus][eq]=x".into(),
        _ => "page[after]=not-a-cursor".into(),
    };
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    // Bytes hyper would refuse before the router sees them are out of scope.
    let uri: axum::http::Uri = uri.parse().ok()?;
    let mut req = Request::builder().method(method.clone()).uri(uri);
    if let Some(ct) = ct {
        req = req.header(header::CONTENT_TYPE, HeaderValue::from_str(&ct).ok()?);
    }
    if hdr & 1 == 1 {
        req = req.header(header::IF_NONE_MATCH, "*");
    }
    if hdr & 2 == 2 {
        req = req.header(header::CONTENT_LENGTH, c.body.len());
    }
    let mut req = req.body(Body::from(with_ids(c.body, ids))).ok()?;
    // As this process's user: the daemon's owner, org admin.
    req.extensions_mut()
        .insert(rgmerge::server::Peer::of_this_process());
    Some(Built {
        req,
        // `dry_run` means something only on membership changes and config writes.
        dry_run: q_sel % 12 == 1
            && (matches!(path_sel % 21, 5 | 6 | 9)
                || (path_sel % 21 == 4 && method == Method::PUT)),
        legacy: matches!(path_sel % 21, 17 | 18),
        head: method == Method::HEAD,
    })
}

/// `@blue@` & co. in a body become the ids of this run's groups, so inputs
/// can name real groups (membership changes, references).
fn with_ids(body: &[u8], ids: &Ids) -> Vec<u8> {
    let mut out = body.to_vec();
    for (tag, id) in [
        (&b"@default@"[..], ids.default),
        (b"@blue@", ids.blue),
        (b"@green@", ids.green),
        (b"@comp@", ids.comp),
    ] {
        while let Some(i) = out.windows(tag.len()).position(|w| w == tag) {
            out.splice(i..i + tag.len(), id.to_string().into_bytes());
        }
    }
    out
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let settings = Settings {
            max_groups: Some(8),
            active_window_ms: 30_000,
            ..Settings::default()
        };
        let engine = Engine::start(None, settings).expect("engine");
        let ids = setup(&engine).await;
        // The sender is dropped: long-polls see "shutting down" and return at once.
        let (_, shutdown) = tokio::sync::watch::channel(false);
        let app = router(AppState {
            engine: engine.clone(),
            opts: Arc::new(ServeOptions {
                socket: "/nonexistent/fuzz.sock".into(),
                max_body_bytes: 64 * 1024,
                max_in_flight: 4,
                max_wait: Duration::ZERO,
                max_connections: 16,
                timeouts: Default::default(),
                http: None,
                cluster: None,
                api: None,
            }),
            shutdown,
        });
        for chunk in split(data).into_iter().take(8) {
            let Some(b) = build(chunk, &ids) else {
                continue;
            };
            let desc = format!("{} {}", b.req.method(), b.req.uri());
            let path = b.req.uri().path().to_string();
            let before = dump(&engine).await;
            let resp = app.clone().oneshot(b.req).await.expect("infallible");
            let status = resp.status();
            // Without a store there is no storage to fail, so even 507 would mean
            // a bug (a writer job that panicked answers "the writer dropped the request").
            assert!(!status.is_server_error(), "{desc}: {status}");
            let ct = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            // HEAD answers carry no body (axum drops it, as HTTP says).
            if (status.is_client_error() || status.is_server_error()) && !b.head {
                let j: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                    panic!("{desc}: {status} error is not JSON ({e}): {body:?}")
                });
                if b.legacy && ct == "application/json" {
                    assert!(
                        j["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{desc}: {j}"
                    );
                } else {
                    // Errors before the certificate handlers run (405, 413,
                    // 415, …) are problems like everywhere else.
                    assert_eq!(ct, "application/problem+json", "{desc}: {status}: {j}");
                    assert_eq!(j["status"], status.as_u16(), "{desc}: {j}");
                    assert!(j["title"].is_string(), "{desc}: {j}");
                    assert_eq!(j["instance"], path.as_str(), "{desc}: {j}");
                    assert!(
                        j["detail"].as_str().is_some_and(|d| !d.is_empty()),
                        "{desc}: {j}"
                    );
                    if status == StatusCode::BAD_REQUEST {
                        let params = j["invalid_parameters"].as_array();
                        assert!(
                            params.is_some_and(|p| !p.is_empty()
                                && p.iter()
                                    .all(|p| p["field"].is_string() && p["reason"].is_string())),
                            "{desc}: {j}"
                        );
                    }
                }
            }
            if status.is_client_error() {
                assert_eq!(
                    before,
                    dump(&engine).await,
                    "{desc}: refused ({status}) but changed"
                );
            } else if ct.starts_with("application/json") && !b.head {
                serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_else(|e| {
                    panic!("{desc}: {status} body is not JSON ({e}): {body:?}")
                });
                if b.dry_run {
                    assert_eq!(before, dump(&engine).await, "{desc}: dry run changed state");
                }
            }
        }
        let health = app
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).expect("req"))
            .await
            .expect("infallible");
        assert_eq!(health.status(), StatusCode::OK);
    });
});

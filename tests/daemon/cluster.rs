//! The cluster endpoint (issue 30) against the real binary: Kong data planes
//! in hybrid mode, played by the fake data plane in `common/dataplane.rs`
//! (which follows Kong's `data_plane.lua`), over real TLS with certificates
//! made by `rgmerge cluster-cert` and by rcgen here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::dataplane::{DataPlane, DpEvent, DpOptions, RawWs, http_request};
use crate::common::postgres::PgServer;
use crate::common::{Client, Daemon, V2, hang_guard, rgmerge_ok, service, wait_for};

const DOMAIN: &str = "cp.example.test";

/// A daemon with its cluster endpoint open, and the certificates it and its
/// data planes use.
struct Cluster {
    daemon: Daemon,
    /// Shared by the daemons of one test; removed with the last.
    certs_dir: std::sync::Arc<tempfile::TempDir>,
    certs: PathBuf,
    addr: SocketAddr,
}

fn cluster_cert(out: &Path, dp_cn: &str) {
    let out = out.to_str().expect("utf-8 path");
    rgmerge_ok(&[
        "cluster-cert",
        "--domain",
        DOMAIN,
        "--dp-cn",
        dp_cn,
        "--out",
        out,
    ]);
}

impl Cluster {
    fn start(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        cluster_cert(dir.path(), "kong-dp");
        Cluster::start_with(std::sync::Arc::new(dir), extra)
    }

    /// Another daemon with the same certificates (several daemons on one
    /// PostgreSQL serve one fleet).
    fn start_with(certs_dir: std::sync::Arc<tempfile::TempDir>, extra: &[&str]) -> Cluster {
        let certs = certs_dir.path().to_path_buf();
        let daemon = Daemon::builder()
            .cluster(&certs, DOMAIN)
            .args(extra)
            .start();
        let addr = daemon.cluster_addr().expect("cluster endpoint");
        Cluster {
            daemon,
            certs_dir,
            certs,
            addr,
        }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.certs.join(name)).expect("cert file")
    }

    /// A data plane of `group`, configured as the README says: its server
    /// name is the host of the group's `control_plane_endpoint`.
    fn dp(&self, group: &str) -> DpOptions {
        let mut o = DpOptions::new(
            self.addr,
            format!("{}.{DOMAIN}", label(group)),
            self.read("ca.crt"),
            self.read("dp.crt"),
            self.read("dp.key"),
        );
        o.hash_fn = Some(|v| {
            let (hash, hashes) = rgmerge::cluster::hash::config_hash(v);
            (hash, serde_json::to_value(hashes).expect("hashes"))
        });
        o.ping_interval = Duration::from_millis(500);
        o
    }

    async fn pin(&self, c: &Client, group: &str, pem: &[u8]) -> String {
        let r = c
            .post_json(
                &format!("/v2/control-planes/{group}/dp-client-certificates"),
                &json!({"cert": String::from_utf8_lossy(pem)}),
            )
            .await
            .expect(201);
        r.json()["item"]["id"]
            .as_str()
            .expect("cert id")
            .to_string()
    }
}

fn label(group: &str) -> String {
    group.replace('-', "").chars().take(10).collect()
}

async fn expected_hash(c: &Client, group: &str) -> String {
    let r = c
        .get(&format!("/v2/control-planes/{group}/expected-config-hash"))
        .await
        .expect(200);
    r.json()["expected_hash"]
        .as_str()
        .expect("hash")
        .to_string()
}

/// The node's record, or null while there is none yet.
async fn node(c: &Client, group: &str, id: &str) -> Value {
    let r = c
        .get(&format!("/v2/control-planes/{group}/nodes/{id}"))
        .await;
    if r.status != 200 {
        return Value::Null;
    }
    r.json()["item"].clone()
}

fn names(config: &Value) -> Vec<String> {
    let mut n: Vec<String> = config["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    n.sort();
    n
}

/// Two teams' groups in a composite: `(blue, green, composite)`.
async fn composite(c: &Client) -> (String, String, String) {
    let blue = c.standard("blue").await;
    let green = c.standard("green").await;
    let comp = c.composite("shared").await;
    c.add(&comp, &[&blue, &green]).await.expect(204);
    c.put_config(&blue, &service("blue-svc", "blue.internal"))
        .await
        .expect(200);
    c.put_config(&green, &service("green-svc", "green.internal"))
        .await
        .expect(200);
    (blue, green, comp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_gets_its_composite_keeps_it_through_a_conflict_and_a_restart() {
    let mut cl = Cluster::start(&[]);
    let c = cl.daemon.client();
    let (blue, green, comp) = composite(&c).await;

    // The group's endpoint names the cluster endpoint, with its label.
    let g = c
        .get(&format!("/v2/control-planes/{comp}"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        g["config"]["control_plane_endpoint"],
        json!(format!(
            "https://{}.{DOMAIN}:{}",
            label(&comp),
            cl.addr.port()
        ))
    );

    cl.pin(&c, &comp, &cl.read("dp.crt")).await;
    let mut opts = cl.dp(&comp);
    opts.labels.insert("region".into(), json!("eu"));
    // Kong reconnects after a dropped connection, keeping what it holds.
    opts.reconnect = Some((Duration::from_millis(100), Duration::from_millis(300)));
    let dp = DataPlane::connect(opts).await.expect("connect");
    assert!(
        dp.wait_until(hang_guard(), |d| d.applied() >= 1).await,
        "{:?}",
        dp.events()
    );
    let expected = expected_hash(&c, &comp).await;
    assert_eq!(dp.current_hash(), expected);
    assert_eq!(
        names(&dp.config().expect("config")),
        ["blue-svc", "green-svc"]
    );
    // The config is the composite's served snapshot, as the sidecar gets it.
    let snapshot: Value = c.snapshot(&comp).await.json();
    assert_eq!(dp.config().expect("config"), snapshot);
    assert_eq!(dp.hashes().expect("hashes")["config"], json!(expected));

    // A runtime instance, in sync.
    let id = dp.node_id().to_string();
    wait_for("the node in sync", async || {
        node(&c, &comp, &id).await["sync_status"] == "IN_SYNC"
    })
    .await;
    let n = node(&c, &comp, &id).await;
    assert_eq!(n["version"], "3.10.0");
    assert_eq!(n["connected"], true);
    assert_eq!(n["labels"]["region"], "eu");
    assert_eq!(n["config_hash"], json!(expected));
    assert_eq!(
        n["compatibility_status"]["state"],
        "COMPATIBILITY_STATE_FULLY_COMPATIBLE"
    );
    assert!(n["process_conf"].is_object());
    let page = c
        .get(&format!("/ui/groups/{comp}"))
        .await
        .expect(200)
        .text();
    assert!(page.contains("In Sync"), "the page shows the node in sync");

    // A member's change reaches it.
    let two = format!(
        "{}- name: blue-two\n  host: two.internal\n",
        service("blue-svc", "blue.internal")
    );
    c.put_config(&blue, &two).await.expect(200);
    let after = expected_hash(&c, &comp).await;
    assert_ne!(after, expected);
    assert!(
        dp.wait_until(hang_guard(), |d| d.current_hash() == after)
            .await
    );
    assert_eq!(
        names(&dp.config().expect("config")),
        ["blue-svc", "blue-two", "green-svc"]
    );
    let received = dp.received();

    // A conflict sends nothing: the data plane keeps the last good config.
    c.put_config(&green, &service("blue-svc", "elsewhere.internal"))
        .await
        .expect(200);
    assert_eq!(c.status(&comp).await["item"]["state"], "CONFLICT");
    for _ in 0..3 {
        dp.ping_now().await.expect("ping");
    }
    assert!(
        dp.wait_until(hang_guard(), |d| d.pongs_received() >= 3)
            .await
    );
    assert_eq!(dp.received(), received, "nothing sent while in conflict");
    assert_eq!(dp.current_hash(), after);

    // A restart sends nothing less, and nothing to a node that holds the
    // current config.
    cl.daemon.stop();
    cl.daemon.restart();
    assert!(
        dp.wait_until(hang_guard(), |d| d.connects() >= 2).await,
        "{:?}",
        dp.events()
    );
    for _ in 0..3 {
        dp.ping_now().await.expect("ping");
    }
    let c = cl.daemon.client();
    wait_for("the node in sync after the restart", async || {
        node(&c, &comp, &id).await["sync_status"] == "IN_SYNC"
    })
    .await;
    assert_eq!(
        dp.received(),
        received,
        "a reconnect with the current hash gets nothing"
    );
    assert_eq!(dp.current_hash(), after);

    // Resolving the conflict sends the new config, once.
    c.put_config(&green, &service("green-new", "green.internal"))
        .await
        .expect(200);
    let resolved = expected_hash(&c, &comp).await;
    assert!(
        dp.wait_until(hang_guard(), |d| d.current_hash() == resolved)
            .await
    );
    assert_ne!(resolved, after);
    assert_eq!(dp.received(), received + 1);
    assert_eq!(
        names(&dp.config().expect("config")),
        ["blue-svc", "blue-two", "green-new"]
    );
    dp.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_info_as_text_and_a_reconnect_with_the_current_hash() {
    let cl = Cluster::start(&[]);
    let c = cl.daemon.client();
    let g = c.standard("solo").await;
    c.put_config(&g, &service("solo-svc", "solo.internal"))
        .await
        .expect(200);
    cl.pin(&c, &g, &cl.read("dp.crt")).await;
    let mut opts = cl.dp(&g);
    opts.text_basic_info = true;
    opts.version = "3.10.0.0".into(); // an Enterprise node's form
    let dp = DataPlane::connect(opts.clone()).await.expect("connect");
    assert!(
        dp.wait_until(hang_guard(), |d| d.applied() == 1).await,
        "{:?}",
        dp.events()
    );
    let held = dp.current_hash();
    dp.close().await;
    // A second connection that already holds the hash pings it first and is
    // sent nothing (the fake starts from the empty hash, so hand it over).
    let mut again = opts;
    again.node_id = uuid::Uuid::new_v4().to_string();
    let dp = DataPlane::connect(again).await.expect("connect");
    assert!(dp.wait_until(hang_guard(), |d| d.applied() == 1).await);
    assert_eq!(dp.current_hash(), held);
    dp.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_clear_and_audited() {
    let cl = Cluster::start(&["--cluster-handshake-timeout-secs", "2"]);
    let c = cl.daemon.client();
    let (blue, _green, comp) = composite(&c).await;
    cl.pin(&c, &comp, &cl.read("dp.crt")).await;
    // Pinned on the member too: its refusal is then for being a member.
    cl.pin(&c, &blue, &cl.read("dp.crt")).await;
    let other = tempfile::tempdir().expect("tempdir");
    cluster_cert(other.path(), "stranger");
    let stranger_cert = std::fs::read(other.path().join("dp.crt")).expect("cert");
    let stranger_key = std::fs::read(other.path().join("dp.key")).expect("key");

    let outlet = "GET /v1/outlet?node_id=4e7b1e1c-0000-4000-8000-000000000001&node_hostname=dp&node_version=3.10.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    // Each refusal before the upgrade: (what, the data plane's options, the
    // request). What each is answered is in fixtures/cluster/refusals.txt
    // (`UPDATE_EXPECT=1` rewrites it).
    type Setup = Box<dyn Fn(&mut DpOptions)>;
    let cases: Vec<(&str, Setup, String)> = vec![
        (
            "no client certificate",
            Box::new(|o| {
                o.cert_pem.clear();
                o.key_pem.clear();
            }),
            outlet.into(),
        ),
        (
            "a certificate not pinned",
            Box::new(move |o| {
                o.cert_pem = stranger_cert.clone();
                o.key_pem = stranger_key.clone();
            }),
            outlet.into(),
        ),
        (
            "a server name naming no group",
            Box::new(|o| o.server_name = format!("0000000000.{DOMAIN}")),
            outlet.into(),
        ),
        (
            "a member of a composite",
            Box::new({
                let b = blue.clone();
                move |o| o.server_name = format!("{}.{DOMAIN}", label(&b))
            }),
            outlet.into(),
        ),
        (
            "no node_id",
            Box::new(|_| {}),
            outlet.replace("node_id=4e7b1e1c-0000-4000-8000-000000000001&", ""),
        ),
        (
            "cluster RPC",
            Box::new(|_| {}),
            outlet.replace("/v1/outlet", "/v2/outlet"),
        ),
        (
            "wRPC probe",
            Box::new(|_| {}),
            "HEAD /v1/wrpc HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        ),
        (
            "POST to the outlet",
            Box::new(|_| {}),
            outlet.replacen("GET", "POST", 1),
        ),
        (
            "another path",
            Box::new(|_| {}),
            outlet.replace("/v1/outlet", "/admin"),
        ),
        ("not HTTP", Box::new(|_| {}), "\x16garbage\r\n\r\n".into()),
    ];
    let mut answers = String::new();
    for (what, setup, request) in cases {
        let mut o = cl.dp(&comp);
        setup(&mut o);
        let r = http_request(&o, request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let body = String::from_utf8_lossy(&r.body);
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| body.into_owned());
        answers.push_str(&format!(
            "{what} => {} {}\n",
            r.status.map_or("none".into(), |s| s.to_string()),
            without_fingerprints(&message)
                .replace(&comp, "<composite>")
                .replace(&blue, "<blue>")
        ));
    }
    crate::common::expect::assert_file(
        &crate::common::fixtures().join("cluster/refusals.txt"),
        &answers,
    );
    // Refusals of certificates are in the audit log, with the group.
    let audit = c.get("/v2/audit-log").await.expect(200).json();
    let entries = audit["data"]
        .as_array()
        .or(audit["items"].as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|e| e["credential"] == "client_certificate" && e["status"] == 403),
        "{audit}"
    );

    // Plain HTTP, and a TLS handshake that never finishes, are closed.
    for bytes in [&b"GET /v1/outlet HTTP/1.1\r\nHost: x\r\n\r\n"[..], &b""[..]] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(cl.addr).await.expect("tcp");
        s.write_all(bytes).await.expect("write");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(hang_guard(), s.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(!matches!(n, Ok(k) if k > 0 && buf[..k].starts_with(b"HTTP/1.1 101")));
    }

    // Garbage first frame, and a frame over the limit, close the connection.
    let o = cl.dp(&comp);
    let mut ws = RawWs::connect(&o).await.expect("upgrade");
    ws.send_raw(&text_frame(b"hello")).await.expect("send");
    let f = first_close(&mut ws).await;
    assert_eq!(f, Some(1008), "a garbage first frame is a policy violation");
    let mut ws = RawWs::connect(&o).await.expect("upgrade");
    ws.send_basic_info(&o).await.expect("basic_info");
    ws.send_raw(&binary_frame_header(2 * 1024 * 1024))
        .await
        .expect("send");
    let f = first_close(&mut ws).await;
    assert!(matches!(f, Some(1009) | None), "over the limit: {f:?}");

    // A certificate removed while connected ends the connection.
    let dp = DataPlane::connect(cl.dp(&comp)).await.expect("connect");
    assert!(dp.wait_until(hang_guard(), |d| d.applied() == 1).await);
    let certs = c
        .get(&format!("/v2/control-planes/{comp}/dp-client-certificates"))
        .await
        .expect(200)
        .json();
    for cert in certs["items"].as_array().expect("items") {
        let id = cert["id"].as_str().expect("id");
        c.delete(&format!(
            "/v2/control-planes/{comp}/dp-client-certificates/{id}"
        ))
        .await;
    }
    assert!(
        dp.wait_until(hang_guard(), |d| !d.is_connected()).await,
        "revoked: closed"
    );
    assert!(dp.events().iter().any(|e| matches!(
        e,
        DpEvent::Close {
            code: Some(1008),
            ..
        }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_never_gets_a_config_it_would_refuse() {
    let cl = Cluster::start(&[]);
    let c = cl.daemon.client();
    let g = c.standard("team").await;
    let cfg = format!(
        "{}plugins:\n- name: rate-limiting\n  config:\n    minute: 5\n    policy: local\n- name: key-auth\n  config:\n    realm: team\n",
        service("svc", "svc.internal")
    );
    c.put_config(&g, &cfg).await.expect(200);
    cl.pin(&c, &g, &cl.read("dp.crt")).await;

    // No rate-limiting on this data plane: nothing is sent, and its record says why.
    let mut o = cl.dp(&g);
    o.plugins.retain(|(n, _)| n != "rate-limiting");
    let lacking = DataPlane::connect(o).await.expect("connect");
    let id = lacking.node_id().to_string();
    wait_for("the node held back", async || {
        node(&c, &g, &id).await["compatibility_status"]["state"]
            == "COMPATIBILITY_STATE_INCOMPATIBLE"
    })
    .await;
    let n = node(&c, &g, &id).await;
    assert_eq!(
        n["compatibility_status"]["issues"][0]["code"], "PLUGIN_SET_INCOMPATIBLE",
        "{n}"
    );
    assert_eq!(lacking.received(), 0);
    assert_eq!(n["sync_status"], "OUT_OF_SYNC");
    // A dry run says so before the change: this data plane would not get it.
    let dry = c
        .send(
            "PUT",
            &format!("/v2/control-planes/{g}/config?dry_run=true"),
            &[("content-type", "application/yaml")],
            Some(cfg.clone().into_bytes()),
        )
        .await
        .expect(200)
        .json();
    let held = &dry["held_back_data_planes"];
    assert_eq!(held[0]["code"], "PLUGIN_SET_INCOMPATIBLE", "{dry}");
    assert_eq!(
        held[0]["message"],
        "1 data plane on 3.10.0 lack the plugin `rate-limiting`"
    );
    assert_eq!(held[0]["node_ids"], json!([id]));

    // A newer major version gets nothing either.
    let mut o = cl.dp(&g);
    o.version = "4.0.0".into();
    let newer = DataPlane::connect(o).await.expect("connect");
    let id = newer.node_id().to_string();
    wait_for("the newer node held back", async || {
        node(&c, &g, &id).await["compatibility_status"]["issues"][0]["code"]
            == "KONG_VERSION_INCOMPATIBLE"
    })
    .await;
    assert_eq!(newer.received(), 0);

    // A 3.4 data plane gets the config its version knows.
    let mut o = cl.dp(&g);
    o.version = "3.4.2".into();
    let older = DataPlane::connect(o).await.expect("connect");
    assert!(
        older.wait_until(hang_guard(), |d| d.applied() == 1).await,
        "{:?}",
        older.events()
    );
    let id = older.node_id().to_string();
    wait_for("the older node in sync with its form", async || {
        node(&c, &g, &id).await["sync_status"] == "IN_SYNC"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pki_groups_admit_certificates_their_ca_signed_and_refuse_others() {
    let cl = Cluster::start(&[]);
    let c = cl.daemon.client();
    let g = c
        .post_json(
            "/v2/control-planes",
            &json!({"name": "pki", "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE", "auth_type": "pki_client_certs"}),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    c.put_config(&g, &service("pki-svc", "pki.internal"))
        .await
        .expect(200);
    let (ca_pem, leaf_pem, leaf_key) = ca_and_leaf();
    cl.pin(&c, &g, ca_pem.as_bytes()).await;
    let mut o = cl.dp(&g);
    o.cert_pem = leaf_pem.into_bytes();
    o.key_pem = leaf_key.into_bytes();
    let dp = DataPlane::connect(o.clone())
        .await
        .expect("a CA-signed certificate is admitted");
    assert!(dp.wait_until(hang_guard(), |d| d.applied() == 1).await);
    dp.close().await;
    // The pinned DP certificate does not chain to the CA.
    let r = http_request(&cl.dp(&g), b"GET /v1/outlet?node_id=a&node_hostname=b&node_version=3.10.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.expect("answer");
    assert_eq!(r.status, Some(403), "{}", String::from_utf8_lossy(&r.body));
}

/// A CA and a client certificate it signed, made here.
fn ca_and_leaf() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name.push(DnType::CommonName, "team CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let leaf_key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["dp.team.internal".to_string()]).expect("params");
    leaf.distinguished_name.push(DnType::CommonName, "dp");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

/// A masked client text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// The header of a masked binary frame of `len` bytes (its payload never sent).
fn binary_frame_header(len: u64) -> Vec<u8> {
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f
}

async fn first_close(ws: &mut RawWs) -> Option<u16> {
    loop {
        match ws.recv_frame(hang_guard()).await {
            Ok(Some(f)) if f.opcode == 0x8 => return f.close_code,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_postgresql_send_the_same_versions_and_keep_one_record_per_node() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("rgmerge");
    let a = Cluster::start(&["--store", &url]);
    let b = Cluster::start_with(a.certs_dir.clone(), &["--store", &url]);
    let (ca, cb) = (a.daemon.client(), b.daemon.client());
    let g = ca.standard("shared-pg").await;
    ca.put_config(&g, &service("pg-svc", "pg.internal"))
        .await
        .expect(200);
    a.pin(&ca, &g, &a.read("dp.crt")).await;
    // B follows A's writes: the group, then its pinned certificate.
    wait_for("B to hold the group and its certificate", async || {
        let r = cb
            .get(&format!("/v2/control-planes/{g}/dp-client-certificates"))
            .await;
        r.status == 200 && r.json()["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;

    let on_a = DataPlane::connect(a.dp(&g)).await.expect("connect to A");
    let on_b = DataPlane::connect(b.dp(&g)).await.expect("connect to B");
    for dp in [&on_a, &on_b] {
        assert!(
            dp.wait_until(hang_guard(), |d| d.applied() == 1).await,
            "{:?}",
            dp.events()
        );
    }
    assert_eq!(
        on_a.current_hash(),
        on_b.current_hash(),
        "the same version, the same hash"
    );
    assert_eq!(on_a.current_hash(), expected_hash(&cb, &g).await);

    // A write through B reaches both.
    cb.put_config(&g, &service("pg-two", "pg.internal"))
        .await
        .expect(200);
    let next = expected_hash(&cb, &g).await;
    wait_for("A to follow", async || expected_hash(&ca, &g).await == next).await;
    for dp in [&on_a, &on_b] {
        assert!(
            dp.wait_until(hang_guard(), |d| d.current_hash() == next)
                .await,
            "{:?}",
            dp.events()
        );
    }

    // Each daemon lists both nodes, in sync, whichever daemon holds them.
    let (ida, idb) = (on_a.node_id().to_string(), on_b.node_id().to_string());
    for c in [&ca, &cb] {
        for id in [&ida, &idb] {
            wait_for("every node on every daemon", async || {
                node(c, &g, id).await["sync_status"] == "IN_SYNC"
            })
            .await;
        }
    }
    on_a.close().await;
    on_b.close().await;
}

/// A certificate's fingerprint differs each run: `blake3:…` in its place.
fn without_fingerprints(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("blake3:") {
        out.push_str(&rest[..at + 7]);
        out.push('…');
        rest = rest[at + 7..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_hit_a_limit_of_their_own_and_the_socket_api_stays_up() {
    use tokio::io::AsyncReadExt;
    let cl = Cluster::start(&[
        "--cluster-max-connections",
        "3",
        "--cluster-handshake-timeout-secs",
        "600",
    ]);
    let c = cl.daemon.client();
    let g = c.standard("limited").await;
    c.put_config(&g, &service("l-svc", "l.internal"))
        .await
        .expect(200);
    cl.pin(&c, &g, &cl.read("dp.crt")).await;
    // Three connections that never say anything hold every place.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(cl.addr).await.expect("tcp"));
    }
    // The fourth is closed at once, and so a data plane can't connect.
    wait_for("a connection past the limit to be closed", async || {
        let mut s = tokio::net::TcpStream::connect(cl.addr).await.expect("tcp");
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(hang_guard(), s.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    })
    .await;
    assert!(DataPlane::connect(cl.dp(&g)).await.is_err());
    // The API on the socket is not slowed down by any of it.
    c.get(&format!("{V2}/{g}")).await.expect(200);
    // Once they go, data planes get in.
    drop(idle);
    wait_for("a data plane to get in", async || {
        DataPlane::connect(cl.dp(&g)).await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_expires_while_connected_ends_the_connection_and_is_refused_after() {
    let cl = Cluster::start(&[]);
    let c = cl.daemon.client();
    let g = c.standard("expiring").await;
    c.put_config(&g, &service("e-svc", "e.internal"))
        .await
        .expect(200);
    // A pinned certificate valid for a few more seconds.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "short-lived");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let cert = params.self_signed(&key).expect("cert");
    cl.pin(&c, &g, cert.pem().as_bytes()).await;
    let mut o = cl.dp(&g);
    o.cert_pem = cert.pem().into_bytes();
    o.key_pem = key.serialize_pem().into_bytes();
    let dp = DataPlane::connect(o.clone())
        .await
        .expect("admitted while valid");
    assert!(dp.wait_until(hang_guard(), |d| d.applied() == 1).await);
    assert!(
        dp.wait_until(hang_guard(), |d| !d.is_connected()).await,
        "closed when it expired"
    );
    assert!(
        dp.events()
            .iter()
            .any(|e| matches!(e, DpEvent::Close { code: Some(1008), reason } if reason.contains("expired"))),
        "{:?}",
        dp.events()
    );
    let r = http_request(&o, b"GET /v1/outlet?node_id=a&node_hostname=b&node_version=3.10.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .expect("answer");
    assert_eq!(r.status, Some(403));
    assert!(String::from_utf8_lossy(&r.body).contains("expired"));
}

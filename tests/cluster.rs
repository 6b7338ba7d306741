//! The cluster endpoint (issue 30) against the real binary: Kong data planes
//! in hybrid mode, played by the fake data plane in `common/dataplane.rs`
//! (which follows Kong's `data_plane.lua`), over real TLS with certificates
//! made by `rgmerge cluster-cert` and by rcgen here.

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Client, Daemon, HANG_GUARD, service};
use dataplane::{DataPlane, DpEvent, DpOptions, RawWs, http_request};
use serde_json::{Value, json};

const DOMAIN: &str = "cp.example.test";

/// A daemon with its cluster endpoint open, and the certificates it and its
/// data planes use.
struct Cluster {
    daemon: Daemon,
    certs: PathBuf,
    addr: SocketAddr,
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn cluster_cert(out: &Path, dp_cn: &str) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_rgmerge"))
        .args([
            "cluster-cert",
            "--domain",
            DOMAIN,
            "--dp-cn",
            dp_cn,
            "--out",
        ])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run cluster-cert");
    assert!(status.success(), "cluster-cert failed");
}

impl Cluster {
    fn start(extra: &[&str]) -> Cluster {
        let certs = tempfile::tempdir().expect("tempdir").keep();
        cluster_cert(&certs, "kong-dp");
        let addr = free_addr();
        let mut args: Vec<String> = vec![
            "--cluster-listen".into(),
            addr.to_string(),
            "--cluster-cert".into(),
            certs.join("cluster.crt").display().to_string(),
            "--cluster-cert-key".into(),
            certs.join("cluster.key").display().to_string(),
            "--cluster-domain".into(),
            DOMAIN.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Cluster {
            daemon: Daemon::start(&args),
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

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
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
        dp.wait_until(HANG_GUARD, |d| d.applied() >= 1).await,
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
    eventually("the node in sync", async || {
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
        dp.wait_until(HANG_GUARD, |d| d.current_hash() == after)
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
    assert!(dp.wait_until(HANG_GUARD, |d| d.pongs_received() >= 3).await);
    assert_eq!(dp.received(), received, "nothing sent while in conflict");
    assert_eq!(dp.current_hash(), after);

    // A restart sends nothing less, and nothing to a node that holds the
    // current config.
    cl.daemon.terminate();
    cl.daemon.spawn();
    assert!(
        dp.wait_until(HANG_GUARD, |d| d.connects() >= 2).await,
        "{:?}",
        dp.events()
    );
    for _ in 0..3 {
        dp.ping_now().await.expect("ping");
    }
    let c = cl.daemon.client();
    eventually("the node in sync after the restart", async || {
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
        dp.wait_until(HANG_GUARD, |d| d.current_hash() == resolved)
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
        dp.wait_until(HANG_GUARD, |d| d.applied() == 1).await,
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
    assert!(dp.wait_until(HANG_GUARD, |d| d.applied() == 1).await);
    assert_eq!(dp.current_hash(), held);
    dp.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_clear_and_audited() {
    let cl = Cluster::start(&["--cluster-handshake-timeout-secs", "2"]);
    let c = cl.daemon.client();
    let (blue, _green, comp) = composite(&c).await;
    cl.pin(&c, &comp, &cl.read("dp.crt")).await;
    let other = tempfile::tempdir().expect("tempdir");
    cluster_cert(other.path(), "stranger");
    let stranger_cert = std::fs::read(other.path().join("dp.crt")).expect("cert");
    let stranger_key = std::fs::read(other.path().join("dp.key")).expect("key");

    let outlet = "GET /v1/outlet?node_id=4e7b1e1c-0000-4000-8000-000000000001&node_hostname=dp&node_version=3.10.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    // (what, options, request, status, words in the answer)
    type Setup = Box<dyn Fn(&mut DpOptions)>;
    let cases: Vec<(&str, Setup, String, u16, &str)> = vec![
        (
            "no client certificate",
            Box::new(|o| {
                o.cert_pem.clear();
                o.key_pem.clear();
            }),
            outlet.into(),
            401,
            "client certificate is required",
        ),
        (
            "a certificate not pinned",
            Box::new(move |o| {
                o.cert_pem = stranger_cert.clone();
                o.key_pem = stranger_key.clone();
            }),
            outlet.into(),
            403,
            "not pinned",
        ),
        (
            "a server name naming no group",
            Box::new(|o| o.server_name = format!("0000000000.{DOMAIN}")),
            outlet.into(),
            404,
            "names no control plane",
        ),
        (
            "a member of a composite",
            Box::new({
                let b = blue.clone();
                move |o| o.server_name = format!("{}.{DOMAIN}", label(&b))
            }),
            outlet.into(),
            403,
            "member of a composite",
        ),
        (
            "no node_id",
            Box::new(|_| {}),
            outlet.replace("node_id=4e7b1e1c-0000-4000-8000-000000000001&", ""),
            400,
            "node_id",
        ),
        (
            "cluster RPC",
            Box::new(|_| {}),
            outlet.replace("/v1/outlet", "/v2/outlet"),
            404,
            "cluster RPC",
        ),
        (
            "wRPC probe",
            Box::new(|_| {}),
            "HEAD /v1/wrpc HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            404,
            "",
        ),
        (
            "another path",
            Box::new(|_| {}),
            outlet.replace("/v1/outlet", "/admin"),
            404,
            "not found",
        ),
    ];
    for (what, setup, request, status, words) in cases {
        let mut o = cl.dp(&comp);
        setup(&mut o);
        let r = http_request(&o, request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            r.status,
            Some(status),
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            String::from_utf8_lossy(&r.body).contains(words),
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
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
        let n = tokio::time::timeout(HANG_GUARD, s.read(&mut buf))
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
    assert!(dp.wait_until(HANG_GUARD, |d| d.applied() == 1).await);
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
        dp.wait_until(HANG_GUARD, |d| !d.is_connected()).await,
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
        "{}plugins:\n  - name: rate-limiting\n    config:\n      minute: 5\n      policy: local\n",
        service("svc", "svc.internal")
    );
    c.put_config(&g, &cfg).await.expect(200);
    cl.pin(&c, &g, &cl.read("dp.crt")).await;

    // No rate-limiting on this data plane: nothing is sent, and its record says why.
    let mut o = cl.dp(&g);
    o.plugins.retain(|(n, _)| n != "rate-limiting");
    let lacking = DataPlane::connect(o).await.expect("connect");
    let id = lacking.node_id().to_string();
    eventually("the node held back", async || {
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

    // A newer major version gets nothing either.
    let mut o = cl.dp(&g);
    o.version = "4.0.0".into();
    let newer = DataPlane::connect(o).await.expect("connect");
    let id = newer.node_id().to_string();
    eventually("the newer node held back", async || {
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
        older.wait_until(HANG_GUARD, |d| d.applied() == 1).await,
        "{:?}",
        older.events()
    );
    let id = older.node_id().to_string();
    eventually("the older node in sync with its form", async || {
        node(&c, &g, &id).await["sync_status"] == "IN_SYNC"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pki_groups_admit_certificates_their_ca_signed_and_refuse_expired_pins() {
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
    assert!(dp.wait_until(HANG_GUARD, |d| d.applied() == 1).await);
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
        match ws.recv_frame(HANG_GUARD).await {
            Ok(Some(f)) if f.opcode == 0x8 => return f.close_code,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

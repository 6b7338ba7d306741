//! Whole backups, online (issue 27): `rgmerge export --socket` asks a
//! running daemon for one point in time (`GET /v2/backup`, org admins only)
//! and writes every record — groups, configs, what each served, pins, teams
//! with their token and session hashes and grants, pinned certificates,
//! nodes, the audit log — with a manifest of counts and digests. `import`
//! puts it all back or nothing. Each store to each store: the restored
//! daemon exports the same records field by field, and every token,
//! session, grant, certificate, pin and served snapshot works as before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::browser::{csrf, get, get_with, header_of, post_form, set_cookie, tcp};
use crate::common::dataplane::{DataPlane, DpOptions};
use crate::common::postgres::PgServer;
use crate::common::{Client, Daemon, V2, hang_guard, rgmerge, rgmerge_exit, rgmerge_ok, service};

const DOMAIN: &str = "cp.example.test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Redb,
    Postgres,
}

/// The stores a test uses: PostgreSQL's server when one of them is it.
struct Stores {
    pg: Option<PgServer>,
}

impl Stores {
    /// `None` (the test is skipped, said by `PgServer`) when PostgreSQL is
    /// needed and not installed.
    fn new(kinds: &[Store]) -> Option<Stores> {
        if !kinds.contains(&Store::Postgres) {
            return Some(Stores { pg: None });
        }
        Some(Stores {
            pg: Some(PgServer::start()?),
        })
    }

    /// A new database.
    fn database(&self, db: &str) -> String {
        self.pg.as_ref().expect("PostgreSQL").database(db)
    }

    /// How `rgmerge export` reaches the state of `d` (of `kind`, on
    /// database `db`) without the daemon.
    fn offline(&self, kind: Store, d: &Daemon, db: &str) -> [String; 2] {
        match kind {
            Store::Redb => ["--data-dir".into(), path_str(&d.data)],
            Store::Postgres => [
                "--store".into(),
                self.pg.as_ref().expect("PostgreSQL").url(db),
            ],
        }
    }

    /// A daemon on a new store of `kind`, with the page on `--http`.
    fn daemon(&self, kind: Store, db: &str) -> Daemon {
        match kind {
            Store::Redb => Daemon::builder().http().start(),
            Store::Postgres => Daemon::builder()
                .http()
                .postgres(&self.database(db))
                .start(),
        }
    }

    /// `export` imported into a new store of `kind`, and a daemon on it with
    /// the page and the cluster endpoint (`certs`).
    fn restored(&self, kind: Store, db: &str, export: &Path, certs: &Path) -> Daemon {
        let export = path_str(export);
        match kind {
            Store::Redb => {
                let mut d = Daemon::builder().http().cluster(certs, DOMAIN).start();
                assert!(d.stop().success());
                std::fs::remove_dir_all(&d.data).expect("remove the fresh store");
                rgmerge_ok(&["import", "--data-dir", &path_str(&d.data), &export]);
                d.restart();
                d
            }
            Store::Postgres => {
                let url = self.database(db);
                rgmerge_ok(&["import", "--store", &url, &export]);
                Daemon::builder()
                    .http()
                    .cluster(certs, DOMAIN)
                    .postgres(&url)
                    .start()
            }
        }
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// `rgmerge export --socket` of `d` into `out`.
fn export(d: &Daemon, out: &Path) {
    rgmerge_ok(&["export", "--socket", &path_str(&d.socket), &path_str(out)]);
}

/// An export's files as the manifest lists them: JSON parts parsed, the
/// audit log a line each, configs as text; and the manifest itself.
fn read_export(dir: &Path) -> (Value, BTreeMap<String, Value>) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("manifest.json is JSON");
    let mut files = BTreeMap::new();
    for part in manifest["parts"].as_array().expect("parts") {
        let name = part["file"].as_str().expect("file");
        let text = std::fs::read_to_string(dir.join(name)).expect("a listed file");
        let v = if name.ends_with(".jsonl") {
            Value::Array(
                text.lines()
                    .map(|l| serde_json::from_str(l).expect("a JSON line"))
                    .collect(),
            )
        } else if name.ends_with(".json") && !name.contains('/') {
            serde_json::from_str(&text).expect("a JSON part")
        } else {
            Value::String(text)
        };
        files.insert(name.to_string(), v);
    }
    (manifest, files)
}

/// The team records of an export, by name.
fn teams(files: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    files["teams.json"]["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .map(|t| (t["name"].as_str().expect("name").to_string(), t.clone()))
        .collect()
}

/// Signs in on the `--http` port with `token`: the `rgm_session=…` pair.
async fn sign_in(port: u16, token: &str) -> String {
    let host = format!("127.0.0.1:{port}");
    let (status, page) = tcp(port, get("/ui/login", &host)).await;
    assert_eq!(status, 200, "{page}");
    let login = set_cookie(&page, "rgm_login")
        .split(';')
        .next()
        .expect("pair");
    let body = format!("csrf={}&next=%2Fui%2Fgroups&token={token}", csrf(&page));
    let (status, answer) = tcp(port, post_form("/ui/login", &host, login, &body)).await;
    assert_eq!(status, 303, "{answer}");
    assert_eq!(header_of(&answer, "location"), ["/ui/groups"]);
    set_cookie(&answer, "rgm_session")
        .split(';')
        .next()
        .expect("pair")
        .to_string()
}

/// The groups page's status for `session` (200 signed in, else 303).
async fn groups_page(port: u16, session: &str) -> u16 {
    let host = format!("127.0.0.1:{port}");
    tcp(port, get_with("/ui/groups", &host, session)).await.0
}

/// What a state is made of, and the credentials that must work after it
/// is restored.
struct Made {
    groups: Vec<String>,
    comp: String,
    blue: String,
    yellow: String,
    viewer: String,
    revoked: String,
    session: String,
}

/// Every kind of record, on `d`: a composite of two members, a kept
/// version of a member pinned, teams with uids, gids, tokens (one revoked) and grants,
/// a page session, a node, a pinned data-plane certificate, and audit
/// entries of writes and of a refusal.
async fn make_state(d: &Daemon, dp_cert: &[u8]) -> Made {
    let c = d.client();
    let (comp, [blue, yellow]) = c
        .composite_with(
            "shared",
            [
                ("blue", &service("a", "a.internal")),
                ("yellow", &service("b", "b.internal")),
            ],
        )
        .await;
    c.put_config(&blue, &service("a2", "a2.internal"))
        .await
        .expect(200);
    // Blue serves its version 2 again, as version 4.
    c.put_json(&format!("{V2}/{blue}/snapshot/pin"), &json!({"version": 2}))
        .await
        .expect(200);
    c.team("ops", &[4242], &[4343]).await;
    c.grant("ops", &yellow, "editor").await;
    let viewer = c.team_token("ci", &[(&blue, "viewer")]).await;
    let (revoked, revoked_id) = c.token("ci", json!({"name": "old"})).await;
    c.delete(&format!("/v2/teams/ci/tokens/{revoked_id}"))
        .await
        .expect(204);
    let session = sign_in(d.http_port.expect("--http"), &viewer).await;
    // Runtime instances connect to the composite.
    c.heartbeat(&comp, "node-1", "0123456789abcdef0123456789abcdef")
        .await
        .expect(200);
    c.post_json(
        &format!("{V2}/{comp}/dp-client-certificates"),
        &json!({"cert": String::from_utf8_lossy(dp_cert)}),
    )
    .await
    .expect(201);
    // A refusal, audited.
    Client::with_token(&d.socket, &viewer)
        .patch_json(&format!("{V2}/{blue}"), &json!({"labels": {"x": "y"}}))
        .await
        .expect(403);
    let groups = c.get_json(V2).await["data"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["id"].as_str().expect("id").to_string())
        .collect();
    Made {
        groups,
        comp,
        blue,
        yellow,
        viewer,
        revoked,
        session,
    }
}

/// Each group's served snapshot: (version, bytes).
async fn served(c: &Client, groups: &[String]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for g in groups {
        let r = c.snapshot(g).await.expect(200);
        out.push((r.version(), r.text()));
    }
    out
}

/// A data plane with the pinned certificate connects to `d`'s cluster
/// endpoint for `group` and gets what `d` serves it.
async fn data_plane_connects(d: &Daemon, certs: &Path, group: &str) {
    let read = |n: &str| std::fs::read(certs.join(n)).expect("cert file");
    let label: String = group.replace('-', "").chars().take(10).collect();
    let mut opts = DpOptions::new(
        d.cluster_addr().expect("cluster endpoint"),
        format!("{label}.{DOMAIN}"),
        read("ca.crt"),
        read("dp.crt"),
        read("dp.key"),
    );
    opts.hash_fn = Some(|v| {
        let (hash, hashes) = rgmerge::cluster::hash::config_hash(v);
        (hash, serde_json::to_value(hashes).expect("hashes"))
    });
    let dp = DataPlane::connect(opts)
        .await
        .expect("the pinned certificate is admitted");
    assert!(
        dp.wait_until(hang_guard(), |p| p.applied() >= 1).await,
        "no config: {:?}",
        dp.events()
    );
    let expected = d
        .client()
        .get(&format!("{V2}/{group}/expected-config-hash"))
        .await
        .expect(200)
        .json();
    assert_eq!(json!(dp.current_hash()), expected["expected_hash"]);
}

/// Export from `from`, import into `to`, and hold the restored daemon to
/// the original: the same records field by field, and every capability.
async fn round_trip(from: Store, to: Store) {
    let Some(stores) = Stores::new(&[from, to]) else {
        return;
    };
    let certs = tempfile::tempdir().expect("tempdir");
    rgmerge_ok(&[
        "cluster-cert",
        "--domain",
        DOMAIN,
        "--dp-cn",
        "kong-dp",
        "--out",
        &path_str(certs.path()),
    ]);
    let dp_cert = std::fs::read(certs.path().join("dp.crt")).expect("dp.crt");
    let source = stores.daemon(from, "source");
    let made = make_state(&source, &dp_cert).await;
    let before = served(&source.client(), &made.groups).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first");
    export(&source, &first);
    let (manifest, files) = read_export(&first);
    assert_eq!(manifest["format"], 2, "{manifest}");
    assert_eq!(manifest["rgmerge"], env!("CARGO_PKG_VERSION"));
    assert!(manifest["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    for part in manifest["parts"].as_array().expect("parts") {
        let name = part["file"].as_str().expect("file");
        let bytes = std::fs::read(first.join(name)).expect("file");
        assert_eq!(
            part["sha256"],
            json!(rgmerge::transfer::sha256_hex(&bytes)),
            "{name}"
        );
    }
    // Everything is in it, and no secret in the clear.
    let count = |name: &str| {
        manifest["parts"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["file"] == name))
            .map(|p| p["count"].clone())
    };
    assert_eq!(count("groups.json"), Some(json!(4)));
    assert_eq!(count("teams.json"), Some(json!(3)), "org-admins, ops, ci");
    assert_eq!(count("certificates.json"), Some(json!(1)));
    assert_eq!(count("nodes.json"), Some(json!(1)));
    assert!(
        count("audit.jsonl")
            .and_then(|n| n.as_u64())
            .is_some_and(|n| n >= 10)
    );
    let t = teams(&files);
    assert_eq!(t["ci"]["tokens"].as_array().map(Vec::len), Some(2));
    assert_eq!(t["ci"]["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(t["ops"]["uids"], json!([4242]));
    assert_eq!(t["ops"]["gids"], json!([4343]));
    assert_eq!(t["ops"]["grants"][&made.yellow], "editor");
    let everything = std::fs::read_dir(&first)
        .expect("dir")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    for secret in [&made.viewer, &made.revoked] {
        assert!(
            !everything.contains(secret.as_str()),
            "a token in the clear"
        );
    }
    let cookie = made.session.split_once('=').expect("pair").1;
    assert!(
        !everything.contains(cookie),
        "a session cookie in the clear"
    );

    let restored = stores.restored(to, "restored", &first, certs.path());
    // The restored daemon's own export holds the same records.
    let second = dir.path().join("second");
    export(&restored, &second);
    let (manifest2, files2) = read_export(&second);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        files2.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, v) in &files {
        assert_eq!(v, &files2[name], "{name} after {from:?} → {to:?}");
    }
    assert_eq!(manifest["parts"], manifest2["parts"]);

    // Every capability works as before.
    let rc = restored.client();
    assert_eq!(served(&rc, &made.groups).await, before, "served snapshots");
    let viewer = Client::with_token(&restored.socket, &made.viewer);
    assert_eq!(viewer.get_json("/v2/me").await["teams"], json!(["ci"]));
    viewer.get(&format!("{V2}/{}", made.blue)).await.expect(200);
    viewer
        .patch_json(
            &format!("{V2}/{}", made.blue),
            &json!({"labels": {"x": "y"}}),
        )
        .await
        .expect(403);
    viewer
        .get(&format!("{V2}/{}", made.yellow))
        .await
        .expect(403);
    Client::with_token(&restored.socket, &made.revoked)
        .get("/v2/me")
        .await
        .expect(401);
    let port = restored.http_port.expect("--http");
    assert_eq!(groups_page(port, &made.session).await, 200, "signed in");
    let history = rc
        .get_json(&format!("{V2}/{}/snapshot/history", made.blue))
        .await;
    assert_eq!(history["pin"]["version"], 2, "{history}");
    data_plane_connects(&restored, certs.path(), &made.comp).await;
    restored.assert_no_panic();

    // The same export without the daemon: the same files, byte for byte.
    let mut source = source;
    assert!(source.stop().success());
    source.assert_no_panic();
    let offline = dir.path().join("offline");
    let [flag, value] = stores.offline(from, &source, "source");
    rgmerge_ok(&["export", &flag, &value, &path_str(&offline)]);
    let (manifest3, files3) = read_export(&offline);
    for (name, v) in &files {
        assert_eq!(Some(v), files3.get(name), "{name} exported offline");
    }
    assert_eq!(manifest["parts"], manifest3["parts"]);
}

#[tokio::test]
async fn redb_to_redb_restores_every_record_and_capability() {
    round_trip(Store::Redb, Store::Redb).await;
}

#[tokio::test]
async fn postgres_to_postgres_restores_every_record_and_capability() {
    round_trip(Store::Postgres, Store::Postgres).await;
}

#[tokio::test]
async fn redb_to_postgres_restores_every_record_and_capability() {
    round_trip(Store::Redb, Store::Postgres).await;
}

#[tokio::test]
async fn postgres_to_redb_restores_every_record_and_capability() {
    round_trip(Store::Postgres, Store::Redb).await;
}

/// Sequential writes of one kind, counted as acknowledged.
async fn keep_writing(c: Client, stop: Arc<AtomicBool>, what: Write) -> u64 {
    let mut done = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let status = match &what {
            Write::Config(group, prefix) => {
                let name = format!("{prefix}{}", done + 1);
                c.put_config(group, &service(&name, "w.internal"))
                    .await
                    .status
            }
            // A team holds at most 100 live tokens.
            Write::Token(_) if done == 90 => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            Write::Token(team) => {
                c.post_json(&format!("/v2/teams/{team}/tokens"), &json!({"name": "w"}))
                    .await
                    .status
            }
        };
        assert!(matches!(status, 200 | 201), "write refused: {status}");
        done += 1;
    }
    done
}

enum Write {
    /// A config of this group whose one service is `<prefix><n>`, n = 1, 2, …
    Config(String, &'static str),
    /// A token of this team (90 at most).
    Token(String),
}

/// The acknowledged writes of `method path` in an export's audit log.
fn audited(files: &BTreeMap<String, Value>, method: &str, path: &str) -> u64 {
    files["audit.jsonl"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["method"] == method && e["path"] == path && e["result"] == "ok")
        .count() as u64
}

/// The n of a config's one service `<prefix><n>`.
fn nth(config: &str, prefix: &str) -> u64 {
    let at = config
        .find(&format!("name: {prefix}"))
        .expect("the service")
        + 6
        + prefix.len();
    config[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a number")
}

/// Exports taken while three writers go on are each of one point in time:
/// the n-th config of a group is there with exactly n audited writes of it,
/// the composite serves exactly its members' configs, and the team has
/// exactly as many tokens as audited issues.
async fn consistent_while_writing(kind: Store) {
    let Some(stores) = Stores::new(&[kind]) else {
        return;
    };
    let d = stores.daemon(kind, "busy");
    let c = d.client();
    let (comp, [blue, yellow]) = c
        .composite_with(
            "shared",
            [
                ("blue", &service("b0", "b.internal")),
                ("yellow", &service("y0", "y.internal")),
            ],
        )
        .await;
    c.team("ci", &[], &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [
        Write::Config(blue.clone(), "b"),
        Write::Config(yellow.clone(), "y"),
        Write::Token("ci".into()),
    ]
    .into_iter()
    .map(|w| tokio::spawn(keep_writing(d.client(), stop.clone(), w)))
    .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut exports = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let out = dir.path().join(format!("e{i}"));
        let (sock, o) = (path_str(&d.socket), path_str(&out));
        tokio::task::spawn_blocking(move || rgmerge_ok(&["export", "--socket", &sock, &o]))
            .await
            .expect("export");
        exports.push(out);
    }
    stop.store(true, Ordering::SeqCst);
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.expect("writer"));
    }
    assert!(
        written.iter().all(|n| *n > 0),
        "writes went on: {written:?}"
    );
    for out in &exports {
        let (_, files) = read_export(out);
        let groups = files["groups.json"]["groups"].as_array().expect("groups");
        let group = |id: &str| {
            groups
                .iter()
                .find(|g| g["id"] == id)
                .expect("the group")
                .clone()
        };
        for (id, prefix) in [(&blue, "b"), (&yellow, "y")] {
            let g = group(id);
            let file = g["config"].as_str().expect("config file");
            let n = nth(files[file].as_str().expect("config"), prefix);
            let path = format!("{V2}/{id}/config");
            // The initial config is write 0, made before the writers.
            assert_eq!(
                audited(&files, "PUT", &path),
                n + 1,
                "{prefix}{n} in {out:?}"
            );
        }
        let comp = group(&comp);
        let mut sources: Vec<String> = comp["snapshot"]["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .map(|s| s["file"].to_string())
            .collect();
        sources.sort();
        let mut configs = vec![
            group(&blue)["config"].to_string(),
            group(&yellow)["config"].to_string(),
        ];
        configs.sort();
        assert_eq!(
            sources, configs,
            "the composite serves its members' configs of the same moment"
        );
        let tokens = teams(&files)["ci"]["tokens"].as_array().map_or(0, Vec::len) as u64;
        assert_eq!(tokens, audited(&files, "POST", "/v2/teams/ci/tokens"));
    }
    d.assert_no_panic();
}

#[tokio::test]
async fn an_online_export_under_writes_is_one_point_in_time_redb() {
    consistent_while_writing(Store::Redb).await;
}

#[tokio::test]
async fn an_online_export_under_writes_is_one_point_in_time_postgres() {
    consistent_while_writing(Store::Postgres).await;
}

#[tokio::test]
async fn only_an_org_admin_may_take_a_backup() {
    let d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    let dir = tempfile::tempdir().expect("tempdir");
    for role in ["viewer", "editor", "admin", "node"] {
        let token = c.team_token(&format!("t-{role}"), &[(&blue, role)]).await;
        let out = dir.path().join(role);
        let o = rgmerge_exit(
            &[
                "export",
                "--socket",
                &path_str(&d.socket),
                "--token",
                &token,
                &path_str(&out),
            ],
            2,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("refused the backup (403)"), "{role}: {err}");
        assert!(!out.exists(), "{role}: nothing written");
        Client::with_token(&d.socket, &token)
            .get("/v2/backup")
            .await
            .expect(403);
    }
    let admin = c.token("org-admins", json!({"name": "backup"})).await.0;
    let out = dir.path().join("admin");
    rgmerge_ok(&[
        "export",
        "--socket",
        &path_str(&d.socket),
        "--token",
        &admin,
        &path_str(&out),
    ]);
    assert!(out.join("manifest.json").exists());
}

/// Copies the export directory `from` to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// Rewrites `manifest.json` in `dir` with `f`.
fn edit_manifest(dir: &Path, f: impl FnOnce(&mut Value)) {
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    f(&mut m);
    std::fs::write(&path, serde_json::to_vec_pretty(&m).expect("json")).expect("write");
}

fn append(file: PathBuf, bytes: &str) {
    let mut text = std::fs::read_to_string(&file).expect("read");
    text.push_str(bytes);
    std::fs::write(file, text).expect("write");
}

#[tokio::test]
async fn a_damaged_or_partial_export_changes_nothing_and_says_which_file_and_why() {
    let d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    c.put_config(&blue, &service("a", "a.internal"))
        .await
        .expect(200);
    c.heartbeat(&blue, "node-1", "0123456789abcdef0123456789abcdef")
        .await
        .expect(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good");
    export(&d, &good);
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str); 8] = [
        (
            "a changed config",
            |d| append(d.join("members/blue.yaml"), "# x\n"),
            "members/blue.yaml: its SHA-256 is",
        ),
        (
            "a changed audit log",
            |d| append(d.join("audit.jsonl"), "\n"),
            "audit.jsonl: its SHA-256 is",
        ),
        (
            "a missing part",
            |d| std::fs::remove_file(d.join("teams.json")).expect("rm"),
            "teams.json: missing (manifest.json lists it)",
        ),
        (
            "a missing config",
            |d| std::fs::remove_file(d.join("members/blue.yaml")).expect("rm"),
            "members/blue.yaml: missing (manifest.json lists it)",
        ),
        (
            "no manifest",
            |d| std::fs::remove_file(d.join("manifest.json")).expect("rm"),
            "manifest.json: missing, though",
        ),
        (
            "an unknown format",
            |d| edit_manifest(d, |m| m["format"] = json!(99)),
            "manifest.json: format version 99 is unknown",
        ),
        (
            "a part the manifest leaves out",
            |d| {
                edit_manifest(d, |m| {
                    if let Some(ps) = m["parts"].as_array_mut() {
                        ps.retain(|p| p["file"] != "nodes.json");
                    }
                })
            },
            "nodes.json: manifest.json lists no such part",
        ),
        (
            "a count that does not hold",
            |d| {
                edit_manifest(d, |m| {
                    for p in m["parts"].as_array_mut().into_iter().flatten() {
                        if p["file"] == "nodes.json" {
                            p["count"] = json!(5);
                        }
                    }
                })
            },
            "nodes.json: holds 1 record(s), manifest.json says 5",
        ),
    ];
    for (name, damage, says) in cases {
        let bad = dir.path().join(name.replace(' ', "-"));
        copy_dir(&good, &bad);
        damage(&bad);
        let data = dir.path().join(format!("{}-data", name.replace(' ', "-")));
        let o = rgmerge(&["import", "--data-dir", &path_str(&data), &path_str(&bad)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        // Nothing was written: the good export still goes in.
        rgmerge_ok(&["import", "--data-dir", &path_str(&data), &path_str(&good)]);
    }
}

#[tokio::test]
async fn an_export_from_before_manifests_still_imports_its_groups() {
    let mut d = Daemon::start();
    let c = d.client();
    let blue = c.standard("blue").await;
    c.put_config(&blue, &service("a", "a.internal"))
        .await
        .expect(200);
    let before = served(&c, std::slice::from_ref(&blue)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old");
    export(&d, &old);
    // What format 1 wrote: groups.json, members/, blobs/, bundle.yaml.
    for part in [
        "manifest.json",
        "teams.json",
        "certificates.json",
        "nodes.json",
        "audit.jsonl",
    ] {
        std::fs::remove_file(old.join(part)).expect("rm");
    }
    assert!(d.stop().success());
    std::fs::remove_dir_all(&d.data).expect("remove the store");
    rgmerge_ok(&["import", "--data-dir", &path_str(&d.data), &path_str(&old)]);
    d.restart();
    assert_eq!(served(&d.client(), &[blue]).await, before);
    // Access control is set up afresh: the user running the daemon is org admin.
    assert_eq!(
        d.client().get_json("/v2/me").await["teams"],
        json!(["org-admins"])
    );
}

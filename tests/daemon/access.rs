//! Access control (issue 13, README: Access control) against the real daemon on a real
//! socket: real different Unix users (curl run as another uid/gid; the tests
//! run as root, as CI does) and bearer tokens. The role × endpoint matrix is
//! one table checked by one helper; the edge cases follow it.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::common::{Client, Daemon, Resp, hang_guard, service};
use serde_json::{Value, json};

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// One request sent by curl running as `uid`:`gid` (a real other Unix user).
fn as_user(d: &Daemon, uid: u32, gid: u32, method: &str, path: &str, body: Option<&str>) -> Resp {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--unix-socket"])
        .arg(&d.socket)
        .args(["-X", method, "-w", "\n%{http_code} %{content_type}"]);
    if let Some(b) = body {
        let ct = if b.starts_with('{') {
            "application/json"
        } else {
            "application/yaml"
        };
        cmd.args(["-H", &format!("content-type: {ct}"), "--data-binary", "@-"]);
    }
    cmd.arg(format!("http://localhost{path}"))
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("curl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(b) = body {
            stdin.write_all(b.as_bytes()).expect("body");
        }
    }
    let out = child.wait_with_output().expect("curl ran");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, ct) = last.split_once(' ').unwrap_or((last, ""));
    let status: u16 = code.parse().unwrap_or_else(|_| {
        panic!(
            "curl as uid {uid}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(ct) {
        headers.insert("content-type", v);
    }
    Resp {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// A 401/403 is `problem+json` with a reason.
fn assert_problem(r: &Resp, status: u16, needle: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    if what.contains("/core-entities/") {
        // The gateway's form there: `{message, status}`.
        let v = r.json();
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{what}: message {message:?} lacks {needle:?}"
        );
        assert_eq!(v["status"], json!(status), "{what}");
        return;
    }
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json")),
        "{what}: content type {:?}",
        r.header("content-type")
    );
    let v = r.json();
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "{what}: detail {detail:?} lacks {needle:?}"
    );
    assert_eq!(v["status"], json!(status), "{what}");
    assert!(
        v["instance"].as_str().is_some_and(|i| i.starts_with('/')),
        "{what}"
    );
}

static SEQ: AtomicUsize = AtomicUsize::new(0);
fn uniq(p: &str) -> String {
    format!("{p}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

// ---- the role × endpoint matrix ----

/// Who calls: a team per role (each with that role on the row's groups and
/// `viewer` on `X`), a team with no grants, a uid in no team, and root (the
/// user who started the daemon: org admin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Viewer,
    Editor,
    Admin,
    Node,
    Outsider,
    Stranger,
    Root,
}

const WHO: [Who; 7] = [
    Who::Viewer,
    Who::Editor,
    Who::Admin,
    Who::Node,
    Who::Outsider,
    Who::Stranger,
    Who::Root,
];

impl Who {
    fn uid(self) -> u32 {
        match self {
            Who::Viewer => 2101,
            Who::Editor => 2102,
            Who::Admin => 2103,
            Who::Node => 2104,
            Who::Outsider => 2105,
            Who::Stranger => 2106,
            Who::Root => 0,
        }
    }
    fn team(self) -> Option<&'static str> {
        match self {
            Who::Viewer => Some("m-viewer"),
            Who::Editor => Some("m-editor"),
            Who::Admin => Some("m-admin"),
            Who::Node => Some("m-node"),
            Who::Outsider => Some("m-outsider"),
            Who::Stranger | Who::Root => None,
        }
    }
    fn role(self) -> Option<&'static str> {
        match self {
            Who::Viewer => Some("viewer"),
            Who::Editor => Some("editor"),
            Who::Admin => Some("admin"),
            Who::Node => Some("node"),
            _ => None,
        }
    }
}

/// Every route of the route table has a row, or (core entities, about two
/// hundred routes of a few kinds) a row of a route with the same method,
/// handler and need: a route can't be added without its rights being tried.
#[test]
fn every_route_has_a_row() {
    use rgmerge::server::{ROUTES, route_of};
    let text = std::fs::read_to_string(matrix_file()).expect("matrix.txt");
    let covered: Vec<&rgmerge::server::Route> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let row = parse_row(l);
            let path = ["{S}", "{C}", "{X}", "{M}"]
                .iter()
                .fold(row.path.clone(), |p, k| {
                    p.replace(k, "7b1f2cf4-2a5b-4e3c-9d0e-5f6a7b8c9d0e")
                });
            let path = path.replace("{N}", "n1").replace("{name}", "x");
            let method = axum::http::Method::from_bytes(row.method.as_bytes()).expect("method");
            let template = route_of(&method, path.split('?').next().unwrap_or("")).template?;
            ROUTES
                .iter()
                .find(|r| r.template == template && r.method == row.method)
        })
        .collect();
    let mut missing = Vec::new();
    for r in ROUTES {
        let alike = |c: &&&rgmerge::server::Route| {
            c.method == r.method && c.handler == r.handler && c.need == r.need
        };
        let has = covered.contains(&r)
            || ((r.template.contains("/core-entities/") || r.template.contains("/config-stores"))
                && covered.iter().any(|c| alike(&c)));
        if !has {
            missing.push(format!("{} {}", r.method, r.template));
        }
    }
    assert!(
        missing.is_empty(),
        "routes without a row in matrix.txt:\n{}",
        missing.join("\n")
    );
}

/// The table: `fixtures/access/matrix.txt` (its header says how to read it).
fn matrix_file() -> std::path::PathBuf {
    crate::common::fixtures().join("access/matrix.txt")
}

/// One row of the table: method, path and body templates, the cells in
/// [`WHO`] order, and where the cells start in its line.
struct Row {
    method: String,
    path: String,
    body: Option<String>,
    cells: Vec<String>,
}

fn parse_row(line: &str) -> Row {
    let (left, right) = line
        .split_once(" => ")
        .unwrap_or_else(|| panic!("matrix.txt: no ` => ` in {line:?}"));
    let mut parts = left.trim_end().splitn(3, ' ');
    let method = parts.next().expect("method").to_string();
    let path = parts.next().expect("path").to_string();
    let body = parts.next().map(|b| b.replace("\\n", "\n"));
    let cells: Vec<String> = right.split_whitespace().map(str::to_string).collect();
    assert_eq!(cells.len(), WHO.len(), "matrix.txt: {line}");
    Row {
        method,
        path,
        body,
        cells,
    }
}

/// Whether an answer is what a cell expects: an exact status, `P`
/// (allowed: anything but 401/403), `F` (403 with a reason) or `U` (401).
fn cell_holds(cell: &str, r: &Resp, what: &str) -> bool {
    match cell {
        "P" => r.status != 401 && r.status != 403,
        "F" | "U" => {
            let want = if cell == "F" { 403 } else { 401 };
            if r.status == want {
                assert_problem(r, want, if want == 403 { "needs " } else { "" }, what);
            }
            r.status == want
        }
        code => code.parse::<u16>().ok() == Some(r.status),
    }
}

/// The cell that says what came back.
fn cell_of(status: u16) -> String {
    match status {
        403 => "F".into(),
        401 => "U".into(),
        s => s.to_string(),
    }
}

/// Fresh groups for one cell, with the caller's team holding its role.
async fn fixture(root: &Client, who: Who) -> Vec<(&'static str, String)> {
    let s = root.standard(&uniq("s")).await;
    let c = root.composite(&uniq("c")).await;
    let x = root.standard(&uniq("x")).await;
    let m = root.standard(&uniq("m")).await;
    root.add(&c, &[&m]).await.expect(204);
    root.heartbeat(&s, "n1", "").await.expect(200);
    if let (Some(team), Some(role)) = (who.team(), who.role()) {
        root.grant(team, &s, role).await;
        root.grant(team, &c, role).await;
        if who != Who::Node {
            root.grant(team, &x, "viewer").await;
        }
    }
    vec![
        ("{S}", s),
        ("{C}", c),
        ("{X}", x),
        ("{M}", m),
        ("{N}", "n1".into()),
        ("{name}", uniq("new")),
    ]
}

fn fill(t: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(t.to_string(), |s, (k, v)| s.replace(k, v))
}

/// How the callers reach the daemon: as real other Unix users on the
/// socket, or over the network API (issue 25) with a bearer token each (the
/// stranger with none, the root with an org admin's).
enum Via {
    Users,
    Https(Vec<Option<Client>>),
}

impl Via {
    async fn call(
        &self,
        d: &Daemon,
        k: usize,
        who: Who,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Resp {
        match self {
            Via::Users => as_user(d, who.uid(), who.uid(), method, path, body),
            Via::Https(clients) => {
                // The content type as `as_user` sends it.
                let headers: &[(&str, &str)] = match body {
                    Some(b) if b.starts_with('{') => &[("content-type", "application/json")],
                    Some(_) => &[("content-type", "application/yaml")],
                    None => &[],
                };
                let body = body.map(|b| b.as_bytes().to_vec());
                match &clients[k] {
                    Some(c) => c.send(method, path, headers, body).await,
                    None => d.https_client().send(method, path, headers, body).await,
                }
            }
        }
    }
}

/// The one runner: every cell of the table, each on fresh groups. With
/// `UPDATE_EXPECT=1` the cells that do not hold are rewritten with what came back.
async fn check_matrix(d: &Daemon) {
    check_matrix_via(d, &Via::Users).await;
}

async fn check_matrix_via(d: &Daemon, via: &Via) {
    let root = d.client();
    if let Via::Users = via {
        for who in WHO {
            if let Some(t) = who.team() {
                root.team(t, &[who.uid()], &[]).await;
            }
        }
    }
    let text = std::fs::read_to_string(matrix_file()).expect("fixtures/access/matrix.txt");
    let mut failures = Vec::new();
    let mut lines_out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            lines_out.push(line.to_string());
            continue;
        }
        let mut row = parse_row(line);
        for (k, who) in WHO.iter().enumerate() {
            let vars = fixture(&root, *who).await;
            let path = fill(&row.path, &vars);
            let body = row.body.as_ref().map(|b| fill(b, &vars));
            let r = via
                .call(d, k, *who, &row.method, &path, body.as_deref())
                .await;
            let what = format!("{who:?} {} {path}", row.method);
            if !cell_holds(&row.cells[k], &r, &what) {
                failures.push(format!(
                    "{what}: want {}, got {} {}",
                    row.cells[k],
                    r.status,
                    r.text()
                ));
                row.cells[k] = cell_of(r.status);
            }
        }
        let (left, _) = line.split_once(" => ").expect("=>");
        let cells: Vec<String> = row.cells.iter().map(|c| format!("{c:>3}")).collect();
        lines_out.push(format!("{left} => {}", cells.join(" ")));
    }
    if crate::common::expect::updating() {
        std::fs::write(matrix_file(), lines_out.join("\n") + "\n").expect("rewrite matrix.txt");
    } else {
        assert!(
            failures.is_empty(),
            "matrix cells failed (UPDATE_EXPECT=1 rewrites fixtures/access/matrix.txt):\n{}",
            failures.join("\n")
        );
    }
    // Each successful write stored its audit entry in its own commit, with
    // the status `success_status` predicts for its route; a wrong prediction
    // would be corrected by a second entry, and counted.
    let metrics = root.get("/metrics").await.expect(200).text();
    let corrected: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("rgmerge_audit_corrections_total"))
        .collect();
    assert!(
        corrected.iter().all(|l| l.ends_with(" 0")),
        "a write's audit entry was stored with a status its answer did not have: {corrected:?}"
    );
}

#[tokio::test]
async fn role_by_endpoint_matrix() {
    if !is_root() {
        eprintln!("SKIPPED: the matrix runs clients as other Unix users, which needs root");
        return;
    }
    // The table's callers make hundreds of requests each: no rate limit in the way.
    let d = Daemon::builder()
        .open_to_all_users()
        .api()
        .flag("--api-rate-limit", 100_000)
        .start();
    check_matrix(&d).await;
    // The same table over the network API, each caller with a token of its
    // team: the rights are the same whichever way a request comes.
    let root = d.client();
    let mut clients = Vec::new();
    for who in WHO {
        let token = match (who, who.team()) {
            (Who::Root, _) => Some(root.token("org-admins", json!({"name": "matrix"})).await.0),
            (_, Some(team)) => Some(root.token(team, json!({"name": "matrix"})).await.0),
            (_, None) => None,
        };
        clients.push(token.map(|t| d.https_client().with_bearer(&t)));
    }
    check_matrix_via(&d, &Via::Https(clients)).await;
}

// ---- the edges ----

#[tokio::test]
async fn the_list_shows_only_groups_the_caller_may_view() {
    if !is_root() {
        return;
    }
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let mine = root.standard("mine").await;
    let _theirs = root.standard("theirs").await;
    root.team("lister", &[2201], &[]).await;
    root.grant("lister", &mine, "viewer").await;
    let r = as_user(&d, 2201, 2201, "GET", "/v2/control-planes", None).expect(200);
    let names: Vec<String> = r.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|g| g["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        vec!["mine"],
        "nobody has implicit access, the default group included"
    );
    let all = root.get_json("/v2/control-planes").await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn gid_credentials_identify_a_team() {
    if !is_root() {
        return;
    }
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let g = root.standard("ops-group").await;
    root.team("ops", &[], &[3300]).await;
    root.grant("ops", &g, "editor").await;
    let r = as_user(&d, 2301, 3300, "GET", "/v2/me", None)
        .expect(200)
        .json();
    assert_eq!(r["teams"], json!(["ops"]));
    assert_eq!(r["credential"]["kind"], json!("gid"));
    as_user(
        &d,
        2301,
        3300,
        "PUT",
        &format!("/v2/control-planes/{g}/config"),
        Some("_format_version: \"3.0\"\n"),
    )
    .expect(200);
    let r = as_user(&d, 2301, 2301, "GET", "/v2/me", None);
    assert_problem(&r, 401, "uid 2301", "same uid, other gid");
}

#[tokio::test]
async fn tokens_are_shown_once_hashed_and_die_when_revoked_expired_or_orphaned() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let g = root.standard("ci-group").await;
    root.team("ci", &[], &[]).await;
    root.grant("ci", &g, "editor").await;
    let (token, id) = root.token("ci", json!({"name": "pipeline"})).await;
    assert!(
        token.starts_with("rgmpat_") && token.len() == 7 + 64,
        "{token}"
    );
    let ci = Client::with_token(&d.socket, &token);
    let me = ci.get_json("/v2/me").await;
    assert_eq!(me["teams"], json!(["ci"]));
    assert_eq!(me["credential"]["token_id"], json!(id));
    ci.put_config(&g, &service("svc", "a.example"))
        .await
        .expect(200);
    // Listed without the secret; the store and the log never hold it.
    let listed = root.get("/v2/teams/ci/tokens").await.expect(200).text();
    assert!(!listed.contains(&token[7..]), "{listed}");
    assert!(listed.contains("rgmpat_"));
    // Revoked: 401 naming the token.
    root.delete(&format!("/v2/teams/ci/tokens/{id}"))
        .await
        .expect(204);
    let r = ci.get("/v2/me").await;
    assert_problem(&r, 401, "revoked", "revoked token");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"rgmerge\"")
    );
    // Expired.
    let (short, _) = root.token("ci", json!({"expires_in_seconds": 1})).await;
    let short_client = Client::with_token(&d.socket, &short);
    short_client.get("/v2/me").await.expect(200);
    let deadline = Instant::now() + hang_guard();
    loop {
        let r = short_client.get("/v2/me").await;
        if r.status == 401 {
            assert_problem(&r, 401, "expired", "expired token");
            break;
        }
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A token whose team was deleted.
    let (orphan, _) = root.token("ci", json!({})).await;
    root.delete("/v2/teams/ci").await.expect(204);
    let r = Client::with_token(&d.socket, &orphan).get("/v2/me").await;
    assert_problem(&r, 401, "unknown token", "deleted team's token");
    // Nothing secret in the audit log or its file.
    let log = std::fs::read_to_string(d.data.join("audit.log")).unwrap_or_default();
    root.get("/v2/audit-log").await.expect(200);
    let log = log + &std::fs::read_to_string(d.data.join("audit.log")).unwrap_or_default();
    for t in [&token, &short, &orphan] {
        assert!(!log.contains(&t[7..]), "a token reached audit.log");
    }
}

#[tokio::test]
async fn malformed_and_huge_authorization_headers_are_401_and_the_daemon_stays_up() {
    let d = Daemon::builder().open_to_all_users().start();
    let c = d.client();
    let huge = format!("Bearer rgmpat_{}", "a".repeat(16 * 1024));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("authorization", "Basic dXNlcjpwYXNz")], "Bearer"),
        (vec![("authorization", "Bearer")], "missing"),
        (vec![("authorization", "Bearer    ")], "missing"),
        (vec![("authorization", "rgmpat_abc")], "Bearer"),
        (
            vec![("authorization", "Bearer rgmpat_abc def")],
            "unknown token",
        ),
        (vec![("authorization", "Bearer nope")], "unknown token"),
        (
            vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
            "more than one",
        ),
        (vec![("authorization", huge.as_str())], "too long"),
    ];
    for (headers, needle) in &cases {
        let r = c.send("GET", "/v2/control-planes", headers, None).await;
        assert_problem(&r, 401, needle, &format!("{headers:?}"));
    }
    // Non-ASCII bytes.
    let mut raw = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    use std::io::{Read, Write};
    raw.write_all(b"GET /v2/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xff\xfe\r\nconnection: close\r\n\r\n")
        .expect("write");
    let mut out = Vec::new();
    let _ = raw.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    // A header past what hyper reads at all: refused, and the daemon lives on.
    let enormous = format!("Bearer {}", "x".repeat(1024 * 1024));
    let r = c
        .try_send(
            "GET",
            "/v2/me",
            &[("authorization", enormous.as_str())],
            None,
        )
        .await;
    if let Ok(r) = r {
        assert!(r.status == 401 || r.status == 431, "{}", r.status);
    }
    c.get("/healthz").await.expect(200);
    c.get("/v2/me").await.expect(200);
}

#[tokio::test]
async fn a_thousand_failed_attempts_are_refused_counted_and_audited() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let bad = Client::with_token(&d.socket, &format!("rgmpat_{}", "0".repeat(64)));
    for chunk in 0..10 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..100 {
            let bad = bad.clone();
            set.spawn(async move {
                bad.get(&format!("/v2/control-planes?try={chunk}-{i}"))
                    .await
                    .status
            });
        }
        while let Some(s) = set.join_next().await {
            assert_eq!(s.expect("task"), 401);
        }
    }
    // Served as ever in the middle of it.
    root.standard("still-works").await;
    let metrics = root.get("/metrics").await.expect(200).text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("rgmerge_auth_failures_total") && l.contains("unknown_token"))
        .unwrap_or_else(|| panic!("no failure counter in {metrics}"));
    let n: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("count");
    assert!(n >= 1000.0, "{line}");
    // Every refusal is in the audit log (batched; reading it flushes).
    let log = root.get_json("/v2/audit-log?page[size]=1000").await;
    let entries = log["data"].as_array().expect("data");
    let refused = entries
        .iter()
        .filter(|e| e["result"] == json!("unauthorized"))
        .count();
    assert!(
        refused >= 999,
        "{refused} refusals in the newest 1000 entries"
    );
    assert!(entries.iter().all(|e| e["status"] != json!(500)));
}

#[tokio::test]
async fn a_node_reads_its_own_snapshot_only_and_existence_never_leaks() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let a = root.standard("edge-a").await;
    let b = root.standard("edge-b").await;
    root.team("edge-nodes", &[], &[]).await;
    root.grant("edge-nodes", &a, "node").await;
    let (token, _) = root.token("edge-nodes", json!({"name": "dp"})).await;
    let node = Client::with_token(&d.socket, &token);
    node.get(&format!("/v2/control-planes/{a}/snapshot"))
        .await
        .expect(200);
    node.heartbeat(&a, "dp-1", "").await.expect(200);
    let other = node.get(&format!("/v2/control-planes/{b}/snapshot")).await;
    assert_problem(
        &other,
        403,
        "needs viewer or node",
        "another group's snapshot",
    );
    let ghost = uuid::Uuid::new_v4();
    let missing = node
        .get(&format!("/v2/control-planes/{ghost}/snapshot"))
        .await;
    assert_problem(
        &missing,
        403,
        "needs viewer or node",
        "a group that does not exist",
    );
    // The same words for both: nothing says which one exists.
    let words = |r: &Resp, id: &str| {
        r.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .replace(id, "ID")
    };
    assert_eq!(words(&other, &b), words(&missing, &ghost.to_string()));
    assert_problem(
        &node.heartbeat(&b, "dp-1", "").await,
        403,
        "needs node",
        "heartbeat elsewhere",
    );
    assert_problem(
        &node.get(&format!("/v2/control-planes/{a}/config")).await,
        403,
        "needs viewer",
        "node reads config",
    );
    // The org admin sees the real 404.
    root.get(&format!("/v2/control-planes/{ghost}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn a_members_editor_cannot_write_the_composite_or_its_membership() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let blue = root.standard("blue").await;
    let comp = root.composite("shared").await;
    root.add(&comp, &[&blue]).await.expect(204);
    root.team("blue-team", &[], &[]).await;
    root.grant("blue-team", &blue, "editor").await;
    let (token, _) = root.token("blue-team", json!({})).await;
    let c = Client::with_token(&d.socket, &token);
    c.put_config(&blue, &service("blue-svc", "b.example"))
        .await
        .expect(200);
    let r = c.put_config(&comp, &service("x", "x.example")).await;
    assert_problem(
        &r,
        403,
        "needs editor",
        "member editor writes the composite",
    );
    let r = c.remove(&comp, &[&blue]).await;
    assert_problem(&r, 403, "needs admin", "member editor changes membership");
    // Even an editor of the composite can't: composites are read-only for everyone.
    root.grant("blue-team", &comp, "editor").await;
    c.put_config(&comp, &service("x", "x.example"))
        .await
        .expect(405);
}

#[tokio::test]
async fn adding_a_member_needs_viewer_on_it() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let comp = root.composite("cc").await;
    let y = root.standard("yy").await;
    root.team("c-admins", &[], &[]).await;
    root.grant("c-admins", &comp, "admin").await;
    let (token, _) = root.token("c-admins", json!({})).await;
    let c = Client::with_token(&d.socket, &token);
    let r = c.add(&comp, &[&y]).await;
    assert_problem(
        &r,
        403,
        &format!("needs viewer on control plane {y}"),
        "add unseen member",
    );
    let ghost = uuid::Uuid::new_v4().to_string();
    let r = c.add(&comp, &[&ghost]).await;
    assert_problem(&r, 403, "needs viewer", "add a group that does not exist");
    root.grant("c-admins", &y, "viewer").await;
    c.add(&comp, &[&y]).await.expect(204);
    c.remove(&comp, &[&y]).await.expect(204);
}

#[tokio::test]
async fn a_deleted_groups_former_editors_have_nothing_left() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let g = root.standard("doomed").await;
    root.team("eds", &[], &[]).await;
    root.grant("eds", &g, "editor").await;
    let (token, _) = root.token("eds", json!({})).await;
    let c = Client::with_token(&d.socket, &token);
    c.put_config(&g, &service("s", "s.example"))
        .await
        .expect(200);
    root.delete(&format!("/v2/control-planes/{g}"))
        .await
        .expect(204);
    let grants = root.get_json("/v2/teams/eds/grants").await;
    assert_eq!(
        grants["data"],
        json!([]),
        "deleting a group removes every grant on it"
    );
    let r = c.put_config(&g, &service("s", "s.example")).await;
    assert_problem(&r, 403, "it has no role there", "former editor");
    // A new group of the same name owes them nothing.
    let again = root.standard("doomed").await;
    assert_problem(
        &c.put_config(&again, &service("s", "s.example")).await,
        403,
        "needs editor",
        "new group",
    );
    assert!(c.get_json("/v2/control-planes").await["data"] == json!([]));
}

#[tokio::test]
async fn the_global_plugin_scenario_end_to_end() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let platform = root.standard("platform").await;
    let blue = root.standard("blue").await;
    let comp = root.composite("shared").await;
    root.add(&comp, &[&platform, &blue]).await.expect(204);
    root.team("platform-team", &[], &[]).await;
    root.team("blue-team", &[], &[]).await;
    root.grant("platform-team", &platform, "editor").await;
    root.grant("blue-team", &blue, "editor").await;
    let plat = Client::with_token(&d.socket, &root.token("platform-team", json!({})).await.0);
    let bl = Client::with_token(&d.socket, &root.token("blue-team", json!({})).await.0);
    let global =
        "_format_version: \"3.0\"\nplugins:\n- name: rate-limiting\n  config:\n    minute: 5\n";
    // Only the platform team writes the platform group.
    plat.put_config(&platform, global).await.expect(200);
    for path in [
        format!("/v2/control-planes/{platform}/config"),
        format!("/v2/control-planes/{platform}/config?dry_run=true"),
    ] {
        let r = bl
            .send(
                "PUT",
                &path,
                &[("content-type", "application/yaml")],
                Some(global.as_bytes().to_vec()),
            )
            .await;
        assert_problem(&r, 403, "needs editor", "blue writes the platform group");
    }
    // Blue may write its own group; a global plugin there is the engine's call: a conflict.
    let r = bl.put_config(&blue, global).await.json();
    assert_eq!(r["state"], json!("CONFLICT"), "{r}");
    let status = root.status(&comp).await;
    assert!(
        status["item"]["conflicts"].as_array().is_some_and(|c| c
            .iter()
            .any(|x| x["type"] == json!("duplicate_global_plugin"))),
        "{status}"
    );
    // Blue can't see the platform group's config either.
    assert_problem(
        &bl.get(&format!("/v2/control-planes/{platform}/config"))
            .await,
        403,
        "needs viewer",
        "read platform",
    );
}

#[tokio::test]
async fn access_state_and_the_audit_log_survive_a_crash() {
    let mut d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let g = root.standard("kept").await;
    root.team("keepers", &[], &[]).await;
    root.grant("keepers", &g, "viewer").await;
    let (token, _) = root.token("keepers", json!({})).await;
    // Acknowledged, so durable: the write and its audit entry.
    d.kill9();
    d.restart();
    let c = Client::with_token(&d.socket, &token);
    c.get(&format!("/v2/control-planes/{g}")).await.expect(200);
    assert_problem(
        &c.put_config(&g, "_format_version: \"3.0\"\n").await,
        403,
        "it has viewer",
        "viewer writes",
    );
    let log = d
        .client()
        .get("/v2/audit-log?team=org-admins")
        .await
        .expect(200)
        .json();
    let paths: Vec<&str> = log["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    for p in [
        "/v2/teams",
        "/v2/teams/keepers/grants",
        "/v2/teams/keepers/tokens",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    // One entry per write, stored in the write's own commit with its answer.
    let statuses: Vec<(&str, u64)> = log["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| Some((e["path"].as_str()?, e["status"].as_u64()?)))
        .filter(|(p, _)| p.starts_with("/v2/teams"))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("/v2/teams/keepers/tokens", 201),
            ("/v2/teams/keepers/grants", 200),
            ("/v2/teams", 201),
        ],
        "newest first"
    );
    let file = std::fs::read_to_string(d.data.join("audit.log")).expect("audit.log");
    assert!(
        file.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
    assert!(!file.contains(&token[7..]));
}

#[tokio::test]
async fn the_audit_log_is_filtered_bounded_and_rotated() {
    let d = Daemon::builder()
        .open_to_all_users()
        .flag("--audit-max-bytes", 4096)
        .flag("--audit-max-entries", 25)
        .start();
    let root = d.client();
    let g = root.standard("audited").await;
    let before = root.get_json("/v2/audit-log?page[size]=1").await["data"][0]["time"]
        .as_str()
        .expect("time")
        .to_string();
    for i in 0..40 {
        root.post_json("/v2/teams", &json!({"name": format!("t{i}")}))
            .await
            .expect(201);
    }
    root.put_config(&g, "_format_version: \"3.0\"\n")
        .await
        .expect(200);
    root.team("denied", &[], &[]).await;
    let (token, _) = root.token("denied", json!({})).await;
    let denied = Client::with_token(&d.socket, &token);
    denied.put_config(&g, "_format_version: \"3.0\"\n").await;
    let all = root.get_json("/v2/audit-log?page[size]=1000").await;
    let n = all["data"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n <= 25 && n > 0, "{n} entries kept");
    let by_group = root.get_json(&format!("/v2/audit-log?group={g}")).await;
    let groups: Vec<&Value> = by_group["data"].as_array().expect("data").iter().collect();
    assert_eq!(groups.len(), 2, "{by_group}");
    assert!(groups.iter().all(|e| e["group"] == json!(g)));
    assert_eq!(groups[0]["result"], json!("forbidden"));
    assert_eq!(groups[0]["teams"], json!(["denied"]));
    assert_eq!(groups[0]["credential"], json!("token"));
    let by_team = root.get_json("/v2/audit-log?team=denied").await;
    assert_eq!(by_team["data"].as_array().map(Vec::len), Some(1));
    let since = root
        .get_json(&format!(
            "/v2/audit-log?since={before}&until=2999-01-01T00:00:00Z&page[size]=1000"
        ))
        .await;
    assert!(since["data"].as_array().is_some_and(|a| !a.is_empty()));
    let empty = root
        .get_json("/v2/audit-log?until=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(empty["data"], json!([]));
    root.get("/v2/audit-log?since=yesterday").await.expect(400);
    // Paging: `before` continues where a page stopped.
    let page = root.get_json("/v2/audit-log?page[size]=5").await;
    let next = page["meta"]["next_before"].as_u64().expect("next");
    let page2 = root
        .get_json(&format!("/v2/audit-log?page[size]=5&before={next}"))
        .await;
    assert!(page2["data"][0]["seq"].as_u64().is_some_and(|s| s < next));
    // The file is rotated by size.
    let size = std::fs::metadata(d.data.join("audit.log"))
        .expect("audit.log")
        .len();
    assert!(size <= 4096, "{size}");
    assert!(d.data.join("audit.log.1").exists());
}

#[tokio::test]
async fn the_admin_cli_manages_access_as_the_calling_user() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let g = root.standard("cli-group").await;
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rgmerge"))
            .arg("admin")
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .env_remove("RGMERGE_TOKEN")
            .output()
            .expect("rgmerge admin")
    };
    let out = cli(&["teams", "create", "cli-team", "--uid", "2401"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["grants", "set", "cli-team", "cli-group", "editor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&[
        "tokens",
        "issue",
        "cli-team",
        "--name",
        "laptop",
        "--expires-in-days",
        "1",
    ]);
    assert!(out.status.success());
    let issued: Value = serde_json::from_slice(&out.stdout).expect("json");
    let token = issued["token"].as_str().expect("token").to_string();
    Client::with_token(&d.socket, &token)
        .put_config(&g, "_format_version: \"3.0\"\n")
        .await
        .expect(200);
    let out = cli(&["whoami"]);
    let me: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(me["org_admin"], json!(true));
    // The token's bearer is no org admin: refused, exit 1, the reason on stderr.
    let out = Command::new(env!("CARGO_BIN_EXE_rgmerge"))
        .args(["admin", "--socket"])
        .arg(&d.socket)
        .args(["teams", "list"])
        .env("RGMERGE_TOKEN", &token)
        .output()
        .expect("rgmerge admin");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs org admin"));
    let out = cli(&["audit", "--team", "cli-team"]);
    let log: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(log["data"].as_array().is_some_and(|a| !a.is_empty()));
    // Real other users are known by uid.
    if is_root() {
        let r = as_user(&d, 2401, 2401, "GET", "/v2/me", None)
            .expect(200)
            .json();
        assert_eq!(r["teams"], json!(["cli-team"]));
    }
    let out = cli(&["teams", "delete", "org-admins"]);
    assert_eq!(out.status.code(), Some(1), "the last org admin team stays");
}

#[tokio::test]
async fn the_sidecar_follows_its_group_with_a_node_token() {
    let d = Daemon::builder().open_to_all_users().start();
    let root = d.client();
    let g = root.standard("dp-group").await;
    root.put_config(&g, &service("svc", "svc.example"))
        .await
        .expect(200);
    root.team("dp", &[], &[]).await;
    root.grant("dp", &g, "node").await;
    let (token, _) = root.token("dp", json!({})).await;
    let out = d.dir.path().join("kong.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rgmerge"))
        .args(["sidecar", "--socket"])
        .arg(&d.socket)
        .args([
            "--group",
            &g,
            "--node-id",
            "dp-1",
            "--interval",
            "1",
            "--out",
        ])
        .arg(&out)
        .env("RGMERGE_TOKEN", &token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sidecar");
    let deadline = Instant::now() + hang_guard();
    let mut synced = false;
    while Instant::now() < deadline {
        let nodes = root
            .get(&format!("/v2/control-planes/{g}/nodes"))
            .await
            .json();
        if nodes["items"][0]["sync_status"] == json!("IN_SYNC") {
            synced = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(synced, "the sidecar never synced");
    assert!(std::fs::read_to_string(&out).is_ok_and(|s| s.contains("svc.example")));
}

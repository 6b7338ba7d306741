//! The Runtime Manager page (issue 14) in a real browser: headless Chromium
//! (Debian's `chromium`) driven over WebDriver (`chromium-driver`'s
//! `chromedriver`) through fantoccini, against the real daemon serving the
//! page on `--http 127.0.0.1:PORT`.
//!
//! When Chromium or chromedriver is missing the browser test says SKIPPED
//! and passes, unless `CI` is set: there it fails (`scripts/test.sh`
//! installs both). The page's HTTP behaviour that needs no browser (forms,
//! CSRF, what TCP serves) is checked over the socket by the other tests here.
//!
//! Over TCP the page needs a session: the tests sign in with a team's token
//! (issued through the admin API on the socket, where the test user is org
//! admin), see only what the team may, and are refused without a session.
//!
//! Screenshots go to `target/test-artifacts/`; with `UPDATE_SCREENSHOT=1`
//! the composite page's is also written to `docs/runtime-manager.png` (the
//! README's). Waits are hang guards, never timing assertions.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::browser::{Browser, click_link, screenshot, wait_until};
use crate::common::{Client, Daemon, guard, hang_guard, service};
use fantoccini::Locator;
use serde_json::json;

/// The fixture: three teams' groups, a composite in conflict (with its last
/// good version served) and runtime instances in and out of sync, and a
/// second composite that merges cleanly.
struct Fixture {
    blue: String,
    yellow: String,
    green: String,
    shared: String,
    quiet: String,
}

/// The yellow team: editor on yellow, viewer on the rest of the fixture
/// (not on `default`), as a team running its own group would be.
async fn yellow_team(c: &Client, f: &Fixture) -> String {
    c.team_token(
        "yellow-team",
        &[
            (&f.yellow, "editor"),
            (&f.blue, "viewer"),
            (&f.green, "viewer"),
            (&f.shared, "viewer"),
            (&f.quiet, "viewer"),
        ],
    )
    .await
}

async fn fixture(c: &Client) -> Fixture {
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    let green = c.standard("green").await;
    let shared = c.composite("shared").await;
    let quiet = c.composite("quiet").await;
    c.label(&blue, json!({"team": "blue", "env": "prod"})).await;
    c.label(&yellow, json!({"team": "yellow", "env": "prod"}))
        .await;
    c.label(&green, json!({"team": "platform", "env": "dev"}))
        .await;
    c.label(&shared, json!({"env": "prod"})).await;
    c.put_config(&blue, &service("example_service", "blue.example"))
        .await
        .expect(200);
    c.put_config(&yellow, &service("example_service", "yellow.example"))
        .await
        .expect(200);
    c.put_config(&green, &service("green_service", "green.example"))
        .await
        .expect(200);
    c.add(&shared, &[&blue]).await.expect(204);
    // The last good version: what instances keep getting once yellow joins.
    let good = c.etag(&shared).await;
    c.add(&shared, &[&yellow]).await.expect(204);
    assert_eq!(c.status(&shared).await["item"]["state"], "CONFLICT");
    c.add(&quiet, &[&green]).await.expect(204);
    for (node, hash) in [
        ("dp-a", good.as_str()),
        ("dp-b", "an-old-hash"),
        ("dp-c", good.as_str()),
        ("dp-d", "another-old-hash"),
    ] {
        c.post_json(
            &format!("/v2/control-planes/{shared}/nodes"),
            &json!({"id": node, "hostname": format!("{node}.internal"), "ip": "10.0.0.7",
                    "version": "3.10.0.1", "config_hash": hash}),
        )
        .await
        .expect(200);
        // Distinct Last Seen values make the sort visible (ties are allowed).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Fixture {
        blue,
        yellow,
        green,
        shared,
        quiet,
    }
}

/// A daemon serving the page on a loopback port too; that port.
async fn start_daemon() -> (Daemon, u16) {
    let d = Daemon::builder()
        .http()
        .flag("--active-window-secs", 3600)
        .start();
    let port = d.http_port.expect("--http");
    (d, port)
}

// ------------------------------------------------------------ browser test

/// Column headers of a table, as the browser shows them.
async fn headers(b: &fantoccini::Client, table: &str) -> Vec<String> {
    let v = b
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0] + ' thead th'))\
               .map(th => th.textContent.replace(/[▲▼]/g, '').trim());",
            vec![json!(table)],
        )
        .await
        .expect("headers");
    serde_json::from_value(v).expect("strings")
}

/// The first cell (`th scope=row`) of each body row.
async fn row_names(b: &fantoccini::Client, table: &str) -> Vec<String> {
    let v = b
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))\
               .map(tr => tr.querySelector('th').textContent.trim());",
            vec![json!(table)],
        )
        .await
        .expect("rows");
    serde_json::from_value(v).expect("strings")
}

/// The instances rows: (last seen ms, sync code, class, sync cell text).
async fn instances(b: &fantoccini::Client) -> Vec<(u64, String, String, String)> {
    let v = b
        .execute(
            "return Array.from(document.querySelectorAll('#instances tbody tr'))\
               .map(tr => [Number(tr.dataset.lastSeenMs), tr.dataset.sync, tr.className,\
                           tr.querySelector('td.sync').textContent.trim()]);",
            vec![],
        )
        .await
        .expect("instances");
    serde_json::from_value(v).expect("rows")
}

async fn aria_sort(b: &fantoccini::Client) -> (String, String) {
    let v = b
        .execute(
            "const th = Array.from(document.querySelectorAll('#instances thead th'));\
             const of = t => th.find(x => x.textContent.includes(t)).getAttribute('aria-sort');\
             return [of('Last Seen'), of('Sync Status')];",
            vec![],
        )
        .await
        .expect("aria-sort");
    serde_json::from_value(v).expect("pair")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_manager_in_headless_chromium() {
    let (daemon, port) = start_daemon().await;
    let Some(browser) = Browser::start("runtime_manager_in_headless_chromium", daemon.dir()).await
    else {
        return;
    };
    let c = daemon.client();
    let f = fixture(&c).await;
    let token = yellow_team(&c, &f).await;
    let base = daemon.http_url();
    let outcome = tokio::time::timeout(
        hang_guard() * 4,
        browse(&browser.b, &base, &c, &f, &token, port),
    )
    .await;
    browser.close().await;
    if outcome.is_err() {
        panic!("hang guard: the browser session did not finish");
    }
}

async fn sign_in(b: &fantoccini::Client, token: &str) {
    let field = guard(
        "the token field",
        b.wait().for_element(Locator::Id("token")),
    )
    .await
    .expect("token field");
    field.send_keys(token).await.expect("type");
    click_link(b, "#sign-in").await;
}

async fn browse(
    b: &fantoccini::Client,
    base: &str,
    c: &Client,
    f: &Fixture,
    token: &str,
    port: u16,
) {
    // --- refused without a session: the sign-in page, asking where we were going
    guard("open /ui/groups", b.goto(&format!("{base}/ui/groups")))
        .await
        .expect("goto");
    wait_until(
        b,
        "the sign-in page",
        "return location.pathname === '/ui/login';",
    )
    .await;
    assert!(
        b.current_url()
            .await
            .expect("url")
            .as_str()
            .contains("next=/ui/groups")
    );
    assert!(
        b.find(Locator::Id("groups")).await.is_err(),
        "no table without a session"
    );
    sign_in(b, "rgmpat_not-a-token").await;
    let error = guard(
        "the refusal",
        b.wait().for_element(Locator::Id("login-error")),
    )
    .await
    .expect("error")
    .text()
    .await
    .expect("text");
    assert!(error.contains("Unknown token"), "{error}");
    screenshot(b, "runtime-manager-sign-in").await;
    // --- signed in: back where we were going, with an HttpOnly session cookie
    sign_in(b, token).await;
    wait_until(
        b,
        "the groups page",
        "return location.pathname === '/ui/groups';",
    )
    .await;
    let session = b
        .get_named_cookie("rgm_session")
        .await
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        format!("{:?}", session.same_site()),
        "Some(Strict)",
        "SameSite=Strict"
    );
    assert_eq!(
        b.execute("return document.cookie.includes('rgm_session');", vec![])
            .await
            .expect("js"),
        json!(false),
        "scripts can't read the session"
    );
    let who = b.find(Locator::Css("header .who")).await.expect("who");
    assert!(who.text().await.expect("text").contains("yellow-team"));

    // --- the groups table, as the seed describes it, with state badges
    assert_eq!(
        headers(b, "#groups").await,
        ["Name", "ID", "Type", "Active instances", "Labels", "State"]
    );
    let names = row_names(b, "#groups").await;
    for n in ["blue", "yellow", "green", "shared", "quiet"] {
        assert!(names.iter().any(|x| x.starts_with(n)), "{n} in {names:?}");
    }
    // Only what the team may view, as the API lists it.
    assert!(!names.iter().any(|x| x.starts_with("default")), "{names:?}");
    let shared_row = b
        .find(Locator::Css(&format!("#groups tr[data-id='{}']", f.shared)))
        .await
        .expect("shared row")
        .text()
        .await
        .expect("text");
    assert!(shared_row.contains("CONFLICT"), "{shared_row}");
    assert!(shared_row.contains("env:prod"), "{shared_row}");
    assert!(shared_row.contains(&f.shared), "{shared_row}");
    assert!(shared_row.contains("Kong Gateway"), "{shared_row}");
    let quiet_state = b
        .execute(
            "return Array.from(document.querySelectorAll('#groups tbody tr'))\
               .find(tr => tr.querySelector('th').textContent.trim() === 'quiet')\
               .lastElementChild.textContent.trim();",
            vec![],
        )
        .await
        .expect("quiet");
    assert_eq!(quiet_state, json!("✔ OK"));
    screenshot(b, "runtime-manager-groups").await;

    // --- filter by name, then by label
    let name = b
        .find(Locator::Css("input[name=name]"))
        .await
        .expect("name");
    name.send_keys("YEL").await.expect("type");
    click_link(b, "form.filter button[type=submit]").await;
    wait_until(
        b,
        "the name filter",
        "return location.search.includes('name=YEL');",
    )
    .await;
    assert_eq!(row_names(b, "#groups").await, ["yellow"]);
    guard(
        "label filter",
        b.goto(&format!("{base}/ui/groups?label=env:prod")),
    )
    .await
    .expect("goto");
    assert_eq!(row_names(b, "#groups").await, ["blue", "shared", "yellow"]);

    // --- follow the composite, then a conflict to its members
    guard("open /ui/groups", b.goto(&format!("{base}/ui/groups")))
        .await
        .expect("goto");
    click_link(b, &format!("#groups a[href='/ui/groups/{}']", f.shared)).await;
    wait_until(
        b,
        "the composite page",
        "return !!document.getElementById('conflicts');",
    )
    .await;
    let state = b.find(Locator::Id("state")).await.expect("state");
    assert!(state.text().await.expect("text").contains("CONFLICT"));
    let last_good = b
        .find(Locator::Id("last-good"))
        .await
        .expect("the last good version is said")
        .text()
        .await
        .expect("text");
    assert!(last_good.contains("version 2"), "{last_good}");
    // Members are listed in merge order (by group id), which is random here.
    let mut members = row_names(b, "#members").await;
    members.sort();
    assert_eq!(members, ["blue", "yellow"]);
    let sides = b
        .execute(
            "return Array.from(document.querySelector('article.conflict').querySelectorAll('thead th'))\
               .map(th => th.textContent.trim());",
            vec![],
        )
        .await
        .expect("sides");
    assert_eq!(sides, json!(["blue", "yellow"]));
    let conflict = b
        .find(Locator::Css("article.conflict"))
        .await
        .expect("conflict")
        .text()
        .await
        .expect("text");
    for s in [
        "duplicate_name",
        "services[0]",
        "example_service",
        "How to resolve",
    ] {
        assert!(conflict.contains(s), "{s} in {conflict}");
    }

    // --- the instances table, sorted by each sortable column
    assert_eq!(
        headers(b, "#instances").await,
        [
            "Host",
            "IP",
            "Last Seen",
            "Version",
            "Sync Status",
            "Compatibility"
        ]
    );
    let rows = instances(b).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(aria_sort(b).await, ("descending".into(), "none".into()));
    assert!(
        rows.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest first: {rows:?}"
    );
    for (_, sync, class, text) in &rows {
        // Out of sync is said in words, not only by colour.
        assert_eq!(sync == "OUT_OF_SYNC", class.contains("out-of-sync"));
        assert_eq!(
            sync == "OUT_OF_SYNC",
            text.contains("Out of Sync"),
            "{text}"
        );
    }
    screenshot(b, "runtime-manager-composite").await;
    if std::env::var("UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        let png = guard("screenshot", b.screenshot()).await.expect("png");
        std::fs::write(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/runtime-manager.png"),
            png,
        )
        .expect("docs/runtime-manager.png");
    }
    click_link(
        b,
        "#instances thead th[aria-sort] a[href*='sort=last_seen']",
    )
    .await;
    wait_until(
        b,
        "ascending Last Seen",
        "return location.search.includes('order=asc');",
    )
    .await;
    assert_eq!(aria_sort(b).await, ("ascending".into(), "none".into()));
    let rows = instances(b).await;
    assert!(
        rows.windows(2).all(|w| w[0].0 <= w[1].0),
        "oldest first: {rows:?}"
    );
    click_link(b, "#instances a[href*='sort=sync_status']").await;
    wait_until(
        b,
        "Sync Status sort",
        "return location.search.includes('sort=sync_status');",
    )
    .await;
    assert_eq!(aria_sort(b).await, ("none".into(), "descending".into()));
    let rows = instances(b).await;
    let syncs: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(syncs, ["OUT_OF_SYNC", "OUT_OF_SYNC", "IN_SYNC", "IN_SYNC"]);
    click_link(b, "#instances a[href*='sort=sync_status']").await;
    wait_until(
        b,
        "ascending Sync Status",
        "return location.search.includes('sort=sync_status') && location.search.includes('order=asc');",
    )
    .await;
    assert_eq!(aria_sort(b).await, ("none".into(), "ascending".into()));
    let rows = instances(b).await;
    let syncs: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(syncs, ["IN_SYNC", "IN_SYNC", "OUT_OF_SYNC", "OUT_OF_SYNC"]);

    // --- a conflict's member: its page lists the composites it is in
    click_link(
        b,
        &format!("article.conflict thead a[href='/ui/groups/{}']", f.yellow),
    )
    .await;
    wait_until(
        b,
        "yellow's page",
        "return !!document.getElementById('composites');",
    )
    .await;
    let composites = b
        .find(Locator::Id("composites"))
        .await
        .expect("composites")
        .text()
        .await
        .expect("text");
    assert!(
        composites.contains("shared") && composites.contains("CONFLICT"),
        "{composites}"
    );
    let labels = b.find(Locator::Id("labels")).await.expect("labels");
    assert!(labels.text().await.expect("text").contains("team:yellow"));

    // --- live: the composite's page follows changes made through the API,
    // without a reload (a marker set on the window survives)
    guard(
        "open the composite",
        b.goto(&format!("{base}/ui/groups/{}", f.shared)),
    )
    .await
    .expect("goto");
    wait_until(
        b,
        "the live stream",
        "return document.getElementById('live-status').textContent.startsWith('Live');",
    )
    .await;
    b.execute("window.__stayed = true; return true;", vec![])
        .await
        .expect("marker");
    c.put_config(&f.yellow, &service("yellow_service", "yellow.example"))
        .await
        .expect(200);
    wait_until(
        b,
        "the page to show the composite OK",
        "return document.getElementById('state').textContent.includes('OK');",
    )
    .await;
    c.post_json(
        &format!("/v2/control-planes/{}/nodes", f.shared),
        &json!({"id": "dp-live", "hostname": "dp-live.internal", "config_hash": "x"}),
    )
    .await
    .expect(200);
    wait_until(
        b,
        "the new instance",
        "return document.querySelector('#instances').textContent.includes('dp-live.internal');",
    )
    .await;
    assert_eq!(
        b.execute("return window.__stayed === true;", vec![])
            .await
            .expect("marker"),
        json!(true),
        "the page reloaded instead of updating in place"
    );
    assert!(
        b.find(Locator::Id("last-good")).await.is_err(),
        "no last-good notice once OK"
    );

    // --- pre-flight: paste a config, see the dry run for every composite
    guard(
        "pre-flight",
        b.goto(&format!("{base}/ui/groups/{}/preflight", f.yellow)),
    )
    .await
    .expect("goto");
    let area = b.find(Locator::Id("config")).await.expect("textarea");
    area.clear().await.expect("clear");
    area.send_keys(&service("example_service", "again.example"))
        .await
        .expect("type");
    click_link(b, "#dry-run-button").await;
    wait_until(
        b,
        "the dry run",
        "return !!document.getElementById('dry-run');",
    )
    .await;
    let report = b
        .find(Locator::Id("dry-run"))
        .await
        .expect("report")
        .text()
        .await
        .expect("text");
    assert!(report.contains("shared"), "{report}");
    assert!(report.contains("OK → ✖ CONFLICT"), "{report}");
    assert!(report.contains("example_service"), "{report}");
    screenshot(b, "runtime-manager-preflight").await;
    // Nothing changed: it was a dry run.
    assert_eq!(c.status(&f.shared).await["item"]["state"], "OK");
    // --- then a config that merges, applied (the team is yellow's editor)
    let area = b.find(Locator::Id("config")).await.expect("textarea");
    area.clear().await.expect("clear");
    area.send_keys(&service("yellow_v2", "v2.example"))
        .await
        .expect("type");
    click_link(b, "#dry-run-button").await;
    wait_until(
        b,
        "the second dry run",
        "return !!document.getElementById('apply-button') && document.getElementById('dry-run').textContent.includes('OK → ✔ OK');",
    )
    .await;
    click_link(b, "#apply-button").await;
    wait_until(
        b,
        "the applied config",
        "return (document.getElementById('dry-run-h') || {textContent: ''}).textContent.includes('Applied');",
    )
    .await;
    let config = c
        .get(&format!("/v2/control-planes/{}/config", f.yellow))
        .await
        .expect(200)
        .text();
    assert!(config.contains("yellow_v2"), "{config}");
    // A group the team only views: no pre-flight link, and the form refuses.
    guard("blue", b.goto(&format!("{base}/ui/groups/{}", f.blue)))
        .await
        .expect("goto");
    assert!(b.find(Locator::Id("preflight-link")).await.is_err());
    guard(
        "blue's pre-flight",
        b.goto(&format!("{base}/ui/groups/{}/preflight", f.blue)),
    )
    .await
    .expect("goto");
    assert!(b.find(Locator::Id("no-edit")).await.is_ok());
    click_link(b, "#dry-run-button").await;
    wait_until(
        b,
        "the refusal",
        "return document.title.startsWith('Not allowed');",
    )
    .await;

    // --- sign out: the session is over, here and for anyone holding its cookie
    guard("groups", b.goto(&format!("{base}/ui/groups")))
        .await
        .expect("goto");
    click_link(b, "header form[action='/ui/logout'] button").await;
    wait_until(b, "signed out", "return !!document.getElementById('note');").await;
    let note = b.find(Locator::Id("note")).await.expect("note");
    assert!(note.text().await.expect("text").contains("signed out"));
    guard("groups again", b.goto(&format!("{base}/ui/groups")))
        .await
        .expect("goto");
    wait_until(
        b,
        "the sign-in page again",
        "return location.pathname === '/ui/login';",
    )
    .await;
    let host = format!("127.0.0.1:{port}");
    let (status, _) = tcp(
        port,
        format!(
            "GET /ui/groups HTTP/1.1\r\nHost: {host}\r\nCookie: rgm_session={}\r\nConnection: close\r\n\r\n",
            session.value()
        ),
    )
    .await;
    assert_eq!(status, 303, "the old session cookie still works");
}

// ------------------------------------------------- the page over HTTP alone

/// The form token of a page.
pub(super) fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

/// POSTs `fields` as multipart/form-data, with `headers` too.
async fn form_post(
    c: &Client,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> crate::common::Resp {
    let (ct, body) = multipart(fields);
    let mut all = vec![("content-type", ct.as_str())];
    all.extend_from_slice(headers);
    c.send("POST", path, &all, Some(body)).await
}

fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----rgmergeTestBoundary7MA4YWxk";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[tokio::test]
async fn pages_on_the_socket_preflight_and_apply_with_csrf() {
    let (daemon, _) = start_daemon().await;
    let c = daemon.client();
    let f = fixture(&c).await;
    let page = c.get("/ui/groups").await.expect(200);
    assert!(
        page.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
    assert!(page.header("content-security-policy").is_some());
    let html = page.text();
    assert!(html.contains("<th scope=\"col\">Active instances</th>"));
    // Unknown ids are a page too, not JSON.
    let missing = c
        .get("/ui/groups/00000000-0000-0000-0000-000000000000")
        .await
        .expect(404);
    assert!(missing.text().contains("No such runtime group"));
    assert!(
        c.get("/ui/groups/not-a-uuid")
            .await
            .expect(404)
            .text()
            .contains("<html")
    );

    // The form's token: without it (or with another) nothing happens.
    let form = c
        .get(&format!("/ui/groups/{}/preflight", f.yellow))
        .await
        .expect(200)
        .text();
    let token = csrf(&form);
    let fixed = service("yellow_service", "y.example");
    for bad in ["", "00", &"ab".repeat(32)] {
        form_post(
            &c,
            &format!("/ui/groups/{}/apply", f.yellow),
            &[("csrf", bad), ("config", &fixed)],
            &[],
        )
        .await
        .expect(403);
    }
    // A cross-site post is refused even with the token.
    form_post(
        &c,
        &format!("/ui/groups/{}/apply", f.yellow),
        &[("csrf", &token), ("config", &fixed)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await
    .expect(403);
    assert_eq!(c.status(&f.shared).await["item"]["state"], "CONFLICT");

    // Dry run: the report per composite, nothing changed.
    let dry = form_post(
        &c,
        &format!("/ui/groups/{}/preflight", f.yellow),
        &[("csrf", &token), ("config", &fixed)],
        &[],
    )
    .await
    .expect(200)
    .text();
    assert!(dry.contains("id=\"apply-form\""), "{dry}");
    assert!(
        dry.contains("CONFLICT</span> → <span class=\"badge badge-ok\">✔ OK"),
        "{dry}"
    );
    assert_eq!(c.status(&f.shared).await["item"]["state"], "CONFLICT");
    // An invalid config: its errors, and no Apply.
    let bad = form_post(
        &c,
        &format!("/ui/groups/{}/preflight", f.yellow),
        &[("csrf", &token), ("config", "services: [")],
        &[],
    )
    .await
    .expect(200)
    .text();
    assert!(
        bad.contains("parse_error") && !bad.contains("apply-form"),
        "{bad}"
    );

    // Apply: the composite merges again.
    let applied = form_post(
        &c,
        &format!("/ui/groups/{}/apply", f.yellow),
        &[("csrf", &token), ("config", &fixed)],
        &[],
    )
    .await
    .expect(200)
    .text();
    assert!(applied.contains("Applied"), "{applied}");
    assert_eq!(c.status(&f.shared).await["item"]["state"], "OK");
    // A composite has no pre-flight of its own.
    c.get(&format!("/ui/groups/{}/preflight", f.shared))
        .await
        .expect(400);
    let _ = (&f.blue, &f.green);
}

/// Raw HTTP/1.1 over TCP (the `--http` port), answered status and body.
pub(super) async fn tcp(port: u16, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(hang_guard(), s.read_to_end(&mut out))
        .await
        .expect("hang guard")
        .expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

pub(super) fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// A header's value in a raw answer (the first one, any case).
pub(super) fn header_of<'a>(answer: &'a str, name: &str) -> Vec<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// `name=value` of a `Set-Cookie` named `name`.
pub(super) fn set_cookie<'a>(answer: &'a str, name: &str) -> &'a str {
    header_of(answer, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {answer}"))
}

pub(super) fn post_form(path: &str, host: &str, cookie: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

pub(super) fn get_with(path: &str, host: &str, cookie: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn the_http_port_serves_the_page_to_signed_in_sessions_only() {
    let (daemon, port) = start_daemon().await;
    let c = daemon.client();
    let f = fixture(&c).await;
    let token = yellow_team(&c, &f).await;
    let host = format!("127.0.0.1:{port}");

    // Refused without a session: pages send you to sign in, the rest is 401.
    let (status, answer) = tcp(port, get("/ui/groups/x?sort=a", &host)).await;
    assert_eq!(status, 303, "{answer}");
    assert_eq!(
        header_of(&answer, "location"),
        ["/ui/login?next=/ui/groups/x%3Fsort%3Da"]
    );
    let (status, _) = tcp(port, get("/ui/events", &host)).await;
    assert_eq!(status, 401);
    let (status, body) = tcp(port, get("/v2/control-planes", &host)).await;
    assert_eq!(status, 401, "{body}");
    let (ct, body) = multipart(&[("csrf", "x"), ("config", &service("y2", "y.example"))]);
    let req = format!(
        "POST /ui/groups/{}/apply HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        f.yellow,
        body.len(),
        String::from_utf8_lossy(&body)
    );
    assert_eq!(tcp(port, req).await.0, 401);
    let (status, _) = tcp(port, get("/ui/groups", "rebind.example:80")).await;
    assert_eq!(
        status, 421,
        "a name that rebinds to 127.0.0.1 is another site"
    );
    let (status, css) = tcp(port, get("/ui/assets/ui.css", &host)).await;
    assert_eq!(status, 200);
    assert!(css.contains("text/css"));

    // The sign-in form: its CSRF token is bound to its own cookie.
    let (status, page) = tcp(port, get("/ui/login", &host)).await;
    assert_eq!(status, 200);
    let login = set_cookie(&page, "rgm_login")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let csrf_token = csrf(&page);
    let sign_in = |token: &str, csrf: &str, cookie: &str| {
        post_form(
            "/ui/login",
            &host,
            cookie,
            &format!("csrf={csrf}&next=%2Fui%2Fgroups&token={token}"),
        )
    };
    let (status, _) = tcp(port, sign_in(&token, &csrf_token, "rgm_login=other")).await;
    assert_eq!(status, 403, "a token for another form");
    let (status, _) = tcp(port, sign_in(&token, "", &login)).await;
    assert_eq!(status, 403, "no token");
    let (status, body) = tcp(port, sign_in("rgmpat_nope", &csrf_token, &login)).await;
    assert_eq!(status, 401);
    assert!(body.contains("Unknown token"), "{body}");
    let (status, answer) = tcp(port, sign_in(&token, &csrf_token, &login)).await;
    assert_eq!(status, 303, "{answer}");
    assert_eq!(header_of(&answer, "location"), ["/ui/groups"]);
    let session_cookie = set_cookie(&answer, "rgm_session");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session_cookie.contains(attr), "{session_cookie}");
    }
    let session = session_cookie.split(';').next().expect("pair").to_string();

    // Signed in: only the team's groups; its rights, as in the API.
    let (status, page) = tcp(port, get_with("/ui/groups", &host, &session)).await;
    assert_eq!(status, 200);
    assert!(page.contains(&f.yellow) && page.contains(&f.shared));
    assert!(!page.contains(">default<"), "default is not the team's");
    let default_id = c
        .get_json("/v2/control-planes?filter[name][eq]=default")
        .await["data"][0]["id"]
        .as_str()
        .expect("default id")
        .to_string();
    let (status, _) = tcp(
        port,
        get_with(&format!("/ui/groups/{default_id}"), &host, &session),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = tcp(port, get_with("/v2/control-planes", &host, &session)).await;
    assert_eq!(status, 401, "the API stays on the socket");
    let (_, form) = tcp(
        port,
        get_with(
            &format!("/ui/groups/{}/preflight", f.yellow),
            &host,
            &session,
        ),
    )
    .await;
    let form_token = csrf(&form);
    let apply = |group: &str, token: &str, config: &str| {
        let (ct, body) = multipart(&[("csrf", token), ("config", config)]);
        format!(
            "POST /ui/groups/{group}/apply HTTP/1.1\r\nHost: {host}\r\nCookie: {session}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            String::from_utf8_lossy(&body)
        )
    };
    let fixed = service("yellow_fixed", "y.example");
    // The form token of the socket's forms is not this session's.
    let socket_form = c
        .get(&format!("/ui/groups/{}/preflight", f.yellow))
        .await
        .expect(200)
        .text();
    assert_eq!(
        tcp(port, apply(&f.yellow, &csrf(&socket_form), &fixed))
            .await
            .0,
        403
    );
    // Viewer on blue: no apply there.
    assert_eq!(tcp(port, apply(&f.blue, &form_token, &fixed)).await.0, 403);
    assert_eq!(c.status(&f.shared).await["item"]["state"], "CONFLICT");
    let (status, body) = tcp(port, apply(&f.yellow, &form_token, &fixed)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Applied"), "{body}");
    assert_eq!(c.status(&f.shared).await["item"]["state"], "OK");
    // The page's writes are in the audit log, as the team.
    let audit = c.get_json("/v2/audit-log").await;
    let entries = audit["data"].as_array().cloned().unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == format!("/ui/groups/{}/apply", f.yellow)
                && e["status"] == 200
                && e["teams"] == json!(["yellow-team"])),
        "{audit}"
    );

    // Sign out: the cookie is cleared and the session is over.
    let (status, answer) = tcp(
        port,
        post_form("/ui/logout", &host, &session, &format!("csrf={form_token}")),
    )
    .await;
    assert_eq!(status, 303, "{answer}");
    assert!(set_cookie(&answer, "rgm_session").contains("Max-Age=0"));
    let (status, _) = tcp(port, get_with("/ui/groups", &host, &session)).await;
    assert_eq!(status, 303);

    // A revoked token ends its sessions.
    let token2 = {
        let t = c
            .post_json("/v2/teams/yellow-team/tokens", &json!({"name": "second"}))
            .await
            .expect(201)
            .json();
        (
            t["token"].as_str().expect("token").to_string(),
            t["id"].as_str().expect("id").to_string(),
        )
    };
    let (_, page) = tcp(port, get("/ui/login", &host)).await;
    let login = set_cookie(&page, "rgm_login")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let (status, answer) = tcp(port, sign_in(&token2.0, &csrf(&page), &login)).await;
    assert_eq!(status, 303);
    let session = set_cookie(&answer, "rgm_session")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    assert_eq!(
        tcp(port, get_with("/ui/groups", &host, &session)).await.0,
        200
    );
    c.delete(&format!("/v2/teams/yellow-team/tokens/{}", token2.1))
        .await
        .expect(204);
    assert_eq!(
        tcp(port, get_with("/ui/groups", &host, &session)).await.0,
        303
    );
}

#[tokio::test]
async fn a_token_on_the_socket_sees_only_its_groups() {
    let (daemon, _) = start_daemon().await;
    let c = daemon.client();
    let f = fixture(&c).await;
    let token = c.team_token("blue-viewers", &[(&f.blue, "viewer")]).await;
    let t = Client::with_token(&daemon.socket, &token);
    let page = t.get("/ui/groups").await.expect(200).text();
    assert!(
        page.contains(&f.blue) && !page.contains(&f.yellow),
        "{page}"
    );
    assert!(page.contains("blue-viewers"), "who is signed in: {page}");
    t.get(&format!("/ui/groups/{}", f.blue)).await.expect(200);
    // The same 403 whether or not the group exists.
    t.get(&format!("/ui/groups/{}", f.yellow)).await.expect(403);
    t.get("/ui/groups/00000000-0000-0000-0000-000000000000")
        .await
        .expect(403);
    // A viewer reads blue's pre-flight form but may not dry-run.
    let form = t
        .get(&format!("/ui/groups/{}/preflight", f.blue))
        .await
        .expect(200)
        .text();
    let (ct, body) = multipart(&[
        ("csrf", &csrf(&form)),
        ("config", &service("b", "b.example")),
    ]);
    t.send(
        "POST",
        &format!("/ui/groups/{}/preflight", f.blue),
        &[("content-type", &ct)],
        Some(body),
    )
    .await
    .expect(403);
    // An unknown token: 401, as in the API.
    let stranger = Client::with_token(&daemon.socket, "rgmpat_unknown");
    stranger.get("/ui/groups").await.expect(401);
}

#[tokio::test]
async fn a_non_loopback_http_address_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(crate::common::daemon::bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("d"))
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .args(["--http", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}

#[tokio::test]
async fn live_events_say_when_anything_changes() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (daemon, _) = start_daemon().await;
    let c = daemon.client();
    let id = c.standard("blue").await;
    let mut s = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("connect");
    let since = {
        let page = c.get("/ui/groups").await.expect(200).text();
        let at = page.find("data-changes=\"").expect("counter") + 14;
        page[at..].split('"').next().expect("n").to_string()
    };
    s.write_all(
        format!("GET /ui/events?since={since} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut lines = BufReader::new(s).lines();
    // Headers, then nothing until a change.
    loop {
        let l = tokio::time::timeout(hang_guard(), lines.next_line())
            .await
            .expect("hang guard")
            .expect("read")
            .expect("line");
        if l.is_empty() {
            break;
        }
        if l.to_ascii_lowercase().starts_with("content-type") {
            assert!(l.contains("text/event-stream"), "{l}");
        }
    }
    c.put_config(&id, &service("s", "s.example"))
        .await
        .expect(200);
    loop {
        let l = tokio::time::timeout(hang_guard(), lines.next_line())
            .await
            .expect("hang guard: no event after a change")
            .expect("read")
            .expect("line");
        if l == "event: change" {
            break;
        }
    }
}

//! The API on the network (issue 25): `--api-listen` over HTTPS with
//! certificates made here, bearer tokens, per-token rate limits, the
//! version on every answer, and settings from a file and the environment.

use serde_json::json;

use crate::common::{Client, Daemon, V2, rgmerge, service};

/// A daemon serving the API over HTTPS on a free loopback port, and a
/// client of it (no token yet).
fn https_daemon(extra: &[&str]) -> (Daemon, Client) {
    let daemon = Daemon::builder().api().args(extra).start();
    let client = daemon.https_client();
    (daemon, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_ci_manages_its_group_over_https_with_a_token() {
    let (d, net) = https_daemon(&["--api-rate-limit", "1000"]);
    let socket = d.client();

    // Without a token: 401 in Konnect's shape, nothing about groups.
    let r = net.get(V2).await.expect(401);
    let body = r.json();
    assert_eq!(body["status"], 401, "{body}");
    assert!(
        r.header("x-rgmerge-version").is_some(),
        "every answer says the version"
    );

    // An org admin's token, made on the socket, works over the network.
    let (token, _) = socket.token("org-admins", json!({"name": "ci"})).await;
    let ci = net.clone().with_bearer(&token);
    let g = ci
        .post_json(V2, &json!({"name": "team-a"}))
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    ci.put_config(&g, &service("a-svc", "a.internal"))
        .await
        .expect(200);
    let on_socket = socket
        .get(&format!("{V2}/{g}/config"))
        .await
        .expect(200)
        .text();
    assert!(
        on_socket.contains("a-svc"),
        "the write is the daemon's, whichever way it came"
    );
    // A dry run over the network, as on the socket.
    let dry = ci
        .send(
            "PUT",
            &format!("{V2}/{g}/config?dry_run=true"),
            &[("content-type", "application/yaml")],
            Some(service("b-svc", "b.internal").into_bytes()),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(dry["dry_run"], true);

    // A viewer's token can read but not write.
    let viewer = socket.team_token("readers", &[(&g, "viewer")]).await;
    let v = net.clone().with_bearer(&viewer);
    v.get(&format!("{V2}/{g}/config")).await.expect(200);
    v.put_config(&g, &service("x", "x.internal"))
        .await
        .expect(403);

    // The page signs in over HTTPS with a Secure cookie.
    let login = net.get("/ui/login").await;
    let cookie = login.header("set-cookie").unwrap_or_default();
    assert!(cookie.contains("; Secure"), "{cookie}");
    d.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_its_own_rate_limit() {
    let (d, net) = https_daemon(&["--api-rate-limit", "3"]);
    let socket = d.client();
    let (busy, _) = socket.token("org-admins", json!({"name": "busy"})).await;
    let (other, _) = socket.token("org-admins", json!({"name": "other"})).await;
    let busy = net.clone().with_bearer(&busy);
    let mut limited = None;
    for _ in 0..20 {
        let r = busy.get(V2).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a token past its limit is refused");
    assert!(
        r.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1))
    );
    assert_eq!(r.json()["status"], 429);
    // Another token is not held back by the busy one.
    net.clone().with_bearer(&other).get(V2).await.expect(200);
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = rgmerge(&[
        "serve",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--api-listen",
        "0.0.0.0:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only on a loopback address"), "{err}");
}

#[test]
fn settings_come_from_flags_then_the_environment_then_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rgmerge.toml");
    std::fs::write(
        &file,
        "max-connections = 77\nmax_in_flight = 8\nidle-timeout-secs = 5\nstore = \"postgres://rg:s3cret@db.internal/rg\"\n",
    )
    .expect("write");
    let out = std::process::Command::new(crate::common::daemon::bin())
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--idle-timeout-secs", "9", "--print-config"])
        .env("RGMERGE_MAX_IN_FLIGHT", "5")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "max-connections = 77  # file",
        "max-in-flight = 5  # RGMERGE_MAX_IN_FLIGHT",
        "idle-timeout-secs = 9  # flag",
        "store = \"postgres://rg:******@db.internal/rg\"  # file",
        "header-read-timeout-secs = 10  # default",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(!text.contains("s3cret"));

    std::fs::write(&file, "max-conections = 3\n").expect("write");
    let out = std::process::Command::new(crate::common::daemon::bin())
        .args(["serve", "--config"])
        .arg(&file)
        .arg("--print-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max-conections") && err.contains("rgmerge.toml"),
        "{err}"
    );
}

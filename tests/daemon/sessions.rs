//! Page sessions are stored (issue 27): a session signed in over `--http`
//! survives a restart of the daemon, works on every daemon of one
//! PostgreSQL, and ends everywhere when its token is revoked. The store
//! holds the cookie's keyed hash, never the cookie.

use std::time::{Duration, Instant};

use super::browser::{csrf, get, get_with, post_form, set_cookie, tcp};
use crate::common::postgres::PgServer;
use crate::common::{Client, Daemon, hang_guard};

/// `name=value` of a cookie set in `answer`.
fn pair(answer: &str, name: &str) -> String {
    set_cookie(answer, name)
        .split(';')
        .next()
        .expect("pair")
        .to_string()
}

/// Signs in on the `--http` port with `token`; the `rgm_session=…` pair.
async fn sign_in(port: u16, token: &str) -> String {
    let host = format!("127.0.0.1:{port}");
    let (status, page) = tcp(port, get("/ui/login", &host)).await;
    assert_eq!(status, 200, "{page}");
    let login = pair(&page, "rgm_login");
    let body = format!("csrf={}&next=%2Fui%2Fgroups&token={token}", csrf(&page));
    let (status, answer) = tcp(port, post_form("/ui/login", &host, &login, &body)).await;
    assert_eq!(status, 303, "{answer}");
    assert_eq!(
        super::browser::header_of(&answer, "location"),
        ["/ui/groups"]
    );
    pair(&answer, "rgm_session")
}

/// The status of the groups page for `session` (200 signed in, 303 to the
/// sign-in page otherwise).
async fn groups_page(port: u16, session: &str) -> u16 {
    let host = format!("127.0.0.1:{port}");
    tcp(port, get_with("/ui/groups", &host, session)).await.0
}

/// A new token for `team`: (token, id).
async fn token(c: &Client, team: &str) -> (String, String) {
    c.token(team, serde_json::json!({"name": "page"})).await
}

/// Waits (hang guard) until `port` answers `want` for `session`.
async fn until_page(port: u16, session: &str, want: u16) {
    let deadline = Instant::now() + hang_guard();
    loop {
        let got = groups_page(port, session).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_session_survives_a_restart_and_ends_with_its_token() {
    let mut d = Daemon::builder().http().start();
    let port = d.http_port.expect("--http");
    let c = d.client();
    let blue = c.standard("blue").await;
    let first = c.team_token("blue-team", &[(&blue, "viewer")]).await;
    let (second, second_id) = token(&c, "blue-team").await;
    let kept = sign_in(port, &first).await;
    let revoked = sign_in(port, &second).await;
    let (third, _) = token(&c, "blue-team").await;
    let signed_out = sign_in(port, &third).await;
    for s in [&kept, &revoked, &signed_out] {
        assert_eq!(groups_page(port, s).await, 200);
    }
    // Sign out of one, with a form shown before a restart: a write like
    // sign-in, so it stays signed out.
    let host = format!("127.0.0.1:{port}");
    let (_, form) = tcp(
        port,
        get_with(&format!("/ui/groups/{blue}"), &host, &signed_out),
    )
    .await;
    d.restart();
    let (status, answer) = tcp(
        port,
        post_form(
            "/ui/logout",
            &host,
            &signed_out,
            &format!("csrf={}", csrf(&form)),
        ),
    )
    .await;
    assert_eq!(status, 303, "{answer}");

    // kill -9: sign-in was durable before its answer.
    d.kill9();
    d.restart();
    assert_eq!(groups_page(port, &kept).await, 200, "{}", d.log());
    assert_eq!(groups_page(port, &revoked).await, 200);
    assert_eq!(groups_page(port, &signed_out).await, 303);

    // Revoking the token ends its session at once; the other one holds.
    let c = d.client();
    c.delete(&format!("/v2/teams/blue-team/tokens/{second_id}"))
        .await
        .expect(204);
    assert_eq!(groups_page(port, &revoked).await, 303);
    assert_eq!(groups_page(port, &kept).await, 200);
    d.restart();
    assert_eq!(groups_page(port, &revoked).await, 303);
    assert_eq!(groups_page(port, &kept).await, 200);
    // A made-up cookie of the right shape is no session.
    let forged = format!("rgm_session={}", "ab".repeat(32));
    assert_eq!(groups_page(port, &forged).await, 303);
    d.assert_no_panic();
}

#[tokio::test]
async fn a_session_works_on_every_daemon_of_one_postgres_and_ends_on_all() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.database("sessions");
    let a = Daemon::builder().postgres(&url).http().start();
    let b = Daemon::builder().postgres(&url).http().start();
    let (pa, pb) = (a.http_port.expect("--http"), b.http_port.expect("--http"));
    let c = a.client();
    let blue = c.standard("blue").await;
    let tok = c.team_token("blue-team", &[(&blue, "viewer")]).await;
    let (other, other_id) = token(&c, "blue-team").await;

    // Signed in on a: the cookie works on b (a failover), once b has
    // followed the log.
    let session = sign_in(pa, &tok).await;
    let ending = sign_in(pa, &other).await;
    until_page(pb, &session, 200).await;
    until_page(pb, &ending, 200).await;
    let cookie = session.trim_start_matches("rgm_session=");
    assert_eq!(cookie.len(), 64, "{session}");
    let teams = server.psql(
        "sessions",
        "SELECT string_agg(convert_from(record, 'UTF8'), ' ') FROM teams",
    );
    assert!(teams.contains("\"sessions\""), "{teams}");
    assert!(!teams.contains(cookie), "the cookie itself is never stored");

    // Revoked on b: the session ends on b at once and on a when it follows.
    b.client()
        .delete(&format!("/v2/teams/blue-team/tokens/{other_id}"))
        .await
        .expect(204);
    assert_eq!(groups_page(pb, &ending).await, 303);
    until_page(pa, &ending, 303).await;
    // The other session holds on both.
    assert_eq!(groups_page(pa, &session).await, 200);
    assert_eq!(groups_page(pb, &session).await, 200);

    // Signed out on b with a form a showed: gone on a too.
    let host = format!("127.0.0.1:{pb}");
    let (_, form) = tcp(
        pa,
        get_with(
            &format!("/ui/groups/{blue}"),
            &format!("127.0.0.1:{pa}"),
            &session,
        ),
    )
    .await;
    let (status, answer) = tcp(
        pb,
        post_form(
            "/ui/logout",
            &host,
            &session,
            &format!("csrf={}", csrf(&form)),
        ),
    )
    .await;
    assert_eq!(status, 303, "{answer}");
    until_page(pa, &session, 303).await;
    a.assert_no_panic();
    b.assert_no_panic();
}

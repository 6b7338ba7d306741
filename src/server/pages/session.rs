//! Who is looking at a page, with the same rights as the API (`auth`).
//!
//! - On the socket: the connection's Unix peer (or a bearer token), exactly
//!   as `auth::identify` finds it for the API.
//! - Over `--http`: a session. `/ui/login` takes a token (`rgmpat_…`) in a
//!   CSRF-protected form and sets `rgm_session`, an HttpOnly, SameSite=Strict
//!   cookie holding a random id; the session is stored with its team
//!   (`registry::access`: the id's keyed hash, the token's id, the expiry),
//!   so it outlives a restart and every daemon on a shared store knows it.
//!   It holds until it expires, the token is revoked or expires, its team is
//!   deleted, or `/ui/logout` ends it. The token itself is not kept: each
//!   request checks the session and its token in the published
//!   `AccessView`, without the writer.
//!
//! Without an identity a page answers 401 on the socket and redirects to the
//! sign-in page over TCP. Sign-ins (both outcomes), sign-outs and refusals
//! go to the audit log like the API's.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::super::auth::{self, Peer, Proof, Subject, identify};
use super::super::listen::Transport;
use super::AppState;
use crate::registry::{AccessView, AuditEntry, Right, TokenCheck, now_ms};

/// The session cookie.
pub const SESSION_COOKIE: &str = "rgm_session";
/// A sign-in form's own cookie: its CSRF token is bound to it.
pub const LOGIN_COOKIE: &str = "rgm_login";
/// How long a session lasts at most (less if its token expires sooner).
pub use crate::registry::SESSION_TTL_MS;

/// An identified page viewer and what it may do.
#[derive(Clone)]
pub struct PageCaller {
    pub teams: Vec<String>,
    pub org_admin: bool,
    access: Arc<AccessView>,
    /// `uid`, `gid` or `token`, for the audit log.
    pub credential: &'static str,
    pub peer: Option<Peer>,
    pub token_id: Option<Uuid>,
    /// The session's cookie over TCP, which sign-out ends.
    pub session: Option<String>,
}

impl PageCaller {
    /// The access state this caller was identified against.
    pub fn access(&self) -> &AccessView {
        &self.access
    }

    pub fn may(&self, right: Right, group: Uuid) -> bool {
        self.org_admin || self.access.allows(&self.teams, right, group)
    }

    /// "team 'blue'", "teams 'blue', 'green'".
    pub fn who(&self) -> String {
        let names: Vec<String> = self.teams.iter().map(|t| format!("'{t}'")).collect();
        match names.len() {
            1 => format!("team {}", names[0]),
            _ => format!("teams {}", names.join(", ")),
        }
    }

    /// What a form's CSRF token is bound to.
    pub fn binding(&self) -> String {
        match (&self.session, self.peer) {
            (Some(cookie), _) => format!("session:{cookie}"),
            (None, Some(p)) => format!("unix:{}:{}:{}", p.uid, p.gid, self.teams.join(",")),
            (None, None) => format!("unix:-:{}", self.teams.join(",")),
        }
    }

    /// Why the caller may not do `right` on `group` (for a 403 page).
    pub fn refusal(&self, right: Right, group: Uuid) -> Option<String> {
        if self.may(right, group) {
            return None;
        }
        let need = match right {
            Right::View => "viewer",
            Right::Edit => "editor",
            _ => "admin",
        };
        let held = self.access.roles(&self.teams, group);
        let has = if held.is_empty() {
            "no role there".to_string()
        } else {
            held.iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Some(format!(
            "{} needs {need} on control plane {group} for this; it has {has}.",
            self.who()
        ))
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// `Set-Cookie` for a page cookie (`max_age` 0 clears it).
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
    let v = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("rgm_invalid=1"))
}

/// The audit log entry of something done (or refused) through the page.
pub fn audit_entry(
    caller: Option<&PageCaller>,
    method: &Method,
    path: &str,
    group: Option<Uuid>,
    status: StatusCode,
    reason: Option<String>,
) -> AuditEntry {
    let who = Subject {
        teams: caller.map(|c| c.teams.clone()).unwrap_or_default(),
        credential: caller.map_or("none", |c| c.credential),
        uid: caller.and_then(|c| c.peer).map(|p| p.uid),
        gid: caller.and_then(|c| c.peer).map(|p| p.gid),
        token_id: caller.and_then(|c| c.token_id),
    };
    auth::audit_entry(who, method, path, group, status, reason)
}

/// Pages anyone may fetch: the sign-in form and the stylesheet and script.
fn is_open(path: &str) -> bool {
    path == "/ui/login" || path.starts_with("/ui/assets/")
}

/// Identifies the viewer of every page (see the module docs) and attaches a
/// [`PageCaller`]; without one, 401 on the socket, the sign-in page over TCP.
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if is_open(&path) {
        return next.run(req).await;
    }
    let transport = req
        .extensions()
        .get::<Transport>()
        .copied()
        .unwrap_or(Transport::Unix);
    let access = s.engine.access();
    let peer = req.extensions().get::<Peer>().copied();
    // On the network listener a bearer token works as on the socket (a
    // script); a browser signs in for a session cookie.
    let direct = match transport {
        Transport::Unix => true,
        Transport::Api { .. } => req.headers().contains_key(header::AUTHORIZATION),
        Transport::Tcp { .. } => false,
    };
    let found = match direct {
        true => match identify(&access, &req) {
            Ok(c) => {
                let (credential, token_id) = match c.proof {
                    Proof::Peer { by_uid: true, .. } => ("uid", None),
                    Proof::Peer { by_uid: false, .. } => ("gid", None),
                    Proof::Token { id } => ("token", Some(id)),
                };
                Ok(PageCaller {
                    teams: c.teams.clone(),
                    org_admin: c.org_admin,
                    access: access.clone(),
                    credential,
                    peer,
                    token_id,
                    session: None,
                })
            }
            Err(u) => Err(u.detail),
        },
        false => {
            let session = cookie(req.headers(), SESSION_COOKIE).map(str::to_string);
            match session {
                Some(cookie) => match access.check_session(&cookie, now_ms()) {
                    Some((team, token_id)) => {
                        let teams = vec![team.to_string()];
                        Ok(PageCaller {
                            org_admin: access.is_org_admin(&teams),
                            teams,
                            access: access.clone(),
                            credential: "token",
                            peer: None,
                            token_id: Some(token_id),
                            session: Some(cookie),
                        })
                    }
                    None => Err("the session has ended; sign in again".into()),
                },
                None => Err("sign in with a token first".into()),
            }
        }
    };
    let caller = match found {
        Ok(c) => c,
        Err(why) => {
            crate::metrics::auth_failure("page_unidentified");
            let method = req.method().clone();
            // Only attempts that would have done something are worth a line.
            if method != Method::GET {
                let e = audit_entry(
                    None,
                    &method,
                    &path,
                    None,
                    StatusCode::UNAUTHORIZED,
                    Some(why.clone()),
                );
                s.engine.audit(e, false).await;
            }
            return unidentified(transport, &method, &path, req.uri().query(), &why);
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn unidentified(
    transport: Transport,
    method: &Method,
    path: &str,
    query: Option<&str>,
    why: &str,
) -> Response {
    let tcp = matches!(transport, Transport::Tcp { .. } | Transport::Api { .. });
    if tcp && method == Method::GET && path != "/ui/events" {
        let next = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let to = format!(
            "/ui/login?next={}",
            percent_encode(&next.chars().take(1024).collect::<String>())
        );
        return Redirect::to(&to).into_response();
    }
    let body = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Not signed in</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/ui.css\"><main><h1>Not signed in</h1>\
         <p id=\"message\">{}</p>{}</main></html>",
        escape_html(why),
        if tcp {
            "<p><a href=\"/ui/login\">Sign in</a></p>"
        } else {
            ""
        }
    );
    super::html(StatusCode::UNAUTHORIZED, body)
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after signing in: a page of ours, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/"))
                && !n.starts_with("//")
                && !n.contains("\\")
                && !n.starts_with("/ui/login")
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/ui/groups".to_string(),
    }
}

/// What a token presented at sign-in turned out to be: (team, id) or why
/// it was refused.
pub fn check_sign_in(access: &AccessView, token: &str) -> Result<(String, Uuid), String> {
    match access.check_token(token.trim(), now_ms()) {
        TokenCheck::Valid { team, id } => Ok((team.to_string(), id)),
        TokenCheck::Unknown => {
            Err("Unknown token: it was never issued here, or its team was deleted.".into())
        }
        TokenCheck::Revoked { .. } => Err("This token was revoked.".into()),
        TokenCheck::Expired { .. } => Err("This token has expired.".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_our_pages() {
        assert_eq!(
            safe_next(Some("/ui/groups/x?sort=a")),
            "/ui/groups/x?sort=a"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui\\..\\x",
            "/v2/control-planes",
            "/ui/login",
            "/ui/\n",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/groups", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/groups");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; rgm_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}

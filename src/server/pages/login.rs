//! `/ui/login` and `/ui/logout`: signing in over `--http` with a token
//! (exchanged for the session cookie) and signing out. On the socket the
//! viewer is known by its Unix user, so there is nothing to sign in to.

use std::sync::Arc;

use axum::extract::{Form, FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::render::{Chrome, LoginPage};
use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL_MS, audit_entry, check_sign_in, cookie, safe_next,
    set_cookie,
};
use super::{AppState, PageState, Viewer, cross_site, param, query_pairs, rendered};
use crate::registry::now_ms;
use crate::server::listen::Transport;

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// What a sign-in form's CSRF token is bound to: its own cookie.
fn binding(login_cookie: &str) -> String {
    format!("login:{login_cookie}")
}

fn login_page(
    s: &AppState,
    pages: &PageState,
    login_cookie: &str,
    next: &str,
    note: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let page = LoginPage {
        chrome: Chrome {
            title: "Sign in".into(),
            csrf: pages
                .csrf_for(&s.engine.access(), &binding(login_cookie))
                .to_hex()
                .to_string(),
            changes: *s.engine.subscribe_changes().borrow(),
            signed_in: None,
            can_sign_out: false,
        },
        next: next.to_string(),
        note,
        error,
    };
    let mut resp = rendered(status, askama::Template::render(&page));
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, login_cookie, 3600),
    );
    resp
}

fn parts(req: &Request) -> (Transport, Option<Arc<PageState>>) {
    (
        req.extensions()
            .get::<Transport>()
            .copied()
            .unwrap_or(Transport::Unix),
        req.extensions().get::<Arc<PageState>>().cloned(),
    )
}

/// A fresh random value for the sign-in form's cookie.
fn fresh() -> String {
    crate::registry::new_key()
        .map(|k| blake3::Hash::from(k).to_hex().to_string())
        .unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string())
}

pub async fn form(State(s): State<AppState>, RawQuery(raw): RawQuery, req: Request) -> Response {
    let (transport, pages) = parts(&req);
    let q = query_pairs(raw);
    let next = safe_next(param(&q, "next"));
    let Some(pages) = pages else {
        return Redirect::to("/ui/groups").into_response();
    };
    if transport == Transport::Unix {
        // The socket knows its peer: nothing to sign in to.
        return Redirect::to(&next).into_response();
    }
    let login_cookie = cookie(req.headers(), LOGIN_COOKIE)
        .map(str::to_string)
        .unwrap_or_else(fresh);
    let note = param(&q, "signed_out").map(|_| "You have signed out.".to_string());
    login_page(&s, &pages, &login_cookie, &next, note, None, StatusCode::OK)
}

pub async fn sign_in(State(s): State<AppState>, req: Request) -> Response {
    let (transport, pages) = parts(&req);
    let Some(pages) = pages else {
        return Redirect::to("/ui/groups").into_response();
    };
    if transport == Transport::Unix {
        return Redirect::to("/ui/groups").into_response();
    }
    let headers: HeaderMap = req.headers().clone();
    let path = req.uri().path().to_string();
    let login_cookie = cookie(&headers, LOGIN_COOKIE).map(str::to_string);
    let Ok(Form(f)) = Form::<SignIn>::from_request(req, &s).await else {
        return login_page(
            &s,
            &pages,
            &fresh(),
            "/ui/groups",
            None,
            Some("The sign-in form was malformed; try again.".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    let next = safe_next(Some(&f.next));
    let csrf_ok = login_cookie
        .as_deref()
        .is_some_and(|c| pages.csrf_ok(&s.engine.access(), &binding(c), &f.csrf));
    let login_cookie = login_cookie.unwrap_or_else(fresh);
    if cross_site(&headers) || !csrf_ok {
        return login_page(
            &s,
            &pages,
            &login_cookie,
            &next,
            None,
            Some("The sign-in form expired or came from another site; try again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let access = s.engine.access();
    match check_sign_in(&access, &f.token) {
        Ok((team, token_id)) => {
            // A write: stored (and on PostgreSQL logged for every daemon)
            // before the cookie is handed out.
            let (session, expires_ms) = match s.engine.open_session(team.clone(), token_id).await {
                Ok(opened) => opened,
                Err(r) => {
                    return login_page(
                        &s,
                        &pages,
                        &login_cookie,
                        &next,
                        None,
                        Some(format!(
                            "No session could be made: {}; try again.",
                            r.detail
                        )),
                        StatusCode::SERVICE_UNAVAILABLE,
                    );
                }
            };
            let mut e = audit_entry(None, &Method::POST, &path, None, StatusCode::OK, None);
            e.teams = vec![team];
            e.credential = "token".into();
            e.token_id = Some(token_id);
            e.reason = Some("signed in to the Runtime Manager page".into());
            s.engine.audit(e, false).await;
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                // The browser drops it when the session ends (its token's
                // expiry may come before the 8 hours).
                set_cookie(
                    SESSION_COOKIE,
                    &session,
                    expires_ms.saturating_sub(now_ms()).min(SESSION_TTL_MS) / 1000,
                ),
            );
            h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(why) => {
            crate::metrics::auth_failure("page_sign_in");
            let e = audit_entry(
                None,
                &Method::POST,
                &path,
                None,
                StatusCode::UNAUTHORIZED,
                Some(why.clone()),
            );
            s.engine.audit(e, false).await;
            login_page(
                &s,
                &pages,
                &login_cookie,
                &next,
                None,
                Some(why),
                StatusCode::UNAUTHORIZED,
            )
        }
    }
}

#[derive(Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(s): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<SignOut>,
) -> Response {
    if let Some(refused) = viewer.form_refusal(&headers, &f.csrf, &s) {
        return refused;
    }
    let Some(session) = viewer.caller.session.clone() else {
        return Redirect::to("/ui/groups").into_response();
    };
    if let Err(r) = s.engine.close_session(session).await {
        return super::message(
            StatusCode::SERVICE_UNAVAILABLE,
            &viewer,
            &s,
            "Not signed out",
            &format!("The session could not be ended: {}; try again.", r.detail),
        );
    }
    viewer
        .audit_write(&s, None, StatusCode::OK, Some("signed out".into()))
        .await;
    let mut resp = Redirect::to("/ui/login?signed_out=1").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    resp
}

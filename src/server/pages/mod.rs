//! The Runtime Manager page (issue 14): server-rendered HTML under `/ui/`,
//! on the daemon's socket and, with `--http`, on a loopback TCP port.
//!
//! - `render`: what each table shows, built from published views, and the
//!   askama templates (`templates/ui/`, checked at compile time).
//! - `preflight`: upload or paste a decK file, see the dry run for every
//!   composite it touches, apply it.
//! - `live`: server-sent events when anything is published, so pages update
//!   themselves (a few lines of plain JavaScript swap the `#live` part).
//! - `assets`: the stylesheet and the script, embedded in the binary.
//!
//! - `session`: who is looking, with the API's rights: the Unix peer on the
//!   socket, a signed-in session over TCP (`/ui/login`, `/ui/logout`).
//!
//! Every form carries a CSRF token (a keyed hash of the session or peer it
//! was made for) and cross-site posts are refused by their `Origin` /
//! `Sec-Fetch-Site` headers too. Over TCP only `/ui/…` is served, and only to
//! a loopback `Host` (no DNS rebinding).

mod assets;
mod live;
mod login;
mod preflight;
pub mod render;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use uuid::Uuid;

use super::AppState;
use super::listen::Transport;
use crate::registry::{AccessView, Right};
use render::{Chrome, GroupFilter, MessagePage, Sort};
pub use session::PageCaller;

pub use render::{group_rows, groups_page};

/// What the pages keep between requests: a key for form tokens until access
/// control is set up (then the store's form key is used). Sessions are not
/// here: they are stored (`registry::access`).
pub struct PageState {
    csrf_key: [u8; 32],
}

impl PageState {
    pub fn new() -> Arc<PageState> {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        if let Ok(k) = crate::registry::new_key() {
            key = k;
        }
        Arc::new(PageState { csrf_key: key })
    }

    /// The form token for callers bound to `binding`: keyed by the store's
    /// form key, so a form outlives a restart and works on every daemon of a
    /// shared store, like the session it is bound to (this daemon's own
    /// key only before access control is set up).
    fn csrf_for(&self, access: &AccessView, binding: &str) -> blake3::Hash {
        let key = access.form_key().unwrap_or(self.csrf_key);
        blake3::keyed_hash(&key, binding.as_bytes())
    }

    /// Whether `token` is the form token of `binding` (constant time).
    fn csrf_ok(&self, access: &AccessView, binding: &str, token: &str) -> bool {
        blake3::Hash::from_hex(token.trim()).is_ok_and(|t| t == self.csrf_for(access, binding))
    }
}

/// Whether the browser says a posted form came from another site: its
/// `Sec-Fetch-Site`, or an `Origin` that is not this host.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !matches!(v, "same-origin" | "none"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| {
            let o = o.strip_prefix("http://").unwrap_or(o);
            Some(o) != host
        });
    fetch_site || foreign_origin
}

/// The whole page: every route behind [`session::authenticate`] (the sign-in
/// form and the assets excepted). Pages count against the API's in-flight
/// `limit`; the event stream only waits, like a long-poll, and does not.
pub fn router(
    state: AppState,
    limit: tower::limit::GlobalConcurrencyLimitLayer,
) -> Router<AppState> {
    Router::new()
        .merge(routes(state.opts.max_body_bytes).layer(limit))
        .route("/ui/events", get(live::events))
        .layer(axum::middleware::from_fn_with_state(
            state,
            session::authenticate,
        ))
}

/// The pages' routes, answered from published views. `max_body` bounds an
/// uploaded config, as the API does.
fn routes(max_body: usize) -> Router<AppState> {
    // A multipart upload carries the config plus a little framing.
    let upload_limit = axum::extract::DefaultBodyLimit::max(max_body.saturating_add(64 * 1024));
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/groups") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/groups") }))
        .route("/ui/groups", get(groups))
        .route("/ui/groups/{id}", get(group))
        .route(
            "/ui/groups/{id}/preflight",
            get(preflight::form).post(preflight::dry_run),
        )
        .route("/ui/groups/{id}/apply", post(preflight::apply))
        .route("/ui/assets/{name}", get(assets::get))
        .route("/ui/login", get(login::form).post(login::sign_in))
        .route("/ui/logout", post(login::sign_out))
        .layer(upload_limit)
}

/// Who is looking at a page (identified by [`session::authenticate`]), and
/// how they came.
pub struct Viewer {
    pub transport: Transport,
    pub caller: PageCaller,
    pages: Arc<PageState>,
    /// The path asked for, for the audit log.
    path: String,
}

impl Viewer {
    pub fn csrf(&self) -> String {
        self.pages
            .csrf_for(self.caller.access(), &self.caller.binding())
            .to_hex()
            .to_string()
    }

    /// Why this viewer may not change group `id`'s config, if it may not.
    pub fn write_refusal(&self, id: Uuid) -> Option<String> {
        self.caller.refusal(Right::Edit, id)
    }

    pub fn chrome(&self, title: impl Into<String>, engine: &crate::engine::Engine) -> Chrome {
        let via = match self.transport {
            Transport::Tcp { .. } | Transport::Api { .. } => "",
            Transport::Unix if self.caller.credential == "token" => " (token, on the socket)",
            Transport::Unix => " (Unix user, on the socket)",
        };
        Chrome {
            title: title.into(),
            csrf: self.csrf(),
            changes: *engine.subscribe_changes().borrow(),
            signed_in: Some(format!("{}{via}", self.caller.who())),
            can_sign_out: self.caller.session.is_some(),
        }
    }

    /// Checks a posted form: its token, and that the browser says it came
    /// from this site. The page to answer with when it fails.
    pub fn form_refusal(&self, headers: &HeaderMap, token: &str, s: &AppState) -> Option<Response> {
        if cross_site(headers)
            || !self
                .pages
                .csrf_ok(self.caller.access(), &self.caller.binding(), token)
        {
            return Some(message(
                StatusCode::FORBIDDEN,
                self,
                s,
                "Form refused",
                "This form did not come from this page, or it has expired (the daemon restarted or you signed in again). Reload the page and try again.",
            ));
        }
        None
    }

    /// The 403 page for a right the viewer lacks on `group`, audited as the
    /// API's refusals are; `None` when the viewer holds it.
    pub async fn refuse(
        &self,
        s: &AppState,
        method: &axum::http::Method,
        right: Right,
        group: Uuid,
    ) -> Option<Response> {
        let why = self.caller.refusal(right, group)?;
        crate::metrics::auth_failure("forbidden");
        let e = session::audit_entry(
            Some(&self.caller),
            method,
            &self.path,
            Some(group),
            StatusCode::FORBIDDEN,
            Some(why.clone()),
        );
        s.engine.audit(e, false).await;
        Some(message(StatusCode::FORBIDDEN, self, s, "Not allowed", &why))
    }

    /// Audits something the viewer did through the page (durable before the
    /// answer, as the API's writes are).
    pub async fn audit_write(
        &self,
        s: &AppState,
        group: Option<Uuid>,
        status: StatusCode,
        reason: Option<String>,
    ) {
        let e = session::audit_entry(
            Some(&self.caller),
            &axum::http::Method::POST,
            &self.path,
            group,
            status,
            reason,
        );
        s.engine.audit(e, true).await;
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Viewer, Response> {
        let pages = parts
            .extensions
            .get::<Arc<PageState>>()
            .cloned()
            .unwrap_or_else(PageState::new);
        let transport = parts
            .extensions
            .get::<Transport>()
            .copied()
            .unwrap_or(Transport::Unix);
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_string(), |u| u.path().to_string());
        // `authenticate` attached it to every page but the open ones.
        let Some(caller) = parts.extensions.get::<PageCaller>().cloned() else {
            return Err(html(
                StatusCode::UNAUTHORIZED,
                "<!doctype html><title>Not signed in</title><p>Not signed in.</p>".into(),
            ));
        };
        Ok(Viewer {
            transport,
            caller,
            pages,
            path,
        })
    }
}

/// An HTML answer with the headers every page gets.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    resp
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// A page that only says something (not found, refused, failed).
pub fn message(
    status: StatusCode,
    viewer: &Viewer,
    s: &AppState,
    heading: &str,
    text: &str,
) -> Response {
    let page = MessagePage {
        chrome: viewer.chrome(heading, &s.engine),
        heading: heading.into(),
        message: text.into(),
    };
    rendered(status, askama::Template::render(&page))
}

/// A rendered template as a response; a template that fails to render (it
/// can't, short of a bug) is a plain 500.
pub fn rendered(status: StatusCode, r: Result<String, askama::Error>) -> Response {
    match r {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>The page failed to render.</p>".into(),
            )
        }
    }
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Longest filter text looked at.
const MAX_FILTER: usize = 256;

async fn groups(State(s): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    let q = query_pairs(raw);
    let take = |name| {
        param(&q, name)
            .unwrap_or("")
            .chars()
            .take(MAX_FILTER)
            .collect::<String>()
    };
    let filter = GroupFilter {
        name: take("name"),
        label: take("label"),
    };
    // Only the groups the viewer may see, as the API lists them.
    let views: Vec<_> = s
        .engine
        .views()
        .into_iter()
        .filter(|v| viewer.caller.may(Right::View, v.meta.id))
        .collect();
    let chrome = viewer.chrome("Runtime groups", &s.engine);
    rendered(
        StatusCode::OK,
        groups_page(&s.engine, &views, filter, chrome),
    )
}

/// The group with this id if the viewer holds `right` on it; else the 403
/// page (whether or not it exists, as the API answers) or, for org admins,
/// the not-found page.
async fn view_or_page(
    s: &AppState,
    viewer: &Viewer,
    id: &str,
    method: &axum::http::Method,
    right: Right,
) -> Result<Arc<crate::registry::GroupView>, Response> {
    let not_found = || {
        message(
            StatusCode::NOT_FOUND,
            viewer,
            s,
            "No such runtime group",
            "There is no runtime group with this id; it may have been deleted.",
        )
    };
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(if viewer.caller.org_admin {
            not_found()
        } else {
            message(
                StatusCode::FORBIDDEN,
                viewer,
                s,
                "Not allowed",
                "This is not a control plane you hold a role on.",
            )
        });
    };
    if let Some(refused) = viewer.refuse(s, method, right, id).await {
        return Err(refused);
    }
    s.engine.view(id).ok_or_else(not_found)
}

async fn group(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = match view_or_page(&s, &viewer, &id, &axum::http::Method::GET, Right::View).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let q = query_pairs(raw);
    let sort = Sort::parse(param(&q, "sort"), param(&q, "order"));
    let chrome = viewer.chrome(view.meta.name.clone(), &s.engine);
    let engine = s.engine.clone();
    rendered(
        StatusCode::OK,
        render::group_page(
            &view,
            &|id| engine.view(id),
            sort,
            s.engine.active_window_ms(),
            viewer.caller.may(Right::Edit, view.meta.id),
            chrome,
        ),
    )
}

/// Over `--http`: only the page, only to a loopback `Host` (a page fetched
/// through a DNS name that rebinds to 127.0.0.1 is another site's), and never
/// the API (401: it needs the socket).
pub async fn guard_tcp(req: Request, next: Next) -> Response {
    let Some(Transport::Tcp { .. }) = req.extensions().get::<Transport>().copied() else {
        return next.run(req).await;
    };
    let host_ok = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_loopback_host);
    if !host_ok {
        let mut resp = (
            StatusCode::MISDIRECTED_REQUEST,
            "this port serves only http://127.0.0.1, http://[::1] or http://localhost\n",
        )
            .into_response();
        secure_headers(resp.headers_mut());
        return resp;
    }
    let path = req.uri().path();
    if path != "/ui" && !path.starts_with("/ui/") {
        return super::ApiError::new(
            StatusCode::UNAUTHORIZED,
            "over --http only the Runtime Manager page (/ui/) is served; the API is on the Unix socket",
        )
        .into_response();
    }
    next.run(req).await
}

/// `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080` (port optional).
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "127.1.2.3:9",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "10.0.0.1:80",
            "[::2]:80",
            "localhost.evil.example",
            "[::1",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn sort_parsing() {
        use render::SortKey;
        assert_eq!(Sort::parse(None, None), Sort::default());
        let s = Sort::parse(Some("sync_status"), Some("asc"));
        assert_eq!(s.key, SortKey::SyncStatus);
        assert!(!s.descending);
        assert_eq!(Sort::parse(Some("bogus"), Some("bogus")), Sort::default());
    }
}

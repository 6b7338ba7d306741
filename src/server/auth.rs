//! Access control on every request (README: Access control): who is calling, what the route
//! needs, and a `problem+json` 401 or 403 saying which right was missing.
//!
//! - **Identity** ([`identify`], one function over the request, so a future
//!   TCP listener or cookie session only adds a case there): an
//!   `Authorization: Bearer rgmpat_…` token wins; otherwise the Unix peer
//!   credentials the accept loop attached to the connection ([`Peer`],
//!   `SO_PEERCRED`): the teams naming its uid or primary gid. No identity,
//!   an unknown one, a malformed header, a revoked or expired token: 401.
//! - **Rights** ([`ROUTES`], the route table): each route's need; the
//!   `{id}` segment names the group. A path no template matches needs org
//!   admin, so a new route can't be open by accident. A caller with
//!   no role on a group gets the same 403 whether or not the group exists;
//!   only org admins see a 404.
//! - **Audit**: every write (its result once it finished, made durable
//!   before the answer) and every 401/403 (batched: no fsync each) goes to
//!   the engine's audit log. Successful heartbeats are telemetry, not audited.
//!
//! Errors are built here (not in `error.rs`) on purpose: the format is
//! RFC 9457 `application/problem+json`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use crate::registry::{AccessView, AuditEntry, GroupRole, Right, TokenCheck, now, now_ms};

/// The Unix peer of a connection (`SO_PEERCRED`), attached by the accept
/// loop to every request of that connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    /// This process's own user and group: what the accept loop would attach
    /// to a connection from it (for in-process callers of the router, such
    /// as the fuzz target; the daemon's own user is org admin at first start).
    pub fn of_this_process() -> Peer {
        // SAFETY: neither call has preconditions or can fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Peer {
            uid,
            gid,
            pid: Some(std::process::id() as i32),
        }
    }
}

/// How a caller proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// Unix peer credentials; `by_uid` when a team names the uid (else the gid).
    Peer {
        uid: u32,
        gid: u32,
        by_uid: bool,
    },
    Token {
        id: Uuid,
    },
}

/// An identified caller, attached to the request for handlers.
#[derive(Clone)]
pub struct Caller {
    pub teams: Vec<String>,
    pub org_admin: bool,
    pub proof: Proof,
    access: Arc<AccessView>,
}

impl Caller {
    /// Whether the caller holds `right` on `group`.
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

    /// The caller's grants: group → roles.
    pub fn grants(&self) -> std::collections::BTreeMap<Uuid, Vec<GroupRole>> {
        self.access.grants_of(&self.teams)
    }
}

/// Why a request has no identity (401).
pub struct Unidentified {
    /// The `reason` label of `rgmerge_auth_failures_total`.
    pub reason: &'static str,
    pub detail: String,
    pub token_id: Option<Uuid>,
    pub teams: Vec<String>,
}

/// Longest `Authorization` header looked at; ours are 78 bytes.
const MAX_AUTHORIZATION: usize = 1024;

/// Who sent `req`: its bearer token if it has an `Authorization` header,
/// else the Unix peer of its connection.
pub fn identify(access: &Arc<AccessView>, req: &Request) -> Result<Caller, Unidentified> {
    let fail = |reason, detail: String| Unidentified {
        reason,
        detail,
        token_id: None,
        teams: Vec::new(),
    };
    let mut auth = req.headers().get_all(header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        let malformed = |why: &str| {
            fail(
                "malformed_header",
                format!(
                    "malformed Authorization header: {why}; send `Authorization: Bearer rgmpat_…`"
                ),
            )
        };
        if auth.next().is_some() {
            return Err(malformed("more than one was sent"));
        }
        if value.len() > MAX_AUTHORIZATION {
            return Err(malformed("it is too long"));
        }
        let value = value
            .to_str()
            .map_err(|_| malformed("it is not printable ASCII"))?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(malformed("only the Bearer scheme is accepted"));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(malformed("the token is missing"));
        }
        return match access.check_token(token, now_ms()) {
            TokenCheck::Valid { team, id } => {
                let teams = vec![team.to_string()];
                Ok(Caller {
                    org_admin: access.is_org_admin(&teams),
                    teams,
                    proof: Proof::Token { id },
                    access: access.clone(),
                })
            }
            TokenCheck::Unknown => Err(fail(
                "unknown_token",
                "unknown token: it was never issued here, or its team was deleted".into(),
            )),
            TokenCheck::Revoked { team, id } => Err(Unidentified {
                reason: "revoked_token",
                detail: format!("token {id} of team '{team}' was revoked"),
                token_id: Some(id),
                teams: vec![team.to_string()],
            }),
            TokenCheck::Expired { team, id } => Err(Unidentified {
                reason: "expired_token",
                detail: format!("token {id} of team '{team}' has expired"),
                token_id: Some(id),
                teams: vec![team.to_string()],
            }),
        };
    }
    let Some(peer) = req.extensions().get::<Peer>() else {
        return Err(fail(
            "no_identity",
            "no identity: this connection carries no Unix credentials; send `Authorization: Bearer rgmpat_…`".into(),
        ));
    };
    let teams = access.teams_of_peer(peer.uid, peer.gid);
    if teams.is_empty() {
        return Err(fail(
            "unknown_peer",
            format!(
                "uid {} (gid {}) belongs to no team; an org admin can add it (`rgmerge admin teams add-uid`), or send a bearer token",
                peer.uid, peer.gid
            ),
        ));
    }
    let by_uid = teams
        .iter()
        .any(|t| access.team(t).is_some_and(|t| t.uids.contains(&peer.uid)));
    Ok(Caller {
        org_admin: access.is_org_admin(&teams),
        teams,
        proof: Proof::Peer {
            uid: peer.uid,
            gid: peer.gid,
            by_uid,
        },
        access: access.clone(),
    })
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Anyone, even unidentified.
    Open,
    /// Any identified caller (the answer may depend on who: a list is
    /// filtered to the groups the caller can view).
    Known,
    /// An org admin.
    OrgAdmin,
    /// This right on the group the `{id}` segment names.
    On(Right),
    /// Administer the composite `{id}`, and view every group the body names
    /// (adding members).
    Members,
}

use super::routes::ROUTES;

/// A request's place in [`ROUTES`].
#[derive(Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// The matched template; `None` when no template has this path.
    pub template: Option<&'static str>,
    pub need: Need,
    /// The group the path names (`{id}`, or `{group}` of a grant), when it is a UUID.
    pub group: Option<Uuid>,
    /// The raw `{id}` segment, when the template has one.
    pub id_segment: Option<&'a str>,
}

/// Finds the template for `method` and `path`: segments compared one by one
/// as the router does (a literal segment beats a parameter). A path some
/// template has, with another method, needs only an identity (the router
/// answers 405); a path no template has needs org admin.
pub fn route_of<'a>(method: &Method, path: &'a str) -> Route<'a> {
    /// Each template split into segments, once.
    static SPLIT: std::sync::LazyLock<Vec<Vec<&'static str>>> = std::sync::LazyLock::new(|| {
        ROUTES
            .iter()
            .map(|r| r.template.split('/').collect())
            .collect()
    });
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let segs: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, &'static str, &'static str, Need)> = None;
    for (r, tsegs) in ROUTES.iter().zip(SPLIT.iter()) {
        let (m, template, need) = (&r.method, &r.template, &r.need);
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literals = 0;
        let fits = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') {
                !s.is_empty()
            } else {
                literals += 1;
                t == s
            }
        });
        if !fits {
            continue;
        }
        // Prefer the method's own route, then the most literal segments.
        let score = literals * 2 + usize::from(*m == method);
        if best.is_none_or(|(b, ..)| score > b) {
            best = Some((score, m, template, *need));
        }
    }
    let Some((_, m, template, need)) = best else {
        return Route {
            template: None,
            need: Need::OrgAdmin,
            group: None,
            id_segment: None,
        };
    };
    let need = if m == method { need } else { Need::Known };
    let param = |name: &str| {
        template
            .split('/')
            .zip(&segs)
            .find(|(t, _)| *t == name)
            .map(|(_, s)| *s)
    };
    let id_segment = param("{id}");
    let group = id_segment
        .or_else(|| param("{group}"))
        .and_then(|s| Uuid::parse_str(&percent_decode(s)).ok());
    Route {
        template: Some(template),
        need,
        group,
        id_segment,
    }
}

/// `%XX` decoded, as the router decodes path parameters.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a known caller may not do this (403), or `None` when it may.
fn refusal(caller: &Caller, method: &Method, route: &Route) -> Option<String> {
    if caller.org_admin {
        return None;
    }
    let what = format!("{method} {}", route.template.unwrap_or("this path"));
    match route.need {
        Need::Open | Need::Known => None,
        Need::OrgAdmin => Some(format!(
            "{} needs org admin for {what}; it is not an org admin",
            caller.who()
        )),
        Need::On(right) => on_group(caller, right, route.group, &what),
        Need::Members => on_group(caller, Right::Administer, route.group, &what),
    }
}

fn on_group(caller: &Caller, right: Right, group: Option<Uuid>, what: &str) -> Option<String> {
    let need = right.least_role().as_str();
    let Some(group) = group else {
        return Some(format!(
            "{} needs {need} on the control plane of {what}, and the path names none it holds a role on",
            caller.who()
        ));
    };
    if caller.may(right, group) {
        return None;
    }
    let held = caller.access.roles(&caller.teams, group);
    let has = if held.is_empty() {
        "no role there".to_string()
    } else {
        let names: Vec<&str> = held.iter().map(|r| r.as_str()).collect();
        names.join(", ")
    };
    let need = if right == Right::ReadSnapshot {
        "viewer or node"
    } else {
        need
    };
    Some(format!(
        "{} needs {need} on control plane {group} for {what}; it has {has}",
        caller.who()
    ))
}

/// An RFC 9457 problem.
pub fn problem(status: StatusCode, detail: &str, instance: &str) -> Response {
    // Under core-entities, the gateway's form, as every error there.
    let (body, content_type) = if super::error::is_gateway_path(instance) {
        (
            json!({"message": detail, "status": status.as_u16()}),
            "application/json",
        )
    } else {
        (
            json!({
                "type": "about:blank",
                "status": status.as_u16(),
                "title": status.canonical_reason().unwrap_or("Error"),
                "detail": detail,
                "instance": instance,
            }),
            "application/problem+json",
        )
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rgmerge\""),
        );
    }
    resp
}

fn is_write(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Who and what, for the audit log (of API requests and of the page's).
#[derive(Clone)]
pub(crate) struct Subject {
    pub teams: Vec<String>,
    /// `uid`, `gid`, `token` or `none`.
    pub credential: &'static str,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub token_id: Option<Uuid>,
}

impl Subject {
    fn of(caller: &Caller) -> Subject {
        let (credential, uid, gid, token_id) = match caller.proof {
            Proof::Peer { uid, gid, by_uid } => (
                if by_uid { "uid" } else { "gid" },
                Some(uid),
                Some(gid),
                None,
            ),
            Proof::Token { id } => ("token", None, None, Some(id)),
        };
        Subject {
            teams: caller.teams.clone(),
            credential,
            uid,
            gid,
            token_id,
        }
    }

    fn unidentified(u: &Unidentified, peer: Option<Peer>) -> Subject {
        Subject {
            teams: u.teams.clone(),
            credential: if u.token_id.is_some() {
                "token"
            } else {
                "none"
            },
            uid: peer.map(|p| p.uid),
            gid: peer.map(|p| p.gid),
            token_id: u.token_id,
        }
    }
}

const MAX_AUDIT_PATH: usize = 512;

/// The audit log entry of a request, answered `status`.
pub(crate) fn audit_entry(
    who: Subject,
    method: &Method,
    path: &str,
    group: Option<Uuid>,
    status: StatusCode,
    reason: Option<String>,
) -> AuditEntry {
    let result = match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        s if s < 400 => "ok",
        s if s >= 500 => "error",
        _ => "refused",
    };
    AuditEntry {
        seq: 0,
        time: now(),
        teams: who.teams,
        credential: who.credential.to_string(),
        uid: who.uid,
        gid: who.gid,
        token_id: who.token_id,
        method: method.as_str().chars().take(16).collect(),
        path: path.chars().take(MAX_AUDIT_PATH).collect(),
        group,
        status: status.as_u16(),
        result: result.to_string(),
        reason,
    }
}

/// The middleware: identify, check, attach the [`Caller`], run, audit.
pub async fn enforce(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = route_of(&method, &path);
    if route.need == Need::Open {
        return next.run(req).await;
    }
    let group = route.group;
    let access = s.engine.access();
    let caller = match identify(&access, &req) {
        Ok(c) => c,
        Err(u) => {
            crate::metrics::auth_failure(u.reason);
            let peer = req.extensions().get::<Peer>().copied();
            let status = StatusCode::UNAUTHORIZED;
            let e = audit_entry(
                Subject::unidentified(&u, peer),
                &method,
                &path,
                group,
                status,
                Some(u.detail.clone()),
            );
            s.engine.audit(e, false).await;
            return problem(status, &u.detail, &path);
        }
    };
    let mut denied = refusal(&caller, &method, &route);
    let mut req = req;
    if denied.is_none() && route.need == Need::Members && !caller.org_admin {
        match members_check(&s, &caller, req, group).await {
            Ok(r) => req = r,
            Err(Denial::Forbidden(why)) => {
                denied = Some(why);
                req = Request::new(Body::empty());
            }
            Err(Denial::Body(status, why)) => {
                let e = audit_entry(
                    Subject::of(&caller),
                    &method,
                    &path,
                    group,
                    status,
                    Some(why.clone()),
                );
                s.engine.audit(e, false).await;
                return problem(status, &why, &path);
            }
        }
    }
    if let Some(why) = denied {
        crate::metrics::auth_failure("forbidden");
        let status = StatusCode::FORBIDDEN;
        let e = audit_entry(
            Subject::of(&caller),
            &method,
            &path,
            group,
            status,
            Some(why.clone()),
        );
        s.engine.audit(e, false).await;
        return problem(status, &why, &path);
    }
    let heartbeat = route.need == Need::On(Right::Heartbeat);
    let mut who = Subject::of(&caller);
    if let Some(p) = req.extensions().get::<Peer>() {
        // A token's bearer: which Unix user sent it is worth knowing too.
        who.uid.get_or_insert(p.uid);
        who.gid.get_or_insert(p.gid);
    }
    req.extensions_mut().insert(caller);
    let write = is_write(&method);
    let (resp, carried) = if write && !heartbeat {
        // The entry rides the request's write into its commit, recorded
        // with the status this route answers on success.
        let ok = success_status(&method, route.template);
        let draft = audit_entry(who.clone(), &method, &path, group, ok, None);
        let (resp, carried) = s.engine.with_write_audit(draft, next.run(req)).await;
        let carried = carried.then_some(ok);
        (resp, carried)
    } else {
        (next.run(req).await, None)
    };
    let status = resp.status();
    if carried == Some(status) {
        return resp;
    }
    let mut reason = None;
    if let Some(recorded) = carried {
        // Never expected: `success_status` is wrong for this route. The log
        // gets the truth as a second entry.
        tracing::warn!(%method, %path, %recorded, %status, "a write's audit entry recorded the wrong status; recording the answer too");
        crate::metrics::audit_corrected();
        reason = Some(format!(
            "corrects the entry stored with this write, which recorded {recorded}"
        ));
    }
    if write && (!heartbeat || status.as_u16() >= 400) {
        let e = audit_entry(who, &method, &path, group, status, reason);
        // A write's entry is durable before its answer goes out.
        s.engine.audit(e, !heartbeat).await;
    }
    resp
}

/// What a write route answers when it succeeds (not a dry run): the status
/// its audit entry is stored with, in the write's own commit.
pub fn success_status(method: &Method, template: Option<&str>) -> StatusCode {
    match (method.as_str(), template.unwrap_or_default()) {
        // These answer what is left: the team, the group's pin state.
        (
            "DELETE",
            "/v2/teams/{team}/credentials/{credential}" | "/v2/control-planes/{id}/snapshot/pin",
        ) => StatusCode::OK,
        ("DELETE", _) => StatusCode::NO_CONTENT,
        (
            "POST",
            "/v2/control-planes"
            | "/v2/teams"
            | "/v2/teams/{team}/tokens"
            | "/v2/control-planes/{id}/dp-client-certificates",
        ) => StatusCode::CREATED,
        ("POST", t) if t.contains("/core-entities/") && !t.ends_with("/validate") => {
            StatusCode::CREATED
        }
        (_, t) if t.starts_with("/v2/control-planes/{id}/group-memberships") => {
            StatusCode::NO_CONTENT
        }
        _ => StatusCode::OK,
    }
}

enum Denial {
    Forbidden(String),
    Body(StatusCode, String),
}

/// Adding members to a composite also needs viewer on each: every group id
/// the body names (whatever its shape) is checked. The body is read here
/// (within `--max-body-bytes`) and handed on unchanged.
async fn members_check(
    s: &AppState,
    caller: &Caller,
    req: Request,
    composite: Option<Uuid>,
) -> Result<Request, Denial> {
    let (parts, body) = req.into_parts();
    let limit = s.opts.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            Denial::Body(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than the limit of {limit} bytes (--max-body-bytes)"
                ),
            )
        } else {
            Denial::Body(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            )
        }
    })?;
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        let mut ids = Vec::new();
        uuids_in(&v, &mut ids);
        for id in ids.into_iter().filter(|id| Some(*id) != composite) {
            if !caller.may(Right::View, id) {
                let held = caller.access.roles(&caller.teams, id);
                let has = if held.is_empty() {
                    "no role there".to_string()
                } else {
                    held.iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(Denial::Forbidden(format!(
                    "{} needs viewer on control plane {id} to make it a member of a composite; it has {has}",
                    caller.who()
                )));
            }
        }
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Every string in `v` that is a UUID (at most 1000 looked at).
fn uuids_in(v: &Value, out: &mut Vec<Uuid>) {
    match v {
        Value::String(s) => {
            if let Ok(id) = Uuid::parse_str(s) {
                out.push(id);
            }
        }
        Value::Array(a) => a.iter().take(1000).for_each(|x| uuids_in(x, out)),
        Value::Object(o) => o.values().take(1000).for_each(|x| uuids_in(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (template, need, group) of a request.
    fn of(m: Method, path: String) -> (Option<&'static str>, Need, Option<Uuid>) {
        let r = route_of(&m, &path);
        (r.template, r.need, r.group)
    }

    #[test]
    fn routes_match_as_the_router_does() {
        let id = "0b7c7e58-6f8a-4d36-9c1e-1b1a4d0c2f10";
        let gid = Uuid::parse_str(id).ok();
        let (t, _, g) = of(Method::GET, format!("/v2/control-planes/{id}/nodes/eol"));
        assert_eq!((t, g), (Some("/v2/control-planes/{id}/nodes/eol"), gid));
        let (t, ..) = of(Method::GET, format!("/v2/control-planes/{id}/nodes/n1"));
        assert_eq!(t, Some("/v2/control-planes/{id}/nodes/{node_id}"));
        let (_, need, _) = of(Method::HEAD, format!("/v2/control-planes/{id}/snapshot"));
        assert_eq!(need, Need::On(Right::ReadSnapshot));
        // Another method on a known path: only an identity (the router says 405).
        let (_, need, _) = of(Method::PUT, format!("/v2/control-planes/{id}/snapshot"));
        assert_eq!(need, Need::Known);
        // Unknown paths, doubled slashes, trailing slashes: org admin only.
        for p in [
            "/v2/nothing".to_string(),
            format!("/v2/control-planes//{id}"),
            format!("/v2/control-planes/{id}/"),
            "/v2/control-planes/".to_string(),
        ] {
            assert_eq!(of(Method::GET, p.clone()).1, Need::OrgAdmin, "{p}");
        }
        // A percent-encoded id names the same group as the router decodes it.
        let enc = format!("/v2/control-planes/%30{}/config", &id[1..]);
        assert_eq!(of(Method::PUT, enc).2, gid);
        assert_eq!(of(Method::GET, "/healthz".into()).1, Need::Open);
        let (_, need, g) = of(Method::DELETE, format!("/v2/teams/blue/grants/{id}"));
        assert_eq!((need, g), (Need::OrgAdmin, gid));
    }

    /// In process, without the accept loop: no peer is 401; this process's
    /// own user (who started the engine) is org admin.
    #[tokio::test]
    async fn the_router_needs_an_identity_in_process_too() {
        use tower::ServiceExt;
        let engine = crate::engine::Engine::start(None, Default::default()).expect("engine");
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let app = super::super::router(AppState {
            engine,
            opts: Arc::new(super::super::ServeOptions {
                socket: "/nonexistent.sock".into(),
                max_body_bytes: 1024,
                max_in_flight: 4,
                max_wait: std::time::Duration::ZERO,
                max_connections: 4,
                timeouts: Default::default(),
                http: None,
                cluster: None,
                api: None,
            }),
            shutdown,
        });
        let get = |peer: Option<Peer>| {
            let mut req = Request::get("/v2/control-planes")
                .body(Body::empty())
                .expect("request");
            if let Some(p) = peer {
                req.extensions_mut().insert(p);
            }
            app.clone().oneshot(req)
        };
        let r = get(None).await.expect("infallible");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = get(Some(Peer::of_this_process()))
            .await
            .expect("infallible");
        assert_eq!(r.status(), StatusCode::OK);
        let stranger = Peer {
            uid: 4_000_000_000,
            gid: 4_000_000_000,
            pid: None,
        };
        let r = get(Some(stranger)).await.expect("infallible");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
    }
}

//! The access-control admin API (extensions; org admins only, see `auth`):
//! `/v2/teams` and their credentials, tokens and grants, `/v2/audit-log`,
//! and `/v2/me` (who the caller is, for anyone identified).

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::auth::{Caller, Proof};
use super::error::Rule;
use super::error::{ApiError, ApiResult};
use super::http::{Query, json_body, ok_json, query};

/// The first of `names` the query string has.
fn param<'a>(q: &'a Query, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| q.get(n))
}
use crate::registry::{
    AuditFilter, Credential, GroupRole, NewTeam, TeamRecord, TokenRecord, now_ms, rfc3339_ms,
};

/// Default token lifetime: 90 days.
const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 90 * 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    org_admin: bool,
    #[serde(default)]
    uids: Vec<u32>,
    #[serde(default)]
    gids: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    gid: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    name: String,
    /// RFC 3339.
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// A control plane id or name.
    group: String,
    role: String,
}

fn token_json(t: &TokenRecord, now: u64) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "hint": format!("{}…", t.hint),
        "created_at": t.created_at,
        "expires_at": rfc3339_ms(t.expires_at_ms),
        "expired": t.expires_at_ms <= now,
        "revoked": t.revoked_at.is_some(),
        "revoked_at": t.revoked_at,
    })
}

fn grants_json(s: &AppState, t: &TeamRecord) -> Vec<Value> {
    t.grants
        .iter()
        .map(|(g, r)| {
            json!({
                "group": g,
                "name": s.engine.view(*g).map(|v| v.meta.name.clone()),
                "role": r.as_str(),
            })
        })
        .collect()
}

fn team_json(s: &AppState, t: &TeamRecord) -> Value {
    let now = now_ms();
    json!({
        "name": t.name,
        "description": t.description,
        "org_admin": t.org_admin,
        "uids": t.uids,
        "gids": t.gids,
        "tokens": t.tokens.iter().map(|k| token_json(k, now)).collect::<Vec<_>>(),
        "grants": grants_json(s, t),
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    })
}

fn team_or_404(s: &AppState, name: &str) -> ApiResult<TeamRecord> {
    s.engine
        .access()
        .team(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no team named '{name}'")))
}

/// A control plane by id or by name.
fn resolve_group(s: &AppState, g: &str) -> ApiResult<Uuid> {
    if let Ok(id) = Uuid::parse_str(g) {
        return Ok(id);
    }
    s.engine
        .views()
        .into_iter()
        .find(|v| v.meta.name == g)
        .map(|v| v.meta.id)
        .ok_or_else(|| ApiError::not_found(format!("no control plane named '{g}'")))
}

pub async fn list_teams(State(s): State<AppState>) -> Response {
    let access = s.engine.access();
    let teams: Vec<Value> = access.teams().map(|t| team_json(&s, t)).collect();
    ok_json(StatusCode::OK, json!({"data": teams}))
}

pub async fn create_team(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let b: TeamBody = json_body(&s, &headers, body).await?;
    let team = s
        .engine
        .create_team(NewTeam {
            name: b.name,
            description: b.description,
            org_admin: b.org_admin,
            uids: b.uids,
            gids: b.gids,
        })
        .await?;
    Ok(ok_json(StatusCode::CREATED, team_json(&s, &team)))
}

pub async fn get_team(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let t = team_or_404(&s, &name)?;
    Ok(ok_json(StatusCode::OK, team_json(&s, &t)))
}

pub async fn delete_team(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    s.engine.delete_team(name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn add_credential(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let b: CredentialBody = json_body(&s, &headers, body).await?;
    let c = match (b.uid, b.gid) {
        (Some(u), None) => Credential::Uid(u),
        (None, Some(g)) => Credential::Gid(g),
        _ => {
            return Err(ApiError::bad_request(
                "uid",
                Some(Rule::Invalid),
                "send exactly one of `uid` and `gid`",
            ));
        }
    };
    let t = s.engine.add_credential(name, c).await?;
    Ok(ok_json(StatusCode::OK, team_json(&s, &t)))
}

/// `uid:1001` or `gid:100`.
fn parse_credential(s: &str) -> ApiResult<Credential> {
    let bad = || {
        ApiError::bad_request(
            "credential",
            Some(Rule::Invalid),
            format!(
                "'{}' is not a credential: use uid:N or gid:N",
                s.chars().take(64).collect::<String>()
            ),
        )
    };
    let (kind, n) = s.split_once(':').ok_or_else(bad)?;
    let n: u32 = n.parse().map_err(|_| bad())?;
    match kind {
        "uid" => Ok(Credential::Uid(n)),
        "gid" => Ok(Credential::Gid(n)),
        _ => Err(bad()),
    }
}

pub async fn remove_credential(
    State(s): State<AppState>,
    Path((name, credential)): Path<(String, String)>,
) -> ApiResult<Response> {
    let c = parse_credential(&credential)?;
    let t = s.engine.remove_credential(name, c).await?;
    Ok(ok_json(StatusCode::OK, team_json(&s, &t)))
}

pub async fn list_tokens(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let t = team_or_404(&s, &name)?;
    let now = now_ms();
    let tokens: Vec<Value> = t.tokens.iter().map(|k| token_json(k, now)).collect();
    Ok(ok_json(StatusCode::OK, json!({"data": tokens})))
}

pub async fn issue_token(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // An empty body asks for the defaults.
    let b: TokenBody = if headers.contains_key(axum::http::header::CONTENT_TYPE)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v != "0")
    {
        json_body(&s, &headers, body).await?
    } else {
        TokenBody {
            name: String::new(),
            expires_at: None,
            expires_in_seconds: None,
        }
    };
    let now = now_ms();
    let expires_at_ms = match (b.expires_at, b.expires_in_seconds) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "expires_at",
                Some(Rule::Invalid),
                "send `expires_at` or `expires_in_seconds`, not both",
            ));
        }
        (Some(at), None) => {
            let t =
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        ApiError::bad_request(
                            "expires_at",
                            Some(Rule::Invalid),
                            format!("`expires_at` is not RFC 3339: {e}"),
                        )
                    })?;
            u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        }
        (None, secs) => now.saturating_add(
            secs.unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS)
                .saturating_mul(1000),
        ),
    };
    let (rec, secret) = s
        .engine
        .issue_token(name.clone(), b.name, expires_at_ms)
        .await?;
    let mut v = token_json(&rec, now);
    if let Some(o) = v.as_object_mut() {
        o.insert("team".into(), json!(name));
        o.insert("token".into(), json!(secret));
        o.insert(
            "note".into(),
            json!("the token is shown only this once: store it now"),
        );
    }
    Ok(ok_json(StatusCode::CREATED, v))
}

pub async fn revoke_token(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| {
        ApiError::bad_request("token_id", Some(Rule::IsUuid), "a token id is a UUID")
    })?;
    s.engine.revoke_token(name, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_grants(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let t = team_or_404(&s, &name)?;
    Ok(ok_json(
        StatusCode::OK,
        json!({"data": grants_json(&s, &t)}),
    ))
}

pub async fn set_grant(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let b: GrantBody = json_body(&s, &headers, body).await?;
    let role = GroupRole::parse(&b.role).ok_or_else(|| {
        ApiError::bad_request(
            "role",
            Some(Rule::Invalid),
            format!(
                "unknown role '{}': use viewer, editor, admin or node",
                b.role.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let group = resolve_group(&s, &b.group)?;
    s.engine.set_grant(name.clone(), group, role).await?;
    Ok(ok_json(
        StatusCode::OK,
        json!({"team": name, "group": group, "role": role.as_str()}),
    ))
}

pub async fn remove_grant(
    State(s): State<AppState>,
    Path((name, group)): Path<(String, String)>,
) -> ApiResult<Response> {
    let group = resolve_group(&s, &group)?;
    s.engine.remove_grant(name, group).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Any RFC 3339 time, in the audit log's own fixed-width UTC form.
fn audit_time(name: &str, v: &str) -> ApiResult<String> {
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            ApiError::bad_request(
                name,
                Some(Rule::Invalid),
                format!("`{name}` is not RFC 3339: {e}"),
            )
        })?
        .to_offset(time::UtcOffset::UTC);
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    ))
}

/// `GET /v2/audit-log?group=&team=&since=&until=&before=&page[size]=`:
/// newest first; `meta.next_before` asks for the next page.
pub async fn audit_log(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query(raw)?;
    let limit = match param(&q, &["page[size]", "limit"]) {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "page[size]",
                    Some(Rule::Invalid),
                    "`page[size]` must be a number from 1 to 1000",
                )
            })?,
    };
    let filter = AuditFilter {
        group: param(&q, &["group", "filter[group]"])
            .map(|g| resolve_group(&s, g))
            .transpose()?,
        team: param(&q, &["team", "filter[team]"]).map(str::to_string),
        since: param(&q, &["since"])
            .map(|v| audit_time("since", v))
            .transpose()?,
        until: param(&q, &["until"])
            .map(|v| audit_time("until", v))
            .transpose()?,
        before: param(&q, &["before"])
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "before",
                        Some(Rule::IsInteger),
                        "`before` must be a sequence number",
                    )
                })
            })
            .transpose()?,
        limit,
    };
    let entries = s.engine.audit_log(filter).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(ok_json(
        StatusCode::OK,
        json!({"data": entries, "meta": {"size": entries.len(), "next_before": next}}),
    ))
}

/// `GET /v2/me`: the caller's teams, credential and grants.
pub async fn me(State(s): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let credential = match &caller.proof {
        Proof::Peer { uid, gid, by_uid } => {
            json!({"kind": if *by_uid { "uid" } else { "gid" }, "uid": uid, "gid": gid})
        }
        Proof::Token { id } => json!({"kind": "token", "token_id": id}),
    };
    let grants: Vec<Value> = caller
        .grants()
        .into_iter()
        .map(|(g, roles)| {
            json!({
                "group": g,
                "name": s.engine.view(g).map(|v| v.meta.name.clone()),
                "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    ok_json(
        StatusCode::OK,
        json!({
            "teams": caller.teams,
            "org_admin": caller.org_admin,
            "credential": credential,
            "grants": grants,
        }),
    )
}

//! A composite's members: add, remove, replace (upsert), list; its status;
//! a group's membership. Konnect's operations, plus `?dry_run=true` on the
//! writes (an extension: the answer is the composite's report).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, Rule};
use super::groups::{endpoint, group_json};
use super::http::{
    cursor_page, json_body, next_link, ok_json, parse_id, parse_uuid, query, view_or_404,
};
use crate::registry::{
    CompositeView, GroupView, MAX_CONFLICT_ENTRIES, Mode, resource_type, rfc3339_ms,
};
use crate::report::State as ReportState;

/// The body of `group-memberships` (PUT) and its `/add` and `/remove`.
#[derive(Deserialize)]
struct MembersBody {
    members: Vec<MemberRef>,
}

#[derive(Deserialize)]
struct MemberRef {
    id: String,
}

enum Change {
    Add,
    Remove,
    Replace,
}

async fn change(
    s: AppState,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
    body: Body,
    change: Change,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    q.only(&["dry_run"])?;
    let dry_run = q.flag("dry_run")?;
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let req: MembersBody = json_body(&s, &headers, body).await?;
    let ids = req
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| parse_uuid(&format!("members[{i}].id"), &m.id))
        .collect::<ApiResult<Vec<Uuid>>>()?;
    let done = match change {
        Change::Add => s.engine.add_members(id, ids, mode).await,
        Change::Remove => s.engine.remove_members(id, ids, mode).await,
        Change::Replace => s.engine.set_members(id, ids, mode).await,
    };
    // The spec lists no 409 for these: a refusal is a 400 (or a 404).
    let report = done.map_err(|r| ApiError::from(r).no_conflict_status())?;
    if !dry_run {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("dry_run".into(), json!(true));
    }
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn add(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    change(s, id, raw, headers, body, Change::Add).await
}

pub async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    change(s, id, raw, headers, body, Change::Remove).await
}

/// `PUT …/group-memberships`: the member list becomes exactly this one.
pub async fn upsert(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    change(s, id, raw, headers, body, Change::Replace).await
}

pub fn composite_of(v: &GroupView) -> ApiResult<&CompositeView> {
    v.composite().ok_or_else(|| {
        ApiError::bad_request(
            "id",
            Some(Rule::Invalid),
            format!(
                "control plane '{}' is not a control plane group (composite): only composites have members",
                v.meta.name
            ),
        )
    })
}

/// The members, by id, a cursor at a time (`page[size]`, `page[after]`).
pub async fn list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = query(raw)?;
    q.only(&["page[size]", "page[after]"])?;
    let size = q.page_size()?;
    let cursor = q.cursor()?;
    let view = view_or_404(&s, parse_id(&id)?)?;
    let mut members = composite_of(&view)?.members.clone();
    members.sort();
    let page = cursor_page(
        members,
        cursor.as_deref(),
        size,
        |m| *m,
        |c| Uuid::parse_str(c).ok(),
        Uuid::to_string,
    )?;
    let endpoint = endpoint(&s);
    let data: Vec<Value> = page
        .items
        .iter()
        .filter_map(|m| s.engine.view(*m))
        .map(|m| group_json(&m, &endpoint))
        .collect();
    // Relative to the API's base (`/v2`), as Konnect's links are.
    let path = format!("/control-planes/{}/group-memberships", view.meta.id);
    let next = page.next.map(|c| next_link(&path, &q, size, &c));
    Ok(ok_json(
        StatusCode::OK,
        json!({"data": data, "meta": {"page": {"size": size, "total": page.total, "next": next}}}),
    ))
}

/// Konnect's `GroupStatus`: one entry per member and entity in conflict,
/// and one per member error (Konnect has no state for an invalid member, so
/// it stays `CONFLICT`, but each entry names the member and its error). At
/// most 256 entries, as Konnect; when there are both kinds, each keeps at
/// least half of them.
fn status_json(v: &GroupView, c: &CompositeView) -> Value {
    let conflict_entries = c.conflict_entries();
    let error_entries = c.error_entries();
    let half = MAX_CONFLICT_ENTRIES / 2;
    let errors_take = error_entries
        .len()
        .min(MAX_CONFLICT_ENTRIES - conflict_entries.len().min(half));
    let conflicts_take = conflict_entries
        .len()
        .min(MAX_CONFLICT_ENTRIES - errors_take);
    let mut conflicts: Vec<Value> = conflict_entries[..conflicts_take]
        .iter()
        .filter_map(|e| {
            let conflict = c.conflict_of(e)?;
            let mut item = serde_json::to_value(conflict).ok()?;
            let o = item.as_object_mut()?;
            o.insert("cluster_id".into(), json!(e.member));
            o.insert(
                "description".into(),
                json!(format!(
                    "conflicting entity found: ID={}, Name={}",
                    e.resource_id, e.name
                )),
            );
            o.insert(
                "resource".into(),
                json!({"id": e.resource_id, "type": resource_type(&conflict.entity)}),
            );
            o.insert("path".into(), json!(e.path));
            Some(item)
        })
        .collect();
    conflicts.extend(error_entries[..errors_take].iter().filter_map(|e| {
        let error = c.error_of(e)?;
        let mut item = serde_json::to_value(error).ok()?;
        let o = item.as_object_mut()?;
        o.insert("cluster_id".into(), json!(e.member));
        let place = if error.path.is_empty() {
            String::new()
        } else {
            format!(" at {}", error.path)
        };
        o.insert(
            "description".into(),
            json!(format!(
                "invalid member '{}' ({}): {}{place}: {}",
                error.member,
                e.member,
                error.kind.code(),
                error.message
            )),
        );
        o.insert(
            "resource".into(),
            json!({"id": e.resource_id, "type": resource_type(&error.entity)}),
        );
        Some(item)
    }));
    // Konnect's states are OK, CONFLICT and UNKNOWN: member errors count
    // as a conflict there (the entries above say which they are).
    let state = match c.report.state {
        ReportState::Ok => "OK",
        ReportState::Conflict | ReportState::Invalid => "CONFLICT",
    };
    // The later of its last change and its last published snapshot.
    let changed = time::OffsetDateTime::parse(
        &v.meta.updated_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_or(0, |t| t.unix_timestamp_nanos() / 1_000_000);
    let updated_at = if i128::from(v.snapshot.published_ms) > changed {
        rfc3339_ms(v.snapshot.published_ms)
    } else {
        v.meta.updated_at.clone()
    };
    json!({"item": {
        "id": v.meta.id,
        "created_at": v.meta.created_at,
        "updated_at": updated_at,
        "state": state,
        "conflicts": conflicts,
    }})
}

pub async fn status(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let c = composite_of(&view)?;
    Ok(ok_json(StatusCode::OK, status_json(&view, c)))
}

/// Konnect's bare `GroupMemberStatus`; which composites, at `/details`.
pub async fn member_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let is_member = view.standard().is_some_and(|st| !st.composites.is_empty());
    Ok(ok_json(StatusCode::OK, json!({"is_member": is_member})))
}

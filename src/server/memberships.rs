//! A composite's members: add, remove, list; its status; a group's membership.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::groups::group_json;
use super::http::{flag, json_body, ok_json, page, paged, parse_id, query, view_or_404};
use crate::registry::{GroupView, Mode, now_ms, resource_type};
use crate::report::{Report, text};

/// The body of `group-memberships/add` and `/remove`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    members: Vec<MemberRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberRef {
    id: String,
}

enum Change {
    Add,
    Remove,
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
    let dry_run = flag(&query(raw)?, "dry_run")?;
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let req: MembersBody = json_body(&s, &headers, body).await?;
    let ids = req
        .members
        .iter()
        .map(|m| parse_id(&m.id))
        .collect::<ApiResult<Vec<Uuid>>>()?;
    let report = match change {
        Change::Add => s.engine.add_members(id, ids, mode).await?,
        Change::Remove => s.engine.remove_members(id, ids, mode).await?,
    };
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("dry_run".into(), json!(dry_run));
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

fn composite_of(v: &GroupView) -> ApiResult<&crate::registry::CompositeView> {
    v.composite().ok_or_else(|| {
        ApiError::bad_request(format!(
            "control plane '{}' is not a control plane group (composite): only composites have members",
            v.meta.name
        ))
    })
}

pub async fn list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let (size, number) = page(&query(raw)?)?;
    let (now, window) = (now_ms(), s.engine.active_window_ms());
    let items = composite_of(&view)?
        .members
        .iter()
        .filter_map(|m| s.engine.view(*m))
        .map(|m| group_json(&m, now, window))
        .collect();
    Ok(ok_json(StatusCode::OK, paged(items, size, number)))
}

/// Konnect's GroupStatus, each conflict extended with the report's fields.
fn status_json(s: &AppState, v: &GroupView, members: &[Uuid], report: &Report) -> Value {
    let ids: Vec<(String, Uuid)> = members
        .iter()
        .filter_map(|m| s.engine.view(*m))
        .map(|m| (m.meta.name.clone(), m.meta.id))
        .collect();
    let id_of = |name: &str| {
        ids.iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.to_string())
            .unwrap_or_default()
    };
    let mut conflicts = Vec::new();
    for c in &report.conflicts {
        let description = text::describe_conflict(c);
        for m in &c.members {
            let mut item = serde_json::to_value(c).unwrap_or_default();
            if let Some(o) = item.as_object_mut() {
                o.insert("cluster_id".into(), json!(id_of(m)));
                o.insert("description".into(), json!(description));
                o.insert(
                    "resource".into(),
                    json!({"id": c.value, "type": resource_type(&c.entity)}),
                );
                o.insert("path".into(), json!(c.paths.get(m)));
            }
            conflicts.push(item);
        }
    }
    json!({"item": {
        "id": v.meta.id,
        "created_at": v.meta.created_at,
        "updated_at": v.meta.updated_at,
        "state": report.state.as_str(),
        "conflicts": conflicts,
        "errors": report.errors,
        "members": report.members,
        "snapshot": {"version": v.snapshot.version, "hash": v.snapshot.body.hash(),
            "pin": super::history::pin_json(v, |m| s.engine.view(m).map(|g| g.meta.name.clone()))},
    }})
}

pub async fn status(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let view = view_or_404(&s, id)?;
    let c = view.composite().ok_or_else(|| {
        ApiError::bad_request(format!(
            "control plane {id} is not a composite (control plane group)"
        ))
    })?;
    Ok(ok_json(
        StatusCode::OK,
        status_json(&s, &view, &c.members, &c.report),
    ))
}

pub async fn member_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let composites: Vec<Value> = view
        .standard()
        .map(|st| {
            st.composites
                .iter()
                .filter_map(|c| s.engine.view(*c))
                .map(|c| json!({"id": c.meta.id, "name": c.meta.name}))
                .collect()
        })
        .unwrap_or_default();
    Ok(ok_json(
        StatusCode::OK,
        json!({"item": {"is_member": !composites.is_empty(), "composites": composites}}),
    ))
}

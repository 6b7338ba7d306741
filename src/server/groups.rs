//! `/v2/control-planes` and `/v2/control-planes/{id}`: list, create, read,
//! change and delete groups.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::http::{json_body, ok_json, page, paged, param, parse_id, query, view_or_404};
use crate::registry::{ClusterType, GroupUpdate, GroupView, NewGroup, Right, now_ms};

/// The body of `POST /v2/control-planes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    cluster_type: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The body of `PATCH /v2/control-planes/{id}`; a label set to `null` is removed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    cluster_type: Option<String>,
    #[serde(default)]
    is_default: Option<bool>,
}

/// A group as the API shows it.
pub fn group_json(v: &GroupView, now_ms: u64, window_ms: u64) -> Value {
    let mut out = json!({
        "id": v.meta.id,
        "name": v.meta.name,
        "description": v.meta.description,
        "labels": v.meta.labels,
        "cluster_type": v.meta.cluster_type.as_str(),
        "config": {"cluster_type": v.meta.cluster_type.as_str()},
        "is_default": v.meta.is_default,
        "created_at": v.meta.created_at,
        "updated_at": v.meta.updated_at,
        "active_instances": v.active_instances(now_ms, window_ms),
        "snapshot": {"version": v.snapshot.version, "hash": v.snapshot.body.hash(), "pin": super::history::pin_brief(v)},
    });
    if let (Some(obj), Some(c)) = (out.as_object_mut(), v.composite()) {
        obj.insert("members".into(), json!(c.members.len()));
        obj.insert("state".into(), json!(c.report.state.as_str()));
    }
    out
}

fn to_json(s: &AppState, v: &GroupView) -> Value {
    group_json(v, now_ms(), s.engine.active_window_ms())
}

/// Lists the groups the caller may view (all of them for an org admin).
pub async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = query(raw)?;
    let (size, number) = page(&q)?;
    let name_eq = param(&q, &["name", "filter[name]", "filter[name][eq]"]);
    let name_contains = param(&q, &["filter[name][contains]"]);
    let cluster_type = match param(
        &q,
        &[
            "cluster_type",
            "filter[cluster_type]",
            "filter[cluster_type][eq]",
        ],
    ) {
        Some(ct) => Some(
            ClusterType::parse(ct)
                .ok_or_else(|| ApiError::bad_request(format!("unknown cluster_type '{ct}'")))?,
        ),
        None => None,
    };
    let mut labels = Vec::new();
    for (k, v) in &q {
        if matches!(
            k.as_str(),
            "labels" | "filter[labels]" | "filter[labels][eq]"
        ) {
            for pair in v.split(',').filter(|p| !p.is_empty()) {
                let (lk, lv) = pair.split_once(':').ok_or_else(|| {
                    ApiError::bad_request(format!("label filter '{pair}' must be key:value"))
                })?;
                labels.push((lk.trim().to_string(), lv.trim().to_string()));
            }
        }
    }
    let mut views: Vec<_> = s
        .engine
        .views()
        .into_iter()
        .filter(|g| caller.may(Right::View, g.meta.id))
        .filter(|g| name_eq.is_none_or(|n| g.meta.name == n))
        .filter(|g| name_contains.is_none_or(|n| g.meta.name.contains(n)))
        .filter(|g| cluster_type.is_none_or(|ct| g.meta.cluster_type == ct))
        .filter(|g| labels.iter().all(|(k, v)| g.meta.labels.get(k) == Some(v)))
        .collect();
    views.sort_by(|a, b| {
        a.meta
            .created_at
            .cmp(&b.meta.created_at)
            .then(a.meta.name.cmp(&b.meta.name))
    });
    let items = views.iter().map(|v| to_json(&s, v)).collect();
    Ok(ok_json(StatusCode::OK, paged(items, size, number)))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let b: CreateBody = json_body(&s, &headers, body).await?;
    let req = NewGroup {
        name: b.name,
        description: b.description,
        cluster_type: b.cluster_type,
        labels: b.labels,
    };
    let view = s.engine.create_group(req).await?;
    Ok(ok_json(StatusCode::CREATED, to_json(&s, &view)))
}

pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    Ok(ok_json(StatusCode::OK, to_json(&s, &view)))
}

pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let b: UpdateBody = json_body(&s, &headers, body).await?;
    let req = GroupUpdate {
        name: b.name,
        description: b.description,
        labels: b.labels,
        cluster_type: b.cluster_type,
        is_default: b.is_default,
    };
    let view = s.engine.update_group(id, req).await?;
    Ok(ok_json(StatusCode::OK, to_json(&s, &view)))
}

pub async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    s.engine.delete_group(parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

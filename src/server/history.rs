//! `/v2/control-planes/{id}/snapshot/history` and `…/snapshot/pin`
//! (extensions): the kept versions of a group, and pinning it to one.
//! Listings are answered from published views; a pin is a write.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::ApiResult;
use super::http::{json_body, ok_json, parse_id, view_or_404};
use crate::registry::{GroupView, PinOutcome, kept_range};

/// The body of `PUT …/snapshot/pin`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    version: u64,
}

/// A group's pin, with what it hides (members named when `name_of` knows
/// them), or `null`.
pub fn pin_json(v: &GroupView, name_of: impl Fn(Uuid) -> Option<String>) -> Value {
    let Some(p) = &v.pin else {
        return Value::Null;
    };
    let members: Vec<Value> = p
        .hidden
        .iter()
        .map(|(id, change)| json!({"id": id, "name": name_of(*id), "change": change}))
        .collect();
    json!({
        "version": p.pin.version,
        "hash": p.pin.hash,
        "served_as": p.pin.served_as,
        "pinned_at": p.pin.pinned_at,
        "actor": p.pin.actor,
        "hides": {
            "state": p.state.as_str(),
            "current_hash": p.current_hash,
            "differs": p.current_hash.as_deref() != Some(p.pin.hash.as_str()) || !members.is_empty(),
            "members": members,
        },
    })
}

/// The pinned version and the version it is served as, or `null`: for
/// answers that show a group in brief.
pub fn pin_brief(v: &GroupView) -> Value {
    v.pin.as_ref().map_or(
        Value::Null,
        |p| json!({"version": p.pin.version, "served_as": p.pin.served_as}),
    )
}

fn names(s: &AppState) -> impl Fn(Uuid) -> Option<String> + '_ {
    move |id| s.engine.view(id).map(|v| v.meta.name.clone())
}

pub async fn list(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let served = &view.snapshot;
    let (oldest, newest) = kept_range(&view.history);
    let data: Vec<Value> = view
        .history
        .iter()
        .rev()
        .map(|e| {
            json!({
                "version": e.version,
                "hash": e.hash,
                "published_at": e.published_at,
                "state": e.state.as_str(),
                "change": e.change,
                "actor": e.actor,
                "pin_of": e.pin_of,
                "served": e.version == served.version,
                "members": e.sources.iter().map(|(m, h)| json!({"id": m, "config_hash": h})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        json!({
            "id": view.meta.id,
            "name": view.meta.name,
            "served": {"version": served.version, "hash": served.body.hash()},
            "kept": {"oldest": oldest, "newest": newest, "count": data.len()},
            "pin": pin_json(&view, names(&s)),
            "data": data,
        }),
    ))
}

fn outcome_json(s: &AppState, id: Uuid, o: &PinOutcome) -> Value {
    let pin = s
        .engine
        .view(id)
        .map_or(Value::Null, |v| pin_json(&v, names(s)));
    json!({
        "pin": pin,
        "served": {"version": o.served_version, "hash": o.served_hash},
        "published": o.published,
    })
}

pub async fn pin(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let req: PinBody = json_body(&s, &headers, body).await?;
    let outcome = s.engine.pin(id, req.version).await?;
    Ok(ok_json(StatusCode::OK, outcome_json(&s, id, &outcome)))
}

pub async fn unpin(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let outcome = s.engine.unpin(id).await?;
    Ok(ok_json(StatusCode::OK, outcome_json(&s, id, &outcome)))
}

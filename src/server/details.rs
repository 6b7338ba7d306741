//! `GET /v2/control-planes/{id}/details` (an extension): what rgmerge knows
//! of a group beyond Konnect's `ControlPlane` — whether it is the default
//! group, its connected instances, its snapshot, the composites a standard
//! group is in, and a composite's members, state and full structured report
//! (every conflict and member error, unclipped).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiResult;
use super::http::view_or_404;
use super::http::{ok_json, parse_id};
use crate::registry::{GroupView, now_ms, rfc3339_ms};

fn details_json(s: &AppState, v: &GroupView) -> Value {
    let active = v.active_instances(now_ms(), s.engine.active_window_ms());
    let mut out = json!({
        "id": v.meta.id,
        "name": v.meta.name,
        "cluster_type": v.meta.cluster_type.as_str(),
        "is_default": v.meta.is_default,
        "instances": v.nodes.len(),
        "active_instances": active,
        "snapshot": {
            "version": v.snapshot.version,
            "hash": v.snapshot.body.hash(),
            "published_at": rfc3339_ms(v.snapshot.published_ms),
            "pin": super::history::pin_brief(v),
        },
        "certificates": v.certificates.len(),
    });
    let Some(o) = out.as_object_mut() else {
        return out;
    };
    if let Some(st) = v.standard() {
        let composites: Vec<Value> = st
            .composites
            .iter()
            .filter_map(|c| s.engine.view(*c))
            .map(|c| json!({"id": c.meta.id, "name": c.meta.name}))
            .collect();
        o.insert("composites".into(), json!(composites));
    }
    if let Some(c) = v.composite() {
        o.insert("members".into(), json!(c.members.len()));
        o.insert("state".into(), json!(c.report.state.as_str()));
        o.insert("states".into(), json!(c.report.states));
        o.insert("report".into(), json!(c.report.as_ref()));
    }
    out
}

pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    Ok(ok_json(StatusCode::OK, details_json(&s, &view)))
}

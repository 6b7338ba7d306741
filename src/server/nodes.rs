//! `/v2/control-planes/{id}/nodes`: runtime instances. A heartbeat (POST, an
//! extension) registers a node and says what it runs; the list says whether
//! each is in sync with the group's snapshot.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::http::{json_body, ok_json, param, parse_id, query, view_or_404};
use crate::registry::{Node, NodeReport, now_ms, rfc3339_ms};

/// A node's heartbeat.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    #[serde(default)]
    id: Option<String>,
    hostname: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    config_hash: String,
}

fn node_json(n: &Node, current_hash: &str, active: bool) -> Value {
    json!({
        "id": n.id,
        "hostname": n.hostname,
        "ip": n.ip,
        "version": n.version,
        "config_hash": n.config_hash,
        "last_seen": rfc3339_ms(n.last_seen_ms),
        "sync_status": n.sync_status(current_hash),
        "active": active,
    })
}

pub async fn heartbeat(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let b: HeartbeatBody = json_body(&s, &headers, body).await?;
    let report = NodeReport {
        id: b.id,
        hostname: b.hostname,
        ip: b.ip,
        version: b.version,
        config_hash: b.config_hash,
    };
    let node = s.engine.heartbeat(id, report).await?;
    let view = view_or_404(&s, id)?;
    Ok(ok_json(
        StatusCode::OK,
        node_json(&node, view.snapshot.body.hash(), true),
    ))
}

/// The sort keys of the node list; `-` before one reverses it.
const SORTS: &[&str] = &["last_seen", "sync_status", "hostname"];

pub async fn list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    let sort = param(&q, &["sort"]).unwrap_or("last_seen");
    let (key, reverse) = match sort.strip_prefix('-') {
        Some(k) => (k, true),
        None => (sort, false),
    };
    if !SORTS.contains(&key) {
        return Err(ApiError::bad_request(format!(
            "`sort` must be last_seen, sync_status or hostname (prefix - to reverse), not '{sort}'"
        )));
    }
    let view = view_or_404(&s, id)?;
    let hash = view.snapshot.body.hash();
    let (now, window) = (now_ms(), s.engine.active_window_ms());
    let mut nodes: Vec<&Node> = view.nodes.values().collect();
    match key {
        "sync_status" => nodes.sort_by(|a, b| {
            a.sync_status(hash)
                .cmp(&b.sync_status(hash))
                .then(b.last_seen_ms.cmp(&a.last_seen_ms))
        }),
        "hostname" => nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id))),
        _ => nodes.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id))),
    }
    if reverse {
        nodes.reverse();
    }
    let items: Vec<Value> = nodes
        .iter()
        .map(|n| node_json(n, hash, n.is_active(now, window)))
        .collect();
    let active = items.iter().filter(|n| n["active"] == json!(true)).count();
    Ok(ok_json(
        StatusCode::OK,
        json!({"items": items, "meta": {"total": items.len(), "active": active}}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Path((id, node_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    s.engine.delete_node(parse_id(&id)?, node_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! Data plane nodes (Konnect's "DP Nodes"): `…/nodes` (a cursor of node
//! records), `…/nodes/{nodeId}`, `…/nodes/eol`, `…/expected-config-hash`
//! and `…/expected-config-version`. A heartbeat (`POST …/nodes`, an
//! extension) registers a node and says what it runs; a record adds to the
//! spec's fields whether it is in sync with the group's snapshot, its `ip`
//! and when it was last seen.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult, Rule};
use super::http::{
    Order, cursor_page, cursor_page_in, json_body, next_link, ok_json, parse_id, query,
    unix_seconds, view_or_404,
};
use crate::registry::{
    Compatibility, GroupView, Node, NodeReport, SyncStatus, now_ms, rfc3339_ms, this_month,
};

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
    #[serde(default, rename = "type")]
    node_type: Option<String>,
    #[serde(default)]
    compatibility_status: Option<Compatibility>,
}

/// The hashes a node in sync may hold: the snapshot's ETag (what the
/// sidecar reports) and Kong's config hash of each form sent to data planes.
pub struct InSync(Vec<String>);

impl InSync {
    pub fn of(view: &GroupView) -> InSync {
        let mut hashes = crate::cluster::payload::known_hashes(&view.snapshot);
        hashes.push(view.snapshot.body.hash().to_string());
        InSync(hashes)
    }

    pub fn status(&self, n: &Node) -> SyncStatus {
        if self.0.contains(&n.config_hash) {
            SyncStatus::InSync
        } else {
            SyncStatus::OutOfSync
        }
    }
}

/// Whether a node counts as connected: seen within the window, or, for a
/// data plane connected in hybrid mode, within Kong's ping wait (it pings
/// every 30 s, the window's default).
pub fn is_active(n: &Node, now_ms: u64, window_ms: u64) -> bool {
    let connected = n.hybrid.as_ref().is_some_and(|h| h.connected);
    let wait = crate::cluster::node::PING_WAIT.as_millis() as u64;
    n.is_active(
        now_ms,
        if connected {
            window_ms.max(wait)
        } else {
            window_ms
        },
    )
}

/// A node record: the spec's fields, then ours.
fn node_json(n: &Node, sync: &InSync, active: bool) -> Value {
    let mut v = json!({
        "id": n.id,
        "version": n.version,
        "hostname": n.hostname,
        "last_ping": unix_seconds(n.last_seen_ms),
        "type": n.node_type,
        "created_at": unix_seconds(n.created_at_ms()),
        "updated_at": unix_seconds(n.updated_at_ms()),
        "config_hash": n.config_hash,
        "compatibility_status": n.compatibility,
        "ip": n.ip,
        "sync_status": sync.status(n),
        "active": active,
        "last_seen": rfc3339_ms(n.last_seen_ms),
    });
    if let (Some(h), Some(o)) = (&n.hybrid, v.as_object_mut()) {
        o.insert("connected".into(), json!(h.connected && active));
        o.insert("labels".into(), json!(h.labels));
        o.insert("process_conf".into(), json!(h.process_conf));
        o.insert(
            "plugins".into(),
            h.plugins
                .iter()
                .map(|(name, version)| json!({"name": name, "version": version}))
                .collect(),
        );
    }
    v
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
        node_type: b.node_type,
        compatibility: b.compatibility_status,
        hybrid: None,
    };
    let node = s.engine.heartbeat(id, report).await?;
    let view = view_or_404(&s, id)?;
    Ok(ok_json(
        StatusCode::OK,
        node_json(&node, &InSync::of(&view), true),
    ))
}

/// The sort keys of the node list (an extension); `-` before one reverses it.
const SORTS: &[&str] = &["last_seen", "sync_status", "hostname"];

/// A node's place in the order `sort` names, as a string that sorts the
/// same way (most recently seen first, unless sorted by hostname), ending
/// with its id so every key is unique.
fn sort_key(sort: &str, n: &Node, sync: &InSync) -> String {
    let recent_first = u64::MAX - n.last_seen_ms;
    match sort {
        "sync_status" => {
            let rank = match sync.status(n) {
                SyncStatus::InSync => 0,
                SyncStatus::OutOfSync => 1,
            };
            format!("{rank}\u{0}{recent_first:020}\u{0}{}", n.id)
        }
        "hostname" => format!("{}\u{0}{}", n.hostname, n.id),
        _ => format!("{recent_first:020}\u{0}{}", n.id),
    }
}

fn nodes_path(v: &GroupView, rest: &str) -> String {
    // Relative to the API's base (`/v2`), as Konnect's links are.
    format!("/control-planes/{}/nodes{rest}", v.meta.id)
}

pub async fn list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    q.only(&["page[size]", "page[after]", "sort"])?;
    let size = q.page_size()?;
    let cursor = q.cursor()?;
    let sort = q.get("sort").unwrap_or("last_seen");
    let (key, order) = match sort.strip_prefix('-') {
        Some(k) => (k, Order::Descending),
        None => (sort, Order::Ascending),
    };
    if !SORTS.contains(&key) {
        return Err(ApiError::bad_request(
            "sort",
            Some(Rule::Invalid),
            format!(
                "`sort` must be last_seen, sync_status or hostname (prefix - to reverse), not '{}'",
                sort.chars().take(64).collect::<String>()
            ),
        ));
    }
    let view = view_or_404(&s, id)?;
    let sync = InSync::of(&view);
    let all = view.nodes.list();
    let mut nodes: Vec<(String, &Node)> = all
        .iter()
        .map(|n| n.as_ref())
        .map(|n| (sort_key(key, n, &sync), n))
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    if order == Order::Descending {
        nodes.reverse();
    }
    let page = cursor_page_in(
        order,
        nodes,
        cursor.as_deref(),
        size,
        |(k, _)| k.clone(),
        |c| Some(c.to_string()),
        |(k, _)| k.clone(),
    )?;
    let (now, window) = (now_ms(), s.engine.active_window_ms());
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(_, n)| node_json(n, &sync, is_active(n, now, window)))
        .collect();
    let mut paging = json!({"total_count": page.total});
    if let (Some(next), Some(o)) = (page.next, paging.as_object_mut()) {
        o.insert(
            "next".into(),
            json!(next_link(&nodes_path(&view, ""), &q, size, &next)),
        );
    }
    Ok(ok_json(
        StatusCode::OK,
        json!({"items": items, "page": paging}),
    ))
}

pub async fn get(
    State(s): State<AppState>,
    Path((id, node_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let node = view.nodes.get(&node_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no node '{}' in control plane '{}'",
            node_id.chars().take(255).collect::<String>(),
            view.meta.name
        ))
    })?;
    let active = is_active(&node, now_ms(), s.engine.active_window_ms());
    Ok(ok_json(
        StatusCode::OK,
        json!({"item": node_json(&node, &InSync::of(&view), active)}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Path((id, node_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    s.engine.delete_node(parse_id(&id)?, node_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE …/nodes/eol` deletes a node whose id is `eol` (the GET of that
/// path lists end-of-life nodes).
pub async fn delete_eol(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    s.engine.delete_node(parse_id(&id)?, "eol".into()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The nodes whose Kong Gateway release is at or near its end of life, by
/// node id, with what to upgrade to.
pub async fn eol(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    q.only(&["page[size]", "page[after]"])?;
    let size = q.page_size()?;
    let cursor = q.cursor()?;
    let view = view_or_404(&s, id)?;
    let today = this_month();
    let all = view.nodes.list();
    let old: Vec<(&Node, String)> = all
        .iter()
        .map(|n| n.as_ref())
        .filter_map(|n| n.end_of_life(today).map(|m| (n, m)))
        .collect();
    let page = cursor_page(
        old,
        cursor.as_deref(),
        size,
        |(n, _)| n.id.clone(),
        |c| Some(c.to_string()),
        |(n, _)| n.id.clone(),
    )?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(n, message)| json!({"node_id": n.id, "node_version": n.version, "message": message}))
        .collect();
    let mut paging = json!({"total_count": page.total});
    if let (Some(next), Some(o)) = (page.next, paging.as_object_mut()) {
        o.insert(
            "next".into(),
            json!(next_link(&nodes_path(&view, "/eol"), &q, size, &next)),
        );
    }
    Ok(ok_json(
        StatusCode::OK,
        json!({"items": items, "page": paging}),
    ))
}

/// The hash a node in sync pings: Kong's config hash of the group's served
/// snapshot (`kong/clustering/config_helper.lua`), as the cluster endpoint
/// sends it; made once per snapshot.
pub async fn expected_config_hash(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let created = time::OffsetDateTime::parse(
        &view.meta.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_or(0, |t| t.unix_timestamp().max(0));
    let kong_hash = crate::cluster::payload::payload(&view.snapshot, None)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .hash
        .clone();
    Ok(ok_json(
        StatusCode::OK,
        json!({
            "expected_hash": kong_hash,
            "created_at": created,
            "updated_at": unix_seconds(view.snapshot.published_ms),
        }),
    ))
}

/// The version of the group's current snapshot.
pub async fn expected_config_version(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    Ok(ok_json(
        StatusCode::OK,
        json!({
            "expected_config_version": view.snapshot.version.to_string(),
            "created_at": unix_seconds(view.snapshot.published_ms),
        }),
    ))
}

//! Handlers: request parsing, calls into the engine, JSON views.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::config::Format;
use crate::registry::{
    CreateGroup, Group, Heartbeat, Kind, Published, Registry, UpdateGroup, rfc3339_ms,
};
use crate::report::{Report, text};

// ---- request helpers ----

fn parse_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::bad_request(format!(
            "'{}' is not a control plane id (a UUID)",
            s.chars().take(64).collect::<String>()
        ))
    })
}

fn query(raw: Option<String>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn param<'a>(q: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

fn flag(q: &[(String, String)], name: &str) -> ApiResult<bool> {
    match param(q, &[name]) {
        None => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "`{name}` must be true or false, not '{v}'"
        ))),
    }
}

async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let limit = state.opts.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the limit of {limit} bytes (--max-body-bytes)"
            ),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let is_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if is_limit {
            too_large()
        } else {
            ApiError::bad_request(format!("could not read the request body: {e}"))
        }
    })
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_lowercase())
}

/// A JSON request body into `T`, every failure a 4xx saying what is wrong.
async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    // curl's `-d` sends form-urlencoded by default; people mean JSON by it.
    if let Some(ct) = content_type(headers)
        && !ct.starts_with("application/json")
        && !ct.starts_with("application/x-www-form-urlencoded")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got '{ct}'"),
        ));
    }
    let bytes = read_body(state, headers, body).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn ok_json(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

// ---- views ----

fn group_view(reg: &Registry, g: &Group) -> Value {
    let mut v = json!({
        "id": g.meta.id,
        "name": g.meta.name,
        "description": g.meta.description,
        "labels": g.meta.labels,
        "cluster_type": g.meta.cluster_type.as_str(),
        "config": {"cluster_type": g.meta.cluster_type.as_str()},
        "is_default": g.meta.is_default,
        "created_at": g.meta.created_at,
        "updated_at": g.meta.updated_at,
        "active_instances": reg.active_nodes(g),
        "snapshot": {"version": g.snapshot.version, "hash": g.snapshot.body.hash()},
    });
    if let (Some(obj), Kind::Composite { members, composite }) = (v.as_object_mut(), &g.kind) {
        obj.insert("members".into(), json!(members.len()));
        obj.insert("state".into(), json!(composite.state().as_str()));
    }
    v
}

fn page(q: &[(String, String)]) -> ApiResult<(usize, usize)> {
    let num = |names: &[&str], default: usize, max: usize| -> ApiResult<usize> {
        match param(q, names) {
            None => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "`{}` must be a number from 1 to {max}",
                    names[0]
                ))),
            },
        }
    };
    Ok((
        num(&["page[size]", "page_size"], 100, 1000)?,
        num(&["page[number]", "page"], 1, usize::MAX)?,
    ))
}

fn paged(items: Vec<Value>, size: usize, number: usize) -> Value {
    let total = items.len();
    let data: Vec<Value> = items
        .into_iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .collect();
    json!({"data": data, "meta": {"page": {"number": number, "size": size, "total": total}}})
}

/// Konnect's GroupStatus, each conflict extended with the report's fields.
fn group_status_view(reg: &Registry, g: &Group, report: &Report) -> Value {
    let id_of = |name: &str| {
        reg.group_by_name(name)
            .map(|m| m.meta.id.to_string())
            .unwrap_or_default()
    };
    let mut conflicts = Vec::new();
    for c in &report.conflicts {
        let noun = crate::config::Coll::from_name(&c.entity)
            .map(|c| c.noun())
            .unwrap_or("entity");
        let description = text::describe_conflict(c);
        for m in &c.members {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("cluster_id".into(), json!(id_of(m)));
                o.insert("description".into(), json!(description));
                o.insert(
                    "resource".into(),
                    json!({"id": c.value, "type": noun.to_lowercase().replace(' ', "_")}),
                );
                o.insert("path".into(), json!(c.paths.get(m)));
            }
            conflicts.push(v);
        }
    }
    json!({"item": {
        "id": g.meta.id,
        "created_at": g.meta.created_at,
        "updated_at": g.meta.updated_at,
        "state": report.state.as_str(),
        "conflicts": conflicts,
        "errors": report.errors,
        "members": report.members,
        "snapshot": {"version": g.snapshot.version, "hash": g.snapshot.body.hash()},
    }})
}

fn node_view(n: &crate::registry::Node, current_hash: &str, active: bool) -> Value {
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

// ---- handlers ----

pub async fn healthz() -> Response {
    ok_json(StatusCode::OK, json!({"status": "ok"}))
}

pub async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see the README for the API")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not support that method",
    )
}

pub async fn list_groups(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = query(raw)?;
    let (size, number) = page(&q)?;
    let name_eq = param(&q, &["name", "filter[name]", "filter[name][eq]"]).map(str::to_string);
    let name_contains = param(&q, &["filter[name][contains]"]).map(str::to_string);
    let cluster_type = match param(
        &q,
        &[
            "cluster_type",
            "filter[cluster_type]",
            "filter[cluster_type][eq]",
        ],
    ) {
        Some(ct) => Some(
            crate::registry::ClusterType::parse(ct)
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
    let items = s
        .engine
        .read(move |reg| {
            reg.groups()
                .filter(|g| name_eq.as_ref().is_none_or(|n| &g.meta.name == n))
                .filter(|g| {
                    name_contains
                        .as_ref()
                        .is_none_or(|n| g.meta.name.contains(n.as_str()))
                })
                .filter(|g| cluster_type.is_none_or(|ct| g.meta.cluster_type == ct))
                .filter(|g| labels.iter().all(|(k, v)| g.meta.labels.get(k) == Some(v)))
                .map(|g| group_view(reg, g))
                .collect::<Vec<_>>()
        })
        .await?;
    let mut items = items;
    items.sort_by(|a, b| {
        a["created_at"]
            .as_str()
            .cmp(&b["created_at"].as_str())
            .then(a["name"].as_str().cmp(&b["name"].as_str()))
    });
    Ok(ok_json(StatusCode::OK, paged(items, size, number)))
}

pub async fn create_group(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: CreateGroup = json_body(&s, &headers, body).await?;
    let v = s
        .engine
        .write(false, move |tx| {
            let meta = tx.create_group(req)?;
            let reg = tx.registry();
            Ok(group_view(reg, reg.group(meta.id)?))
        })
        .await?;
    Ok(ok_json(StatusCode::CREATED, v))
}

pub async fn get_group(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let v = s
        .engine
        .read(move |reg| reg.group(id).map(|g| group_view(reg, g)))
        .await??;
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn update_group(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let req: UpdateGroup = json_body(&s, &headers, body).await?;
    let v = s
        .engine
        .write(false, move |tx| {
            tx.update_group(id, req)?;
            let reg = tx.registry();
            Ok(group_view(reg, reg.group(id)?))
        })
        .await?;
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn delete_group(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    s.engine.write(false, move |tx| tx.delete_group(id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    members: Vec<MemberRef>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberRef {
    id: String,
}

async fn change_members(
    s: AppState,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
    body: Body,
    add: bool,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let dry_run = flag(&query(raw)?, "dry_run")?;
    let req: MembersBody = json_body(&s, &headers, body).await?;
    let ids = req
        .members
        .iter()
        .map(|m| parse_id(&m.id))
        .collect::<ApiResult<Vec<Uuid>>>()?;
    let report = s
        .engine
        .write(dry_run, move |tx| {
            if add {
                tx.add_members(id, &ids)
            } else {
                tx.remove_members(id, &ids)
            }
        })
        .await?;
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("dry_run".into(), json!(dry_run));
    }
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn add_members(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    change_members(s, id, raw, headers, body, true).await
}

pub async fn remove_members(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    change_members(s, id, raw, headers, body, false).await
}

pub async fn list_memberships(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (size, number) = page(&query(raw)?)?;
    let items = s
        .engine
        .read(
            move |reg| -> Result<Vec<Value>, crate::registry::RegistryError> {
                match &reg.group(id)?.kind {
                    Kind::Composite { members, .. } => Ok(members
                        .iter()
                        .filter_map(|m| reg.group(*m).ok())
                        .map(|g| group_view(reg, g))
                        .collect()),
                    Kind::Standard { .. } => Err(crate::registry::RegistryError::invalid(
                        "not a control plane group (composite): only composites have members",
                    )),
                }
            },
        )
        .await??;
    Ok(ok_json(StatusCode::OK, paged(items, size, number)))
}

pub async fn group_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let v = s
        .engine
        .read(
            move |reg| -> Result<Value, crate::registry::RegistryError> {
                let report = reg.composite_report(id)?;
                Ok(group_status_view(reg, reg.group(id)?, &report))
            },
        )
        .await??;
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn group_member_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let v = s
        .engine
        .read(
            move |reg| -> Result<Value, crate::registry::RegistryError> {
                let g = reg.group(id)?;
                let composites: Vec<Value> = match &g.kind {
                    Kind::Standard { composites, .. } => composites
                        .iter()
                        .filter_map(|c| reg.group(*c).ok())
                        .map(|c| json!({"id": c.meta.id, "name": c.meta.name}))
                        .collect(),
                    Kind::Composite { .. } => Vec::new(),
                };
                Ok(json!({"item": {"is_member": !composites.is_empty(), "composites": composites}}))
            },
        )
        .await??;
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn get_config(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (format, bytes) = s
        .engine
        .read(move |reg| -> Result<(Format, Vec<u8>), crate::registry::RegistryError> {
            match &reg.group(id)?.kind {
                Kind::Standard { config, .. } => Ok((config.blob.format, config.blob.bytes.clone())),
                Kind::Composite { .. } => Err(crate::registry::RegistryError::invalid(
                    "a control plane group (composite) has no config of its own: GET its /snapshot for the merged config",
                )),
            }
        })
        .await??;
    let ct = match format {
        Format::Json => "application/json",
        Format::Yaml => "application/yaml",
    };
    Ok(([(header::CONTENT_TYPE, ct)], bytes).into_response())
}

pub async fn put_config(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let dry_run = flag(&query(raw)?, "dry_run")?;
    let ct = content_type(&headers);
    let accepted = [
        "application/json",
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "text/x-yaml",
        "text/plain",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
    ];
    if let Some(ct) = &ct
        && !accepted.iter().any(|a| ct.starts_with(a))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a member config is JSON or YAML; Content-Type '{ct}' is neither"),
        ));
    }
    let bytes = read_body(&s, &headers, body).await?;
    let format = Format::from_content_type(ct.as_deref(), &bytes);
    match s
        .engine
        .put_config(id, bytes.to_vec(), format, dry_run)
        .await
    {
        Ok(outcome) => {
            // The worst state among the composites concerned: what the change means for them.
            let state = outcome
                .composites
                .iter()
                .map(|c| c.report.state)
                .find(|s| *s != crate::report::State::Ok)
                .unwrap_or(crate::report::State::Ok);
            let mut v = serde_json::to_value(&outcome).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("dry_run".into(), json!(dry_run));
                o.insert("state".into(), json!(state));
                o.insert("errors".into(), json!([]));
            }
            Ok(ok_json(StatusCode::OK, v))
        }
        // A dry run answers the pre-flight question even when the answer is "invalid".
        Err(e) if dry_run && e.report.is_some() => {
            let report = e
                .report
                .map_or_else(|| Report::new(Vec::new(), Vec::new(), Vec::new()), |r| *r);
            Ok(ok_json(
                StatusCode::OK,
                json!({"dry_run": true, "state": report.state, "errors": report.errors, "composites": []}),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn etag(hash: &str) -> String {
    format!("\"{hash}\"")
}

/// True when an `If-None-Match` header names `hash` (or is `*`).
fn matches_etag(headers: &HeaderMap, hash: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
                .any(|t| t == hash || t == "*")
        })
}

fn snapshot_response(p: &Published) -> Response {
    // Fewer, larger pieces than the rope (see `Body::wire_parts`); one piece
    // goes out as a plain body, in one write with the headers.
    let parts = p.body.wire_parts();
    let body = if parts.len() == 1 {
        Body::from(parts[0].clone())
    } else {
        let stream = futures_util::stream::iter(
            (0..parts.len()).map(move |i| Ok::<_, Infallible>(parts[i].clone())),
        );
        Body::from_stream(stream)
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(p.body.len()));
    if let Ok(v) = HeaderValue::from_str(&etag(p.body.hash())) {
        h.insert(header::ETAG, v);
    }
    h.insert("x-snapshot-version", HeaderValue::from(p.version));
    resp
}

fn not_modified(p: &Published) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(p.body.hash())) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut()
        .insert("x-snapshot-version", HeaderValue::from(p.version));
    resp
}

pub async fn get_snapshot(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    let wait = match param(&q, &["wait"]) {
        None => None,
        Some(w) => {
            let secs: f64 = w
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| ApiError::bad_request("`wait` must be a number of seconds"))?;
            // `from_secs_f64` panics past u64::MAX seconds; such a wait is just "the longest".
            let asked = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
            Some(asked.min(s.opts.max_wait))
        }
    };
    let known_version = match param(&q, &["version"]) {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request("`version` must be a whole number"))?,
        ),
    };
    let missing = || ApiError::not_found(format!("no control plane with id {id}"));
    let current = s.engine.snapshot(id).ok_or_else(missing)?;
    let is_known = |p: &Published| {
        matches_etag(&headers, p.body.hash()) || known_version.is_some_and(|v| v >= p.version)
    };
    if !is_known(&current) {
        return Ok(snapshot_response(&current));
    }
    let Some(wait) = wait else {
        return Ok(not_modified(&current));
    };
    let mut rx = s.engine.subscribe(id).ok_or_else(missing)?;
    let mut shutdown = s.shutdown.clone();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let latest = s.engine.snapshot(id).ok_or_else(missing)?;
        if !is_known(&latest) {
            return Ok(snapshot_response(&latest));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return Err(missing()) },
            _ = tokio::time::sleep_until(deadline) => return Ok(not_modified(&latest)),
            _ = shutdown.changed() => return Ok(not_modified(&latest)),
        }
    }
}

pub async fn get_provenance(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let p = s
        .engine
        .snapshot(id)
        .ok_or_else(|| ApiError::not_found(format!("no control plane with id {id}")))?;
    let collections: BTreeMap<&str, &Vec<crate::compose::ProvenanceRun>> = p
        .provenance
        .iter()
        .map(|(c, runs)| (c.name(), runs))
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        json!({"version": p.version, "hash": p.body.hash(), "collections": collections}),
    ))
}

pub async fn heartbeat(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let hb: Heartbeat = json_body(&s, &headers, body).await?;
    let v = s
        .engine
        .write(false, move |tx| {
            let node = tx.heartbeat(id, hb)?;
            let g = tx.registry().group(id)?;
            Ok(node_view(&node, g.snapshot.body.hash(), true))
        })
        .await?;
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn list_nodes(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    let sort = param(&q, &["sort"]).unwrap_or("last_seen").to_string();
    if !matches!(
        sort.as_str(),
        "last_seen" | "-last_seen" | "sync_status" | "-sync_status" | "hostname"
    ) {
        return Err(ApiError::bad_request(format!(
            "`sort` must be last_seen, sync_status or hostname (prefix - to reverse), not '{sort}'"
        )));
    }
    let v = s
        .engine
        .read(
            move |reg| -> Result<Value, crate::registry::RegistryError> {
                let g = reg.group(id)?;
                let hash = g.snapshot.body.hash();
                let now = crate::registry::now_ms();
                let window = reg.settings().active_window_ms;
                let mut nodes: Vec<&crate::registry::Node> = g.nodes.values().collect();
                match sort.trim_start_matches('-') {
                    "sync_status" => nodes.sort_by(|a, b| {
                        a.sync_status(hash)
                            .cmp(&b.sync_status(hash))
                            .then(b.last_seen_ms.cmp(&a.last_seen_ms))
                    }),
                    "hostname" => nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname)),
                    _ => nodes
                        .sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id))),
                }
                if sort.starts_with('-') {
                    nodes.reverse();
                }
                let items: Vec<Value> = nodes
                    .iter()
                    .map(|n| node_view(n, hash, n.is_active(now, window)))
                    .collect();
                let active = items.iter().filter(|n| n["active"] == json!(true)).count();
                Ok(json!({"items": items, "meta": {"total": items.len(), "active": active}}))
            },
        )
        .await??;
    Ok(ok_json(StatusCode::OK, v))
}

pub async fn delete_node(
    State(s): State<AppState>,
    Path((id, node_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    s.engine
        .write(false, move |tx| tx.delete_node(id, &node_id))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

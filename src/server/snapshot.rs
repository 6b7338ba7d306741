//! `/v2/control-planes/{id}/snapshot`: the served config, with `ETag`, `304`
//! and long-polls, and its provenance (extensions). Answered from published
//! snapshots; never waits for the writer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::Rule;
use super::error::{ApiError, ApiResult};
use super::http::{ok_json, parse_id, query};
use crate::registry::Published;

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

pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    let wait = match q.get("wait") {
        None => None,
        Some(w) => {
            let secs: f64 = w
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "wait",
                        Some(Rule::IsNumber),
                        "`wait` must be a number of seconds",
                    )
                })?;
            // `from_secs_f64` panics past u64::MAX seconds; such a wait is just "the longest".
            let asked = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
            Some(asked.min(s.opts.max_wait))
        }
    };
    let known_version = match q.get("version") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "version",
                Some(Rule::IsInteger),
                "`version` must be a whole number",
            )
        })?),
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

pub async fn provenance(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let p = s
        .engine
        .snapshot(id)
        .ok_or_else(|| ApiError::not_found(format!("no control plane with id {id}")))?;
    let collections: BTreeMap<&str, _> = p.provenance.iter().map(|(c, runs)| (*c, runs)).collect();
    Ok(ok_json(
        StatusCode::OK,
        json!({"version": p.version, "hash": p.body.hash(), "collections": collections}),
    ))
}

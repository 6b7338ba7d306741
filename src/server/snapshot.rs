//! `/v2/control-planes/{id}/snapshot`: the served config, with `ETag`, `304`
//! and long-polls, a kept version (`?version=V`), and its provenance
//! (extensions). The served snapshot is answered from published snapshots and
//! never waits for the writer; an older kept version is assembled from its
//! blobs (see `Engine::snapshot_at`).
//!
//! When a request blocks: `?wait=S` long-polls only against a version the
//! caller already has, named by `If-None-Match` (its hash) or `version=V`.
//! Without either the caller has nothing to compare, and the served snapshot
//! is answered at once. `?version=V` without `wait` answers exactly version V.

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
use super::http::{Query, ok_json, parse_id, query};
use crate::registry::{Published, RefusalKind, kept_range};

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

/// The served snapshot, saying which kept version it re-serves while pinned.
fn served_response(s: &AppState, id: uuid::Uuid, p: &Published, form: Form) -> Response {
    let mut resp = snapshot_response(p, form);
    let pinned = s
        .engine
        .view(id)
        .and_then(|v| v.pin.as_ref().map(|p| (p.pin.version, p.pin.served_as)));
    if let Some((version, served_as)) = pinned
        && served_as == p.version
    {
        resp.headers_mut()
            .insert("x-snapshot-pinned", HeaderValue::from(version));
    }
    resp
}

/// Exactly kept version `version`, or a 404 naming the kept range.
async fn exact(
    s: &AppState,
    id: uuid::Uuid,
    version: u64,
    form: Form,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let view = s
        .engine
        .view(id)
        .ok_or_else(|| ApiError::not_found(format!("no control plane with id {id}")))?;
    let p = match s.engine.snapshot_at(id, version).await {
        Ok(p) => p,
        Err(e) if e.kind == RefusalKind::NotFound => {
            let (oldest, newest) = kept_range(&view.history);
            let mut err = ApiError::not_found(e.detail);
            err.extra = Some(Box::new(json!({
                "version": version,
                "oldest_kept": oldest,
                "newest_kept": newest,
            })));
            return Err(err);
        }
        Err(e) => return Err(e.into()),
    };
    if matches_etag(headers, hash_of(&p, form)) {
        return Ok(not_modified(&p, form));
    }
    Ok(snapshot_response(&p, form))
}

/// Which form of a snapshot a request wants: Kong's (what data planes load)
/// or decK's (`?format=deck`, an extension).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Kong,
    Deck,
}

fn form_of(q: &Query) -> ApiResult<Form> {
    match q.get("format") {
        None | Some("kong") => Ok(Form::Kong),
        Some("deck") => Ok(Form::Deck),
        Some(other) => Err(ApiError::bad_request(
            "format",
            Some(Rule::Enum(vec!["kong".into(), "deck".into()])),
            format!(
                "`format` must be kong or deck, not '{}'",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// The hash of the form asked for: each form has its own ETag.
fn hash_of(p: &Published, form: Form) -> &str {
    match form {
        Form::Kong => p.body.hash(),
        Form::Deck => p.deck.hash(),
    }
}

fn snapshot_response(p: &Published, form: Form) -> Response {
    let snapshot = match form {
        Form::Kong => &p.body,
        Form::Deck => &p.deck,
    };
    // Fewer, larger pieces than the rope (see `Body::wire_parts`); one piece
    // goes out as a plain body, in one write with the headers.
    let parts = snapshot.wire_parts();
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
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(snapshot.len()));
    if let Ok(v) = HeaderValue::from_str(&etag(snapshot.hash())) {
        h.insert(header::ETAG, v);
    }
    h.insert("x-snapshot-version", HeaderValue::from(p.version));
    resp
}

fn not_modified(p: &Published, form: Form) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(hash_of(p, form))) {
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
    let form = form_of(&q)?;
    if let (Some(v), None) = (known_version, wait) {
        return exact(&s, id, v, form, &headers).await;
    }
    let missing = || ApiError::not_found(format!("no control plane with id {id}"));
    let current = s.engine.snapshot(id).ok_or_else(missing)?;
    // With `wait`, `version=V` is the version the caller has.
    let is_known = |p: &Published| {
        matches_etag(&headers, hash_of(p, form)) || known_version.is_some_and(|v| v >= p.version)
    };
    if !is_known(&current) {
        return Ok(served_response(&s, id, &current, form));
    }
    let Some(wait) = wait else {
        return Ok(not_modified(&current, form));
    };
    let mut rx = s.engine.subscribe(id).ok_or_else(missing)?;
    let mut shutdown = s.shutdown.clone();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let latest = s.engine.snapshot(id).ok_or_else(missing)?;
        if !is_known(&latest) {
            return Ok(served_response(&s, id, &latest, form));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return Err(missing()) },
            _ = tokio::time::sleep_until(deadline) => return Ok(not_modified(&latest, form)),
            _ = shutdown.changed() => return Ok(not_modified(&latest, form)),
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

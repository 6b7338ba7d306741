//! What every handler shares: ids, query strings, bodies and JSON answers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};

pub fn parse_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::bad_request(format!(
            "'{}' is not a control plane id (a UUID)",
            s.chars().take(64).collect::<String>()
        ))
    })
}

pub type Query = Vec<(String, String)>;

pub fn query(raw: Option<String>) -> ApiResult<Query> {
    serde_urlencoded::from_str::<Query>(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

pub fn param<'a>(q: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

/// `?dry_run=true` and the like.
pub fn flag(q: &[(String, String)], name: &str) -> ApiResult<bool> {
    match param(q, &[name]) {
        None => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "`{name}` must be true or false, not '{v}'"
        ))),
    }
}

pub async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
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

pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_lowercase())
}

/// A JSON request body into `T`, every failure a 4xx saying what is wrong.
pub async fn json_body<T: DeserializeOwned>(
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

pub fn ok_json(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// `page[size]` and `page[number]`.
pub fn page(q: &[(String, String)]) -> ApiResult<(usize, usize)> {
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

pub fn paged(items: Vec<Value>, size: usize, number: usize) -> Value {
    let total = items.len();
    let data: Vec<Value> = items
        .into_iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .collect();
    json!({"data": data, "meta": {"page": {"number": number, "size": size, "total": total}}})
}

pub async fn healthz() -> Response {
    ok_json(StatusCode::OK, json!({"status": "ok"}))
}

/// Per-group series come from the published views: a deleted group's go with it.
pub async fn metrics(axum::extract::State(s): axum::extract::State<AppState>) -> Response {
    let views = s.engine.views();
    let series: Vec<crate::metrics::GroupSeries> = views
        .iter()
        .map(|v| crate::metrics::GroupSeries {
            id: &v.meta.id,
            name: &v.meta.name,
            version: v.snapshot.version,
            conflicts: v.composite().map(|c| c.report.conflicts.len()),
            pinned: v.pin.is_some(),
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&series),
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

/// The published view of group `id`, or a 404.
pub fn view_or_404(
    s: &AppState,
    id: uuid::Uuid,
) -> ApiResult<std::sync::Arc<crate::registry::GroupView>> {
    s.engine
        .view(id)
        .ok_or_else(|| ApiError::not_found(format!("no control plane with id {id}")))
}

//! `GET /v2/backup` (an extension; org admins only, see `auth`): the whole
//! state at one point in time (`Engine::export`), streamed as JSON lines
//! as it is written out. `rgmerge export --socket` reads it into the same
//! directory an offline export writes. It holds token and session hashes
//! and the key they are made with: it is a secret (see SECURITY.md).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::error::ApiResult;
use super::http::query;

/// The media type of the stream: one JSON object a line.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

pub async fn get(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    query(raw)?.only(&[])?;
    let dump = s.engine.export().await?;
    let lines = dump
        .lines()
        .map(|l| Ok::<_, std::convert::Infallible>(Bytes::from(l)));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(futures_util::stream::iter(lines)),
    )
        .into_response())
}

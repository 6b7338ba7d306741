//! Every error the API returns: JSON `{"status","title","detail"}` with a
//! proper status code (README, "The daemon"), plus member errors for a rejected config.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::{Refusal, RefusalKind};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub extra: Option<Box<serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            title: status.canonical_reason().unwrap_or("Error"),
            detail: detail.into(),
            extra: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }
}

/// A refusal's status and title: the registry says what went wrong, HTTP
/// is decided here.
impl From<Refusal> for ApiError {
    fn from(e: Refusal) -> ApiError {
        let (status, title) = match e.kind {
            RefusalKind::Invalid => (StatusCode::BAD_REQUEST, "Bad Request"),
            RefusalKind::NotFound => (StatusCode::NOT_FOUND, "Not Found"),
            RefusalKind::Conflict => (StatusCode::CONFLICT, "Conflict"),
            RefusalKind::ReadOnly => (StatusCode::METHOD_NOT_ALLOWED, "Read-only group"),
            RefusalKind::Storage => (StatusCode::INSUFFICIENT_STORAGE, "Storage failure"),
            RefusalKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        };
        ApiError {
            status,
            title,
            detail: e.detail,
            extra: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body =
            json!({"status": self.status.as_u16(), "title": self.title, "detail": self.detail});
        if let (Some(obj), Some(serde_json::Value::Object(extra))) =
            (body.as_object_mut(), self.extra.map(|e| *e))
        {
            obj.extend(extra);
        }
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

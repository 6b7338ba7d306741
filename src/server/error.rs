//! Every error the API returns: JSON `{"status","title","detail"}` with a
//! proper status code (SPEC §7.1), plus member errors for a rejected config.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::{ErrorKind, RegistryError};

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

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        let status = match e.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::ReadOnly => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Storage => StatusCode::INSUFFICIENT_STORAGE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            title: e.title,
            detail: e.detail,
            extra: e
                .report
                .map(|r| Box::new(json!({"state": r.state, "errors": r.errors}))),
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

//! Every error the API returns, built in one place.
//!
//! Konnect's form (RFC 9457 `application/problem+json`): `status`, `title`,
//! `detail`, `instance` (the request's path) and, on a 400,
//! `invalid_parameters` — each with the `field` at fault, a `rule` from the
//! spec's `InvalidRules` and a `reason`. The DP-certificate operations answer
//! in the spec's legacy form instead: `application/json` `{"message"}`.
//!
//! `instance` is the request's path: a handler's error leaves it unset and the
//! router's outermost middleware ([`problem_details`]) fills it in.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::registry::{Refusal, RefusalKind};

/// Which form an error takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `application/problem+json` (Konnect's `BaseError`/`BadRequestError`).
    Problem,
    /// `application/json` `{"message"}` (the spec's `KonnectCPLegacy…Error`).
    Legacy,
}

/// One entry of `invalid_parameters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidParameter {
    pub field: String,
    pub rule: Option<Rule>,
    pub reason: String,
}

/// The spec's rules (`InvalidRules` and the rules of its length and choice
/// items) that rgmerge uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Required,
    UnknownProperty,
    IsArray,
    IsBoolean,
    IsInteger,
    IsNumber,
    IsObject,
    IsString,
    IsUuid,
    IsLabel,
    Invalid,
    Type,
    MinLength(u64),
    MaxLength(u64),
    /// One of these values.
    Enum(Vec<String>),
}

impl InvalidParameter {
    pub fn new(field: impl Into<String>, rule: Option<Rule>, reason: impl Into<String>) -> Self {
        InvalidParameter {
            field: field.into(),
            rule,
            reason: reason.into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("field".into(), json!(self.field));
        let rule = match &self.rule {
            None => None,
            Some(Rule::Required) => Some("required"),
            Some(Rule::UnknownProperty) => Some("unknown_property"),
            Some(Rule::IsArray) => Some("is_array"),
            Some(Rule::IsBoolean) => Some("is_boolean"),
            Some(Rule::IsInteger) => Some("is_integer"),
            Some(Rule::IsNumber) => Some("is_number"),
            Some(Rule::IsObject) => Some("is_object"),
            Some(Rule::IsString) => Some("is_string"),
            Some(Rule::IsUuid) => Some("is_uuid"),
            Some(Rule::IsLabel) => Some("is_label"),
            Some(Rule::Invalid) => Some("invalid"),
            Some(Rule::Type) => Some("type"),
            Some(Rule::MinLength(n)) => {
                o.insert("minimum".into(), json!(n));
                Some("min_length")
            }
            Some(Rule::MaxLength(n)) => {
                o.insert("maximum".into(), json!(n));
                Some("max_length")
            }
            Some(Rule::Enum(choices)) => {
                o.insert("choices".into(), json!(choices));
                Some("enum")
            }
        };
        if let Some(rule) = rule {
            o.insert("rule".into(), json!(rule));
        }
        o.insert("reason".into(), json!(self.reason));
        Value::Object(o)
    }
}

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// For a 400: what is wrong, field by field (never empty when rendered).
    pub invalid: Vec<InvalidParameter>,
    /// More members of the answer (a rejected config's member errors).
    pub extra: Option<Box<Value>>,
    pub style: Style,
    /// The request's path; set by [`problem_details`] when left unset.
    pub instance: Option<String>,
    /// Close the connection after answering.
    pub close: bool,
}

/// Paths whose errors are in the gateway's form, not problem+json.
pub fn is_gateway_path(path: &str) -> bool {
    path.contains("/core-entities/") || path.ends_with("/core-entities")
}

/// A title for a status, in sentence case.
fn title_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            title: title_of(status),
            detail: detail.into(),
            invalid: Vec::new(),
            extra: None,
            style: Style::Problem,
            instance: None,
            close: false,
        }
    }

    /// A 400 naming the field at fault.
    pub fn bad_request(
        field: impl Into<String>,
        rule: Option<Rule>,
        detail: impl Into<String>,
    ) -> ApiError {
        let detail = detail.into();
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, detail.clone());
        e.invalid.push(InvalidParameter::new(field, rule, detail));
        e
    }

    /// A 400 listing several fields at fault.
    pub fn invalid_parameters(detail: impl Into<String>, params: Vec<InvalidParameter>) -> Self {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, detail);
        e.invalid = params;
        e
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    /// In the DP-certificate operations' legacy form.
    pub fn legacy(mut self) -> ApiError {
        self.style = Style::Legacy;
        self
    }

    /// For an operation whose spec lists no 409: a refusal because of the
    /// current state is a 400, naming what is at fault.
    pub fn no_conflict_status(mut self) -> ApiError {
        if self.status == StatusCode::CONFLICT {
            self.status = StatusCode::BAD_REQUEST;
            self.title = title_of(self.status);
        }
        self
    }

    fn body(&self, instance: &str) -> (Value, &'static str) {
        if self.style == Style::Legacy {
            return (json!({"message": self.detail}), "application/json");
        }
        if is_gateway_path(instance) {
            // The core-entities operations answer errors as Kong's Admin
            // API does, with the status: `{message, status}`.
            let mut o = Map::new();
            o.insert("message".into(), json!(self.detail));
            o.insert("status".into(), json!(self.status.as_u16()));
            if let Some(Value::Object(extra)) = self.extra.as_deref() {
                for (k, v) in extra {
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            return (Value::Object(o), "application/json");
        }
        let mut o = Map::new();
        o.insert("status".into(), json!(self.status.as_u16()));
        o.insert("title".into(), json!(self.title));
        o.insert("instance".into(), json!(instance));
        o.insert("detail".into(), json!(self.detail));
        if self.status == StatusCode::BAD_REQUEST {
            let params: Vec<Value> = if self.invalid.is_empty() {
                vec![InvalidParameter::new("body", None, self.detail.clone()).to_json()]
            } else {
                self.invalid.iter().map(InvalidParameter::to_json).collect()
            };
            o.insert("invalid_parameters".into(), Value::Array(params));
        }
        if let Some(Value::Object(extra)) = self.extra.as_deref() {
            for (k, v) in extra {
                o.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        (Value::Object(o), "application/problem+json")
    }

    /// The answer, with `instance` as given.
    pub fn render(&self, instance: &str) -> Response {
        let (body, content_type) = self.body(instance);
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, content_type)],
            body.to_string(),
        )
            .into_response();
        if self.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// A refusal's status: the registry says what went wrong, HTTP is decided here.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let status = match r.kind {
            RefusalKind::Invalid => StatusCode::BAD_REQUEST,
            RefusalKind::NotFound => StatusCode::NOT_FOUND,
            RefusalKind::Conflict => StatusCode::CONFLICT,
            RefusalKind::ReadOnly => StatusCode::METHOD_NOT_ALLOWED,
            RefusalKind::Storage => StatusCode::SERVICE_UNAVAILABLE,
            RefusalKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut e = ApiError::new(status, r.detail.clone());
        e.title = match r.kind {
            RefusalKind::ReadOnly => "Read-only control plane group",
            RefusalKind::Storage => "Storage failure",
            _ => title_of(status),
        };
        let field = r.field.unwrap_or_else(|| "body".into());
        e.invalid
            .push(InvalidParameter::new(field, Some(Rule::Invalid), r.detail));
        e
    }
}

/// The error, waiting for [`problem_details`] to give it its `instance`.
#[derive(Clone)]
struct Pending(Box<ApiError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(instance) = &self.instance {
            return self.render(instance);
        }
        // Rendered now without `instance`, in case no middleware runs, and
        // again by `problem_details` with the request's path.
        let mut resp = self.render("");
        resp.extensions_mut().insert(Pending(Box::new(self)));
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The outermost middleware: every error gets the request's path as its
/// `instance`; anything else that is an error and not ours (an extractor's
/// plain-text rejection) becomes a problem too.
pub async fn problem_details(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await;
    if let Some(Pending(e)) = resp.extensions_mut().remove::<Pending>() {
        let mut fresh = e.render(&path);
        // Keep what others added (`Allow` on a 405, `Connection`).
        for (name, value) in resp.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                fresh.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return fresh;
    }
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json")
                || ct.contains("problem+json")
                // The Runtime Manager page's errors are pages.
                || ct.starts_with("text/html")
        });
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let headers = resp.headers().clone();
    let detail = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let e = if status == StatusCode::BAD_REQUEST {
        ApiError::bad_request("path", Some(Rule::Invalid), detail)
    } else {
        ApiError::new(status, detail)
    };
    let mut fresh = e.render(&path);
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

//! `…/dp-client-certificates`: data plane client certificates pinned to a
//! group, a composite included (Konnect's "DP Certificates"). As the spec
//! says, these operations answer errors in the legacy form, `application/json`
//! `{"message"}`, and list without paging (`page.total_count`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::http::view_or_404;
use super::http::{json_body, ok_json, parse_id, unix_seconds};
use crate::registry::{DpCertificate, NewCertificate};

/// The body of a pin or a replacement (`DataPlaneClientCertificateRequest`).
#[derive(Deserialize)]
struct CertificateBody {
    cert: String,
    #[serde(default)]
    title: Option<String>,
}

fn certificate_json(c: &DpCertificate) -> Value {
    let mut v = json!({
        "id": c.id,
        "cert": c.cert,
        "created_at": unix_seconds(c.created_ms),
        "updated_at": unix_seconds(c.updated_ms),
    });
    if let (Some(t), Some(o)) = (&c.title, v.as_object_mut()) {
        o.insert("title".into(), json!(t));
    }
    v
}

/// An id from the path; one that is not a UUID names nothing (the spec's
/// reads and deletes answer 404, never 400).
fn id_or_404(what: &str, s: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| {
        ApiError::not_found(format!(
            "no {what} with id '{}'",
            s.chars().take(64).collect::<String>()
        ))
    })
}

/// Every error of these operations, in the spec's legacy form.
fn legacy<T>(r: ApiResult<T>) -> ApiResult<T> {
    r.map_err(|e| e.no_conflict_status().legacy())
}

pub async fn list(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    legacy(
        async {
            let view = view_or_404(&s, id_or_404("control plane", &id)?)?;
            let items: Vec<Value> = view
                .certificates()
                .into_iter()
                .map(certificate_json)
                .collect();
            Ok(ok_json(
                StatusCode::OK,
                json!({"page": {"total_count": items.len()}, "items": items}),
            ))
        }
        .await,
    )
}

pub async fn create(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    legacy(
        async {
            let id = parse_id(&id)?;
            let b: CertificateBody = json_body(&s, &headers, body).await?;
            let cert = s
                .engine
                .add_certificate(
                    id,
                    NewCertificate {
                        cert: b.cert,
                        title: b.title,
                    },
                )
                .await?;
            Ok(ok_json(
                StatusCode::CREATED,
                json!({"item": certificate_json(&cert)}),
            ))
        }
        .await,
    )
}

pub async fn get(
    State(s): State<AppState>,
    Path((id, cert)): Path<(String, String)>,
) -> ApiResult<Response> {
    legacy(
        async {
            let view = view_or_404(&s, id_or_404("control plane", &id)?)?;
            let cid = id_or_404("certificate", &cert)?;
            let c = view.certificates.get(&cid).ok_or_else(|| {
                ApiError::not_found(format!(
                    "no certificate with id {cid} is pinned to control plane '{}'",
                    view.meta.name
                ))
            })?;
            Ok(ok_json(
                StatusCode::OK,
                json!({"item": certificate_json(c)}),
            ))
        }
        .await,
    )
}

pub async fn update(
    State(s): State<AppState>,
    Path((id, cert)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    legacy(
        async {
            let id = parse_id(&id)?;
            let cid = id_or_404("certificate", &cert)?;
            let b: CertificateBody = json_body(&s, &headers, body).await?;
            let cert = s
                .engine
                .update_certificate(
                    id,
                    cid,
                    NewCertificate {
                        cert: b.cert,
                        title: b.title,
                    },
                )
                .await?;
            Ok(ok_json(
                StatusCode::OK,
                json!({"item": certificate_json(&cert)}),
            ))
        }
        .await,
    )
}

pub async fn delete(
    State(s): State<AppState>,
    Path((id, cert)): Path<(String, String)>,
) -> ApiResult<Response> {
    legacy(
        async {
            let id = id_or_404("control plane", &id)?;
            let cid = id_or_404("certificate", &cert)?;
            s.engine.delete_certificate(id, cid).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

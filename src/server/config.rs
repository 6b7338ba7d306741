//! `/v2/control-planes/{id}/config`: a standard group's member config (an
//! extension: Konnect has no such path).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::Rule;
use super::error::{ApiError, ApiResult};
use super::http::{content_type, ok_json, parse_id, query, read_body, view_or_404};
use crate::registry::{ConfigWrite, Mode};
use crate::report::{Report, State as ReportState};

pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    let st = view.standard().ok_or_else(|| {
        ApiError::bad_request(
            "id",
            Some(Rule::Invalid),
            "a control plane group (composite) has no config of its own: GET its /snapshot for the merged config",
        )
    })?;
    let text = st.config();
    Ok((
        [(header::CONTENT_TYPE, text.media_type)],
        text.bytes.to_vec(),
    )
        .into_response())
}

/// Media types a member config may be sent as; without one, the bytes are sniffed.
const ACCEPTED: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
];

pub async fn put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let q = query(raw)?;
    q.only(&["dry_run"])?;
    let dry_run = q.flag("dry_run")?;
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let ct = content_type(&headers);
    if let Some(ct) = &ct
        && !ACCEPTED.iter().any(|a| ct.starts_with(a))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a member config is JSON or YAML; Content-Type '{ct}' is neither"),
        ));
    }
    let bytes = read_body(&s, &headers, body).await?;
    // Sniffed from the bytes unless the type says YAML or JSON.
    let ct = ct.filter(|c| c.contains("yaml") || c.contains("json"));
    match s
        .engine
        .put_config(id, bytes.to_vec(), ct.as_deref(), mode, None)
        .await?
    {
        ConfigWrite::Applied(outcome) => {
            // The worst state among the composites concerned: what the change means for them.
            let state = outcome
                .composites
                .iter()
                .map(|c| c.report.state)
                .find(|s| *s != ReportState::Ok)
                .unwrap_or(ReportState::Ok);
            let composites: Vec<_> = outcome
                .composites
                .iter()
                .map(|c| json!({"id": c.id, "name": c.name, "report": c.report}))
                .collect();
            let mut v = json!({
                "dry_run": dry_run,
                "state": state,
                "errors": [],
                "composites": composites,
            });
            if dry_run && let Some(o) = v.as_object_mut() {
                o.insert(
                    "held_back_data_planes".into(),
                    json!(held_back(&s, id, &outcome).await),
                );
            }
            // A dry run changed nothing, so it has no version to report.
            if !dry_run && let Some(o) = v.as_object_mut() {
                o.insert("version".into(), json!(outcome.version));
                o.insert("hash".into(), json!(outcome.hash));
            }
            Ok(ok_json(StatusCode::OK, v))
        }
        // The same answer for a dry run as for the real request, saying so.
        ConfigWrite::Invalid(errors) => {
            let report = Report::new(Vec::new(), Vec::new(), errors);
            let detail = format!(
                "the config has {} member error(s); nothing was changed",
                report.errors.len()
            );
            let mut e = ApiError::bad_request("body", Some(Rule::Invalid), detail);
            e.title = "Invalid member config";
            e.extra = Some(Box::new(json!({
                "dry_run": dry_run,
                "state": report.state,
                "errors": report.errors,
            })));
            Err(e)
        }
    }
}

/// The connected data planes the config would be held back from, in the
/// group itself or in each composite it is in (a dry run's pre-flight).
pub async fn held_back(
    s: &AppState,
    id: uuid::Uuid,
    outcome: &crate::registry::ConfigOutcome,
) -> Vec<crate::cluster::preflight::HeldBack> {
    let targets: Vec<uuid::Uuid> = if outcome.composites.is_empty() {
        vec![id]
    } else {
        outcome.composites.iter().map(|c| c.id).collect()
    };
    let views: Vec<_> = targets.iter().filter_map(|t| s.engine.view(*t)).collect();
    if views
        .iter()
        .all(|v| v.nodes.list().iter().all(|n| n.hybrid.is_none()))
    {
        return Vec::new();
    }
    let outcome = outcome.clone();
    let plugins = tokio::task::spawn_blocking(move || outcome.configured_plugins())
        .await
        .unwrap_or_default();
    let refs: Vec<&crate::registry::GroupView> = views.iter().map(|v| v.as_ref()).collect();
    crate::cluster::preflight::held_back(&refs, &plugins, crate::cluster::KONG_VERSION)
}

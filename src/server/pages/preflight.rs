//! The pre-flight page: upload or paste a decK file for a standard group,
//! see the dry-run report for every composite it would touch, then apply
//! it (a second form, with the same config and a fresh CSRF check).

use std::sync::Arc;

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use uuid::Uuid;

use super::render::{
    Badge, CompositeResult, PreflightPage, PreflightResult, conflict_views, error_views,
};
use super::{AppState, Viewer, message, rendered, view_or_page};
use crate::registry::{ConfigWrite, GroupView, Mode, Right};
use crate::report::State as ReportState;

/// What a pre-flight or apply form carries.
#[derive(Default)]
struct Upload {
    csrf: String,
    /// The textarea, CRLF line ends made LF (the browser sends CRLF; YAML
    /// and JSON mean the same by both).
    text: String,
    file: Vec<u8>,
    file_type: Option<String>,
}

impl Upload {
    /// The config to judge: the uploaded file if there is one, else the text.
    fn config(&self) -> (Vec<u8>, Option<String>) {
        if self.file.is_empty() {
            (self.text.clone().into_bytes(), None)
        } else {
            (self.file.clone(), self.file_type.clone())
        }
    }
}

async fn read_upload(mut form: Multipart) -> Result<Upload, (StatusCode, String)> {
    let mut up = Upload::default();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err((e.status(), e.body_text())),
        };
        let name = field.name().unwrap_or("").to_string();
        let ct = field.content_type().map(str::to_ascii_lowercase);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| (e.status(), e.body_text()))?;
        match name.as_str() {
            "csrf" => up.csrf = String::from_utf8_lossy(&bytes).chars().take(128).collect(),
            "config" => up.text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n"),
            "file" => {
                up.file = bytes.to_vec();
                // Only a type that says YAML or JSON is worth believing; the
                // bytes are sniffed otherwise.
                up.file_type = ct.filter(|c| c.contains("yaml") || c.contains("json"));
            }
            _ => {}
        }
    }
    Ok(up)
}

/// A standard group's view if the viewer holds `right` on it, or the page
/// saying why there is no pre-flight.
async fn standard_or_page(
    s: &AppState,
    viewer: &Viewer,
    id: &str,
    method: &Method,
    right: Right,
) -> Result<Arc<GroupView>, Response> {
    let view = view_or_page(s, viewer, id, method, right).await?;
    if view.standard().is_none() {
        return Err(message(
            StatusCode::BAD_REQUEST,
            viewer,
            s,
            "No config of its own",
            "A composite's config is the merge of its members': pre-flight a change to one of its members instead.",
        ));
    }
    Ok(view)
}

fn page(
    s: &AppState,
    viewer: &Viewer,
    view: &GroupView,
    text: String,
    result: Option<PreflightResult>,
    status: StatusCode,
) -> Response {
    let p = PreflightPage {
        chrome: viewer.chrome(format!("Pre-flight: {}", view.meta.name), &s.engine),
        id: view.meta.id,
        name: view.meta.name.clone(),
        can_edit: viewer.caller.may(Right::Edit, view.meta.id),
        text,
        result,
    };
    rendered(status, askama::Template::render(&p))
}

pub async fn form(State(s): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    // Reading the config needs viewer, as `GET …/config` does.
    let view = match standard_or_page(&s, &viewer, &id, &Method::GET, Right::View).await {
        Ok(v) => v,
        Err(p) => return p,
    };
    // Start from the config the group has now.
    let text = view
        .standard()
        .map(|st| String::from_utf8_lossy(st.config().bytes).into_owned())
        .unwrap_or_default();
    page(&s, &viewer, &view, text, None, StatusCode::OK)
}

pub async fn dry_run(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Multipart,
) -> Response {
    run(s, viewer, id, headers, form, Mode::DryRun).await
}

pub async fn apply(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Multipart,
) -> Response {
    run(s, viewer, id, headers, form, Mode::Apply).await
}

async fn run(
    s: AppState,
    viewer: Viewer,
    id: String,
    headers: HeaderMap,
    form: Multipart,
    mode: Mode,
) -> Response {
    // A dry run needs editor too, as `PUT …/config?dry_run=true` does.
    let view = match standard_or_page(&s, &viewer, &id, &Method::POST, Right::Edit).await {
        Ok(v) => v,
        Err(p) => return p,
    };
    let up = match read_upload(form).await {
        Ok(u) => u,
        Err((status, why)) => {
            return message(status, &viewer, &s, "The upload failed", &why);
        }
    };
    if let Some(refused) = viewer.form_refusal(&headers, &up.csrf, &s) {
        return refused;
    }
    let (bytes, content_type) = up.config();
    // What the Apply form sends back: the file's text if it was a file.
    let (text, utf8) = if up.file.is_empty() {
        (up.text.clone(), true)
    } else {
        match String::from_utf8(up.file.clone()) {
            Ok(t) => (t.replace("\r\n", "\n"), true),
            Err(_) => (String::new(), false),
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let result = PreflightResult {
            applied: false,
            badge: Badge::of(ReportState::Invalid),
            summary: "Paste a decK file or choose one to upload first.".into(),
            errors: Vec::new(),
            composites: Vec::new(),
            conflicts: 0,
            cannot_apply: Some("There is nothing to apply.".into()),
            held_back: Vec::new(),
        };
        return page(
            &s,
            &viewer,
            &view,
            text,
            Some(result),
            StatusCode::BAD_REQUEST,
        );
    }
    // The composites' states before the change, for "OK → CONFLICT".
    let before = |c: Uuid| {
        s.engine
            .view(c)
            .and_then(|v| v.composite().map(|x| Badge::all(&x.report)))
            .unwrap_or_else(|| vec![Badge::of(ReportState::Ok)])
    };
    let written = s
        .engine
        .put_config(view.meta.id, bytes, content_type.as_deref(), mode, None)
        .await;
    let applied = mode == Mode::Apply;
    // Audited as the API's config writes are (dry runs included).
    let (status, reason) = match &written {
        Ok(ConfigWrite::Applied(_)) => (StatusCode::OK, None),
        Ok(ConfigWrite::Invalid(e)) => (
            StatusCode::BAD_REQUEST,
            Some(format!("{} member error(s)", e.len())),
        ),
        Err(r) => (
            super::super::ApiError::from(r.clone()).status,
            Some(r.detail.clone()),
        ),
    };
    viewer
        .audit_write(&s, Some(view.meta.id), status, reason)
        .await;
    let result = match written {
        Err(refusal) => {
            return message(status, &viewer, &s, "Refused", &refusal.detail);
        }
        Ok(ConfigWrite::Invalid(errors)) => PreflightResult {
            applied: false,
            badge: Badge::of(ReportState::Invalid),
            summary: format!(
                "The config has {} member error(s) and would be refused; nothing was changed.",
                errors.len()
            ),
            errors: error_views(&errors),
            composites: Vec::new(),
            conflicts: 0,
            cannot_apply: Some("Fix the member errors first: an invalid config is refused.".into()),
            held_back: Vec::new(),
        },
        Ok(ConfigWrite::Applied(outcome)) => {
            let held_back = if applied {
                Vec::new()
            } else {
                crate::server::config::held_back(&s, view.meta.id, &outcome)
                    .await
                    .into_iter()
                    .map(|h| format!("{}: {}", h.control_plane_name, h.message))
                    .collect()
            };
            let composites: Vec<CompositeResult> = outcome
                .composites
                .iter()
                .map(|c| {
                    let members: Vec<Arc<GroupView>> = s
                        .engine
                        .view(c.id)
                        .and_then(|v| v.composite().map(|x| x.members.clone()))
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|m| s.engine.view(m))
                        .collect();
                    let id_of = |name: &str| {
                        members
                            .iter()
                            .find(|m| m.meta.name == name)
                            .map(|m| m.meta.id)
                    };
                    CompositeResult {
                        id: c.id,
                        name: c.name.clone(),
                        // Applied: the state before is gone; the outcome is now.
                        before: if applied {
                            Badge::all(&c.report)
                        } else {
                            before(c.id)
                        },
                        after: Badge::all(&c.report),
                        conflicts: conflict_views(&c.report.conflicts, &id_of),
                    }
                })
                .collect();
            let conflicts: usize = composites.iter().map(|c| c.conflicts.len()).sum();
            let worst = outcome
                .composites
                .iter()
                .map(|c| c.report.state)
                .find(|st| *st != ReportState::Ok)
                .unwrap_or(ReportState::Ok);
            let touched = composites.len();
            let summary = if applied {
                format!(
                    "Applied: '{}' is now at version {} (hash {}). {}",
                    view.meta.name,
                    outcome.version,
                    outcome.hash,
                    if conflicts > 0 {
                        "Composites in conflict keep serving their last good version."
                    } else {
                        "Every composite it is in merges cleanly."
                    }
                )
            } else if touched == 0 {
                "The config is valid. The group is in no composite, so no composite is touched; nothing changes until you apply it.".into()
            } else {
                format!(
                    "The config is valid. It would leave {conflicts} conflict(s) in the {touched} composite(s) the group is in; nothing changes until you apply it."
                )
            };
            PreflightResult {
                applied,
                badge: Badge::of(worst),
                summary,
                errors: Vec::new(),
                composites,
                conflicts,
                cannot_apply: if !utf8 {
                    Some("The file is not UTF-8 text, so the page can't carry it to Apply.".into())
                } else {
                    viewer.write_refusal(view.meta.id)
                },
                held_back,
            }
        }
    };
    page(&s, &viewer, &view, text, Some(result), StatusCode::OK)
}

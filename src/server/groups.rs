//! `/v2/control-planes` and `/v2/control-planes/{id}`: list, create, read,
//! change and delete groups, as Konnect's `ControlPlane` (nothing more: the
//! spec forbids extra properties; ours live at `/details`).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, InvalidParameter, Rule};
use super::http::{Query, json_body, numbered_page, ok_json, parse_id, query, view_or_404};
use crate::registry::{
    AuthType, ClusterType, GroupUpdate, GroupView, MAX_DESCRIPTION, MAX_NAME, NewGroup, ProxyUrl,
    Right,
};

/// The body of `POST /v2/control-planes` (`CreateControlPlaneRequest`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    cluster_type: Option<String>,
    #[serde(default)]
    auth_type: Option<AuthType>,
    #[serde(default)]
    cloud_gateway: Option<bool>,
    #[serde(default)]
    proxy_urls: Option<Vec<ProxyUrl>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// The body of `PATCH /v2/control-planes/{id}` (`UpdateControlPlaneRequest`);
/// a label set to `null` is removed (an extension).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    auth_type: Option<AuthType>,
    #[serde(default)]
    proxy_urls: Option<Vec<ProxyUrl>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Option<String>>>,
}

/// The shortest name the spec allows.
const MIN_NAME: usize = 2;

/// What the spec's request schema says of the fields both bodies share.
fn check_fields(
    name: Option<&str>,
    description: Option<&str>,
    labels: &mut dyn Iterator<Item = (&String, Option<&String>)>,
) -> ApiResult<()> {
    let mut bad = Vec::new();
    if let Some(name) = name {
        let n = name.chars().count();
        if n < MIN_NAME {
            bad.push(InvalidParameter::new(
                "name",
                Some(Rule::MinLength(MIN_NAME as u64)),
                format!("must have at least {MIN_NAME} characters"),
            ));
        } else if n > MAX_NAME {
            bad.push(InvalidParameter::new(
                "name",
                Some(Rule::MaxLength(MAX_NAME as u64)),
                format!("must not have more than {MAX_NAME} characters"),
            ));
        }
    }
    if let Some(d) = description
        && d.chars().count() > MAX_DESCRIPTION
    {
        bad.push(InvalidParameter::new(
            "description",
            Some(Rule::MaxLength(MAX_DESCRIPTION as u64)),
            format!("must not have more than {MAX_DESCRIPTION} characters"),
        ));
    }
    for (k, v) in labels {
        if let Some(v) = v
            && !is_label_value(v)
        {
            bad.push(InvalidParameter::new(
                format!("labels.{}", k.chars().take(63).collect::<String>()),
                Some(Rule::IsLabel),
                "a label value is 1 to 63 letters, digits, '-', '.' or '_', starting and ending with a letter or digit",
            ));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = bad.iter().map(|p| p.field.as_str()).collect();
    Err(ApiError::invalid_parameters(
        format!("invalid request body: {}", fields.join(", ")),
        bad,
    ))
}

/// The spec's label value pattern: `^[a-z0-9A-Z]{1}([a-z0-9A-Z\-\.\_]*[a-z0-9A-Z]+)?$`.
fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

/// The cluster types rgmerge serves (the spec knows more).
const SERVED_CLUSTER_TYPES: [ClusterType; 3] = [
    ClusterType::ControlPlane,
    ClusterType::K8sIngressController,
    ClusterType::ControlPlaneGroup,
];

fn check_cluster_type(ct: Option<&str>) -> ApiResult<()> {
    match ct {
        Some(s) if ClusterType::parse(s).is_none() => Err(ApiError::bad_request(
            "cluster_type",
            Some(Rule::Enum(
                SERVED_CLUSTER_TYPES
                    .iter()
                    .map(|c| c.as_str().to_string())
                    .collect(),
            )),
            format!(
                "cluster_type '{}' is not one rgmerge serves",
                s.chars().take(64).collect::<String>()
            ),
        )),
        _ => Ok(()),
    }
}

/// Where a group's data planes reach this daemon: the cluster endpoint,
/// `https://<label>.DOMAIN[:PORT]` (Konnect's form), when it is open; else
/// the socket, which the sidecar follows.
pub struct Endpoint {
    socket_uri: String,
    cluster: Option<super::ClusterEndpoint>,
}

impl Endpoint {
    pub fn of(&self, id: uuid::Uuid) -> String {
        match &self.cluster {
            Some(c) if c.port == 443 => {
                format!(
                    "https://{}.{}",
                    crate::registry::cluster_label(id),
                    c.domain
                )
            }
            Some(c) => format!(
                "https://{}.{}:{}",
                crate::registry::cluster_label(id),
                c.domain,
                c.port
            ),
            None => self.socket_uri.clone(),
        }
    }
}

/// The endpoint data planes are told (see [`Endpoint`]).
pub fn endpoint(s: &AppState) -> Endpoint {
    let path = std::path::absolute(&s.opts.socket).unwrap_or_else(|_| s.opts.socket.clone());
    let mut uri = String::from("unix://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    Endpoint {
        socket_uri: uri,
        cluster: s.opts.cluster.clone(),
    }
}

/// A group as Konnect's `ControlPlane`.
pub fn group_json(v: &GroupView, endpoint: &Endpoint) -> Value {
    let m = &v.meta;
    let endpoint = endpoint.of(m.id);
    json!({
        "id": m.id,
        "name": m.name,
        "description": m.description.as_deref().unwrap_or(""),
        "labels": m.labels,
        "config": {
            "control_plane_endpoint": endpoint,
            "telemetry_endpoint": endpoint,
            "cluster_type": m.cluster_type.as_str(),
            "auth_type": m.auth_type.as_str(),
            "cloud_gateway": m.cloud_gateway,
            "proxy_urls": m.proxy_urls,
        },
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    })
}

/// The query parameters of `list-control-planes`.
const LIST_PARAMS: &[&str] = &[
    "page[size]",
    "page[number]",
    "filter[name][eq]",
    "filter[name][neq]",
    "filter[name][contains]",
    "filter[id][eq]",
    "filter[id][oeq]",
    "filter[cluster_type][eq]",
    "filter[cluster_type][neq]",
    "filter[cluster_type][oeq]",
    "filter[cloud_gateway]",
    "labels",
    "sort",
];

/// One label term of `labels=key:value,existCheck`.
enum LabelTerm {
    Equals(String, String),
    Exists(String),
}

fn label_terms(q: &Query) -> Vec<LabelTerm> {
    q.get("labels")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once(':') {
            Some((k, v)) => LabelTerm::Equals(k.trim().to_string(), v.trim().to_string()),
            None => LabelTerm::Exists(t.to_string()),
        })
        .collect()
}

/// `sort=created_at`, `created_at asc` or `created_at desc`: true for descending.
fn sort_desc(q: &Query) -> ApiResult<bool> {
    let Some(sort) = q.get("sort").filter(|s| !s.trim().is_empty()) else {
        return Ok(false);
    };
    let mut desc = None;
    for term in sort.split(',') {
        let mut words = term.split_whitespace();
        let (attr, order) = (words.next().unwrap_or(""), words.next());
        let this = match (attr, order, words.next()) {
            ("created_at", None | Some("asc"), None) => false,
            ("created_at", Some("desc"), None) => true,
            _ => {
                return Err(ApiError::bad_request(
                    "sort",
                    Some(Rule::Invalid),
                    format!(
                        "can't sort by '{}': the supported sort attribute is created_at (with asc or desc)",
                        term.chars().take(64).collect::<String>()
                    ),
                ));
            }
        };
        desc.get_or_insert(this);
    }
    Ok(desc.unwrap_or(false))
}

fn list_of_values(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

fn cluster_type_is(v: &GroupView, wanted: &str) -> bool {
    v.meta.cluster_type.as_str() == wanted
        || ClusterType::parse(wanted) == Some(v.meta.cluster_type)
}

fn id_is(v: &GroupView, wanted: &str) -> bool {
    uuid::Uuid::parse_str(wanted.trim()).is_ok_and(|id| id == v.meta.id)
}

/// Lists the groups the caller may view (all of them for an org admin).
pub async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = query(raw)?;
    q.only(LIST_PARAMS)?;
    let size = q.page_size()?;
    let number = q.number("page[number]", 1, 1, usize::MAX)?;
    let desc = sort_desc(&q)?;
    let cloud_gateway = match q.get("filter[cloud_gateway]") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::bad_request(
                "filter[cloud_gateway]",
                Some(Rule::IsBoolean),
                "`filter[cloud_gateway]` must be true or false",
            ));
        }
    };
    let labels = label_terms(&q);
    let get = |k: &str| q.get(k);
    let mut views: Vec<_> = s
        .engine
        .views()
        .into_iter()
        .filter(|g| caller.may(Right::View, g.meta.id))
        .filter(|g| get("filter[name][eq]").is_none_or(|n| g.meta.name == n))
        .filter(|g| get("filter[name][neq]").is_none_or(|n| g.meta.name != n))
        .filter(|g| get("filter[name][contains]").is_none_or(|n| g.meta.name.contains(n)))
        .filter(|g| get("filter[id][eq]").is_none_or(|id| id_is(g, id)))
        .filter(|g| {
            get("filter[id][oeq]")
                .is_none_or(|ids| list_of_values(ids).iter().any(|id| id_is(g, id)))
        })
        .filter(|g| get("filter[cluster_type][eq]").is_none_or(|ct| cluster_type_is(g, ct)))
        .filter(|g| get("filter[cluster_type][neq]").is_none_or(|ct| !cluster_type_is(g, ct)))
        .filter(|g| {
            get("filter[cluster_type][oeq]")
                .is_none_or(|cts| list_of_values(cts).iter().any(|ct| cluster_type_is(g, ct)))
        })
        .filter(|g| cloud_gateway.is_none_or(|cg| g.meta.cloud_gateway == cg))
        .filter(|g| {
            labels.iter().all(|t| match t {
                LabelTerm::Equals(k, v) => g.meta.labels.get(k) == Some(v),
                LabelTerm::Exists(k) => g.meta.labels.contains_key(k),
            })
        })
        .collect();
    views.sort_by(|a, b| {
        a.meta
            .created_at
            .cmp(&b.meta.created_at)
            .then(a.meta.name.cmp(&b.meta.name))
            .then(a.meta.id.cmp(&b.meta.id))
    });
    if desc {
        views.reverse();
    }
    let endpoint = endpoint(&s);
    let items = views.iter().map(|v| group_json(v, &endpoint)).collect();
    Ok(ok_json(StatusCode::OK, numbered_page(items, size, number)))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let b: CreateBody = json_body(&s, &headers, body).await?;
    let labels = b.labels.unwrap_or_default();
    check_fields(
        Some(&b.name),
        b.description.as_deref(),
        &mut labels.iter().map(|(k, v)| (k, Some(v))),
    )?;
    check_cluster_type(b.cluster_type.as_deref())?;
    let req = NewGroup {
        name: b.name,
        description: b.description.filter(|d| !d.is_empty()),
        cluster_type: b.cluster_type,
        labels,
        auth_type: b.auth_type,
        cloud_gateway: b.cloud_gateway.unwrap_or(false),
        proxy_urls: b.proxy_urls.unwrap_or_default(),
    };
    let view = s.engine.create_group(req).await?;
    Ok(ok_json(
        StatusCode::CREATED,
        group_json(&view, &endpoint(&s)),
    ))
}

pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let view = view_or_404(&s, parse_id(&id)?)?;
    Ok(ok_json(StatusCode::OK, group_json(&view, &endpoint(&s))))
}

pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let b: UpdateBody = json_body(&s, &headers, body).await?;
    check_fields(
        b.name.as_deref(),
        b.description.as_deref(),
        &mut b.labels.iter().flatten().map(|(k, v)| (k, v.as_ref())),
    )?;
    let req = GroupUpdate {
        name: b.name,
        description: b.description,
        labels: b.labels,
        auth_type: b.auth_type,
        proxy_urls: b.proxy_urls,
        ..GroupUpdate::default()
    };
    let view = s
        .engine
        .update_group(id, req)
        .await
        .map_err(|r| ApiError::from(r).no_conflict_status())?;
    Ok(ok_json(StatusCode::OK, group_json(&view, &endpoint(&s))))
}

pub async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    s.engine
        .delete_group(parse_id(&id)?)
        .await
        .map_err(|r| ApiError::from(r).no_conflict_status())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_follow_the_spec_pattern() {
        for ok in ["a", "prod", "eu-west.1", "a_b", "A9"] {
            assert!(is_label_value(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "é", &"x".repeat(64)] {
            assert!(!is_label_value(bad), "{bad}");
        }
    }
}

//! `/v2/control-planes/{id}/core-entities/…`: Konnect's Control Planes
//! Configuration API, entity by entity, as decK's Konnect mode, Terraform
//! and CI use it.
//!
//! Every write is one new version of the group's member config, exactly as
//! if the whole config were PUT: the handler reads the config, makes the one
//! change ([`doc`]), and writes it back through the engine's config write,
//! so validation, the incremental conflict check, history, audit and dry
//! run are the whole-config PUT's. The write is conditional on the config
//! it read: when another write came in between, it reads again, so
//! concurrent writes never lose each other.
//!
//! A composite is read-only, as in Konnect: its reads list the entities of
//! its served snapshot.
//!
//! Which entity a route serves is read off its template ([`kinds::addr`]),
//! so the route table names each route once. The entities themselves are
//! `crate::entities`' business; this file is their HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::http::{Query, ok_json, parse_id, query, read_body, view_or_404};
use crate::entities::doc::{Doc, EditError};
use crate::entities::kinds::{self, Addr, EntityKind};
use crate::entities::{defaults, parse_stored};
use crate::registry::{ConfigWrite, GroupView, Mode, STALE_FIELD};

type Params = Path<HashMap<String, String>>;

/// How many times a write reads again after losing a race (to another
/// daemon on the same PostgreSQL, or a whole-config PUT).
const RETRIES: usize = 16;

/// One entity write at a time per group in this daemon: writers queue
/// instead of racing, so retries are left for writes from elsewhere.
fn group_lock(id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::LazyLock<dashmap::DashMap<Uuid, Arc<tokio::sync::Mutex<()>>>> =
        std::sync::LazyLock::new(dashmap::DashMap::new);
    LOCKS.entry(id).or_default().clone()
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> ApiError {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut a = ApiError::new(status, e.message);
        if !e.fields.is_empty() {
            a.extra = Some(Box::new(json!({
                "name": "schema violation",
                "fields": e.fields,
            })));
        }
        a
    }
}

/// The route's address, from its template.
fn addr_of(path: &MatchedPath) -> ApiResult<Addr> {
    kinds::addr(path.as_str())
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "route without an entity"))
}

/// A group's entities as of now: a standard group's member config, a
/// composite's served snapshot.
struct Loaded {
    view: Arc<GroupView>,
    doc: Arc<Doc>,
    /// The member config's hash (standard groups): the write's condition.
    hash: Option<String>,
}

/// Configs larger than this are parsed for each request rather than kept.
const CACHE_MAX_BYTES: usize = 8 << 20;
/// Groups whose parsed config is kept at once.
const CACHE_MAX_GROUPS: usize = 256;

/// The parsed document of group `id` while its config (or served snapshot)
/// is the one `key` names: a tool paging through every kind of entity
/// doesn't parse the config again for each page.
type DocCache = dashmap::DashMap<Uuid, (String, Arc<Doc>)>;

static CACHE: std::sync::LazyLock<DocCache> = std::sync::LazyLock::new(dashmap::DashMap::new);

/// The cache key of a standard group's config.
fn config_key(hash: &str, stamp: u64) -> String {
    format!("{hash}@{stamp}")
}

fn cached(
    id: Uuid,
    key: String,
    size: usize,
    make: impl FnOnce() -> ApiResult<Doc>,
) -> ApiResult<Arc<Doc>> {
    if let Some(hit) = CACHE.get(&id)
        && hit.0 == key
    {
        return Ok(hit.1.clone());
    }
    let doc = Arc::new(make()?);
    if size <= CACHE_MAX_BYTES {
        remember(id, key, doc.clone());
    }
    Ok(doc)
}

/// Keeps `doc` as group `id`'s parsed config under `key`, within the
/// cache's bound on groups.
fn remember(id: Uuid, key: String, doc: Arc<Doc>) {
    if CACHE.len() >= CACHE_MAX_GROUPS {
        CACHE.clear();
    }
    CACHE.insert(id, (key, doc));
}

fn load(s: &AppState, id: Uuid) -> ApiResult<Loaded> {
    let view = view_or_404(s, id)?;
    let stamp = view.snapshot.published_ms / 1000;
    let object = |root: Value| if root.is_object() { root } else { json!({}) };
    let (doc, hash) = match view.standard() {
        Some(st) => {
            let text = st.config();
            let hash = st.config_hash().to_string();
            let doc = cached(id, config_key(&hash, stamp), text.bytes.len(), || {
                let root = parse_stored(text.bytes, text.media_type).map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the stored member config does not parse: {e}"),
                    )
                })?;
                Ok(Doc::new(object(root), id, stamp))
            })?;
            (doc, Some(hash))
        }
        None => {
            let deck = &view.snapshot.deck;
            let key = format!("{}@{stamp}", deck.hash());
            let doc = cached(id, key, deck.len(), || {
                let root = serde_json::from_slice(&deck.to_vec()).unwrap_or_else(|_| json!({}));
                Ok(Doc::new(object(root), id, stamp))
            })?;
            (doc, None)
        }
    };
    Ok(Loaded { doc, view, hash })
}

fn group(params: &HashMap<String, String>) -> ApiResult<Uuid> {
    parse_id(params.get("id").map_or("", String::as_str))
}

/// The parent entity a nested route names, or a 404.
fn parent_of(doc: &Doc, a: &Addr, params: &HashMap<String, String>) -> ApiResult<Option<usize>> {
    let Some(pk) = a.parent else { return Ok(None) };
    path_entity(doc, pk, params).map(Some)
}

/// The entity of `kind` the path's `{eid}` names, or a 404.
fn path_entity(doc: &Doc, kind: &EntityKind, params: &HashMap<String, String>) -> ApiResult<usize> {
    doc.find(kind, params.get("eid").map_or("", String::as_str))
        .ok_or_else(|| not_found(kind))
}

fn not_found(kind: &EntityKind) -> ApiError {
    ApiError::not_found(format!("{} not found", kind.noun()))
}

/// The segment naming the one entity of the route.
fn own_key<'a>(a: &Addr, params: &'a HashMap<String, String>) -> &'a str {
    let name = if a.parent.is_some() { "cid" } else { "eid" };
    params.get(name).map_or("", String::as_str)
}

/// The entity of the route, under its parent when nested.
fn find_own(doc: &Doc, a: &Addr, params: &HashMap<String, String>) -> ApiResult<Option<usize>> {
    let parent = parent_of(doc, a, params)?;
    let Some(i) = doc.find(a.kind, own_key(a, params)) else {
        return Ok(None);
    };
    if parent.is_some() && !doc.list(a.kind, parent).contains(&i) {
        return Ok(None);
    }
    Ok(Some(i))
}

// ---- reads ----

pub async fn list(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let a = addr_of(&path)?;
    let l = load(&s, group(&params)?)?;
    let parent = parent_of(&l.doc, &a, &params)?;
    let items: Vec<Value> = l
        .doc
        .list(a.kind, parent)
        .into_iter()
        .map(|i| l.doc.render(i))
        .collect();
    let q = query(raw)?;
    page(items, &q, &request_path(&params, &path))
}

pub async fn get(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let a = addr_of(&path)?;
    let q = query(raw)?;
    q.only(&["list_consumers", "expand_partials"])?;
    let l = load(&s, group(&params)?)?;
    let i = find_own(&l.doc, &a, &params)?.ok_or_else(|| not_found(a.kind))?;
    let entity = l.doc.render(i);
    if a.kind.is(kinds::consumer_groups()) && a.parent.is_none() {
        // Konnect wraps this one answer.
        let mut v = json!({ "consumer_group": entity });
        if q.flag("list_consumers")? {
            let consumers: Vec<Value> = l
                .doc
                .memberships()
                .into_iter()
                .filter(|(_, g)| *g == i)
                .map(|(c, _)| l.doc.render(c))
                .collect();
            v["consumers"] = json!(consumers);
        }
        return Ok(ok_json(StatusCode::OK, v));
    }
    Ok(ok_json(StatusCode::OK, entity))
}

/// The path of the request, its parameters filled in (for `next`).
fn request_path(params: &HashMap<String, String>, path: &MatchedPath) -> String {
    let mut out = path.as_str().to_string();
    for (k, v) in params {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// One page of a list, as an answer.
fn page(items: Vec<Value>, q: &Query, path: &str) -> ApiResult<Response> {
    Ok(ok_json(StatusCode::OK, page_body(items, q, path)?))
}

/// One page of a list, with Kong's `offset` and `next` (null on the last
/// page), after the `tags` and name filters.
fn page_body(items: Vec<Value>, q: &Query, path: &str) -> ApiResult<Value> {
    q.only(&[
        "size",
        "offset",
        "tags",
        "filter[name][contains]",
        "filter[name][eq]",
        "custom_id",
        "expand_partials",
    ])?;
    let size = q.number("size", 100, 1, 1000)?;
    let start = match q.get("offset") {
        None | Some("") => 0,
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("offset", None, format!("invalid offset '{o}'")))?,
    };
    let tags = q.get("tags").filter(|t| !t.is_empty());
    let kept: Vec<Value> = items
        .into_iter()
        .filter(|v| tags.is_none_or(|t| tags_match(v, t)))
        .filter(|v| {
            q.get("filter[name][eq]")
                .is_none_or(|n| v.get("name").and_then(Value::as_str) == Some(n))
        })
        .filter(|v| {
            q.get("filter[name][contains]").is_none_or(|n| {
                v.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains(n))
            })
        })
        .filter(|v| {
            q.get("custom_id")
                .is_none_or(|c| v.get("custom_id").and_then(Value::as_str) == Some(c))
        })
        .collect();
    let end = start.saturating_add(size).min(kept.len());
    let data: Vec<Value> = kept
        .get(start.min(end)..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut out = json!({ "data": data, "next": null });
    if end < kept.len() {
        // The same filters, page after page.
        let mut pairs = vec![
            ("offset".to_string(), end.to_string()),
            ("size".into(), size.to_string()),
        ];
        for (k, v) in q.pairs() {
            if k != "offset" && k != "size" {
                pairs.push((k.clone(), v.clone()));
            }
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        let next = format!("{path}?{query}");
        out["offset"] = json!(end.to_string());
        out["next"] = json!(next);
    }
    Ok(out)
}

/// Kong's tag filter: `a,b` all of them, `a/b` any of them.
fn tags_match(v: &Value, filter: &str) -> bool {
    let has = |t: &str| {
        v.get("tags")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(t)))
    };
    if filter.contains('/') {
        filter.split('/').any(has)
    } else {
        filter.split(',').all(has)
    }
}

// ---- writes ----

/// What an edit answers once written.
enum Answer {
    /// The entity with this id, rendered from the written document.
    Entity(&'static EntityKind, String, StatusCode),
    /// A body of its own, made from the written document.
    Made(StatusCode, Box<dyn Fn(&Doc) -> Value + Send>),
    NoContent,
}

/// Reads the group's config, applies `edit`, and writes it back on the
/// condition that nothing changed meanwhile (else again, from the new config).
async fn write<F>(s: &AppState, id: Uuid, raw: Option<String>, edit: F) -> ApiResult<Response>
where
    F: Fn(&mut Doc) -> Result<Answer, EditError>,
{
    let q = query(raw)?;
    q.only(&["dry_run"])?;
    let dry_run = q.flag("dry_run")?;
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let lock = group_lock(id);
    let _turn = lock.lock().await;
    for _ in 0..RETRIES {
        let l = load(s, id)?;
        let Some(hash) = l.hash.clone() else {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "control plane group '{}' is read-only: write the entities of one of its members instead",
                    l.view.meta.name
                ),
            ));
        };
        let mut doc = (*l.doc).clone();
        let answer = edit(&mut doc)?;
        if doc.root != l.doc.root {
            let bytes = serde_json::to_vec(&doc.root)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            match s
                .engine
                .put_config(
                    id,
                    bytes.clone(),
                    Some("application/json"),
                    mode,
                    Some(hash),
                )
                .await
            {
                Ok(ConfigWrite::Applied(_)) if !dry_run => prime(s, id, &bytes, &doc),
                Ok(ConfigWrite::Applied(_)) => {}
                Ok(ConfigWrite::Invalid(errors)) => return Err(invalid(&errors)),
                Err(r) if r.field.as_deref() == Some(STALE_FIELD) => continue,
                Err(r) => return Err(r.into()),
            }
        }
        return Ok(match answer {
            Answer::Entity(kind, id, status) => {
                let i = doc.find(kind, &id).ok_or_else(|| not_found(kind))?;
                ok_json(status, doc.render(i))
            }
            Answer::Made(status, f) => ok_json(status, f(&doc)),
            Answer::NoContent => {
                axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT)
            }
        });
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "the config kept changing while this write was prepared; try again",
    ))
}

/// Keeps the document just written as the group's parsed config, so the
/// next write or read doesn't parse it again; only if the group's config is
/// still exactly what was written (another daemon may have written since).
fn prime(s: &AppState, id: Uuid, bytes: &[u8], doc: &Doc) {
    let Some(view) = s.engine.view(id) else {
        return;
    };
    let Some(st) = view.standard() else { return };
    if st.config().bytes != bytes || bytes.len() > CACHE_MAX_BYTES {
        return;
    }
    let stamp = view.snapshot.published_ms / 1000;
    remember(
        id,
        config_key(st.config_hash(), stamp),
        Arc::new(doc.restamped(stamp)),
    );
}

/// The member errors a write would cause, in Kong's `schema violation` form.
fn invalid(errors: &[crate::report::MemberError]) -> ApiError {
    let mut fields = Map::new();
    for e in errors {
        fields.insert(e.path.clone(), json!(e.message));
    }
    let mut a: ApiError = EditError::schema(fields).into();
    if let Some(Value::Object(extra)) = a.extra.as_deref_mut() {
        extra.insert("errors".into(), json!(errors));
    }
    a
}

async fn body_object(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Map<String, Value>> {
    let bytes = read_body(s, headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_request(
            "body",
            None,
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "body",
            None,
            format!("the body is not JSON: {e}"),
        )),
    }
}

pub async fn create(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let a = addr_of(&path)?;
    let id = group(&params)?;
    let body = body_object(&s, &headers, body).await?;
    write(&s, id, raw, |doc| {
        let parent = parent_of(doc, &a, &params).map_err(|_| parent_missing(&a))?;
        let new = doc.insert(a.kind, parent, body.clone())?;
        Ok(Answer::Entity(a.kind, new, StatusCode::CREATED))
    })
    .await
}

fn parent_missing(a: &Addr) -> EditError {
    let noun = a.parent.map_or("parent", |p| p.noun());
    EditError::new(404, format!("{noun} not found"))
}

pub async fn upsert(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let a = addr_of(&path)?;
    let id = group(&params)?;
    let body = body_object(&s, &headers, body).await?;
    let key = own_key(&a, &params).to_string();
    write(&s, id, raw, |doc| {
        let parent = parent_of(doc, &a, &params).map_err(|_| parent_missing(&a))?;
        let mut body = body.clone();
        if let Some(i) = doc.find(a.kind, &key) {
            // Named by its endpoint key, it keeps it (Kong's `upsert_by_name`).
            if Uuid::parse_str(&key).is_err()
                && let Some(k) = a.kind.keys.first()
            {
                body.insert((*k).into(), json!(key));
            }
            let new = doc.replace(i, parent, body)?;
            return Ok(Answer::Entity(a.kind, new, StatusCode::OK));
        }
        // Not there: PUT creates it, under the id (or name) the path gives.
        if Uuid::parse_str(&key).is_ok() {
            body.insert("id".into(), json!(key));
        } else if let Some(k) = a.kind.keys.first() {
            body.insert((*k).into(), json!(key));
        }
        let new = doc.insert(a.kind, parent, body)?;
        Ok(Answer::Entity(a.kind, new, StatusCode::OK))
    })
    .await
}

pub async fn delete(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let a = addr_of(&path)?;
    let id = group(&params)?;
    write(&s, id, raw, |doc| {
        // Deleting what isn't there succeeds, as Konnect answers it.
        let Ok(Some(i)) = find_own(doc, &a, &params) else {
            return Ok(Answer::NoContent);
        };
        doc.remove(i)?;
        Ok(Answer::NoContent)
    })
    .await
}

// ---- consumer-group memberships ----

/// `GET consumers/{eid}/consumer_groups` and `GET consumer_groups/{eid}/consumers`:
/// the other side of the entity's memberships.
pub async fn memberships_of(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let l = load(&s, group(&params)?)?;
    let from_group = path.as_str().contains("/consumer_groups/{eid}/");
    let own = if from_group {
        kinds::consumer_groups()
    } else {
        kinds::consumers()
    };
    let me = path_entity(&l.doc, own, &params)?;
    let items = l
        .doc
        .memberships()
        .into_iter()
        .filter_map(|(c, g)| match from_group {
            true => (g == me).then_some(c),
            false => (c == me).then_some(g),
        })
        .map(|i| l.doc.render(i))
        .collect();
    page(items, &query(raw)?, &request_path(&params, &path))
}

/// `POST consumer_groups/{eid}/consumers {consumer}` and
/// `POST consumers/{eid}/consumer_groups {group}`.
pub async fn add_consumer_to_group(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = group(&params)?;
    let from_group = path.as_str().contains("/consumer_groups/{eid}/");
    let body = body_object(&s, &headers, body).await?;
    let other_field = if from_group { "consumer" } else { "group" };
    let other = body
        .get(other_field)
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| {
            let mut f = Map::new();
            f.insert(other_field.into(), json!("required field missing"));
            ApiError::from(EditError::schema(f))
        })?;
    let (ck, gk) = (kinds::consumers(), kinds::consumer_groups());
    let eid = params.get("eid").cloned().unwrap_or_default();
    write(&s, id, raw, move |doc| {
        let (c, g) = if from_group {
            let g = doc
                .find(gk, &eid)
                .ok_or_else(|| EditError::new(404, "consumer group not found"))?;
            let c = doc
                .find(ck, &other)
                .ok_or_else(|| EditError::new(404, "consumer not found"))?;
            (c, g)
        } else {
            let c = doc
                .find(ck, &eid)
                .ok_or_else(|| EditError::new(404, "consumer not found"))?;
            let g = doc
                .find(gk, &other)
                .ok_or_else(|| EditError::new(404, "consumer group not found"))?;
            (c, g)
        };
        let (cid, gid) = (doc.entries[c].id.clone(), doc.entries[g].id.clone());
        doc.add_membership(c, g)?;
        Ok(Answer::Made(
            StatusCode::CREATED,
            Box::new(move |d: &Doc| {
                let c = d.find(ck, &cid);
                let g = d.find(gk, &gid);
                let all = d.memberships();
                if from_group {
                    let consumers: Vec<Value> = all
                        .iter()
                        .filter(|(_, gi)| Some(*gi) == g)
                        .map(|(ci, _)| d.render(*ci))
                        .collect();
                    json!({"consumer_group": g.map(|g| d.render(g)), "consumers": consumers})
                } else {
                    let groups: Vec<Value> = all
                        .iter()
                        .filter(|(ci, _)| Some(*ci) == c)
                        .map(|(_, gi)| d.render(*gi))
                        .collect();
                    json!({"consumer": c.map(|c| d.render(c)), "consumer_groups": groups})
                }
            }),
        ))
    })
    .await
}

/// The four membership DELETEs: one or all, from either side.
pub async fn remove_consumer_from_groups(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = group(&params)?;
    let from_group = path.as_str().contains("/consumer_groups/{eid}");
    let (ck, gk) = (kinds::consumers(), kinds::consumer_groups());
    let eid = params.get("eid").cloned().unwrap_or_default();
    let cid = params.get("cid").cloned();
    write(&s, id, raw, move |doc| {
        let (own, other) = if from_group { (gk, ck) } else { (ck, gk) };
        let Some(me) = doc.find(own, &eid) else {
            return Err(EditError::new(404, format!("{} not found", own.noun())));
        };
        let them = match &cid {
            Some(k) => Some(
                doc.find(other, k)
                    .ok_or_else(|| EditError::new(404, format!("{} not found", other.noun())))?,
            ),
            None => None,
        };
        doc.remove_memberships(|c, g| {
            let (mine, theirs) = if from_group { (g, c) } else { (c, g) };
            mine == me && them.is_none_or(|t| t == theirs)
        });
        Ok(Answer::NoContent)
    })
    .await
}

/// `GET partials/{eid}/links`: the plugins that use the partial.
pub async fn partial_links(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let l = load(&s, group(&params)?)?;
    let pk = kinds::partials();
    let p = path_entity(&l.doc, pk, &params)?;
    let (pid, pname) = (
        l.doc.entries[p].id.clone(),
        l.doc
            .item(p)
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
    );
    let plugins = kinds::plugins();
    let items: Vec<Value> = l
        .doc
        .list(plugins, None)
        .into_iter()
        .filter(|i| {
            l.doc
                .item(*i)
                .and_then(|o| o.get("partials"))
                .and_then(Value::as_array)
                .is_some_and(|ps| {
                    ps.iter().any(|x| {
                        let id = x.get("id").and_then(Value::as_str);
                        let name = x.get("name").and_then(Value::as_str);
                        id == Some(&pid) || (name.is_some() && name == pname.as_deref())
                    })
                })
        })
        .map(|i| {
            let item = l.doc.item(i);
            let mut v = json!({
                "id": l.doc.entries[i].id,
                "name": item.and_then(|o| o.get("name")).cloned().unwrap_or(Value::Null),
            });
            if let Some(n) = item
                .and_then(|o| o.get("instance_name"))
                .filter(|v| !v.is_null())
            {
                v["instance_name"] = n.clone();
            }
            v
        })
        .collect();
    let count = items.len();
    let mut v = page_body(items, &query(raw)?, &request_path(&params, &path))?;
    v["count"] = json!(count);
    Ok(ok_json(StatusCode::OK, v))
}

// ---- schemas ----

/// `GET schemas/plugins/{name}`: from the validator's own data.
pub async fn plugin_schema(Path(params): Params) -> ApiResult<Response> {
    let name = params.get("eid").map_or("", String::as_str);
    defaults::plugin_schema(name)
        .map(|v| ok_json(StatusCode::OK, v))
        .ok_or_else(|| ApiError::not_found(format!("No plugin named '{name}'")))
}

/// `GET schemas/partials/{type}`.
pub async fn partial_schema(Path(params): Params) -> ApiResult<Response> {
    let ty = params.get("eid").map_or("", String::as_str);
    defaults::partial_schema(ty)
        .map(|v| ok_json(StatusCode::OK, v))
        .ok_or_else(|| ApiError::not_found(format!("No partial of type '{ty}'")))
}

/// `POST schemas/{entity}/validate`: the entity checked alone by the
/// validator a whole-config write uses.
pub async fn validate(
    State(s): State<AppState>,
    path: MatchedPath,
    Path(params): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let entity = match params.get("eid") {
        Some(e) => e.clone(),
        None if path.as_str().contains("/schemas/plugins/") => "plugins".into(),
        None => "partials".into(),
    };
    let collection = crate::entities::collection_named(&entity)
        .ok_or_else(|| ApiError::not_found(format!("No entity named '{entity}'")))?;
    let body = body_object(&s, &headers, body).await?;
    let target = s.engine.kong_target();
    let errors = tokio::task::spawn_blocking(move || {
        crate::entities::validate_one(collection, body, &target)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if errors.is_empty() {
        return Ok(ok_json(
            StatusCode::OK,
            json!({"message": format!("schema validation successful for {collection}")}),
        ));
    }
    Err(invalid(&errors))
}

/// Config stores, custom plugins and plugin-schema uploads need Konnect's
/// secret store or code rgmerge can't run.
pub async fn unsupported(path: MatchedPath) -> ApiError {
    let what = if path.as_str().contains("config-stores") {
        "config stores need Konnect's secret store, which rgmerge does not have"
    } else if path.as_str().contains("plugin-schemas") {
        "custom plugin schemas need the plugin's Lua code on every data plane, which rgmerge can't check or run"
    } else {
        "custom plugins are Lua code, which rgmerge can't check or run; ship them with the data planes and configure them as plugins"
    };
    ApiError::new(StatusCode::BAD_REQUEST, format!("not supported: {what}"))
}

#[cfg(test)]
mod tests {
    /// Every entity route of the table reads as an address.
    #[test]
    fn every_entity_route_has_an_address() {
        for r in crate::server::ROUTES {
            let generic = r.handler.starts_with("core_entities")
                && matches!(
                    r.handler_name(),
                    "list" | "get" | "create" | "upsert" | "delete"
                );
            if generic {
                assert!(
                    super::kinds::addr(r.template).is_some(),
                    "{} {}",
                    r.method,
                    r.template
                );
            }
        }
    }
}

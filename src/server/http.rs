//! What every handler shares: ids, query strings, paging, bodies and JSON answers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, InvalidParameter, Rule};

/// A control plane id from the path (`field` names it in a 400).
pub fn parse_id(s: &str) -> ApiResult<Uuid> {
    parse_uuid("id", s)
}

pub fn parse_uuid(field: &str, s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::bad_request(
            field,
            Some(Rule::IsUuid),
            format!(
                "'{}' is not a valid id (a UUID)",
                s.chars().take(64).collect::<String>()
            ),
        )
    })
}

// ---- query strings ----

/// A request's query string, as (name, value) pairs in order.
pub struct Query(Vec<(String, String)>);

pub fn query(raw: Option<String>) -> ApiResult<Query> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
        .map(Query)
        .map_err(|e| ApiError::bad_request("query", None, format!("malformed query string: {e}")))
}

impl Query {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Refuses any parameter but `allowed` (or one given twice): an unknown
    /// filter is a 400, never silently ignored.
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        let mut bad = Vec::new();
        for (i, (k, _)) in self.0.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                bad.push(InvalidParameter::new(
                    k.clone(),
                    Some(Rule::UnknownProperty),
                    format!(
                        "unknown query parameter; this operation takes {}",
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            } else if self.0[..i].iter().any(|(p, _)| p == k) {
                bad.push(InvalidParameter::new(
                    k.clone(),
                    Some(Rule::Invalid),
                    "given more than once",
                ));
            }
        }
        if bad.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = bad.iter().map(|p| p.field.as_str()).collect();
        Err(ApiError::invalid_parameters(
            format!("unsupported query parameter(s): {}", names.join(", ")),
            bad,
        ))
    }

    /// `?dry_run=true` and the like.
    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.get(name) {
            None => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(ApiError::bad_request(
                name,
                Some(Rule::IsBoolean),
                format!(
                    "`{name}` must be true or false, not '{}'",
                    v.chars().take(64).collect::<String>()
                ),
            )),
        }
    }

    /// A whole number from `min` to `max`; `default` when absent or empty.
    pub fn number(&self, name: &str, default: usize, min: usize, max: usize) -> ApiResult<usize> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(
                    name,
                    Some(Rule::IsInteger),
                    format!("`{name}` must be a whole number from {min} to {max}"),
                )),
            },
        }
    }

    /// `page[size]`: 1 to 1000, 100 by default.
    pub fn page_size(&self) -> ApiResult<usize> {
        self.number("page[size]", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    }

    /// `page[after]`: where the last page ended, if given.
    pub fn cursor(&self) -> ApiResult<Option<String>> {
        match self.get("page[after]") {
            None | Some("") => Ok(None),
            Some(c) => decode_cursor(c).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    "page[after]",
                    Some(Rule::Invalid),
                    "`page[after]` is not a cursor this API gave out (use the `next` link of the previous page)",
                )
            }),
        }
    }
}

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

// ---- paging ----

/// Page-number paging (`page[size]`, `page[number]`; Konnect's `PaginatedMeta`).
pub fn numbered_page(items: Vec<Value>, size: usize, number: usize) -> Value {
    let total = items.len();
    let data: Vec<Value> = items
        .into_iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .collect();
    json!({"data": data, "meta": {"page": {"number": number, "size": size, "total": total}}})
}

/// One page of a cursor: the items after the cursor, and the cursor of the
/// page after this one (if there is one).
pub struct CursorPage<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
    pub total: usize,
}

/// Which way a list runs along its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// The page of `sorted` after `cursor`: `key` gives each item's place in the
/// order (unique, ascending along `sorted`), so a cursor stays right when
/// items before it come or go.
pub fn cursor_page<T, K: Ord>(
    sorted: Vec<T>,
    cursor: Option<&str>,
    size: usize,
    key: impl Fn(&T) -> K,
    parse: impl Fn(&str) -> Option<K>,
    encode: impl Fn(&T) -> String,
) -> ApiResult<CursorPage<T>> {
    cursor_page_in(Order::Ascending, sorted, cursor, size, key, parse, encode)
}

/// [`cursor_page`] for a list sorted either way along its keys.
pub fn cursor_page_in<T, K: Ord>(
    order: Order,
    sorted: Vec<T>,
    cursor: Option<&str>,
    size: usize,
    key: impl Fn(&T) -> K,
    parse: impl Fn(&str) -> Option<K>,
    encode: impl Fn(&T) -> String,
) -> ApiResult<CursorPage<T>> {
    let total = sorted.len();
    let start = match cursor {
        None => 0,
        Some(c) => {
            let after = parse(c).ok_or_else(|| {
                ApiError::bad_request(
                    "page[after]",
                    Some(Rule::Invalid),
                    "`page[after]` is not a cursor this API gave out",
                )
            })?;
            match order {
                Order::Ascending => sorted.partition_point(|item| key(item) <= after),
                Order::Descending => sorted.partition_point(|item| key(item) >= after),
            }
        }
    };
    let mut items: Vec<T> = sorted.into_iter().skip(start).collect();
    let more = items.len() > size;
    items.truncate(size);
    let next = if more { items.last().map(encode) } else { None };
    Ok(CursorPage { items, next, total })
}

/// The link to the page after: `path?page[size]=…&page[after]=…` plus the
/// other parameters the request had.
pub fn next_link(path: &str, q: &Query, size: usize, cursor: &str) -> String {
    let mut pairs: Vec<(String, String)> = q
        .pairs()
        .iter()
        .filter(|(k, _)| k != "page[after]" && k != "page[size]")
        .cloned()
        .collect();
    pairs.push(("page[size]".into(), size.to_string()));
    pairs.push(("page[after]".into(), encode_cursor(cursor)));
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            // Brackets stay readable, as in Konnect's own links.
            let k = serde_urlencoded::to_string([("", k)])
                .unwrap_or_default()
                .trim_start_matches('=')
                .replace("%5B", "[")
                .replace("%5D", "]");
            let v = serde_urlencoded::to_string([("", v)]).unwrap_or_default();
            format!("{k}{v}")
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Cursors are opaque: the hex of the sort key of the last item shown.
fn encode_cursor(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(c: &str) -> Option<String> {
    if c.is_empty() || !c.len().is_multiple_of(2) || c.len() > 4096 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

// ---- bodies ----

/// The body, at most `--max-body-bytes`. A larger one is answered 413 only
/// after it has been read and dropped (up to as much again), so a client
/// still sending sees the answer instead of a broken pipe.
pub async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let limit = state.opts.max_body_bytes;
    // Read and drop at most this much past the limit before giving up.
    let drain = limit.max(1 << 20);
    let too_large = |whole: bool| {
        let mut e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the limit of {limit} bytes (--max-body-bytes)"
            ),
        );
        e.close = !whole;
        e
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > (limit + drain) as u64) {
        return Err(too_large(false));
    }
    let mut over = declared.is_some_and(|len| len > limit as u64);
    let mut kept = Vec::with_capacity(declared.map_or(0, |l| (l as usize).min(limit)));
    let mut seen = 0usize;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(
                "body",
                None,
                format!("could not read the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            over = true;
        }
        if over {
            kept = Vec::new();
            if seen > limit + drain {
                return Err(too_large(false));
            }
            continue;
        }
        kept.extend_from_slice(&data);
    }
    if over {
        return Err(too_large(true));
    }
    Ok(Bytes::from(kept))
}

pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_lowercase())
}

/// A JSON request body into `T`; every failure a 4xx naming the field at fault.
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
    parse_json(&bytes)
}

/// JSON bytes into `T`, every failure a 400 naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "body",
            Some(Rule::Required),
            "the request body is empty; a JSON object is expected",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| body_error(&e))?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "body",
            None,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// A serde error as `invalid_parameters`: the field (its path in the body)
/// and the spec's rule for what is wrong with it.
fn body_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    let message = inner.to_string();
    // "… at line 1 column 27": kept in `detail`, not in `reason`.
    let reason = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(r, _)| r)
        .to_string();
    if !inner.is_data() {
        return ApiError::bad_request(
            "body",
            None,
            format!("the request body is not valid JSON: {message}"),
        );
    }
    let path = e.path().to_string();
    let at = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted: Vec<&str> = reason.split('`').skip(1).step_by(2).collect();
    let here = if path == "." || path.is_empty() {
        "body".to_string()
    } else {
        path.clone()
    };
    let (field, rule) = if reason.starts_with("unknown field") {
        // The path already ends with the unknown key.
        let name = quoted.first().copied().unwrap_or("");
        let field = if path == name || path.ends_with(&format!(".{name}")) {
            path.clone()
        } else {
            at(name)
        };
        (field, Rule::UnknownProperty)
    } else if reason.starts_with("missing field") {
        let name = quoted.first().copied().unwrap_or("");
        (at(name), Rule::Required)
    } else if reason.starts_with("duplicate field") {
        let name = quoted.first().copied().unwrap_or("");
        (at(name), Rule::Invalid)
    } else if reason.starts_with("unknown variant") {
        let choices = quoted.iter().skip(1).map(|s| s.to_string()).collect();
        (here, Rule::Enum(choices))
    } else if let Some(expected) = reason
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once("expected "))
        .map(|(_, x)| x)
    {
        (here, type_rule(expected))
    } else {
        (here, Rule::Invalid)
    };
    // An enum's choices make `rule: enum` the spec's choice item.
    let rule = match rule {
        Rule::Enum(c) if c.is_empty() => Rule::Invalid,
        r => r,
    };
    let detail = format!("invalid request body: {message}");
    let mut err = ApiError::bad_request(field, Some(rule), reason);
    err.detail = detail;
    err
}

/// The spec's `is_…` rule for what serde expected.
fn type_rule(expected: &str) -> Rule {
    let e = expected.to_ascii_lowercase();
    if e.contains("string") || e.contains("uuid") {
        Rule::IsString
    } else if e.contains("sequence") || e.contains("array") || e.contains("set") {
        Rule::IsArray
    } else if e.contains("map") || e.contains("struct") {
        Rule::IsObject
    } else if e.contains("bool") {
        Rule::IsBoolean
    } else if e.contains("u8")
        || e.contains("u16")
        || e.contains("u32")
        || e.contains("u64")
        || e.contains("i64")
        || e.contains("integer")
    {
        Rule::IsInteger
    } else if e.contains("f64") || e.contains("number") {
        Rule::IsNumber
    } else {
        Rule::Type
    }
}

// ---- answers ----

pub fn ok_json(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A time in Unix seconds.
pub fn unix_seconds(ms: u64) -> u64 {
    ms / 1000
}

/// `ok`, or `degraded` while the store is unreachable or this daemon is
/// behind it (snapshots are still served; writes get 503). Always 200: the
/// daemon serves. After an upgrade, `rebuilding` says how far the rebuild
/// of the members is (snapshots are served meanwhile; writes wait for it).
pub async fn healthz(axum::extract::State(s): axum::extract::State<AppState>) -> Response {
    let store = s.engine.store_status();
    let rebuild = s.engine.rebuild_status();
    let failed = rebuild.as_ref().is_some_and(|r| r.error.is_some());
    let status = if store.healthy() && !failed {
        "ok"
    } else {
        "degraded"
    };
    let mut body = json!({"status": status, "store": store});
    if let (Some(r), Some(o)) = (rebuild, body.as_object_mut()) {
        o.insert("rebuilding".into(), json!(r));
    }
    ok_json(StatusCode::OK, body)
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
            errors: v.composite().map(|c| c.report.errors.len()),
            pinned: v.pin.is_some(),
        })
        .collect();
    let store = s.engine.store_status();
    let mut text = crate::metrics::render(&series);
    crate::metrics::render_store(
        &mut text,
        &crate::metrics::StoreSeries {
            kind: store.kind,
            reachable: store.reachable,
            position: store.position,
            lag_changes: store.lag_changes,
            lag_seconds: store.lag_seconds,
        },
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see the README for the API")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not support that method (see the Allow header)",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        members: Option<Vec<Member>>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Member {
        id: String,
    }

    fn fields(bytes: &str) -> Vec<(String, Option<Rule>)> {
        match parse_json::<Body>(bytes.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(e) => e.invalid.into_iter().map(|p| (p.field, p.rule)).collect(),
        }
    }

    #[test]
    fn serde_errors_name_the_field() {
        assert_eq!(
            fields(r#"{"name":"a","bogus":1}"#),
            vec![("bogus".into(), Some(Rule::UnknownProperty))]
        );
        assert_eq!(
            fields(r#"{"members":[]}"#),
            vec![("name".into(), Some(Rule::Required))]
        );
        assert_eq!(
            fields(r#"{"name":5}"#),
            vec![("name".into(), Some(Rule::IsString))]
        );
        assert_eq!(
            fields(r#"{"name":"a","members":[{"name":"x"}]}"#),
            vec![("members[0].id".into(), Some(Rule::Required))]
        );
        assert_eq!(
            fields(r#"{"name":"a","members":"x"}"#),
            vec![("members".into(), Some(Rule::IsArray))]
        );
        assert_eq!(fields(r#"{"name":"#), vec![("body".into(), None)]);
        assert_eq!(fields(r#"{"name":"a"} x"#), vec![("body".into(), None)]);
        assert_eq!(fields(""), vec![("body".into(), Some(Rule::Required))]);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = encode_cursor("0f6e1a2b-3c4d");
        assert_eq!(decode_cursor(&c).as_deref(), Some("0f6e1a2b-3c4d"));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor("abc"), None);
        assert_eq!(decode_cursor("ff"), None);
    }

    #[test]
    fn a_cursor_page_continues_after_its_key() {
        let items: Vec<u32> = (1..=5).collect();
        let page = |cursor: Option<&str>| {
            cursor_page(
                items.clone(),
                cursor,
                2,
                |i| *i,
                |c| c.parse().ok(),
                |i| i.to_string(),
            )
            .ok()
            .map(|p| (p.items, p.next))
        };
        assert_eq!(page(None), Some((vec![1, 2], Some("2".into()))));
        assert_eq!(page(Some("2")), Some((vec![3, 4], Some("4".into()))));
        assert_eq!(page(Some("4")), Some((vec![5], None)));
        assert_eq!(page(Some("x")), None);
    }
}

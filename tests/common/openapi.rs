//! Konnect's published OpenAPI as a test oracle (issue 12).
//!
//! The specs live in `../shared/konnect-api/` (see its PROVENANCE.md); they are
//! Kong's files, read at test time and never copied here. When the folder is
//! missing, [`load`] fails under `CI=true` and skips (with a printed reason)
//! elsewhere.
//!
//! What it answers, for an operation found by its `operationId` or by
//! `(method, path template)`:
//! - whether the spec lists a status at all ([`Operation::lists_status`]);
//! - the media types and the schema of a response ([`Operation::response_schema`])
//!   and of the request body ([`Operation::request_schema`]);
//! - whether a query string uses only the operation's parameters, with values
//!   their schemas allow ([`Operation::check_query`]).
//!
//! Schemas come back self-contained: every `$ref` (`#/components/schemas|responses|
//! parameters|requestBodies/...`) is resolved (a recursive schema goes into
//! `$defs`), OpenAPI's `nullable` becomes a JSON-schema type union, and 3.0's
//! boolean `exclusiveMinimum/Maximum` become 2020-12's numeric ones. [`validate`]
//! runs the `jsonschema` crate (draft 2020-12, `format` asserted) and returns
//! every error with its instance path.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The folder of Kong's spec files, beside the repository.
pub fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/konnect-api")
}

pub const CONTROL_PLANES: &str = "control-planes.v2.openapi.yaml";
pub const CONTROL_PLANES_CONFIG: &str = "control-planes-config.v2.openapi.yaml";

/// Loads one spec; `None` (after printing why) when the folder is missing
/// outside CI. Under `CI=true` a missing spec fails the test.
pub fn load(file: &str, test: &str) -> Option<Spec> {
    let path = spec_dir().join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("{}: {e}", path.display());
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: {reason}; CI must have ../shared/konnect-api"
            );
            eprintln!("SKIPPED {test}: {reason}");
            return None;
        }
    };
    Some(Spec::parse(file, &text).unwrap_or_else(|e| panic!("{file}: {e}")))
}

/// Both specs rgmerge serves operations of.
pub struct Specs {
    pub all: Vec<Spec>,
}

impl Specs {
    pub fn load(test: &str) -> Option<Specs> {
        Some(Specs {
            all: vec![
                load(CONTROL_PLANES, test)?,
                load(CONTROL_PLANES_CONFIG, test)?,
            ],
        })
    }

    pub fn by_id(&self, operation_id: &str) -> Option<Operation<'_>> {
        self.all
            .iter()
            .find_map(|s| s.operation_by_id(operation_id))
    }

    /// The operation a request to `(method, template)` is, in either spec.
    pub fn operation(&self, method: &str, template: &str) -> Option<Operation<'_>> {
        self.all.iter().find_map(|s| s.operation(method, template))
    }

    /// The control planes spec (it holds the error schemas used for answers
    /// no operation describes: unknown paths, 405, 413).
    pub fn control_planes(&self) -> &Spec {
        &self.all[0]
    }
}

pub struct Spec {
    pub file: String,
    /// The `openapi:` field, "3.0.0" or "3.1.0".
    pub openapi: String,
    /// The path of the first server URL ("/v2"): spec paths are relative to it.
    pub base: String,
    pub doc: Value,
}

const METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("trace", "TRACE"),
];

impl Spec {
    pub fn parse(file: &str, yaml: &str) -> Result<Spec, String> {
        let doc: Value = serde_saphyr::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
        let openapi = doc["openapi"]
            .as_str()
            .ok_or("no `openapi:` version field")?
            .to_string();
        if !openapi.starts_with("3.0") && !openapi.starts_with("3.1") {
            return Err(format!("OpenAPI {openapi} is neither 3.0 nor 3.1"));
        }
        let base = doc["servers"][0]["url"]
            .as_str()
            .map(|u| {
                let rest = u.split_once("://").map_or(u, |(_, r)| r);
                rest.find('/').map_or("", |i| &rest[i..]).to_string()
            })
            .unwrap_or_default();
        Ok(Spec {
            file: file.to_string(),
            openapi,
            base: base.trim_end_matches('/').to_string(),
            doc,
        })
    }

    /// Every operation, in document order.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let mut out = Vec::new();
        let Some(paths) = self.doc["paths"].as_object() else {
            return out;
        };
        for (path, item) in paths {
            let item = self.deref(item);
            for (key, method) in METHODS {
                if let Some(node) = item.get(key) {
                    out.push(Operation {
                        spec: self,
                        id: node["operationId"].as_str().unwrap_or(""),
                        method,
                        path: format!("{}{path}", self.base),
                        node,
                        path_item: item,
                    });
                }
            }
        }
        out
    }

    pub fn operation_by_id(&self, operation_id: &str) -> Option<Operation<'_>> {
        self.operations().into_iter().find(|o| o.id == operation_id)
    }

    /// The operation for `method` on `template` (a path with `{param}`
    /// placeholders, any names, with or without a query string).
    pub fn operation(&self, method: &str, template: &str) -> Option<Operation<'_>> {
        self.operations()
            .into_iter()
            .find(|o| o.method.eq_ignore_ascii_case(method) && o.matches(template))
    }

    /// Follows `$ref`s (one object, not its children) to what they name.
    pub fn deref<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..32 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => match self.pointer(r) {
                    Ok(t) => v = t,
                    Err(_) => return v,
                },
                None => return v,
            }
        }
        v
    }

    /// A local reference (`#/components/...`) into the document.
    pub fn pointer(&self, reference: &str) -> Result<&Value, String> {
        let p = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("{}: only local $refs are supported: {reference}", self.file))?;
        self.doc
            .pointer(p)
            .ok_or_else(|| format!("{}: $ref {reference} names nothing", self.file))
    }

    /// `#/components/schemas/{name}`, self-contained.
    pub fn schema(&self, name: &str) -> Result<Value, String> {
        let s = self.pointer(&format!("#/components/schemas/{name}"))?;
        self.to_json_schema(s)
    }

    /// An OpenAPI schema object as a self-contained JSON Schema (2020-12).
    pub fn to_json_schema(&self, schema: &Value) -> Result<Value, String> {
        let mut c = Converter {
            spec: self,
            stack: Vec::new(),
            pending: BTreeSet::new(),
            defs: BTreeMap::new(),
        };
        let mut root = c.convert(schema)?;
        while let Some(r) = c.pending.iter().find(|r| !c.defs.contains_key(*r)).cloned() {
            c.stack = vec![r.clone()];
            let target = self.pointer(&r)?;
            let def = c.convert(target)?;
            c.defs.insert(r, def);
        }
        if !c.defs.is_empty() {
            let defs: Map<String, Value> =
                c.defs.into_iter().map(|(r, d)| (def_name(&r), d)).collect();
            match &mut root {
                Value::Object(o) => {
                    o.insert("$defs".into(), Value::Object(defs));
                }
                other => {
                    *other = json!({"allOf": [other.clone()], "$defs": defs});
                }
            }
        }
        Ok(root)
    }
}

fn def_name(reference: &str) -> String {
    reference
        .trim_start_matches("#/")
        .replace('/', ".")
        .replace('~', "_")
}

/// Keywords next to a `$ref` that don't constrain anything.
const ANNOTATIONS: [&str; 9] = [
    "description",
    "summary",
    "title",
    "example",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "default",
];

struct Converter<'a> {
    spec: &'a Spec,
    /// The `$ref`s being inlined, outermost first: one met again is recursion.
    stack: Vec<String>,
    /// Recursive `$ref`s that must go into `$defs`.
    pending: BTreeSet<String>,
    defs: BTreeMap<String, Value>,
}

impl Converter<'_> {
    fn convert(&mut self, s: &Value) -> Result<Value, String> {
        let o = match s {
            Value::Bool(_) => return Ok(s.clone()),
            Value::Object(o) => o,
            other => return Err(format!("not a schema object: {other}")),
        };
        if let Some(r) = o.get("$ref").and_then(Value::as_str) {
            let resolved = if self.stack.iter().any(|x| x == r) {
                self.pending.insert(r.to_string());
                json!({"$ref": format!("#/$defs/{}", def_name(r))})
            } else {
                let target = self.spec.pointer(r)?;
                self.stack.push(r.to_string());
                let c = self.convert(target);
                self.stack.pop();
                c?
            };
            // 3.0 ignores a `$ref`'s siblings; 3.1 applies them. Both specs use
            // `nullable` beside `$ref` to mean "or null".
            let siblings: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| {
                    k.as_str() != "$ref"
                        && k.as_str() != "nullable"
                        && !k.starts_with("x-")
                        && !ANNOTATIONS.contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut out = if siblings.is_empty() || self.spec.openapi.starts_with("3.0") {
                resolved
            } else {
                let rest = self.convert(&Value::Object(siblings))?;
                json!({"allOf": [resolved, rest]})
            };
            if o.get("nullable") == Some(&Value::Bool(true)) {
                out = json!({"anyOf": [{"type": "null"}, out]});
            }
            return Ok(out);
        }
        let mut out = Map::new();
        for (k, v) in o {
            let k = k.as_str();
            match k {
                "properties" | "patternProperties" | "$defs" | "definitions"
                | "dependentSchemas" => {
                    let mut m = Map::new();
                    for (name, sub) in v.as_object().ok_or(format!("`{k}` is not a map"))? {
                        m.insert(name.clone(), self.convert(sub)?);
                    }
                    out.insert(k.into(), Value::Object(m));
                }
                "items" if v.is_array() => {
                    // Draft 4's tuple form.
                    out.insert("prefixItems".into(), self.convert_all(v)?);
                }
                "items"
                | "additionalProperties"
                | "not"
                | "contains"
                | "propertyNames"
                | "if"
                | "then"
                | "else"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "additionalItems" => {
                    out.insert(k.into(), self.convert(v)?);
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    out.insert(k.into(), self.convert_all(v)?);
                }
                "nullable" | "discriminator" | "xml" | "externalDocs" | "example" | "examples" => {}
                "exclusiveMinimum" | "exclusiveMaximum" if v.is_boolean() => {}
                _ if k.starts_with("x-") => {}
                _ => {
                    out.insert(k.into(), v.clone());
                }
            }
        }
        for (flag, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            if o.get(flag) == Some(&Value::Bool(true))
                && let Some(b) = out.remove(bound)
            {
                out.insert(flag.into(), b);
            }
        }
        // `PaginationNextResponse` says "(may be null)" in words only, and
        // Konnect answers null on the last page (issue 25).
        let says_null = o
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| d.contains("(may be null)"));
        if o.get("nullable") == Some(&Value::Bool(true)) || says_null {
            make_nullable(&mut out);
        }
        Ok(Value::Object(out))
    }

    fn convert_all(&mut self, v: &Value) -> Result<Value, String> {
        let items = v.as_array().ok_or("expected a list of schemas")?;
        Ok(Value::Array(
            items
                .iter()
                .map(|s| self.convert(s))
                .collect::<Result<_, _>>()?,
        ))
    }
}

/// `nullable: true`: null is allowed too.
fn make_nullable(out: &mut Map<String, Value>) {
    match out.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            out.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(ts)) => {
            if !ts.contains(&json!("null")) {
                ts.push(json!("null"));
            }
        }
        _ => {
            let inner = std::mem::take(out);
            out.insert("anyOf".into(), json!([{"type": "null"}, inner]));
            return;
        }
    }
    if let Some(Value::Array(e)) = out.get_mut("enum")
        && !e.contains(&Value::Null)
    {
        e.push(Value::Null);
    }
}

/// Whether `template` (a path with `{any}` placeholders, maybe a query string)
/// is the spec path `spec_path`: literal segments equal, placeholders only
/// against placeholders.
pub fn template_matches(spec_path: &str, template: &str) -> bool {
    let template = template.split('?').next().unwrap_or("");
    let a: Vec<&str> = spec_path.trim_end_matches('/').split('/').collect();
    let b: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let is_param = |s: &str| s.starts_with('{') && s.ends_with('}');
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            if is_param(x) || is_param(y) {
                is_param(x) && is_param(y)
            } else {
                x == y
            }
        })
}

/// A media type without parameters, lower case (`application/json`).
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[derive(Clone)]
pub struct Operation<'a> {
    pub spec: &'a Spec,
    pub id: &'a str,
    /// Upper case: "GET".
    pub method: &'static str,
    /// With the server's base: "/v2/control-planes/{controlPlaneId}".
    pub path: String,
    pub node: &'a Value,
    pub path_item: &'a Value,
}

impl<'a> Operation<'a> {
    pub fn matches(&self, template: &str) -> bool {
        template_matches(&self.path, template)
    }

    /// "get-control-plane (GET /v2/control-planes/{controlPlaneId}, control-planes.v2)".
    pub fn label(&self) -> String {
        format!(
            "{} ({} {}, {})",
            self.id,
            self.method,
            self.path,
            self.spec.file.trim_end_matches(".openapi.yaml")
        )
    }

    /// The status codes (and `default`, `4XX`, …) the spec lists.
    pub fn statuses(&self) -> Vec<String> {
        self.node["responses"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the spec lists `status` for this operation (exactly, as a
    /// range like `4XX`, or as `default`).
    pub fn lists_status(&self, status: u16) -> bool {
        self.response_key(status).is_some()
    }

    fn response_key(&self, status: u16) -> Option<String> {
        let keys = self.statuses();
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        [exact, range, "default".to_string()]
            .into_iter()
            .find(|k| keys.iter().any(|x| x.eq_ignore_ascii_case(k)))
    }

    /// The response object for `status`, `$ref`s followed, and the name of the
    /// component it came from, if any (`#/components/responses/NotFound`).
    pub fn response(&self, status: u16) -> Option<(&'a Value, Option<String>)> {
        let key = self.response_key(status)?;
        let (_, raw) = self.node["responses"]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))?;
        let name = raw.get("$ref").and_then(Value::as_str).map(str::to_string);
        Some((self.spec.deref(raw), name))
    }

    /// The media types of a response; empty when the spec gives it no body.
    pub fn response_media_types(&self, status: u16) -> Vec<String> {
        self.response(status)
            .and_then(|(r, _)| r["content"].as_object())
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The response schema for `status` and `media_type`: `Ok(None)` when the
    /// spec gives that response no body.
    pub fn response_schema(&self, status: u16, media_type: &str) -> Result<Option<Value>, String> {
        let (resp, _) = self
            .response(status)
            .ok_or_else(|| format!("{} lists no status {status}", self.label()))?;
        let Some(content) = resp["content"].as_object() else {
            return Ok(None);
        };
        let media = content
            .get(media_type)
            .ok_or_else(|| format!("{} {status} has no {media_type} content", self.label()))?;
        match media.get("schema") {
            Some(s) => self.spec.to_json_schema(s).map(Some),
            None => Ok(Some(json!({}))),
        }
    }

    /// The request body object, `$ref`s followed.
    fn request_body(&self) -> Option<&'a Value> {
        self.node.get("requestBody").map(|b| self.spec.deref(b))
    }

    pub fn request_media_types(&self) -> Vec<String> {
        self.request_body()
            .and_then(|b| b["content"].as_object())
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn request_schema(&self, media_type: &str) -> Result<Value, String> {
        let body = self
            .request_body()
            .ok_or_else(|| format!("{} takes no request body", self.label()))?;
        let schema = body["content"]
            .get(media_type)
            .and_then(|m| m.get("schema"))
            .ok_or_else(|| format!("{} has no {media_type} request schema", self.label()))?;
        self.spec.to_json_schema(schema)
    }

    /// Path-item and operation parameters, `$ref`s followed (the operation's
    /// win on the same name and place).
    pub fn parameters(&self) -> Vec<&'a Value> {
        let mut out: Vec<&'a Value> = Vec::new();
        let lists = [&self.node["parameters"], &self.path_item["parameters"]];
        for list in lists {
            for p in list.as_array().into_iter().flatten() {
                let p = self.spec.deref(p);
                if !out
                    .iter()
                    .any(|q| q["name"] == p["name"] && q["in"] == p["in"])
                {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Every way `query` (`a=1&filter[name][eq]=x`, URL-encoded) departs from
    /// the operation's query parameters: a name the spec does not define, or a
    /// value its schema refuses. `deepObject` parameters (`filter[...]`) are
    /// gathered into one object and validated as one.
    pub fn check_query(&self, query: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
            Ok(p) => p,
            Err(e) => return vec![format!("query string is not URL-encoded: {e}")],
        };
        let params: Vec<&Value> = self
            .parameters()
            .into_iter()
            .filter(|p| p["in"] == "query")
            .collect();
        let mut deep: BTreeMap<String, (Value, &Value)> = BTreeMap::new();
        for (key, value) in pairs {
            if let Some(p) = params.iter().find(|p| p["name"] == key.as_str()) {
                let schema = match self.spec.to_json_schema(&p["schema"]) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let v = coerce(&schema, &value);
                for e in validate(&schema, &v) {
                    errors.push(format!("query `{key}={value}`: {e}"));
                }
                continue;
            }
            let deep_param = key.split_once('[').and_then(|(base, rest)| {
                params
                    .iter()
                    .find(|p| p["name"] == base && p["style"] == "deepObject")
                    .map(|p| (base.to_string(), rest, *p))
            });
            let Some((base, rest, p)) = deep_param else {
                errors.push(format!(
                    "query parameter `{key}` is not one {} defines",
                    self.id
                ));
                continue;
            };
            // "name][eq]" → ["name", "eq"]
            let path: Vec<String> = format!("[{rest}")
                .split('[')
                .skip(1)
                .map(|s| s.trim_end_matches(']').to_string())
                .collect();
            let entry = deep.entry(base).or_insert((json!({}), p));
            let mut node = &mut entry.0;
            for (i, seg) in path.iter().enumerate() {
                let Some(obj) = node.as_object_mut() else {
                    errors.push(format!("query `{key}` nests under a value"));
                    break;
                };
                if i + 1 == path.len() {
                    obj.insert(seg.clone(), Value::String(value.clone()));
                    break;
                }
                node = obj.entry(seg.clone()).or_insert_with(|| json!({}));
            }
        }
        for (base, (mut obj, p)) in deep {
            let schema = match self.spec.to_json_schema(&p["schema"]) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            coerce_deep(&schema, &mut obj);
            for e in validate(&schema, &obj) {
                errors.push(format!("query `{base}[…]` = {obj}: {e}"));
            }
        }
        errors
    }
}

/// A query value as the JSON value its schema's type means.
fn coerce(schema: &Value, s: &str) -> Value {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for t in types {
        match t {
            "integer" => {
                if let Ok(n) = s.parse::<i64>() {
                    return json!(n);
                }
            }
            "number" => {
                if let Ok(n) = s.parse::<f64>() {
                    return json!(n);
                }
            }
            "boolean" => match s {
                "true" => return json!(true),
                "false" => return json!(false),
                _ => {}
            },
            "array" => {
                return Value::Array(s.split(',').map(|x| coerce(&schema["items"], x)).collect());
            }
            _ => {}
        }
    }
    Value::String(s.to_string())
}

fn coerce_deep(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                let sub = schema["properties"]
                    .get(k)
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
                    .unwrap_or(&Value::Null);
                coerce_deep(sub, child);
            }
        }
        Value::String(s) => {
            let c = coerce(schema, s);
            *v = c;
        }
        _ => {}
    }
}

/// Validates `instance` against a self-contained JSON Schema (2020-12, formats
/// asserted): every error, as "at /instance/path: message".
pub fn validate(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = match jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(v) => v,
        Err(e) => return vec![format!("the schema does not compile: {e}")],
    };
    validator
        .iter_errors(instance)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("at {at}: {}", shorten_middle(&e.to_string(), 300))
        })
        .collect()
}

/// Like [`validate`], but errors that differ only in an array index (and,
/// for a scalar, in the offending value) are one line, with a count and an
/// example: 600 conflicts with a non-UUID id are one finding, not 600.
pub fn validate_folded(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = match jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(v) => v,
        Err(e) => return vec![format!("the schema does not compile: {e}")],
    };
    // (path: message without the value) → (first full message, count, example)
    let mut groups: Vec<(String, String, usize, Option<String>)> = Vec::new();
    for e in validator.iter_errors(instance) {
        let at = fold_indexes(&e.instance_path().to_string());
        let at = if at.is_empty() { "/".to_string() } else { at };
        let message = shorten_middle(&e.to_string(), 300);
        let value = e.instance();
        let (generic, example) = if value.is_object() || value.is_array() {
            (message.clone(), None)
        } else {
            let v = value.to_string();
            match message.strip_prefix(&v) {
                Some(rest) => (format!("…{rest}"), Some(shorten(&v, 60))),
                None => (message.clone(), None),
            }
        };
        let key = format!("at {at}: {generic}");
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.2 += 1,
            None => groups.push((key, format!("at {at}: {message}"), 1, example)),
        }
    }
    groups
        .into_iter()
        .map(|(key, first, n, example)| match (n, example) {
            (1, _) => first,
            (n, Some(e)) => format!("{key} ({n}×, e.g. {e})"),
            (n, None) => format!("{key} ({n}×)"),
        })
        .collect()
}

/// `/data/3/config` → `/data/*/config`: one message for every item.
pub fn fold_indexes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '/' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            if chars
                .peek()
                .is_none_or(|n| *n == '/' || *n == ':' || *n == ' ')
            {
                out.push('*');
            } else {
                out.push_str(&digits);
            }
        }
    }
    out
}

/// At most `max` characters, marked when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

/// At most about `max` characters, the middle cut: a validation message
/// quotes the instance first and says what is wrong at the end.
pub fn shorten_middle(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max * 2 / 3).collect();
    let tail: String = s.chars().skip(n - max / 3).collect();
    format!("{head} … {tail}")
}

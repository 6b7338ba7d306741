//! Conformance with Konnect's published API (issue 12): the real daemon on a
//! real socket, every answer checked against `../shared/konnect-api/`.
//!
//! Each test is one table of [`Step`]s: method, path (placeholders such as
//! `{blue}` filled from earlier answers), request body, expected status, and
//! the spec operation it exercises (by `operationId`). One runner sends each
//! step and checks that
//! - the status is the expected one and one the spec lists for the operation;
//! - `Content-Type` is one the spec gives for that status (`application/json`
//!   for bodies, `application/problem+json` for this API's errors; the spec
//!   gives the DP-certificate errors `application/json`), and a bodiless
//!   status (204) has no body;
//! - the body validates against the spec's schema (jsonschema);
//! - what came back is right: which items a filter keeps, cursors across
//!   pages, fields the issue names.
//!
//! Every step runs; the test fails at the end with every non-conformance,
//! grouped by operation. Steps that need no spec operation are errors no
//! operation describes (unknown path, 405, 413: problem+json `BaseError`) and
//! our extensions (config, snapshot, provenance, heartbeat), which must sit at
//! a (method, path) neither spec uses.
//!
//! `extensions_keep_working` checks that our extensions still work.
//! `the_tables_speak_the_spec` runs always: every step's operation, status,
//! request body and query string are checked against the spec without a
//! daemon, and the schema translation against the spec's own examples.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::openapi::{
    Operation, Specs, fold_indexes, media_type, shorten, validate, validate_folded,
};
use crate::common::{Client, Daemon, V2};
use serde_json::{Value, json};

mod core_entities;

// ---- the step table ----

enum Kind {
    /// An operation of the spec, by `operationId`.
    Spec(&'static str),
    /// An error no operation describes (unknown path, wrong method, body over
    /// the limit): `application/problem+json`, the spec's `BaseError`
    /// (`BadRequestError` for 400).
    Problem,
    /// One of ours, at a (method, path) neither spec defines.
    Extension,
    /// A refusal by an operation of the spec, at a status the spec may not
    /// list (its core-entities operations list few): the gateway's
    /// `{message, status}` under `core-entities`, problem+json elsewhere.
    Error(&'static str),
    /// Stop the daemon (SIGTERM) and start it again on the same data.
    Restart,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// Whether the spec accepts the request the step sends.
#[derive(PartialEq, Clone, Copy, Debug)]
enum Request {
    Valid,
    /// Sent on purpose: a bad body, an unknown filter.
    Invalid,
}

type Check = Box<dyn Fn(&mut Ctx, &Reply) -> Result<(), String>>;

struct Step {
    kind: Kind,
    method: &'static str,
    path: String,
    body: Body,
    headers: Vec<(&'static str, String)>,
    status: u16,
    request: Request,
    checks: Vec<Check>,
    /// Groundwork for another table's subject: any 2xx will do and the
    /// answer's schema is not checked here (its own table checks it).
    setup: bool,
}

fn call(op: &'static str, method: &'static str, path: impl Into<String>, status: u16) -> Step {
    Step {
        kind: Kind::Spec(op),
        method,
        path: path.into(),
        body: Body::None,
        headers: Vec::new(),
        status,
        request: Request::Valid,
        checks: Vec::new(),
        setup: false,
    }
}

fn problem(method: &'static str, path: impl Into<String>, status: u16) -> Step {
    Step {
        kind: Kind::Problem,
        ..call("", method, path, status)
    }
}

fn error(op: &'static str, method: &'static str, path: impl Into<String>, status: u16) -> Step {
    Step {
        kind: Kind::Error(op),
        ..call("", method, path, status)
    }
}

fn extension(method: &'static str, path: impl Into<String>, status: u16) -> Step {
    Step {
        kind: Kind::Extension,
        ..call("", method, path, status)
    }
}

fn restart() -> Step {
    Step {
        kind: Kind::Restart,
        ..call("", "", "", 0)
    }
}

impl Step {
    fn json(mut self, v: Value) -> Step {
        self.body = Body::Json(v);
        self
    }
    fn raw(mut self, content_type: &'static str, bytes: impl Into<Vec<u8>>) -> Step {
        self.body = Body::Raw(content_type, bytes.into());
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Step {
        self.headers.push((name, value.into()));
        self
    }
    fn setup(mut self) -> Step {
        self.setup = true;
        self
    }
    /// The spec refuses this request (its body or query): sent on purpose.
    fn invalid(mut self) -> Step {
        self.request = Request::Invalid;
        self
    }
    fn check(mut self, f: impl Fn(&mut Ctx, &Reply) -> Result<(), String> + 'static) -> Step {
        self.checks.push(Box::new(f));
        self
    }
    /// Saves the string at `pointer` of the answer as `{key}`.
    fn save(self, key: &'static str, pointer: &'static str) -> Step {
        self.check(move |ctx, r| {
            let v = r.at(pointer)?;
            let s = v
                .as_str()
                .ok_or_else(|| format!("{pointer} is {v}, not a string"))?;
            ctx.set(key, s);
            Ok(())
        })
    }
    /// `pointer` equals `expected` (its strings' placeholders filled).
    fn eq(self, pointer: &'static str, expected: Value) -> Step {
        self.check(move |ctx, r| {
            let want = ctx.fill_json(&expected)?;
            let got = r.at(pointer)?;
            let name = if pointer.is_empty() {
                "the body"
            } else {
                pointer
            };
            ensure(got == &want, || format!("{name} is {got}, expected {want}"))
        })
    }
    /// The `name`s of the list at `pointer` are exactly `names` (any order).
    fn names(self, pointer: &'static str, names: &'static [&'static str]) -> Step {
        self.check(move |ctx, r| {
            let got: BTreeSet<String> = r.strings(pointer, "name")?.into_iter().collect();
            // A group whose creation failed is reported there, not here again.
            let created = |n: &&&str| ctx.get(n).is_ok() || !CREATED_AS.contains(n);
            let want: BTreeSet<String> = names
                .iter()
                .filter(created)
                .map(|s| s.to_string())
                .collect();
            ensure(got == want, || {
                format!("{pointer}[].name is {got:?}, expected {want:?}")
            })
        })
    }
    /// The `id`s of the list at `pointer` are exactly those of `keys`.
    fn ids(self, pointer: &'static str, keys: &'static [&'static str]) -> Step {
        self.check(move |ctx, r| {
            let got: BTreeSet<String> = r.strings(pointer, "id")?.into_iter().collect();
            let want = keys
                .iter()
                .map(|k| ctx.get(k).map(str::to_string))
                .collect::<Result<BTreeSet<_>, _>>()?;
            ensure(got == want, || {
                format!(
                    "{pointer}[].id is {}, expected {}",
                    ctx.names_of(&got),
                    ctx.names_of(&want)
                )
            })
        })
    }
    /// A 400 whose invalid_parameters names `field`.
    fn expect_400(mut self, field: &'static str) -> Step {
        self.status = 400;
        self.check(names_invalid_parameter(field))
    }
    /// A Unix time in seconds (not milliseconds, not a string) near now.
    fn unix_seconds(self, pointer: &'static str) -> Step {
        self.check(move |_, r| unix_seconds_at(r, pointer))
    }
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

fn unix_seconds_at(r: &Reply, pointer: &str) -> Result<(), String> {
    let v = r.at(pointer)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    match v.as_i64() {
        Some(t) if (now - 86_400..=now + 60).contains(&t) => Ok(()),
        _ => Err(format!(
            "{pointer} is {v}: expected Unix seconds (an integer near {now})"
        )),
    }
}

// ---- the runner ----

/// Values from earlier answers, by placeholder name.
#[derive(Default)]
struct Ctx {
    vars: BTreeMap<String, String>,
    /// Lists gathered across steps (ids seen on the pages of a cursor).
    lists: BTreeMap<String, Vec<String>>,
}

impl Ctx {
    fn set(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_string(), value.to_string());
    }
    fn get(&self, key: &str) -> Result<&str, String> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("{{{key}}} was not set by an earlier step"))
    }
    /// Every `{key}` in `s` replaced by its value.
    fn fill(&self, s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let key = &rest[open + 1..open + close];
            out.push_str(&rest[..open]);
            out.push_str(self.get(key)?);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
    fn fill_json(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => Value::String(self.fill(s)?),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.fill_json(x))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), self.fill_json(x)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
    /// Ids shown by the placeholder that holds them, for readable messages.
    fn names_of(&self, ids: &BTreeSet<String>) -> String {
        let named: Vec<String> = ids
            .iter()
            .map(|id| {
                self.vars
                    .iter()
                    .find(|(_, v)| *v == id)
                    .map_or(id.clone(), |(k, _)| k.clone())
            })
            .collect();
        format!("{named:?}")
    }
}

struct Reply {
    status: u16,
    /// The media type, without parameters; empty when absent.
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    json: Option<Value>,
}

impl Reply {
    fn at(&self, pointer: &str) -> Result<&Value, String> {
        let v = self
            .json
            .as_ref()
            .ok_or_else(|| format!("the body is not JSON: {}", self.excerpt()))?;
        v.pointer(pointer).ok_or_else(|| {
            let body = shorten(&String::from_utf8_lossy(&self.body), 120);
            format!("the answer has no {pointer}: {body}")
        })
    }
    fn list(&self, pointer: &str) -> Result<&Vec<Value>, String> {
        let v = self.at(pointer)?;
        v.as_array()
            .ok_or_else(|| format!("{pointer} is not a list: {}", shorten(&v.to_string(), 200)))
    }
    /// The string field `field` of each item of the list at `pointer`.
    fn strings(&self, pointer: &str, field: &str) -> Result<Vec<String>, String> {
        self.list(pointer)?
            .iter()
            .map(|item| {
                item[field]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("an item of {pointer} has no string `{field}`"))
            })
            .collect()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn excerpt(&self) -> String {
        shorten(&String::from_utf8_lossy(&self.body), 240)
    }
}

/// One departure from the spec (or the issue), under the operation it concerns.
struct Finding {
    group: String,
    step: String,
    what: String,
}

struct Runner<'a> {
    specs: &'a Specs,
    daemon: Daemon,
    client: Client,
    ctx: Ctx,
    findings: Vec<Finding>,
    /// One line per step sent: the operation and the status it got.
    answers: Vec<String>,
}

/// Starts a daemon, runs every step, and fails with every finding.
async fn conformance(test: &str, daemon_args: &[&str], steps: Vec<Step>) {
    let Some(specs) = Specs::load(test) else {
        return;
    };
    let daemon = Daemon::builder().args(daemon_args).start();
    let client = daemon.client();
    let mut ctx = Ctx::default();
    ctx.set("socket", &daemon.socket.display().to_string());
    for (key, host) in [("pem1", "dp-1.example.com"), ("pem2", "dp-2.example.com")] {
        let ck = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("rcgen");
        ctx.set(key, &ck.cert.pem());
    }
    let leaf = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).expect("rcgen");
    ctx.set("tls_cert", &leaf.cert.pem());
    ctx.set("tls_key", &leaf.signing_key.serialize_pem());
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ctx.set("ca_cert", &ca.self_signed(&ca_key).expect("ca").pem());
    // Values with braces, which a step's own text can't hold.
    for kid in ["kid-in", "kid-top"] {
        let jwk = format!(r#"{{"kty":"oct","kid":"{kid}","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}}"#);
        ctx.set(&format!("jwk_{}", &kid[4..]), &jwk);
    }
    // Literal path segments where the spec has a parameter.
    for (key, value) in [
        ("lit_svc", "svc"),
        ("lit_dry", "dry"),
        ("lit_key_auth", "key-auth"),
        ("lit_rla", "rate-limiting-advanced"),
        ("lit_nope", "no-such-plugin"),
        ("lit_redis", "redis-ce"),
        ("lit_services", "services"),
        ("lit_plugins", "plugins"),
        ("lit_mine", "mine"),
        ("lit_k", "k"),
    ] {
        ctx.set(key, value);
    }
    ctx.set("gql", "query { hello }");
    ctx.set("unknown", "7b1f2cf4-2a5b-4e3c-9d0e-5f6a7b8c9d0e");
    ctx.set("not_a_uuid", "not-a-uuid");
    for (key, id) in [("n1", NODE_1), ("n2", NODE_2), ("n3", NODE_3)] {
        ctx.set(key, id);
    }
    let mut runner = Runner {
        specs: &specs,
        daemon,
        client,
        ctx,
        findings: Vec::new(),
        answers: Vec::new(),
    };
    let total = steps.len();
    for step in &steps {
        runner.run(step).await;
    }
    let report = report(test, total, &runner.findings);
    assert!(runner.findings.is_empty(), "{report}");
    // Which operations this table calls and what each answered: a step
    // dropped or answered otherwise shows as a difference
    // (`UPDATE_EXPECT=1` rewrites the file).
    let mut answers = runner.answers.join("\n");
    answers.push('\n');
    crate::common::expect::assert_file(
        &crate::common::fixtures().join(format!("konnect/{test}.txt")),
        &answers,
    );
    eprintln!("{test}: {total} steps, all conformant");
}

/// The findings by operation; a message met in several steps (array
/// indexes folded to `*`) is listed once, with the steps it was met in.
fn report(test: &str, steps: usize, findings: &[Finding]) -> String {
    let mut groups: BTreeMap<&str, Vec<(String, Vec<&str>)>> = BTreeMap::new();
    for f in findings {
        let what = fold_indexes(&f.what);
        let group = groups.entry(&f.group).or_default();
        match group.iter_mut().find(|(m, _)| *m == what) {
            Some((_, at)) => {
                if !at.contains(&f.step.as_str()) {
                    at.push(&f.step)
                }
            }
            None => group.push((what, vec![&f.step])),
        }
    }
    let mut out = format!(
        "\n==== {test}: {} non-conformance(s) in {steps} steps ====\n",
        findings.len()
    );
    for (group, messages) in groups {
        out.push_str(&format!("\n## {group}\n"));
        for (what, at) in messages {
            if at.len() == 1 {
                out.push_str(&format!("- {}\n    {what}\n", at[0]));
            } else {
                out.push_str(&format!(
                    "- {what}\n    in {} steps: {}\n",
                    at.len(),
                    at.join(" | ")
                ));
            }
        }
    }
    out
}

/// "POST /v2/control-planes {"name":"blue",…} → 201": the step as the table
/// has it (placeholders unfilled).
fn step_label(step: &Step) -> String {
    let body = match &step.body {
        Body::None => String::new(),
        Body::Json(v) => format!(" {}", shorten(&v.to_string(), 70)),
        Body::Raw(ct, b) => format!(" <{ct}, {} bytes>", b.len()),
    };
    format!("{} {}{body} → {}", step.method, step.path, step.status)
}

/// The path without its query string.
fn template_of(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn query_of(path: &str) -> &str {
    path.split_once('?').map_or("", |(_, q)| q)
}

/// The table's own mistakes, found without a daemon: an operation the spec
/// lacks or that is not at this method and path, an expected status the spec
/// does not list, a request the spec accepts or refuses unlike the step says.
fn table_problems(specs: &Specs, step: &Step) -> Vec<String> {
    let mut out = Vec::new();
    let name = format!("{} {} → {}", step.method, step.path, step.status);
    match step.kind {
        Kind::Spec(id) => {
            let Some(op) = specs.by_id(id) else {
                return vec![format!("{name}: no operation {id} in the specs")];
            };
            if op.method != step.method || !op.matches(template_of(&step.path)) {
                out.push(format!(
                    "{name}: {id} is {} {}, not this method and path",
                    op.method, op.path
                ));
            }
            if !op.lists_status(step.status) {
                out.push(format!(
                    "{name}: the spec lists no {} for {id} (it lists {:?})",
                    step.status,
                    op.statuses()
                ));
            }
            let errors = request_errors(&op, step);
            let valid = errors.is_empty();
            match (step.request, valid) {
                (Request::Valid, false) => {
                    out.push(format!("{name}: the spec refuses this request: {errors:?}"))
                }
                (Request::Invalid, true) => out.push(format!(
                    "{name}: marked invalid, but the spec accepts this request"
                )),
                _ => {}
            }
        }
        Kind::Error(id) => match specs.by_id(id) {
            None => out.push(format!("{name}: no operation {id} in the specs")),
            Some(op) if op.method != step.method || !op.matches(template_of(&step.path)) => out
                .push(format!(
                    "{name}: {id} is {} {}, not this method and path",
                    op.method, op.path
                )),
            Some(_) => {}
        },
        Kind::Extension => {
            if let Some(op) = specs.operation(step.method, template_of(&step.path)) {
                out.push(format!(
                    "{name}: an extension must not use a (method, path) of the spec: {}",
                    op.label()
                ));
            }
        }
        Kind::Problem => {
            // On a spec operation only for a status it does not list (413).
            if let Some(op) = specs.operation(step.method, template_of(&step.path))
                && op.lists_status(step.status)
            {
                out.push(format!(
                    "{name}: {} lists {}; use call() so its own schema applies",
                    op.label(),
                    step.status
                ));
            }
        }
        Kind::Restart => {}
    }
    out
}

/// How the request a step sends departs from the operation's request body
/// and query parameters.
fn request_errors(op: &Operation, step: &Step) -> Vec<String> {
    let mut errors = op.check_query(query_of(&step.path));
    let media_types = op.request_media_types();
    let (content_type, body) = match &step.body {
        Body::None => {
            if !media_types.is_empty() && op.node["requestBody"]["required"] == Value::Bool(true) {
                errors.push("the request body is required".into());
            }
            return errors;
        }
        Body::Json(v) => ("application/json", Some(v.clone())),
        Body::Raw(ct, bytes) => (*ct, serde_json::from_slice::<Value>(bytes).ok()),
    };
    if !media_types.iter().any(|m| m == content_type) {
        errors.push(format!(
            "{content_type} is not a request media type of {} ({media_types:?})",
            op.id
        ));
        return errors;
    }
    let Some(body) = body else {
        errors.push("the body is not JSON".into());
        return errors;
    };
    match op.request_schema(content_type) {
        Ok(schema) => errors.extend(validate(&schema, &body)),
        Err(e) => errors.push(e),
    }
    errors
}

impl Runner<'_> {
    fn finding(&mut self, group: impl Into<String>, step: &str, what: impl Into<String>) {
        self.findings.push(Finding {
            group: group.into(),
            step: step.to_string(),
            what: what.into(),
        });
    }

    async fn run(&mut self, step: &Step) {
        let label = step_label(step);
        for p in table_problems(self.specs, step) {
            self.finding(
                "TEST TABLE (a mistake of this test, not the server)",
                &label,
                p,
            );
        }
        let group = match step.kind {
            Kind::Spec(id) => match self.specs.by_id(id) {
                Some(op) => op.label(),
                None => return,
            },
            Kind::Error(id) => match self.specs.by_id(id) {
                Some(op) => op.label(),
                None => return,
            },
            Kind::Problem => "errors outside any operation (unknown path, 405, 413)".into(),
            Kind::Extension => "extensions (ours, outside the spec)".into(),
            Kind::Restart => {
                let status = self.daemon.stop();
                if !status.success() {
                    self.finding("restart", "SIGTERM", format!("daemon exited with {status}"));
                }
                self.daemon.restart();
                self.client = self.daemon.client();
                return;
            }
        };
        let path = match self.ctx.fill(&step.path) {
            Ok(p) => p,
            Err(e) => return self.finding(group, &label, format!("not sent: {e}")),
        };
        let (content_type, body) = match &step.body {
            Body::None => (None, None),
            Body::Json(v) => match self.ctx.fill_json(v) {
                Ok(v) => (Some("application/json"), Some(v.to_string().into_bytes())),
                Err(e) => return self.finding(group, &label, format!("not sent: {e}")),
            },
            Body::Raw(ct, bytes) => (Some(*ct), Some(bytes.clone())),
        };
        let mut headers: Vec<(&str, String)> = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type", ct.to_string()));
        }
        for (k, v) in &step.headers {
            match self.ctx.fill(v) {
                Ok(v) => headers.push((k, v)),
                Err(e) => return self.finding(group, &label, format!("not sent: {e}")),
            }
        }
        let header_refs: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = match self
            .client
            .try_send(step.method, &path, &header_refs, body)
            .await
        {
            Ok(r) => r,
            Err(e) if step.status == 413 => {
                let what = format!(
                    "no answer: the connection was closed while the body was still being sent, so the client sees a broken connection, not the 413 problem+json ({e})"
                );
                return self.finding(group, &label, what);
            }
            Err(e) => return self.finding(group, &label, format!("request failed: {e}")),
        };
        let content_type = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(media_type)
            .unwrap_or_default();
        self.answers.push(format!("{label} => {}", resp.status));
        let reply = Reply {
            status: resp.status,
            json: serde_json::from_slice(&resp.body).ok(),
            content_type,
            headers: resp.headers,
            body: resp.body,
        };
        let mut problems = Vec::new();
        let conforms_so_far = match step.kind {
            _ if step.setup => {
                let ok = (200..300).contains(&reply.status);
                if !ok {
                    problems.push(format!(
                        "setup failed: status {}: {}",
                        reply.status,
                        reply.excerpt()
                    ));
                }
                ok
            }
            Kind::Spec(id) => match self.specs.by_id(id) {
                Some(op) => spec_answer(&op, step, &reply, &mut problems),
                None => false,
            },
            Kind::Problem => problem_answer(self.specs, step, &reply, &mut problems),
            Kind::Error(_) if step.path.contains("/core-entities") => {
                gateway_error(step, &reply, &mut problems)
            }
            Kind::Error(_) => problem_answer(self.specs, step, &reply, &mut problems),
            Kind::Extension => {
                if reply.status != step.status {
                    problems.push(format!(
                        "status {}, expected {}: {}",
                        reply.status,
                        step.status,
                        reply.excerpt()
                    ));
                    false
                } else {
                    true
                }
            }
            Kind::Restart => true,
        };
        if conforms_so_far {
            for check in &step.checks {
                if let Err(e) = check(&mut self.ctx, &reply) {
                    problems.push(e);
                }
            }
        }
        for p in problems {
            self.finding(group.clone(), &label, p);
        }
    }
}

/// The answer to a spec operation: status, media type, schema. False when
/// the status is wrong (the semantic checks are skipped then).
fn spec_answer(op: &Operation, step: &Step, reply: &Reply, problems: &mut Vec<String>) -> bool {
    if reply.status != step.status {
        let undocumented = if op.lists_status(reply.status) {
            String::new()
        } else {
            format!(
                " (a status the spec does not list for {}: it lists {})",
                op.id,
                op.statuses().join(", ")
            )
        };
        problems.push(format!(
            "status {}{undocumented}, expected {}; body: {}",
            reply.status,
            step.status,
            reply.excerpt()
        ));
        return false;
    }
    let media_types = op.response_media_types(reply.status);
    if media_types.is_empty() {
        if !reply.body.is_empty() {
            problems.push(format!(
                "the spec gives {} no body; got {} bytes ({}): {}",
                reply.status,
                reply.body.len(),
                reply.content_type,
                reply.excerpt()
            ));
        }
        return true;
    }
    if !media_types.contains(&reply.content_type) {
        problems.push(format!(
            "Content-Type is {:?}; the spec gives {} {:?}",
            reply.content_type, reply.status, media_types
        ));
    }
    let media = if media_types.contains(&reply.content_type) {
        reply.content_type.clone()
    } else {
        media_types[0].clone()
    };
    let Some(body) = &reply.json else {
        problems.push(format!("the body is not JSON: {}", reply.excerpt()));
        return false;
    };
    let schema_name = schema_name(op, reply.status, &media);
    match op.response_schema(reply.status, &media) {
        Ok(Some(schema)) => {
            for e in validate_folded(&schema, body) {
                problems.push(format!("schema {schema_name}: {e}"));
            }
        }
        Ok(None) => {}
        Err(e) => problems.push(e),
    }
    if media == "application/problem+json" && body["status"] != json!(reply.status) {
        problems.push(format!(
            "problem `status` is {}, the HTTP status {}",
            body["status"], reply.status
        ));
    }
    true
}

/// "ListControlPlanesResponse → ControlPlane" style names for messages.
fn schema_name(op: &Operation, status: u16, media: &str) -> String {
    let Some((resp, name)) = op.response(status) else {
        return String::new();
    };
    let response = name
        .map(|n| n.rsplit('/').next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("{} {status}", op.id));
    match resp["content"][media]["schema"]["$ref"].as_str() {
        Some(s) => format!("{response} ({})", s.rsplit('/').next().unwrap_or("")),
        None => response,
    }
}

/// An error no operation describes: problem+json, `BaseError`
/// (`BadRequestError` for a 400), and `Allow` on a 405 (RFC 9110 §15.5.6).
fn problem_answer(specs: &Specs, step: &Step, reply: &Reply, problems: &mut Vec<String>) -> bool {
    if !status_and_media(step, reply, "application/problem+json", problems) {
        return false;
    }
    let name = if reply.status == 400 {
        "BadRequestError"
    } else {
        "BaseError"
    };
    match (&reply.json, specs.control_planes().schema(name)) {
        (Some(body), Ok(schema)) => {
            for e in validate_folded(&schema, body) {
                problems.push(format!("schema {name}: {e}"));
            }
            if body["status"] != json!(reply.status) {
                problems.push(format!(
                    "problem `status` is {}, the HTTP status {}",
                    body["status"], reply.status
                ));
            }
        }
        (None, _) => problems.push(format!("the body is not JSON: {}", reply.excerpt())),
        (_, Err(e)) => problems.push(e),
    }
    if reply.status == 405 && reply.header("allow").is_none() {
        problems.push("a 405 without an `Allow` header (RFC 9110 §15.5.6)".into());
    }
    true
}

/// The error answer's status is the step's (else false: nothing more is
/// checked) and its media type `media`.
fn status_and_media(step: &Step, reply: &Reply, media: &str, problems: &mut Vec<String>) -> bool {
    if reply.status != step.status {
        problems.push(format!(
            "status {}, expected {}; body: {}",
            reply.status,
            step.status,
            reply.excerpt()
        ));
        return false;
    }
    if reply.content_type != media {
        problems.push(format!(
            "Content-Type is {:?}, expected {media:?}",
            reply.content_type
        ));
    }
    true
}

/// A core-entities refusal: `application/json` `{message, status}`, as
/// Kong's Admin API answers (the spec's `GatewayUnauthorizedError` shape).
fn gateway_error(step: &Step, reply: &Reply, problems: &mut Vec<String>) -> bool {
    if !status_and_media(step, reply, "application/json", problems) {
        return false;
    }
    match &reply.json {
        Some(body) => {
            if !body["message"].is_string() {
                problems.push(format!("no string `message`: {}", reply.excerpt()));
            }
            if body["status"] != json!(reply.status) {
                problems.push(format!(
                    "`status` is {}, the HTTP status {}",
                    body["status"], reply.status
                ));
            }
        }
        None => problems.push(format!("the body is not JSON: {}", reply.excerpt())),
    }
    true
}

// ---- checks shared by the tables ----

/// `invalid_parameters[]` names `field` (with `field` a substring, so
/// `filter[bogus]` and `filter[bogus][eq]` both count).
fn names_invalid_parameter(field: &'static str) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |_, r| {
        let fields = r.strings("/invalid_parameters", "field")?;
        ensure(fields.iter().any(|f| f.contains(field)), || {
            format!("invalid_parameters names {fields:?}, not `{field}`")
        })
    }
}

/// Saves the `page[after]` of the cursor URI at `pointer` as `{key}`.
fn save_cursor(
    key: &'static str,
    pointer: &'static str,
) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |ctx, r| {
        let next = r.at(pointer)?;
        let next = next
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{pointer} is {next}: a next-page URI was expected"))?;
        let query = next.split_once('?').map_or("", |(_, q)| q);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| format!("{pointer} {next:?} has no readable query: {e}"))?;
        let after = pairs
            .iter()
            .find(|(k, _)| k == "page[after]")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("{pointer} {next:?} has no page[after]"))?;
        // Sent back in a query string of our own: encode it again.
        let encoded = serde_urlencoded::to_string([("a", &after)]).unwrap_or_default();
        ctx.set(key, encoded.trim_start_matches("a="));
        Ok(())
    }
}

/// Adds the `id`s of the list at `pointer` to the gathered list `list`.
fn gather(
    list: &'static str,
    pointer: &'static str,
) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |ctx, r| {
        let ids = r.strings(pointer, "id")?;
        ctx.lists.entry(list.to_string()).or_default().extend(ids);
        Ok(())
    }
}

/// The gathered list `list` holds each of `keys`' ids exactly once.
fn gathered(
    list: &'static str,
    keys: &'static [&'static str],
) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |ctx, _| {
        let got = ctx.lists.get(list).cloned().unwrap_or_default();
        let mut want: Vec<String> = keys
            .iter()
            .map(|k| ctx.get(k).map(str::to_string))
            .collect::<Result<_, _>>()?;
        let mut sorted = got.clone();
        sorted.sort();
        want.sort();
        ensure(sorted == want, || {
            format!(
                "the pages together hold {} ({} items), expected each of {keys:?} once",
                ctx.names_of(&got.iter().cloned().collect()),
                got.len()
            )
        })
    }
}

/// The list at `pointer` has `n` items.
fn count(pointer: &'static str, n: usize) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |_, r| {
        let len = r.list(pointer)?.len();
        ensure(len == n, || {
            format!("{pointer} has {len} items, expected {n}")
        })
    }
}

/// The value at `pointer` is null or absent (the last page of a cursor).
fn no_next(pointer: &'static str) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |_, r| {
        let v = r.json.as_ref().and_then(|j| j.pointer(pointer));
        ensure(
            v.is_none_or(|v| v.is_null() || v.as_str() == Some("")),
            || {
                format!(
                    "{pointer} is {}, expected none on the last page",
                    v.unwrap_or(&Value::Null)
                )
            },
        )
    }
}

/// The `created_at` of the items at `pointer` go down (`desc`) or up.
fn created_at_order(
    pointer: &'static str,
    desc: bool,
) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |_, r| {
        let times = r.strings(pointer, "created_at")?;
        let parse = |s: &String| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("created_at {s:?}: {e}"))
        };
        let times: Vec<_> = times.iter().map(parse).collect::<Result<_, _>>()?;
        let ordered = times
            .windows(2)
            .all(|w| if desc { w[0] >= w[1] } else { w[0] <= w[1] });
        let names = r.strings(pointer, "name")?;
        ensure(ordered && times.len() > 1, || {
            format!(
                "not in {} created_at order: {names:?}",
                if desc { "descending" } else { "ascending" }
            )
        })
    }
}

/// `config.control_plane_endpoint` and `telemetry_endpoint` name this
/// daemon's own socket (or an HTTP address).
fn endpoints_name_the_daemon(ctx: &mut Ctx, r: &Reply) -> Result<(), String> {
    let socket = ctx.get("socket")?.to_string();
    for field in ["control_plane_endpoint", "telemetry_endpoint"] {
        let v = r.at(&format!("/config/{field}"))?;
        let s = v.as_str().unwrap_or("");
        ensure(
            s.contains(&socket) || s.starts_with("http://") || s.starts_with("https://"),
            || {
                format!(
                    "config.{field} is {v}: expected this daemon's socket ({socket}) or HTTP address"
                )
            },
        )?;
    }
    Ok(())
}

// ---- the tables ----

/// The names `create_groups` creates, each saved under its own name.
const CREATED_AS: &[&str] = &["blue", "yellow", "kic", "shared", "cloud"];

/// Standard groups blue, yellow, kic (Kong Ingress Controller), the
/// composite shared, and cloud (auth_type, cloud_gateway, proxy_urls).
fn create_groups() -> Vec<Step> {
    vec![
        call("list-control-planes", "GET", V2, 200)
            .names("/data", &["default"])
            .check(|ctx, r| {
                let id = r.at("/data/0/id")?.as_str().unwrap_or_default().to_string();
                ctx.set("default", &id);
                Ok(())
            }),
        call("create-control-plane", "POST", V2, 201)
            .json(json!({"name": "blue", "description": "team blue", "labels": {"team": "blue", "env": "prod"}}))
            .save("blue", "/id")
            .eq("/name", json!("blue"))
            .eq("/description", json!("team blue"))
            .eq("/labels", json!({"team": "blue", "env": "prod"}))
            .eq("/config/cluster_type", json!("CLUSTER_TYPE_CONTROL_PLANE"))
            .eq("/config/auth_type", json!("pinned_client_certs"))
            .eq("/config/cloud_gateway", json!(false))
            .eq("/config/proxy_urls", json!([]))
            .check(endpoints_name_the_daemon),
        call("create-control-plane", "POST", V2, 201)
            .json(json!({"name": "yellow", "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE", "labels": {"team": "yellow"}}))
            .save("yellow", "/id")
            // No description given: the spec's ControlPlane has a string, never null.
            .eq("/description", json!("")),
        call("create-control-plane", "POST", V2, 201)
            .json(json!({"name": "kic", "cluster_type": "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER", "labels": {"env": "prod"}}))
            .save("kic", "/id")
            .eq("/config/cluster_type", json!("CLUSTER_TYPE_K8S_INGRESS_CONTROLLER")),
        call("create-control-plane", "POST", V2, 201)
            .json(json!({"name": "shared", "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP"}))
            .save("shared", "/id")
            .eq("/config/cluster_type", json!("CLUSTER_TYPE_CONTROL_PLANE_GROUP"))
            .check(endpoints_name_the_daemon),
        call("create-control-plane", "POST", V2, 201)
            .json(json!({
                "name": "cloud",
                "auth_type": "pki_client_certs",
                "cloud_gateway": true,
                "proxy_urls": [{"host": "eu.example.com", "port": 443, "protocol": "https"}],
                "labels": {"env": "dev"}
            }))
            .save("cloud", "/id")
            .eq("/config/auth_type", json!("pki_client_certs"))
            .eq("/config/cloud_gateway", json!(true))
            .eq(
                "/config/proxy_urls",
                json!([{"host": "eu.example.com", "port": 443, "protocol": "https"}]),
            ),
    ]
}

/// Page-number paging over every group there is (the default group and
/// those `create_groups` made): `meta.page` and the number of items.
fn page_meta(
    size: Option<usize>,
    number: Option<usize>,
) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |ctx, r| {
        let total = 1 + CREATED_AS.iter().filter(|n| ctx.get(n).is_ok()).count();
        let meta = r.at("/meta/page")?;
        let items = r.list("/data")?.len();
        let mut errors = Vec::new();
        if meta["total"] != json!(total) {
            errors.push(format!(
                "meta.page.total is {}, expected {total}",
                meta["total"]
            ));
        }
        if let (Some(size), Some(number)) = (size, number) {
            if meta["size"] != json!(size) || meta["number"] != json!(number) {
                errors.push(format!(
                    "meta.page is {meta}, expected size {size}, number {number}"
                ));
            }
            let want = total.saturating_sub((number - 1) * size).min(size);
            if items != want {
                errors.push(format!(
                    "{items} items on page {number} of size {size}, expected {want}"
                ));
            }
        } else if items != total {
            errors.push(format!("{items} items, expected all {total}"));
        }
        ensure(errors.is_empty(), || errors.join("; "))
    }
}

fn control_plane_steps() -> Vec<Step> {
    let list = |q: &str| call("list-control-planes", "GET", format!("{V2}?{q}"), 200);
    let all = &["default", "blue", "yellow", "kic", "shared", "cloud"];
    let mut steps = create_groups();
    steps.extend([
        call("list-control-planes", "GET", V2, 200)
            .names("/data", all)
            .check(page_meta(None, None)),
        // Filters: which items come back.
        list("filter[name][eq]=blue").names("/data", &["blue"]),
        list("filter[name][neq]=blue").names("/data", &["default", "yellow", "kic", "shared", "cloud"]),
        list("filter[name][contains]=lo").names("/data", &["yellow", "cloud"]),
        list("filter[id][eq]={blue}").names("/data", &["blue"]),
        list("filter[id][oeq]={blue},{kic}").names("/data", &["blue", "kic"]),
        list("filter[cluster_type][eq]=CLUSTER_TYPE_CONTROL_PLANE_GROUP").names("/data", &["shared"]),
        list("filter[cluster_type][neq]=CLUSTER_TYPE_CONTROL_PLANE").names("/data", &["kic", "shared"]),
        list("filter[cluster_type][oeq]=CLUSTER_TYPE_K8S_INGRESS_CONTROLLER,CLUSTER_TYPE_CONTROL_PLANE_GROUP")
            .names("/data", &["kic", "shared"]),
        list("filter[cloud_gateway]=true").names("/data", &["cloud"]),
        list("filter[cloud_gateway]=false").names("/data", &["default", "blue", "yellow", "kic", "shared"]),
        list("filter[name][contains]=lo&filter[cluster_type][eq]=CLUSTER_TYPE_CONTROL_PLANE")
            .names("/data", &["yellow", "cloud"]),
        list("labels=team:blue").names("/data", &["blue"]),
        // A key alone: the label exists, whatever its value.
        list("labels=env").names("/data", &["blue", "kic", "cloud"]),
        // Several terms: all of them.
        list("labels=env:prod,team").names("/data", &["blue"]),
        list("labels=env:prod").names("/data", &["blue", "kic"]),
        list("sort=created_at%20desc").check(created_at_order("/data", true)).names("/data", all),
        list("sort=created_at").check(created_at_order("/data", false)),
        // Page number paging (PaginatedMeta).
        list("page[size]=4&page[number]=2").check(page_meta(Some(4), Some(2))),
        list("page[size]=2&page[number]=1").check(page_meta(Some(2), Some(1))),
        list("page[size]=2&page[number]=4").check(page_meta(Some(2), Some(4))),
        // Unknown filters and sorts: 400 with invalid_parameters, never ignored.
        list("filter[bogus][eq]=x").invalid().expect_400("bogus"),
        list("filter[name][like]=blue").invalid().expect_400("filter[name]"),
        // The spec's name filter has eq, neq and contains only.
        list("filter[name][oeq]=blue,kic").invalid().expect_400("filter[name]"),
        list("filter[id][contains]=a").invalid().expect_400("filter[id]"),
        list("filter[cloud_gateway]=maybe").invalid().expect_400("filter[cloud_gateway]"),
        list("bogus=1").invalid().expect_400("bogus"),
        // "Supported sort attributes are: created_at".
        list("sort=name").expect_400("sort"),
        list("page[size]=abc").invalid().expect_400("page[size]"),
        // One control plane.
        call("get-control-plane", "GET", format!("{V2}/{{blue}}"), 200)
            .eq("/id", json!("{blue}"))
            .eq("/name", json!("blue")),
        call("get-control-plane", "GET", format!("{V2}/{{default}}"), 200).eq("/name", json!("default")),
        call("get-control-plane", "GET", format!("{V2}/{{unknown}}"), 404),
        call("get-control-plane", "GET", format!("{V2}/{{not_a_uuid}}"), 400)
            .check(names_invalid_parameter("id")),
        // Create: every field the spec's CreateControlPlaneRequest has was
        // exercised above; here the refusals.
        call("create-control-plane", "POST", V2, 409).json(json!({"name": "blue"})),
        call("create-control-plane", "POST", V2, 400)
            .json(json!({"name": 5}))
            .invalid()
            .check(names_invalid_parameter("name")),
        call("create-control-plane", "POST", V2, 400)
            .json(json!({"name": "pink", "bogus": true}))
            .invalid()
            .check(names_invalid_parameter("bogus")),
        call("create-control-plane", "POST", V2, 400)
            .json(json!({"name": "pink", "cluster_type": "CLUSTER_TYPE_NOPE"}))
            .invalid()
            .check(names_invalid_parameter("cluster_type")),
        call("create-control-plane", "POST", V2, 400)
            .json(json!({"description": "no name"}))
            .invalid()
            .check(names_invalid_parameter("name")),
        call("create-control-plane", "POST", V2, 400)
            .raw("application/json", "{\"name\": ")
            .invalid(),
        // Update.
        call("update-control-plane", "PATCH", format!("{V2}/{{yellow}}"), 200)
            .json(json!({"name": "yellow-2", "description": "team yellow", "labels": {"team": "yellow", "tier": "gold"}}))
            .eq("/name", json!("yellow-2"))
            .eq("/description", json!("team yellow"))
            .eq("/labels", json!({"team": "yellow", "tier": "gold"})),
        call("update-control-plane", "PATCH", format!("{V2}/{{yellow}}"), 200)
            .json(json!({
                "auth_type": "pki_client_certs",
                "proxy_urls": [{"host": "yellow.example.com", "port": 8443, "protocol": "https"}]
            }))
            .eq("/name", json!("yellow-2"))
            .eq("/config/auth_type", json!("pki_client_certs"))
            .eq(
                "/config/proxy_urls",
                json!([{"host": "yellow.example.com", "port": 8443, "protocol": "https"}]),
            ),
        call("get-control-plane", "GET", format!("{V2}/{{yellow}}"), 200)
            .eq("/name", json!("yellow-2"))
            .eq("/description", json!("team yellow"))
            .eq("/config/auth_type", json!("pki_client_certs")),
        call("update-control-plane", "PATCH", format!("{V2}/{{yellow}}"), 400)
            .json(json!({"cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP"}))
            .invalid()
            .check(names_invalid_parameter("cluster_type")),
        call("update-control-plane", "PATCH", format!("{V2}/{{unknown}}"), 404)
            .json(json!({"description": "nobody"})),
        // Delete.
        call("delete-control-plane", "DELETE", format!("{V2}/{{kic}}"), 204),
        call("get-control-plane", "GET", format!("{V2}/{{kic}}"), 404),
        call("delete-control-plane", "DELETE", format!("{V2}/{{kic}}"), 404),
        call("list-control-planes", "GET", V2, 200).names(
            "/data",
            &["default", "blue", "yellow-2", "shared", "cloud"],
        ),
    ]);
    steps
}

const MEMBERS: &[&str] = &["m1", "m2", "m3", "m4", "m5"];

fn membership_steps() -> Vec<Step> {
    let mut steps = vec![
        create("shared", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"),
        create("lone", "CLUSTER_TYPE_CONTROL_PLANE"),
    ];
    for m in MEMBERS {
        steps.push(create(m, "CLUSTER_TYPE_CONTROL_PLANE"));
    }
    let memberships = format!("{V2}/{{shared}}/group-memberships");
    let list = "get-control-planes-id-group-memberships";
    let add = "post-control-planes-id-group-memberships-add";
    let remove = "post-control-planes-id-group-memberships-remove";
    let upsert = "put-control-planes-id-group-memberships";
    let member_status = "get-control-planes-id-group-member-status";
    let status_of = |key: &str| {
        call(
            member_status,
            "GET",
            format!("{V2}/{{{key}}}/group-member-status"),
            200,
        )
    };
    steps.extend([
        call(add, "POST", format!("{memberships}/add"), 204)
            .json(json!({"members": [{"id": "{m1}"}, {"id": "{m2}"}, {"id": "{m3}"}]})),
        call(add, "POST", format!("{memberships}/add"), 204)
            .json(json!({"members": [{"id": "{m4}"}, {"id": "{m5}"}]})),
        // The cursor, across three pages of two.
        call(list, "GET", format!("{memberships}?page[size]=2"), 200)
            .check(count("/data", 2))
            .eq("/meta/page/size", json!(2))
            .eq("/meta/page/total", json!(5))
            .check(gather("pages", "/data"))
            .check(save_cursor("after1", "/meta/page/next")),
        call(
            list,
            "GET",
            format!("{memberships}?page[size]=2&page[after]={{after1}}"),
            200,
        )
        .check(count("/data", 2))
        .check(gather("pages", "/data"))
        .check(save_cursor("after2", "/meta/page/next")),
        call(
            list,
            "GET",
            format!("{memberships}?page[size]=2&page[after]={{after2}}"),
            200,
        )
        .check(count("/data", 1))
        .eq("/meta/page/next", Value::Null)
        .check(gather("pages", "/data"))
        .check(gathered("pages", MEMBERS)),
        call(list, "GET", memberships.clone(), 200)
            .ids("/data", MEMBERS)
            .eq("/meta/page/next", Value::Null),
        // group-member-status: the bare GroupMemberStatus.
        status_of("m1").eq("", json!({"is_member": true})),
        status_of("lone").eq("", json!({"is_member": false})),
        status_of("shared").eq("", json!({"is_member": false})),
        call(
            member_status,
            "GET",
            format!("{V2}/{{unknown}}/group-member-status"),
            404,
        ),
        // Remove, then upsert: the member list becomes exactly the one given.
        call(remove, "POST", format!("{memberships}/remove"), 204)
            .json(json!({"members": [{"id": "{m5}"}]})),
        call(list, "GET", memberships.clone(), 200).ids("/data", &["m1", "m2", "m3", "m4"]),
        status_of("m5").eq("", json!({"is_member": false})),
        call(upsert, "PUT", memberships.clone(), 204)
            .json(json!({"members": [{"id": "{m1}"}, {"id": "{lone}"}]})),
        call(list, "GET", memberships.clone(), 200)
            .ids("/data", &["m1", "lone"])
            .eq("/meta/page/total", json!(2)),
        status_of("m2").eq("", json!({"is_member": false})),
        status_of("lone").eq("", json!({"is_member": true})),
        call(upsert, "PUT", memberships.clone(), 204).json(json!({"members": []})),
        call(list, "GET", memberships.clone(), 200).ids("/data", &[]),
        // Refusals.
        call(
            add,
            "POST",
            format!("{V2}/{{unknown}}/group-memberships/add"),
            404,
        )
        .json(json!({"members": [{"id": "{m1}"}]})),
        call(
            list,
            "GET",
            format!("{V2}/{{unknown}}/group-memberships"),
            404,
        ),
        call(add, "POST", format!("{memberships}/add"), 400)
            .json(json!({"members": "m1"}))
            .invalid()
            .check(names_invalid_parameter("members")),
        call(add, "POST", format!("{memberships}/add"), 400)
            .json(json!({}))
            .invalid()
            .check(names_invalid_parameter("members")),
        call(upsert, "PUT", memberships.clone(), 400)
            .json(json!({"members": [{"name": "m1"}]}))
            .invalid()
            .check(names_invalid_parameter("id")),
        call(remove, "POST", format!("{memberships}/remove"), 400)
            .raw("application/json", "[")
            .invalid(),
        call(
            list,
            "GET",
            format!("{memberships}?filter[name][eq]=m1"),
            400,
        )
        .invalid()
        .check(names_invalid_parameter("filter")),
        call(list, "GET", format!("{memberships}?page[size]=x"), 400)
            .invalid()
            .check(names_invalid_parameter("page[size]")),
        call(
            list,
            "GET",
            format!("{memberships}?page[after]=not-a-cursor"),
            400,
        )
        .check(names_invalid_parameter("page[after]")),
    ]);
    steps
}

const UUID_BLUE: &str = "5d9a9b7e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
const UUID_YELLOW: &str = "6e0b0c8f-2d3e-4f40-9b0c-1d2e3f4a5b6c";

fn config_with(services: &[(&str, Option<&str>)]) -> String {
    let mut s = String::from("_format_version: \"3.0\"\nservices:\n");
    for (name, id) in services {
        s.push_str(&format!("- name: {name}\n  host: {name}.internal\n"));
        if let Some(id) = id {
            s.push_str(&format!("  id: {id}\n"));
        }
    }
    s
}

fn put_config(key: &str, yaml: String) -> Step {
    extension("PUT", format!("{V2}/{{{key}}}/config"), 200).raw("application/yaml", yaml)
}

/// Groundwork: a control plane saved as `{name}`.
fn create(name: &'static str, cluster_type: &str) -> Step {
    call("create-control-plane", "POST", V2, 201)
        .json(json!({"name": name, "cluster_type": cluster_type}))
        .save(name, "/id")
        .setup()
}

fn add_members(composite: &str, members: &[&str]) -> Step {
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({"id": format!("{{{m}}}")}))
        .collect();
    call(
        "post-control-planes-id-group-memberships-add",
        "POST",
        format!("{V2}/{{{composite}}}/group-memberships/add"),
        204,
    )
    .json(json!({"members": members}))
    .setup()
}

/// The GroupConflict entries of `/item/conflicts` for `name`, one per member
/// (`cluster_id`), each with the entity's UUID (`id`: given, or a v5 UUID) and
/// Konnect's description.
fn conflict_entries(
    name: &'static str,
    expected: &'static [(&'static str, Option<&'static str>)],
) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |ctx, r| {
        let conflicts = r.list("/item/conflicts")?;
        let mut errors = Vec::new();
        for (member, id) in expected {
            let cluster = ctx.get(member)?;
            // This member's entry for the entity: by its id, or its name
            // anywhere in the description.
            let entries: Vec<&Value> = conflicts
                .iter()
                .filter(|c| {
                    c["cluster_id"] == cluster
                        && (id.is_some_and(|id| c["resource"]["id"] == id)
                            || c["description"].as_str().is_some_and(|d| d.contains(name)))
                })
                .collect();
            if entries.len() != 1 {
                errors.push(format!(
                    "{} entries for {name} with cluster_id = {member}, expected one",
                    entries.len()
                ));
                continue;
            }
            let e = entries[0];
            let rid = e["resource"]["id"].as_str().unwrap_or("");
            match id {
                Some(id) if rid != *id => errors.push(format!(
                    "{name} in {member}: resource.id is {rid:?}, expected the entity's id {id}"
                )),
                None if !(rid.len() == 36 && rid.as_bytes()[14] == b'5') => errors.push(format!(
                    "{name} in {member} (no id in its file): resource.id is {rid:?}, expected a v5 UUID"
                )),
                _ => {}
            }
            let want_id = id.unwrap_or(rid);
            let want = format!("conflicting entity found: ID={want_id}, Name={name}");
            if e["description"] != want.as_str() {
                errors.push(format!(
                    "description is {}, expected {want:?}",
                    e["description"]
                ));
            }
            if e["resource"]["type"] != "service" {
                errors.push(format!(
                    "resource.type is {}, expected \"service\"",
                    e["resource"]["type"]
                ));
            }
        }
        ensure(errors.is_empty(), || errors.join("; "))
    }
}

fn group_status_steps() -> Vec<Step> {
    let status = "get-control-planes-id-group-status";
    let cp = "CLUSTER_TYPE_CONTROL_PLANE";
    let cpg = "CLUSTER_TYPE_CONTROL_PLANE_GROUP";
    let big: Vec<(String, Option<&str>)> =
        (0..300).map(|i| (format!("svc-{i:03}"), None)).collect();
    let big: Vec<(&str, Option<&str>)> = big.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    vec![
        create("blue", cp),
        create("yellow", cp),
        create("shared", cpg),
        create("calm", cpg),
        create("big", cpg),
        create("big1", cp),
        create("big2", cp),
        put_config(
            "blue",
            config_with(&[("example_service", Some(UUID_BLUE)), ("noid", None)]),
        ),
        put_config(
            "yellow",
            config_with(&[("example_service", Some(UUID_YELLOW)), ("noid", None)]),
        ),
        add_members("shared", &["blue", "yellow"]),
        call(status, "GET", format!("{V2}/{{shared}}/group-status"), 200)
            .eq("/item/id", json!("{shared}"))
            .eq("/item/state", json!("CONFLICT"))
            .check(conflict_entries(
                "example_service",
                &[("blue", Some(UUID_BLUE)), ("yellow", Some(UUID_YELLOW))],
            ))
            .check(conflict_entries(
                "noid",
                &[("blue", None), ("yellow", None)],
            ))
            .check(count("/item/conflicts", 4))
            .check(|ctx, r| {
                ctx.set("conflicts", &r.at("/item/conflicts")?.to_string());
                Ok(())
            }),
        // Stable: the same UUIDs every time.
        call(status, "GET", format!("{V2}/{{shared}}/group-status"), 200).check(|ctx, r| {
            let before = ctx.get("conflicts")?;
            let now = r.at("/item/conflicts")?.to_string();
            ensure(before == now, || {
                "the conflicts changed between two reads".into()
            })
        }),
        // At most 256, as Konnect.
        put_config("big1", config_with(&big)),
        put_config("big2", config_with(&big)),
        add_members("big", &["big1", "big2"]),
        call(status, "GET", format!("{V2}/{{big}}/group-status"), 200)
            .eq("/item/state", json!("CONFLICT"))
            .check(|_, r| {
                let n = r.list("/item/conflicts")?.len();
                ensure((1..=256).contains(&n), || {
                    format!("{n} conflicts listed, at most 256 expected")
                })
            }),
        // No conflict.
        call(status, "GET", format!("{V2}/{{calm}}/group-status"), 200)
            .eq("/item/state", json!("OK"))
            .check(|_, r| {
                let n = r
                    .json
                    .as_ref()
                    .and_then(|j| j.pointer("/item/conflicts"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                ensure(n == 0, || {
                    format!("{n} conflicts in a composite without members")
                })
            }),
        call(status, "GET", format!("{V2}/{{unknown}}/group-status"), 404),
    ]
}

const NODE_1: &str = "0f6e1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b";
const NODE_2: &str = "1a7f2b3c-4d5e-4f60-9b7c-8d9e0f1a2b3c";
const NODE_3: &str = "2b803c4d-5e6f-4071-8c8d-9e0f1a2b3c4d";

/// The heartbeat (ours): a data plane node reports itself.
fn heartbeat(node: &str, hostname: &str, version: &str, hash: &str) -> Step {
    extension("POST", format!("{V2}/{{shared}}/nodes"), 200).json(json!({
        "id": node, "hostname": hostname, "ip": "10.0.0.1", "version": version, "config_hash": hash
    }))
}

/// The fields issue 12 names for a node record, at `pointer`.
fn node_fields(pointer: &'static str) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |_, r| {
        let mut errors = Vec::new();
        let node = r.at(pointer)?;
        for f in ["id", "version", "hostname", "type", "config_hash"] {
            if !node[f].is_string() {
                errors.push(format!("{pointer}/{f} is {}, expected a string", node[f]));
            }
        }
        for f in ["last_ping", "created_at", "updated_at"] {
            if let Err(e) = unix_seconds_at(r, &format!("{pointer}/{f}")) {
                errors.push(e);
            }
        }
        if !node["compatibility_status"].is_object() {
            errors.push(format!(
                "{pointer}/compatibility_status is {}, expected an object (state, issues)",
                node["compatibility_status"]
            ));
        }
        ensure(errors.is_empty(), || errors.join("; "))
    }
}

fn node_steps() -> Vec<Step> {
    let nodes = format!("{V2}/{{shared}}/nodes");
    let list = "list-dataplane-nodes";
    vec![
        create("shared", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"),
        create("blue", "CLUSTER_TYPE_CONTROL_PLANE"),
        put_config("blue", config_with(&[("example_service", None)])),
        add_members("shared", &["blue"]),
        extension("GET", format!("{V2}/{{shared}}/snapshot"), 200).check(|ctx, r| {
            let etag = r.header("etag").ok_or("no ETag")?;
            ctx.set("hash", etag.trim_matches('"'));
            // What a hybrid data plane pings: Kong's config hash of the snapshot.
            let body = r.at("")?;
            ctx.set("kong_hash", &rgmerge::cluster::hash::config_hash(body).0);
            Ok(())
        }),
        heartbeat(NODE_1, "dp-1", "3.10.0.1", "{hash}"),
        heartbeat(NODE_2, "dp-2", "2.8.4.14", "0123456789abcdef"),
        heartbeat(NODE_3, "dp-3", "3.9.1.0", "{hash}"),
        call(list, "GET", nodes.clone(), 200)
            .check(count("/items", 3))
            .eq("/page/total_count", json!(3))
            .check(node_fields("/items/0"))
            .check(node_fields("/items/1"))
            .check(node_fields("/items/2")),
        // The cursor.
        call(list, "GET", format!("{nodes}?page[size]=2"), 200)
            .check(count("/items", 2))
            .eq("/page/total_count", json!(3))
            .check(gather("nodes", "/items"))
            .check(save_cursor("after", "/page/next")),
        call(
            list,
            "GET",
            format!("{nodes}?page[size]=2&page[after]={{after}}"),
            200,
        )
        .check(count("/items", 1))
        .check(no_next("/page/next"))
        .check(gather("nodes", "/items"))
        .check(gathered("nodes", &["n1", "n2", "n3"])),
        call("get-nodes-node_id", "GET", format!("{nodes}/{{n1}}"), 200)
            .eq("/item/id", json!(NODE_1))
            .eq("/item/hostname", json!("dp-1"))
            .eq("/item/version", json!("3.10.0.1"))
            .eq("/item/config_hash", json!("{hash}"))
            .check(node_fields("/item")),
        // Kong 2.8 (LTS) reached its end of life in March 2025.
        call("get-nodes-eol", "GET", format!("{nodes}/eol"), 200)
            .check(|_, r| {
                let items = r.list("/items")?;
                let hit = items.iter().find(|i| i["node_id"] == NODE_2);
                ensure(
                    hit.is_some_and(|i| {
                        i["node_version"] == "2.8.4.14"
                            && i["message"].as_str().is_some_and(|m| !m.is_empty())
                    }),
                    || {
                        format!(
                            "the 2.8 node is not listed with its version and a message: {items:?}"
                        )
                    },
                )
            })
            .check(|_, r| {
                let n = r.list("/items")?.len();
                ensure(r.at("/page/total_count")? == &json!(n), || {
                    "page.total_count is not the number of items".into()
                })
            }),
        call(
            "get-expected-config-hash",
            "GET",
            format!("{V2}/{{shared}}/expected-config-hash"),
            200,
        )
        .eq("/expected_hash", json!("{kong_hash}"))
        .unix_seconds("/created_at")
        .unix_seconds("/updated_at"),
        call(
            "delete-nodes-node_id",
            "DELETE",
            format!("{nodes}/{{n3}}"),
            204,
        ),
        call(list, "GET", nodes.clone(), 200)
            .check(count("/items", 2))
            .eq("/page/total_count", json!(2)),
        // Heartbeats keep their sync status and ip, as fields the schema allows.
        call(list, "GET", nodes, 200).check(|_, r| {
            let items = r.list("/items")?;
            ensure(items.iter().all(|i| i.get("ip").is_some()), || {
                "a node lost its ip".into()
            })
        }),
    ]
}

fn certificate_steps() -> Vec<Step> {
    let mut steps = vec![
        create("blue", "CLUSTER_TYPE_CONTROL_PLANE"),
        create("shared", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"),
    ];
    for group in ["blue", "shared"] {
        steps.extend(certificate_steps_for(group));
    }
    steps.push(restart());
    for group in ["blue", "shared"] {
        steps.extend(certificates_after_restart(group));
    }
    steps.push(call(
        "list-dp-client-certificates",
        "GET",
        format!("{V2}/{{unknown}}/dp-client-certificates"),
        404,
    ));
    steps
}

fn certificate_steps_for(group: &'static str) -> Vec<Step> {
    let certs = format!("{V2}/{{{group}}}/dp-client-certificates");
    let list = "list-dp-client-certificates";
    let create = "create-dataplane-certificate";
    let get = "get-dataplane-certificate";
    let key1: &'static str = if group == "blue" {
        "blue_cert1"
    } else {
        "shared_cert1"
    };
    let key2: &'static str = if group == "blue" {
        "blue_cert2"
    } else {
        "shared_cert2"
    };
    let same_pem = |pointer: &'static str, pem: &'static str| {
        move |ctx: &mut Ctx, r: &Reply| {
            let got = r.at(pointer)?.as_str().unwrap_or("").trim().to_string();
            let want = ctx.get(pem)?.trim().to_string();
            ensure(got == want, || format!("{pointer} is not the PEM uploaded"))
        }
    };
    vec![
        call(list, "GET", certs.clone(), 200)
            .check(count("/items", 0))
            .eq("/page/total_count", json!(0)),
        call(create, "POST", certs.clone(), 201)
            .json(json!({"cert": "{pem1}", "title": "dp-eu"}))
            .save(key1, "/item/id")
            .eq("/item/title", json!("dp-eu"))
            .unix_seconds("/item/created_at")
            .unix_seconds("/item/updated_at")
            .check(same_pem("/item/cert", "pem1")),
        call(create, "POST", certs.clone(), 201)
            .json(json!({"cert": "{pem2}"}))
            .save(key2, "/item/id")
            .check(same_pem("/item/cert", "pem2")),
        call(list, "GET", certs.clone(), 200)
            .ids(
                "/items",
                if group == "blue" {
                    &["blue_cert1", "blue_cert2"]
                } else {
                    &["shared_cert1", "shared_cert2"]
                },
            )
            .eq("/page/total_count", json!(2)),
        call(get, "GET", format!("{certs}/{{{key1}}}"), 200)
            .eq("/item/id", json!(format!("{{{key1}}}")))
            .check(same_pem("/item/cert", "pem1")),
        // The PEM is checked on upload.
        call(create, "POST", certs.clone(), 400).json(json!({"cert": "not a certificate"})),
        call(create, "POST", certs.clone(), 400).json(json!({
            "cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        })),
        call(create, "POST", certs.clone(), 400)
            .json(json!({"title": "no cert"}))
            .invalid(),
        call(get, "GET", format!("{certs}/{{unknown}}"), 404),
    ]
}

/// Stored durably: the certificates outlive a restart; then delete one.
fn certificates_after_restart(group: &'static str) -> Vec<Step> {
    let certs = format!("{V2}/{{{group}}}/dp-client-certificates");
    let (key1, key2): (&'static str, &'static str) = if group == "blue" {
        ("blue_cert1", "blue_cert2")
    } else {
        ("shared_cert1", "shared_cert2")
    };
    let both: &'static [&'static str] = if group == "blue" {
        &["blue_cert1", "blue_cert2"]
    } else {
        &["shared_cert1", "shared_cert2"]
    };
    let one: &'static [&'static str] = if group == "blue" {
        &["blue_cert1"]
    } else {
        &["shared_cert1"]
    };
    vec![
        call("list-dp-client-certificates", "GET", certs.clone(), 200).ids("/items", both),
        call(
            "delete-dataplane-certificate",
            "DELETE",
            format!("{certs}/{{{key2}}}"),
            204,
        ),
        call(
            "get-dataplane-certificate",
            "GET",
            format!("{certs}/{{{key2}}}"),
            404,
        ),
        call(
            "delete-dataplane-certificate",
            "DELETE",
            format!("{certs}/{{{key2}}}"),
            404,
        ),
        call("list-dp-client-certificates", "GET", certs.clone(), 200)
            .ids("/items", one)
            .eq("/page/total_count", json!(1)),
        call(
            "get-dataplane-certificate",
            "GET",
            format!("{certs}/{{{key1}}}"),
            200,
        ),
    ]
}

/// Errors no operation describes; the daemon runs with a 64 KiB body limit.
fn error_steps() -> Vec<Step> {
    vec![
        create("blue", "CLUSTER_TYPE_CONTROL_PLANE"),
        create("shared", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"),
        problem("GET", "/v2/nope", 404),
        problem("GET", format!("{V2}/{{blue}}/nope"), 404),
        problem("PUT", format!("{V2}/{{blue}}"), 405),
        problem("DELETE", V2, 405),
        problem("POST", format!("{V2}/{{shared}}/group-status"), 405),
        problem("DELETE", format!("{V2}/{{shared}}/group-memberships"), 405),
        problem("PATCH", format!("{V2}/{{blue}}/dp-client-certificates"), 405),
        // Over --max-body-bytes: 413, as problem+json too. (No operation
        // lists 413; the limit is the transport's, before any operation.)
        problem("POST", V2, 413).json(json!({"name": "huge", "description": "x".repeat(70_000)})),
        problem(
            "POST",
            format!("{V2}/{{shared}}/group-memberships/remove"),
            413,
        )
        .json(json!({"members": (0..3000).map(|i| json!({"id": format!("{i:036}")})).collect::<Vec<_>>()})),
    ]
}

/// Ours, at paths the spec does not use; they keep working.
fn extension_steps() -> Vec<Step> {
    let blue_yaml = config_with(&[("example_service", None)]);
    vec![
        create("blue", "CLUSTER_TYPE_CONTROL_PLANE"),
        create("shared", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"),
        add_members("shared", &["blue"]),
        extension("PUT", format!("{V2}/{{blue}}/config?dry_run=true"), 200)
            .raw("application/yaml", blue_yaml.clone())
            .check(|_, r| {
                ensure(r.at("/dry_run")? == &json!(true), || {
                    "dry_run is not true".into()
                })
            }),
        put_config("blue", blue_yaml),
        extension("GET", format!("{V2}/{{blue}}/config"), 200).check(|_, r| {
            ensure(
                String::from_utf8_lossy(&r.body).contains("example_service"),
                || "the config read back lacks its service".into(),
            )
        }),
        extension("GET", format!("{V2}/{{shared}}/snapshot"), 200)
            .check(|ctx, r| {
                ctx.set("etag", r.header("etag").ok_or("no ETag")?);
                Ok(())
            })
            .check(|_, r| {
                ensure(
                    r.at("/services/0/name")? == &json!("example_service"),
                    || "the snapshot lacks the member's service".into(),
                )
            }),
        extension("GET", format!("{V2}/{{shared}}/snapshot"), 304)
            .header("if-none-match", "{etag}"),
        extension("GET", format!("{V2}/{{shared}}/snapshot/provenance"), 200),
        heartbeat(NODE_1, "dp-1", "3.10.0.1", "abc"),
        extension("GET", "/healthz", 200),
        extension("GET", "/metrics", 200),
    ]
}

// ---- the tests ----

#[tokio::test]
async fn control_planes() {
    conformance("control_planes", &[], control_plane_steps()).await;
}

#[tokio::test]
async fn group_memberships() {
    conformance("group_memberships", &[], membership_steps()).await;
}

#[tokio::test]
async fn group_status() {
    conformance("group_status", &[], group_status_steps()).await;
}

#[tokio::test]
async fn dp_nodes() {
    conformance("dp_nodes", &[], node_steps()).await;
}

/// Issue 25: every core-entities operation.
#[tokio::test]
async fn core_entities() {
    conformance("core_entities", &[], core_entities::steps()).await;
}

#[tokio::test]
async fn dp_client_certificates() {
    conformance("dp_client_certificates", &[], certificate_steps()).await;
}

#[tokio::test]
async fn errors_outside_operations() {
    conformance(
        "errors_outside_operations",
        &["--max-body-bytes", "65536"],
        error_steps(),
    )
    .await;
}

/// Our extensions keep working beside the spec's operations.
#[tokio::test]
async fn extensions_keep_working() {
    conformance("extensions_keep_working", &[], extension_steps()).await;
}

fn all_tables() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        ("control_planes", control_plane_steps()),
        ("group_memberships", membership_steps()),
        ("group_status", group_status_steps()),
        ("dp_nodes", node_steps()),
        ("dp_client_certificates", certificate_steps()),
        ("errors_outside_operations", error_steps()),
        ("extensions_keep_working", extension_steps()),
        ("core_entities", core_entities::steps()),
    ]
}

/// Every operation issue 12 names, by `operationId`.
const ISSUE_OPERATIONS: &[&str] = &[
    "list-control-planes",
    "create-control-plane",
    "get-control-plane",
    "update-control-plane",
    "delete-control-plane",
    "get-control-planes-id-group-memberships",
    "put-control-planes-id-group-memberships",
    "post-control-planes-id-group-memberships-add",
    "post-control-planes-id-group-memberships-remove",
    "get-control-planes-id-group-member-status",
    "get-control-planes-id-group-status",
    "list-dataplane-nodes",
    "get-nodes-node_id",
    "delete-nodes-node_id",
    "get-nodes-eol",
    "get-expected-config-hash",
    "list-dp-client-certificates",
    "create-dataplane-certificate",
    "get-dataplane-certificate",
    "delete-dataplane-certificate",
];

/// Runs without a daemon, always: the tables speak the spec (operations,
/// statuses, request bodies and queries), every operation of the issue is
/// covered, and the schema translation accepts the spec's own examples and
/// refuses what the spec forbids.
#[test]
fn the_tables_speak_the_spec() {
    let Some(specs) = Specs::load("the_tables_speak_the_spec") else {
        return;
    };
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (table, steps) in all_tables() {
        for step in &steps {
            if let Kind::Spec(id) | Kind::Error(id) = step.kind {
                used.insert(id);
            }
            for p in table_problems(&specs, step) {
                problems.push(format!("{table}: {p}"));
            }
        }
    }
    // Every operation of both specs is served: each is called.
    for spec in &specs.all {
        for op in spec.operations() {
            if !used.contains(op.id) {
                problems.push(format!("no step exercises {} ({})", op.id, op.label()));
            }
        }
    }
    for id in ISSUE_OPERATIONS {
        if specs.by_id(id).is_none() {
            problems.push(format!("the specs have no operation {id}"));
        }
        if !used.contains(id) {
            problems.push(format!("no step exercises {id}"));
        }
    }
    // Every response schema of the operations used converts and compiles,
    // and every example the spec gives for it validates.
    for id in &used {
        let op = specs.by_id(id).expect("checked above");
        for status in op.statuses() {
            let Ok(code) = status.parse::<u16>() else {
                continue;
            };
            let (resp, _) = op.response(code).expect("listed");
            for media in op.response_media_types(code) {
                let schema = match op.response_schema(code, &media) {
                    Ok(Some(s)) => s,
                    Ok(None) => continue,
                    Err(e) => {
                        problems.push(e);
                        continue;
                    }
                };
                if let Err(e) = jsonschema::draft202012::new(&schema) {
                    problems.push(format!("{id} {code} {media}: schema does not compile: {e}"));
                }
                let examples = resp["content"][&media]["examples"].as_object();
                for (name, ex) in examples.into_iter().flatten() {
                    let value = &op.spec.deref(ex)["value"];
                    for e in validate(&schema, value) {
                        problems.push(format!("{id} {code} example {name}: {e}"));
                    }
                }
            }
        }
    }
    // The translation: extra properties refused, nullable honoured.
    let cp = specs.control_planes();
    let control_plane = cp.schema("ControlPlane").expect("ControlPlane");
    let example = cp
        .pointer("#/components/examples/ControlPlaneExample/value")
        .expect("example")
        .clone();
    let mut extra = example.clone();
    extra["is_default"] = json!(true);
    let mut null_description = example.clone();
    null_description["description"] = Value::Null;
    let cursor = cp.schema("CursorMetaWithSizeAndTotal").expect("cursor");
    let rule = cp.schema("InvalidParameterStandard").expect("standard");
    let cases = [
        (&control_plane, example, true, "ControlPlaneExample"),
        (&control_plane, extra, false, "ControlPlane + is_default"),
        (
            &control_plane,
            null_description,
            false,
            "ControlPlane, null description",
        ),
        (
            &cursor,
            json!({"size": 2, "next": null}),
            true,
            "next: null (nullable)",
        ),
        (
            &cursor,
            json!({"size": 2}),
            false,
            "next missing (required)",
        ),
        (
            &rule,
            json!({"field": "a", "reason": "b", "rule": null}),
            true,
            "rule: null (nullable enum)",
        ),
        (
            &rule,
            json!({"field": "a", "reason": "b", "rule": "nope"}),
            false,
            "rule outside the enum",
        ),
    ];
    for (schema, value, valid, what) in cases {
        let errors = validate(schema, &value);
        if errors.is_empty() != valid {
            problems.push(format!(
                "translation: {what}: expected valid={valid}, got {errors:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

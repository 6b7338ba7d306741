//! Kong Gateway 3.10's field rules for core entities, as one table of data
//! (`FIELD_RULES`: collection, field, check, Kong's name for it, and a value
//! that passes and one that fails — the unit tests run every row), and the
//! rules across fields that a table row cannot say (`check_entity`).
//!
//! Sources: `kong/db/schema/typedefs.lua` and `kong/db/schema/entities/*.lua`.
//! A field holding a `{vault://…}` reference is only resolved by Kong at run
//! time, so its format is not checked here.

use std::sync::OnceLock;

use crate::config::value::get_field;
use serde_json::{Map, Value};

use super::formats;
use super::plugins::ALL_PROTOCOLS;
use crate::config::schema::Coll;

/// What a field's value must satisfy (its JSON type is checked before).
#[derive(Debug)]
pub enum Check {
    /// A string, one of these.
    OneOf(&'static [&'static str]),
    /// An integer, one of these.
    IntOneOf(&'static [i64]),
    /// An integer in this range (inclusive).
    Between(i64, i64),
    /// A string of this format.
    Fmt(fn(&str) -> Result<(), String>),
    /// A list whose string elements are each one of these.
    EachOneOf(&'static [&'static str]),
    /// A list whose string elements each have this format.
    EachFmt(fn(&str) -> Result<(), String>),
}

/// One row of the table.
#[derive(Debug)]
pub struct FieldRule {
    pub coll: Coll,
    pub field: &'static str,
    pub check: Check,
    /// Kong's name for the rule (`typedefs.port`, `one_of`, …).
    pub kong: &'static str,
    /// A value (JSON) that passes, and one that fails.
    pub pass: &'static str,
    pub fail: &'static str,
}

const fn row(
    coll: Coll,
    field: &'static str,
    check: Check,
    kong: &'static str,
    pass: &'static str,
    fail: &'static str,
) -> FieldRule {
    FieldRule {
        coll,
        field,
        check,
        kong,
        pass,
        fail,
    }
}

const TIMEOUT_MAX: i64 = 2_147_483_646;

/// Protocols a service may use (`typedefs.protocol`).
pub const SERVICE_PROTOCOLS: &[&str] = ALL_PROTOCOLS;
pub const HASH_ON: &[&str] = &[
    "none",
    "consumer",
    "ip",
    "header",
    "cookie",
    "path",
    "query_arg",
    "uri_capture",
];
pub const ALGORITHMS: &[&str] = &[
    "consistent-hashing",
    "least-connections",
    "round-robin",
    "latency",
];
pub const JWT_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
    "PS384", "PS512", "EdDSA",
];

use Check::*;
use Coll as C;

/// The table. Rows of one collection are together, in Kong's field order.
pub static FIELD_RULES: &[FieldRule] = &[
    // services
    row(
        C::Services,
        "name",
        Fmt(formats::utf8_name),
        "typedefs.utf8_name",
        r#""orders-v1""#,
        r#""my orders""#,
    ),
    row(
        C::Services,
        "protocol",
        OneOf(SERVICE_PROTOCOLS),
        "typedefs.protocol",
        r#""https""#,
        r#""ftp""#,
    ),
    row(
        C::Services,
        "host",
        Fmt(formats::host),
        "typedefs.host",
        r#""orders.internal""#,
        r#""orders.internal:80""#,
    ),
    row(
        C::Services,
        "port",
        Between(0, 65535),
        "typedefs.port",
        "8080",
        "70000",
    ),
    row(
        C::Services,
        "path",
        Fmt(formats::service_path),
        "typedefs.path",
        r#""/v1""#,
        r#""v1""#,
    ),
    row(
        C::Services,
        "retries",
        Between(0, 32767),
        "between 0 32767",
        "5",
        "-1",
    ),
    row(
        C::Services,
        "connect_timeout",
        Between(1, TIMEOUT_MAX),
        "nonzero timeout",
        "60000",
        "0",
    ),
    row(
        C::Services,
        "read_timeout",
        Between(1, TIMEOUT_MAX),
        "nonzero timeout",
        "60000",
        "0",
    ),
    row(
        C::Services,
        "write_timeout",
        Between(1, TIMEOUT_MAX),
        "nonzero timeout",
        "60000",
        "2147483647",
    ),
    row(
        C::Services,
        "tls_verify_depth",
        Between(0, 64),
        "between 0 64",
        "4",
        "65",
    ),
    row(
        C::Services,
        "ca_certificates",
        EachFmt(uuid),
        "array of uuid",
        r#"["00000000-0000-4000-8000-000000000001"]"#,
        r#"["my-ca"]"#,
    ),
    row(
        C::Services,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // routes
    row(
        C::Routes,
        "name",
        Fmt(formats::utf8_name),
        "typedefs.utf8_name",
        r#""orders""#,
        r#""my orders""#,
    ),
    row(
        C::Routes,
        "protocols",
        EachOneOf(ALL_PROTOCOLS),
        "typedefs.protocol",
        r#"["http","https"]"#,
        r#"["ftp"]"#,
    ),
    row(
        C::Routes,
        "methods",
        EachFmt(formats::http_method),
        "typedefs.http_method",
        r#"["GET"]"#,
        r#"["get"]"#,
    ),
    row(
        C::Routes,
        "hosts",
        EachFmt(formats::route_host),
        "typedefs.hosts",
        r#"["*.example.com"]"#,
        r#"["a.*.com"]"#,
    ),
    row(
        C::Routes,
        "paths",
        EachFmt(formats::route_path),
        "typedefs.router_path",
        r#"["/orders","~/v\\d+/orders$"]"#,
        r#"["orders"]"#,
    ),
    row(
        C::Routes,
        "snis",
        EachFmt(formats::wildcard_host),
        "typedefs.wildcard_host",
        r#"["*.example.com"]"#,
        r#"["10.0.0.1"]"#,
    ),
    row(
        C::Routes,
        "https_redirect_status_code",
        IntOneOf(&[426, 301, 302, 307, 308]),
        "one_of",
        "301",
        "303",
    ),
    row(
        C::Routes,
        "path_handling",
        OneOf(&["v0", "v1"]),
        "one_of",
        r#""v0""#,
        r#""v2""#,
    ),
    row(
        C::Routes,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a/b"]"#,
    ),
    // upstreams
    row(
        C::Upstreams,
        "algorithm",
        OneOf(ALGORITHMS),
        "one_of",
        r#""least-connections""#,
        r#""random""#,
    ),
    row(
        C::Upstreams,
        "hash_on",
        OneOf(HASH_ON),
        "one_of",
        r#""header""#,
        r#""body""#,
    ),
    row(
        C::Upstreams,
        "hash_fallback",
        OneOf(HASH_ON),
        "one_of",
        r#""ip""#,
        r#""body""#,
    ),
    row(
        C::Upstreams,
        "hash_on_header",
        Fmt(formats::header_name),
        "typedefs.header_name",
        r#""x-user""#,
        r#""x user""#,
    ),
    row(
        C::Upstreams,
        "hash_fallback_header",
        Fmt(formats::header_name),
        "typedefs.header_name",
        r#""x-user""#,
        r#""x:user""#,
    ),
    row(
        C::Upstreams,
        "hash_on_cookie",
        Fmt(formats::cookie_name),
        "typedefs.cookie_name",
        r#""session-id""#,
        r#""session id""#,
    ),
    row(
        C::Upstreams,
        "hash_on_cookie_path",
        Fmt(formats::service_path),
        "typedefs.path",
        r#""/""#,
        r#""cookie""#,
    ),
    row(
        C::Upstreams,
        "slots",
        Between(10, 65536),
        "between 10 2^16",
        "10000",
        "5",
    ),
    row(
        C::Upstreams,
        "host_header",
        Fmt(formats::host_with_optional_port),
        "typedefs.host_with_optional_port",
        r#""api.example.com:8443""#,
        r#""api example""#,
    ),
    row(
        C::Upstreams,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // targets
    row(
        C::Targets,
        "target",
        Fmt(formats::target),
        "validate_target",
        r#""10.0.0.1:8080""#,
        r#""10.0.0.1:99999""#,
    ),
    row(
        C::Targets,
        "weight",
        Between(0, 65535),
        "between 0 65535",
        "100",
        "70000",
    ),
    row(
        C::Targets,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // certificates (PEM parsing is in `check_entity`, which also sees the key type)
    row(
        C::Certificates,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // SNIs
    row(
        C::Snis,
        "name",
        Fmt(formats::wildcard_host),
        "typedefs.wildcard_host",
        r#""*.example.com""#,
        r#""example.com:443""#,
    ),
    row(
        C::Snis,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    row(
        C::CaCertificates,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // consumers and consumer groups
    row(
        C::Consumers,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    row(
        C::ConsumerGroups,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // plugins (names, scopes and configs: `plugins`)
    row(
        C::Plugins,
        "instance_name",
        Fmt(formats::utf8_name),
        "typedefs.utf8_name",
        r#""rl-orders""#,
        r#""rl orders""#,
    ),
    row(
        C::Plugins,
        "protocols",
        EachOneOf(ALL_PROTOCOLS),
        "typedefs.protocols",
        r#"["grpc","http"]"#,
        r#"["ftp"]"#,
    ),
    row(
        C::Plugins,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // keys and key sets
    row(
        C::Keys,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    row(
        C::KeySets,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // vaults (the backend `name` depends on the edition: `check_entity`)
    row(
        C::Vaults,
        "prefix",
        Fmt(vault_prefix),
        "match ^[a-z][a-z%d-]-[a-z%d]+$",
        r#""corp-secrets""#,
        r#""Corp_Secrets""#,
    ),
    row(
        C::Vaults,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    // credentials
    row(
        C::JwtSecrets,
        "algorithm",
        OneOf(JWT_ALGORITHMS),
        "one_of",
        r#""RS256""#,
        r#""none""#,
    ),
    row(
        C::Oauth2Credentials,
        "redirect_uris",
        EachFmt(url),
        "typedefs.url",
        r#"["https://app.example.com/cb"]"#,
        r#"["app.example.com/cb"]"#,
    ),
    row(
        C::Oauth2Credentials,
        "client_type",
        OneOf(&["confidential", "public"]),
        "one_of",
        r#""public""#,
        r#""secret""#,
    ),
    row(
        C::KeyauthCredentials,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    row(
        C::Acls,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
    row(
        C::BasicauthCredentials,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a/b"]"#,
    ),
    row(
        C::HmacauthCredentials,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a/b"]"#,
    ),
    row(
        C::JwtSecrets,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a/b"]"#,
    ),
    row(
        C::Oauth2Credentials,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a/b"]"#,
    ),
    row(
        C::MtlsAuthCredentials,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a/b"]"#,
    ),
    row(
        C::Partials,
        "tags",
        EachFmt(formats::tag),
        "typedefs.tags",
        r#"["team-a"]"#,
        r#"["a,b"]"#,
    ),
];

fn uuid(s: &str) -> Result<(), String> {
    uuid::Uuid::try_parse(s)
        .map(|_| ())
        .map_err(|_| "not a UUID: ID associations here are by id".into())
}

fn url(s: &str) -> Result<(), String> {
    formats::url(s).map(|_| ())
}

/// A vault `prefix`: a lower-case letter, then lower-case letters, digits
/// and `-`, ending with a letter or digit; not the name of a vault backend.
fn vault_prefix(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if !ok {
        return Err(
            "a vault prefix is a lower-case letter, then lower-case letters, digits or `-`, ending with a letter or digit".into(),
        );
    }
    if VAULT_BACKENDS_EE.contains(&s) {
        return Err(format!(
            "`{s}` is the name of a vault backend and cannot be a prefix"
        ));
    }
    Ok(())
}

/// Vault backends Kong Gateway ships: OSS has `env` only.
pub const VAULT_BACKENDS_EE: &[&str] = &["env", "aws", "gcp", "hcv", "azure", "conjur", "konnect"];
pub const VAULT_BACKENDS_OSS: &[&str] = &["env"];

/// The rows of one collection.
pub fn field_rules(coll: Coll) -> &'static [&'static FieldRule] {
    static BY_COLL: OnceLock<Vec<Vec<&'static FieldRule>>> = OnceLock::new();
    let table = BY_COLL.get_or_init(|| {
        let mut t: Vec<Vec<&'static FieldRule>> = vec![Vec::new(); Coll::ALL.len()];
        for r in FIELD_RULES {
            t[r.coll as usize].push(r);
        }
        t
    });
    &table[coll as usize]
}

/// Checks one string against a string rule (a `{vault://…}` always passes).
fn check_str(rule: &Check, s: &str) -> Result<(), String> {
    if formats::is_vault_ref(s) {
        return Ok(());
    }
    match rule {
        OneOf(allowed) | EachOneOf(allowed) => {
            if allowed.contains(&s) {
                Ok(())
            } else {
                Err(format!("expected one of: {}", allowed.join(", ")))
            }
        }
        Fmt(f) | EachFmt(f) => f(s),
        _ => Ok(()),
    }
}

/// Checks one value against one rule: every problem, as `(index, reason)`
/// where `index` is the failing list element, if any.
pub fn check_all(rule: &Check, v: &Value, out: &mut Vec<(Option<usize>, String)>) {
    match (rule, v) {
        (EachOneOf(_) | EachFmt(_), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::String(s) = item
                    && let Err(e) = check_str(rule, s)
                {
                    out.push((Some(i), e));
                }
            }
        }
        _ => {
            if let Err(e) = check(rule, v) {
                out.push(e);
            }
        }
    }
}

/// Checks one value against one rule. `Err((index, reason))`: `index` is
/// the first failing list element, if any.
pub fn check(rule: &Check, v: &Value) -> Result<(), (Option<usize>, String)> {
    match (rule, v) {
        (OneOf(_) | Fmt(_), Value::String(s)) => check_str(rule, s).map_err(|e| (None, e)),
        (EachOneOf(_) | EachFmt(_), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::String(s) = item {
                    check_str(rule, s).map_err(|e| (Some(i), e))?;
                }
            }
            Ok(())
        }
        (Between(lo, hi), Value::Number(n)) => match n.as_i64() {
            Some(x) if (*lo..=*hi).contains(&x) => Ok(()),
            // Not an integer: the type check said so.
            None if !n.is_u64() => Ok(()),
            _ => Err((None, format!("value should be between {lo} and {hi}"))),
        },
        (IntOneOf(allowed), Value::Number(n)) => match n.as_i64() {
            Some(x) if allowed.contains(&x) => Ok(()),
            _ => Err((
                None,
                format!(
                    "expected one of: {}",
                    allowed
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        },
        // A value of the wrong JSON type was already reported.
        _ => Ok(()),
    }
}

/// Where an entity-level problem is: a field (or `field[i]`) below the
/// entity, or the entity itself (`""`).
pub type Sink<'a> = dyn FnMut(&str, String) + 'a;

fn s<'a>(obj: &'a Map<String, Value>, f: &str) -> Option<&'a str> {
    get_field(obj, f).and_then(Value::as_str)
}

/// Set and not empty (`null`, `""`, `[]` and `{}` count as unset, as in Kong).
pub fn set(obj: &Map<String, Value>, f: &str) -> bool {
    match get_field(obj, f) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// A route's protocols, as Kong's route subschemas group them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum RouteKind {
    Http,
    Stream,
    Passthrough,
    Grpc,
    Ws,
}

fn route_kind(p: &str) -> Option<RouteKind> {
    Some(match p {
        "http" | "https" => RouteKind::Http,
        "tcp" | "tls" | "udp" => RouteKind::Stream,
        "tls_passthrough" => RouteKind::Passthrough,
        "grpc" | "grpcs" => RouteKind::Grpc,
        "ws" | "wss" => RouteKind::Ws,
        _ => return None,
    })
}

/// Routes: protocols from one family, and the matching fields each family
/// allows and needs (`routes_subschemas.lua`); `headers`, `sources` and
/// `destinations` shapes.
pub fn check_route(obj: &Map<String, Value>, oss: bool, err: &mut Sink<'_>) {
    let default = [Value::from("http"), Value::from("https")];
    let protocols: &[Value] = match get_field(obj, "protocols") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            err("protocols", "`protocols` must not be empty".into());
            return;
        }
        Some(Value::Null) | None => &default,
        Some(_) => return,
    };
    let mut kind = None;
    for (i, p) in protocols.iter().enumerate() {
        let Some(k) = p.as_str().and_then(route_kind) else {
            return; // reported by the field rule
        };
        if oss && k == RouteKind::Ws {
            err(
                &format!("protocols[{i}]"),
                "WebSocket routes (`ws`, `wss`) need Kong Gateway Enterprise; the target is OSS"
                    .into(),
            );
        }
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                err(
                    "protocols",
                    "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp'), ('tls_passthrough'), ('grpc', 'grpcs'), ('ws', 'wss')".into(),
                );
                return;
            }
            _ => {}
        }
    }
    let Some(kind) = kind else { return };
    let has = |p: &str| protocols.iter().any(|v| v.as_str() == Some(p));
    check_headers(obj, err);
    for f in ["sources", "destinations"] {
        check_endpoints(obj, f, err);
    }
    // The expressions router's `validate_route`: an expression replaces
    // the matching fields, which `priority` does not go with.
    let matching = MATCHING.iter().any(|f| set(obj, f));
    let nonzero = |f: &str| get_field(obj, f).is_some_and(|v| v.as_i64().is_some_and(|n| n != 0));
    if set(obj, "expression") {
        if matching {
            err(
                "",
                "Router Expression failed validation: cannot set 'expression' with 'methods', \
                 'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations' simultaneously"
                    .into(),
            );
        }
        if nonzero("regex_priority") {
            err(
                "regex_priority",
                "Router Expression failed validation: cannot set 'regex_priority' with \
                 'expression' simultaneously"
                    .into(),
            );
        }
        return;
    }
    if matching && nonzero("priority") {
        err(
            "priority",
            "Router Expression failed validation: cannot set 'priority' with 'methods', \
             'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations' simultaneously"
                .into(),
        );
    }
    let family = match kind {
        RouteKind::Http => "http, https",
        RouteKind::Stream => "tcp, tls, udp",
        RouteKind::Passthrough => "tls_passthrough",
        RouteKind::Grpc => "grpc, grpcs",
        RouteKind::Ws => "ws, wss",
    };
    let forbid = |fields: &[&str], err: &mut Sink<'_>| {
        for f in fields {
            if set(obj, f) {
                err(
                    f,
                    format!("`{f}` cannot be set on a route whose protocols are {family}"),
                );
            }
        }
    };
    let need = |fields: &[&str], err: &mut Sink<'_>| {
        if !fields.iter().any(|f| set(obj, f)) {
            err(
                "",
                format!(
                    "with protocols {family}, needs at least one of: {} (Kong matches requests on them)",
                    fields
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    };
    if set(obj, "snis")
        && !["https", "grpcs", "tls", "tls_passthrough", "wss"]
            .iter()
            .any(|p| has(p))
    {
        err(
            "snis",
            "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls', 'tls_passthrough' or 'wss'".into(),
        );
    }
    match kind {
        RouteKind::Http | RouteKind::Ws => {
            forbid(&["sources", "destinations"], err);
            if has("https") || has("wss") {
                need(&["methods", "hosts", "headers", "paths", "snis"], err);
            } else {
                need(&["methods", "hosts", "headers", "paths"], err);
            }
        }
        RouteKind::Grpc => {
            forbid(&["methods", "sources", "destinations"], err);
            if get_field(obj, "strip_path") == Some(&Value::Bool(true)) {
                err(
                    "strip_path",
                    "`strip_path` cannot be true on a route whose protocols are grpc, grpcs".into(),
                );
            }
            if has("grpcs") {
                need(&["hosts", "headers", "paths", "snis"], err);
            } else {
                need(&["hosts", "headers", "paths"], err);
            }
        }
        RouteKind::Stream => {
            forbid(&["methods", "hosts", "paths", "headers"], err);
            need(&["sources", "destinations", "snis"], err);
        }
        RouteKind::Passthrough => {
            forbid(&["methods", "hosts", "paths", "headers"], err);
            need(&["snis"], err);
        }
    }
}

fn check_headers(obj: &Map<String, Value>, err: &mut Sink<'_>) {
    let Some(Value::Object(h)) = get_field(obj, "headers") else {
        return;
    };
    for (name, values) in h {
        let at = format!("headers.{}", clip_key(name));
        if let Err(e) = formats::header_name(name) {
            err(&at, e);
        } else if name.eq_ignore_ascii_case("host") {
            err(
                &at,
                "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
                    .into(),
            );
        }
        let regexes: Vec<&str> = match values {
            Value::Array(a) if a.iter().all(Value::is_string) => {
                a.iter().filter_map(Value::as_str).collect()
            }
            Value::String(s) => vec![s.as_str()],
            _ => {
                err(&at, "a header's values must be a list of strings".into());
                Vec::new()
            }
        };
        // A `~*` value is a regex Kong's router compiles with PCRE2.
        for re in regexes.into_iter().filter_map(|v| v.strip_prefix("~*")) {
            if let Err(e) = super::pcre::check(re) {
                err(&at, format!("invalid regex: '{re}' ({e})"));
            }
        }
    }
}

fn check_endpoints(obj: &Map<String, Value>, f: &str, err: &mut Sink<'_>) {
    let Some(Value::Array(items)) = get_field(obj, f) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("{f}[{i}]");
        let Value::Object(o) = item else {
            err(&at, "must be a mapping with `ip` and/or `port`".into());
            continue;
        };
        if !set(o, "ip") && !set(o, "port") {
            err(
                &at,
                "at least one of these fields must be non-empty: 'ip', 'port'".into(),
            );
        }
        match o.get("ip") {
            Some(Value::String(ip)) => {
                if let Err(e) = formats::ip_or_cidr(ip) {
                    err(&format!("{at}.ip"), e);
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => err(&format!("{at}.ip"), "must be a string".into()),
        }
        match o.get("port") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|p| (0..=65535).contains(&p)) => {}
            None | Some(Value::Null) => {}
            Some(_) => err(
                &format!("{at}.port"),
                "value should be between 0 and 65535".into(),
            ),
        }
        for k in o.keys() {
            if k != "ip" && k != "port" {
                err(&format!("{at}.{}", clip_key(k)), "unknown field".into());
            }
        }
    }
}

/// Services: the `url` shorthand, and `path` only on HTTP protocols.
pub fn check_service(obj: &Map<String, Value>, oss: bool, err: &mut Sink<'_>) {
    let mut protocol = s(obj, "protocol").map(str::to_string);
    if let Some(u) = s(obj, "url")
        && !formats::is_vault_ref(u)
    {
        match formats::url(u) {
            Err(e) => err("url", e),
            Ok(parsed) => {
                if !SERVICE_PROTOCOLS.contains(&parsed.scheme) {
                    err(
                        "url",
                        format!(
                            "the url's scheme `{}` is not a protocol Kong proxies to (expected one of: {})",
                            parsed.scheme,
                            SERVICE_PROTOCOLS.join(", ")
                        ),
                    );
                }
                if let Err(e) = formats::host_port(parsed.host_port) {
                    err("url", format!("the url's host: {e}"));
                }
                if !parsed.path.is_empty()
                    && let Err(e) = formats::service_path(parsed.path)
                {
                    err("url", format!("the url's path: {e}"));
                }
                protocol = Some(parsed.scheme.to_string());
            }
        }
    }
    let protocol = protocol.unwrap_or_else(|| "http".into());
    if oss && (protocol == "ws" || protocol == "wss") {
        err(
            "protocol",
            "WebSocket services (`ws`, `wss`) need Kong Gateway Enterprise; the target is OSS"
                .into(),
        );
    }
    if ["tcp", "tls", "udp", "grpc", "grpcs", "tls_passthrough"].contains(&protocol.as_str())
        && set(obj, "path")
    {
        err(
            "path",
            format!("value must be null: a service with protocol `{protocol}` has no path"),
        );
    }
    // Kong's conditionals: TLS to the upstream only on `https`/`tls` (and
    // Enterprise's `wss`, which speaks TLS too: not refused where unsure).
    if !["https", "tls", "wss"].contains(&protocol.as_str()) {
        for f in TLS_ONLY {
            if set(obj, f) {
                err(
                    f,
                    format!(
                        "value must be null: only a service with protocol `https` or `tls` \
                         has `{f}` (this one is `{protocol}`)"
                    ),
                );
            }
        }
    }
}

/// A route's matching fields, which an `expression` replaces.
const MATCHING: [&str; 7] = [
    "methods",
    "hosts",
    "paths",
    "headers",
    "snis",
    "sources",
    "destinations",
];

/// A service's fields Kong takes only with protocol `https` or `tls`.
const TLS_ONLY: [&str; 4] = [
    "client_certificate",
    "tls_verify",
    "tls_verify_depth",
    "ca_certificates",
];

/// Upstreams: the name is a hostname; hashing needs its field, and the
/// fallback must differ from the primary.
pub fn check_upstream(obj: &Map<String, Value>, err: &mut Sink<'_>) {
    if let Some(name) = s(obj, "name") {
        match formats::host_port(name) {
            Err(_) => err(
                "name",
                "Invalid name: must be a valid hostname (it is the Host header sent upstream)"
                    .into(),
            ),
            // Kong says an IP before a port (`validate_name`).
            Ok((formats::HostKind::Name, None)) => {}
            Ok((formats::HostKind::Name, Some(_))) => {
                err("name", "Invalid name; no port allowed".into())
            }
            Ok(_) => err("name", "Invalid name; no ip addresses allowed".into()),
        }
    }
    let on = s(obj, "hash_on").unwrap_or("none");
    let fallback = s(obj, "hash_fallback").unwrap_or("none");
    let needs = [
        ("header", "hash_on_header", "hash_fallback_header"),
        ("cookie", "hash_on_cookie", "hash_on_cookie"),
        ("query_arg", "hash_on_query_arg", "hash_fallback_query_arg"),
        (
            "uri_capture",
            "hash_on_uri_capture",
            "hash_fallback_uri_capture",
        ),
    ];
    for (what, on_field, fb_field) in needs {
        if on == what && !set(obj, on_field) {
            err(
                on_field,
                format!("required field missing: `hash_on: {what}` needs `{on_field}`"),
            );
        }
        if fallback == what && !set(obj, fb_field) {
            err(
                fb_field,
                format!("required field missing: `hash_fallback: {what}` needs `{fb_field}`"),
            );
        }
    }
    if (on == "none" || on == "cookie") && fallback != "none" {
        err(
            "hash_fallback",
            format!("expected one of: none (there is no fallback when `hash_on` is `{on}`)"),
        );
    } else if on == fallback && !["none", "header", "query_arg", "uri_capture"].contains(&on) {
        err(
            "hash_fallback",
            format!("`hash_fallback` must differ from `hash_on` (both `{on}`)"),
        );
    }
    for (a, b) in [
        ("hash_on_header", "hash_fallback_header"),
        ("hash_on_query_arg", "hash_fallback_query_arg"),
        ("hash_on_uri_capture", "hash_fallback_uri_capture"),
    ] {
        if on == fallback
            && let (Some(x), Some(y)) = (s(obj, a), s(obj, b))
            && x.eq_ignore_ascii_case(y)
        {
            err(
                b,
                format!("values of these fields must be distinct: '{a}', '{b}'"),
            );
        }
    }
    if let Some(Value::Object(hc)) = get_field(obj, "healthchecks") {
        check_healthchecks(hc, err);
    }
}

fn check_healthchecks(hc: &Map<String, Value>, err: &mut Sink<'_>) {
    if let Some(t) = hc.get("threshold").and_then(Value::as_f64)
        && !(0.0..=100.0).contains(&t)
    {
        err(
            "healthchecks.threshold",
            "value should be between 0 and 100".into(),
        );
    }
    for mode in ["active", "passive"] {
        let Some(Value::Object(m)) = hc.get(mode) else {
            continue;
        };
        let at = format!("healthchecks.{mode}");
        if let Some(t) = s(m, "type")
            && !["tcp", "http", "https", "grpc", "grpcs"].contains(&t)
        {
            err(
                &format!("{at}.type"),
                "expected one of: tcp, http, https, grpc, grpcs".into(),
            );
        }
        if let Some(c) = m.get("concurrency").and_then(Value::as_i64)
            && !(1..=2_147_483_647).contains(&c)
        {
            err(
                &format!("{at}.concurrency"),
                "value should be between 1 and 2147483647".into(),
            );
        }
        if let Some(p) = s(m, "http_path")
            && let Err(e) = formats::service_path(p)
        {
            err(&format!("{at}.http_path"), e);
        }
        if let Some(p) = s(m, "https_sni")
            && let Err(e) = formats::sni(p)
        {
            err(&format!("{at}.https_sni"), e);
        }
        if let Some(Value::Object(h)) = m.get("headers") {
            for name in h.keys() {
                if let Err(e) = formats::header_name(name) {
                    err(&format!("{at}.headers.{}", clip_key(name)), e);
                }
            }
        }
        for side in ["healthy", "unhealthy"] {
            let Some(Value::Object(h)) = m.get(side) else {
                continue;
            };
            if let Some(Value::Array(codes)) = h.get("http_statuses") {
                let lo = if side == "healthy" { 200 } else { 100 };
                for (i, c) in codes.iter().enumerate() {
                    if !c.as_i64().is_some_and(|c| (lo..=999).contains(&c)) {
                        err(
                            &format!("{at}.{side}.http_statuses[{i}]"),
                            format!("value should be between {lo} and 999"),
                        );
                    }
                }
            }
            for counter in ["successes", "tcp_failures", "http_failures", "timeouts"] {
                if let Some(n) = h.get(counter)
                    && !n.as_i64().is_some_and(|n| (0..=255).contains(&n))
                {
                    err(
                        &format!("{at}.{side}.{counter}"),
                        "value should be between 0 and 255".into(),
                    );
                }
            }
            if let Some(n) = h.get("interval")
                && !n.as_f64().is_some_and(|n| (0.0..=65535.0).contains(&n))
            {
                err(
                    &format!("{at}.{side}.interval"),
                    "value should be between 0 and 65535".into(),
                );
            }
        }
    }
}

/// Certificates: `cert`, `key`, `cert_alt`, `key_alt` parse; the
/// alternative pair comes together and has another key type.
pub fn check_certificate(obj: &Map<String, Value>, err: &mut Sink<'_>) {
    let cert = pem_cert(obj, "cert", err);
    pem_key(obj, "key", err);
    let alt = pem_cert(obj, "cert_alt", err);
    pem_key(obj, "key_alt", err);
    for (c, k, kf) in [(&cert, "key", "cert"), (&alt, "key_alt", "cert_alt")] {
        if let (Some(info), Some(key)) = (c, s(obj, k))
            && formats::key_matches(info, key) == Some(false)
        {
            err(
                k,
                format!("certificate does not match key: `{k}` is not the private key of `{kf}`"),
            );
        }
    }
    if set(obj, "cert_alt") != set(obj, "key_alt") {
        err(
            "",
            "all or none of these fields must be set: 'cert_alt', 'key_alt'".into(),
        );
    }
    if let (Some(a), Some(b)) = (cert, alt)
        && a.key_kind == b.key_kind
    {
        err(
            "cert_alt",
            "certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type".into(),
        );
    }
}

/// CA certificates: the `cert` parses and is a CA.
pub fn check_ca_certificate(obj: &Map<String, Value>, err: &mut Sink<'_>) {
    if let Some(info) = pem_cert(obj, "cert", err)
        && !info.is_ca
    {
        err(
            "cert",
            "certificate does not appear to be a CA because it is missing the \"CA\" basic constraint".into(),
        );
    }
}

fn pem_cert(obj: &Map<String, Value>, f: &str, err: &mut Sink<'_>) -> Option<formats::CertInfo> {
    let v = s(obj, f).filter(|v| !v.is_empty() && !formats::is_vault_ref(v))?;
    formats::certificate(v).map_err(|e| err(f, e)).ok()
}

fn pem_key(obj: &Map<String, Value>, f: &str, err: &mut Sink<'_>) {
    if let Some(v) = s(obj, f).filter(|v| !v.is_empty() && !formats::is_vault_ref(v))
        && let Err(e) = formats::key(v)
    {
        err(f, e);
    }
}

/// Keys: a JWK that parses (its `kid` equal to the key's), or PEM keys.
pub fn check_key(obj: &Map<String, Value>, err: &mut Sink<'_>) {
    if set(obj, "jwk") && set(obj, "pem") {
        err(
            "",
            "only one of these fields must be non-empty: 'jwk', 'pem'".into(),
        );
    }
    if let Some(j) = s(obj, "jwk").filter(|v| !formats::is_vault_ref(v)) {
        match formats::jwk(j) {
            Err(e) => err("jwk", e),
            Ok(jwk) => {
                if jwk.get("kid").and_then(Value::as_str) != s(obj, "kid") {
                    err("jwk", "kid in jwk.kid must be equal to keys.kid".into());
                }
            }
        }
    }
    if let Some(Value::Object(pem)) = get_field(obj, "pem") {
        if !set(pem, "private_key") && !set(pem, "public_key") {
            err(
                "pem",
                "at least one of these fields must be non-empty: 'private_key', 'public_key'"
                    .into(),
            );
        }
        for f in ["private_key", "public_key"] {
            if let Some(v) = s(pem, f).filter(|v| !v.is_empty() && !formats::is_vault_ref(v))
                && let Err(e) = formats::key(v)
            {
                err(&format!("pem.{f}"), e);
            }
        }
    }
}

/// Vaults: the backend must be one the edition ships.
pub fn check_vault(obj: &Map<String, Value>, oss: bool, err: &mut Sink<'_>) {
    let Some(name) = s(obj, "name") else { return };
    let known = if oss {
        VAULT_BACKENDS_OSS
    } else {
        VAULT_BACKENDS_EE
    };
    if !known.contains(&name) {
        let why = if oss && VAULT_BACKENDS_EE.contains(&name) {
            format!(
                "the `{name}` vault needs Kong Gateway Enterprise; the target is OSS, which ships `env` only"
            )
        } else {
            format!(
                "vault backend `{}` is not one Kong ships (expected one of: {})",
                clip_key(name),
                known.join(", ")
            )
        };
        err("name", why);
    }
}

/// JWT secrets: the asymmetric algorithms need a public key that parses.
pub fn check_jwt_secret(obj: &Map<String, Value>, err: &mut Sink<'_>) {
    let alg = s(obj, "algorithm").unwrap_or("HS256");
    if alg.starts_with("HS") || !JWT_ALGORITHMS.contains(&alg) {
        return;
    }
    match s(obj, "rsa_public_key").filter(|v| !v.is_empty()) {
        None => err(
            "rsa_public_key",
            format!("required field missing: algorithm `{alg}` needs `rsa_public_key`"),
        ),
        Some(k) if formats::is_vault_ref(k) => {}
        Some(k) => {
            if let Err(e) = formats::key(k) {
                err("rsa_public_key", e);
            }
        }
    }
}

/// A key name in a path or a message: clipped when long.
pub fn clip_key(k: &str) -> String {
    if k.len() <= 64 {
        k.to_string()
    } else {
        let mut end = 40;
        while !k.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…({} bytes)", &k[..end], k.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of the table: its passing value passes, its failing value fails.
    #[test]
    fn every_row_has_a_passing_and_a_failing_case() {
        for r in FIELD_RULES {
            let pass: Value = serde_json::from_str(r.pass).unwrap();
            let fail: Value = serde_json::from_str(r.fail).unwrap();
            assert!(
                check(&r.check, &pass).is_ok(),
                "{}.{} ({}): {} should pass: {:?}",
                r.coll.name(),
                r.field,
                r.kong,
                r.pass,
                check(&r.check, &pass)
            );
            assert!(
                check(&r.check, &fail).is_err(),
                "{}.{} ({}): {} should fail",
                r.coll.name(),
                r.field,
                r.kong,
                r.fail
            );
        }
    }

    #[test]
    fn vault_references_are_not_format_checked() {
        let r = Check::Fmt(formats::host);
        assert!(check(&r, &Value::from("{vault://env/host}")).is_ok());
    }
}

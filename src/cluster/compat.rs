//! Compatibility between this control plane, which speaks Kong Gateway
//! 3.10's hybrid protocol, and the (possibly older) data planes connected to it.
//!
//! The rules are Kong's own, read from Kong/kong at commit
//! `22246ef28c16842098369b494eef879222e30c7b` (master; its `kong/meta.lua`
//! says 3.10.0, and OSS has no 3.10 tag or branch):
//!
//! - `kong/clustering/compat/init.lua`: `check_kong_version_compatibility`
//!   ([`check_version`]), `check_configuration_compatibility`
//!   ([`check_plugins`]) and `update_compatible_payload` ([`downgrade`]);
//! - `kong/clustering/compat/removed_fields.lua` ([`REMOVED_FIELDS`]) and
//!   `kong/clustering/compat/checkers.lua` (the private `CHECKERS`);
//! - `kong/clustering/control_plane.lua`: a failed version check closes the
//!   connection; a failed plugin check keeps it open but withholds configs.
//!   Both record the `CLUSTERING_SYNC_STATUS` name we use as issue `code`;
//! - `kong/constants.lua`: [`BUNDLED_PLUGINS`] and those sync status names.
//!
//! Issues use Konnect's `NodeCompatibilityIssue` shape (control-planes-config
//! v2 OpenAPI). That spec leaves `compatibility_status.state` a free string;
//! the values in [`STATE_FULLY_COMPATIBLE`] etc. are Konnect's (Kong/koko's
//! `CompatibilityState` enum, as seen in Konnect responses), and `severity` is
//! koko's `"error"` / `"warning"`.
//!
//! Where this deliberately differs from Kong:
//! - Kong only walks the top-level `plugins` (its export is flat). Configs
//!   here may nest plugins under services, routes, consumers and consumer
//!   groups, targets under upstreams and SNIs under certificates; all are
//!   processed.
//! - Where Kong's Lua would raise on a missing table (say `ai-proxy` without
//!   `config.model`), that entity is left alone instead.
//! - Kong's 3.6 redis checker overwrites `has_update` per plugin, so a later
//!   non-redis plugin can make Kong drop the rewrite; any change counts here.
//!
//! Left out: the 3.8 warning about an acme redis `username` (Kong only logs,
//! the config is unchanged, so it is not "removed"); `check_mixed_route_entities`
//! (DPs older than 3.7 with a mix of expression and traditional routes under
//! the `expressions` router flavor get no config: it needs the router flavor,
//! which this module does not see); the wasm `FILTER_SET_INCOMPATIBLE` check.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

type Object = Map<String, Value>;

// ---------------------------------------------------------------------------
// Versions

/// A Kong version as a data plane reports it: "3.10.0" (OSS) or "3.10.0.0"
/// (Enterprise), maybe with a suffix like "-enterprise-edition" or "-rc.1".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KongVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KongVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        KongVersion {
            major,
            minor,
            patch,
        }
    }

    /// Accepts what Kong's `extract_major_minor` accepts (`^(%d+)%.(%d+)%.%d+`):
    /// three leading numeric components, anything after the patch digits
    /// ignored. The Enterprise fourth component is dropped because no Kong
    /// compat rule keys on it (all keys are `x.y.0.0`).
    pub fn parse(s: &str) -> Option<KongVersion> {
        let (major, rest) = split_digits(s);
        let (minor, rest) = split_digits(rest.strip_prefix('.')?);
        let (patch, _) = split_digits(rest.strip_prefix('.')?);
        Some(KongVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
            patch: patch.parse().ok()?,
        })
    }

    /// Kong's `version_num` (`string_to_number`) of `major.minor.patch.0`,
    /// the unit [`REMOVED_FIELDS`] is keyed in: 3.10.0 is 3_010_000_000.
    pub const fn num(self) -> u64 {
        self.major as u64 * 1_000_000_000
            + self.minor as u64 * 1_000_000
            + self.patch as u64 * 1_000
    }
}

/// Splits off the leading ASCII digits (Lua's `%d`); the caller's `parse`
/// rejects an empty run.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

impl fmt::Display for KongVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

// ---------------------------------------------------------------------------
// Konnect's issue shape

/// `code`s: the names of Kong's `CLUSTERING_SYNC_STATUS` (kong/constants.lua).
pub const KONG_VERSION_INCOMPATIBLE: &str = "KONG_VERSION_INCOMPATIBLE";
pub const PLUGIN_SET_INCOMPATIBLE: &str = "PLUGIN_SET_INCOMPATIBLE";
pub const PLUGIN_VERSION_INCOMPATIBLE: &str = "PLUGIN_VERSION_INCOMPATIBLE";

/// Konnect's severities: an error changes what the gateway does.
pub const SEVERITY_ERROR: &str = "error";
pub const SEVERITY_WARNING: &str = "warning";

/// Konnect's `compatibility_status.state` values.
pub const STATE_FULLY_COMPATIBLE: &str = "COMPATIBILITY_STATE_FULLY_COMPATIBLE";
pub const STATE_INCOMPATIBLE: &str = "COMPATIBILITY_STATE_INCOMPATIBLE";
pub const STATE_UNKNOWN: &str = "COMPATIBILITY_STATE_UNKNOWN";
pub const STATE_UNSPECIFIED: &str = "COMPATIBILITY_STATE_UNSPECIFIED";

/// One plugin a data plane reports in basic_info (`{"name", "version"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpPlugin {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// Konnect's `NodeCompatibilityIssue`; field names as in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompatIssue {
    pub code: String,
    pub severity: String,
    pub description: String,
    pub resolution: String,
    pub affected_resources: Vec<AffectedResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

/// Konnect's `NodeCompatibilityIssueAffectedResource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AffectedResource {
    pub id: String,
    pub r#type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_code: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// Konnect's node `compatibility_status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompatStatus {
    pub state: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<CompatIssue>,
}

impl CompatStatus {
    /// Konnect's rule: fully compatible iff there is no issue at all.
    pub fn from_issues(issues: Vec<CompatIssue>) -> CompatStatus {
        let state = if issues.is_empty() {
            STATE_FULLY_COMPATIBLE
        } else {
            STATE_INCOMPATIBLE
        };
        CompatStatus {
            state: state.to_owned(),
            issues,
        }
    }
}

fn error_issue(
    code: &str,
    description: String,
    resolution: String,
    affected: Vec<AffectedResource>,
) -> CompatIssue {
    CompatIssue {
        code: code.to_owned(),
        severity: SEVERITY_ERROR.to_owned(),
        description,
        resolution,
        affected_resources: affected,
        documentation_url: None,
    }
}

// ---------------------------------------------------------------------------
// Version and plugin checks

/// Whether a data plane of `dp` version may get configs from a control plane
/// of `cp` version at all: same major, DP minor not newer than the CP's.
/// Any older 3.x minor is accepted (Kong only logs it).
#[allow(
    clippy::result_large_err,
    reason = "the issue is the API; checks run once per connection"
)]
pub fn check_version(cp: KongVersion, dp: KongVersion) -> Result<(), CompatIssue> {
    if cp.major != dp.major {
        return Err(error_issue(
            KONG_VERSION_INCOMPATIBLE,
            format!(
                "data plane version {dp} is incompatible with control plane version {cp} ({}.x.y are accepted)",
                cp.major
            ),
            format!(
                "run a Kong {}.x data plane no newer than {}.{}",
                cp.major, cp.major, cp.minor
            ),
            Vec::new(),
        ));
    }
    if dp.minor > cp.minor {
        return Err(error_issue(
            KONG_VERSION_INCOMPATIBLE,
            format!(
                "data plane version {dp} is incompatible with older control plane version {cp}"
            ),
            format!(
                "downgrade the data plane to Kong {}.{} or older: a data plane may not be newer than its control plane",
                cp.major, cp.minor
            ),
            Vec::new(),
        ));
    }
    Ok(())
}

/// [`check_version`] on the raw string a data plane sent; Kong rejects one
/// it cannot parse the same way.
#[allow(
    clippy::result_large_err,
    reason = "the issue is the API; checks run once per connection"
)]
pub fn check_version_str(cp: KongVersion, dp: &str) -> Result<KongVersion, CompatIssue> {
    let Some(v) = KongVersion::parse(dp) else {
        return Err(error_issue(
            KONG_VERSION_INCOMPATIBLE,
            format!(
                "data plane version {dp:?} is incompatible with control plane version {cp} ({}.x.y are accepted)",
                cp.major
            ),
            format!(
                "run a Kong {}.x data plane that reports its version",
                cp.major
            ),
            Vec::new(),
        ));
    };
    check_version(cp, v).map(|()| v)
}

/// Kong's bundled plugins (kong/constants.lua, OSS list; Enterprise bundles more).
pub const BUNDLED_PLUGINS: &[&str] = &[
    "jwt",
    "acl",
    "correlation-id",
    "cors",
    "oauth2",
    "tcp-log",
    "udp-log",
    "file-log",
    "http-log",
    "key-auth",
    "hmac-auth",
    "basic-auth",
    "ip-restriction",
    "request-transformer",
    "response-transformer",
    "request-size-limiting",
    "rate-limiting",
    "response-ratelimiting",
    "syslog",
    "loggly",
    "datadog",
    "ldap-auth",
    "statsd",
    "bot-detection",
    "aws-lambda",
    "request-termination",
    "prometheus",
    "proxy-cache",
    "session",
    "acme",
    "grpc-gateway",
    "grpc-web",
    "pre-function",
    "post-function",
    "azure-functions",
    "zipkin",
    "opentelemetry",
    "ai-proxy",
    "ai-prompt-decorator",
    "ai-prompt-template",
    "ai-prompt-guard",
    "ai-request-transformer",
    "ai-response-transformer",
    "standard-webhooks",
    "redirect",
];

/// The control plane's version of a plugin for [`check_plugins`]: bundled
/// 3.x plugins carry the Kong version (`VERSION = kong_meta.version`);
/// anything else is unknown.
pub fn bundled_plugin_version(name: &str, cp: KongVersion) -> Option<String> {
    BUNDLED_PLUGINS.contains(&name).then(|| cp.to_string())
}

/// Plugins the config uses, checked against what the DP has: a configured
/// plugin missing on the DP, or whose DP version has another major or a newer
/// minor than the CP's, blocks the config. `cp_plugin_version` is None for an
/// unknown/custom plugin; then, as when either version does not parse, only
/// presence is checked. Unlike Kong, which stops at the first, all issues are
/// returned (one per plugin name).
pub fn check_plugins(
    configured: &[&str],
    dp_plugins: &[DpPlugin],
    cp_plugin_version: impl Fn(&str) -> Option<String>,
) -> Vec<CompatIssue> {
    let named: Vec<(&str, Vec<String>)> = configured.iter().map(|n| (*n, Vec::new())).collect();
    plugin_issues(&named, dp_plugins, &cp_plugin_version)
}

/// [`check_plugins`] on the plugins a declarative config uses (nested ones
/// included), naming each plugin entity's id in `affected_resources`.
pub fn check_config_plugins(
    config: &Value,
    dp_plugins: &[DpPlugin],
    cp_plugin_version: impl Fn(&str) -> Option<String>,
) -> Vec<CompatIssue> {
    let mut named: Vec<(&str, Vec<String>)> = Vec::new();
    for plugin in entities(config, "plugins") {
        let Some(name) = plugin.get("name").and_then(Value::as_str) else {
            continue;
        };
        let id = plugin.get("id").and_then(Value::as_str).map(str::to_owned);
        match named.iter_mut().find(|(n, _)| *n == name) {
            Some((_, ids)) => ids.extend(id),
            None => named.push((name, id.into_iter().collect())),
        }
    }
    plugin_issues(&named, dp_plugins, &cp_plugin_version)
}

fn plugin_issues(
    configured: &[(&str, Vec<String>)],
    dp_plugins: &[DpPlugin],
    cp_plugin_version: &dyn Fn(&str) -> Option<String>,
) -> Vec<CompatIssue> {
    let dp: HashMap<&str, &DpPlugin> = dp_plugins.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut issues = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, ids) in configured {
        if seen.contains(name) {
            continue;
        }
        seen.push(name);
        let affected = || {
            let ids = if ids.is_empty() {
                vec![name.to_string()]
            } else {
                ids.clone()
            };
            ids.into_iter()
                .map(|id| AffectedResource {
                    id,
                    r#type: "plugin".to_owned(),
                    ..AffectedResource::default()
                })
                .collect::<Vec<_>>()
        };
        let cp_version = cp_plugin_version(name);
        let Some(dp_plugin) = dp.get(name) else {
            let with_version = cp_version
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            let resolution = if BUNDLED_PLUGINS.contains(name) {
                let upgrade = cp_version
                    .as_deref()
                    .and_then(KongVersion::parse)
                    .map(|v| {
                        format!(
                            "upgrade the data plane to Kong {}.{}, or ",
                            v.major, v.minor
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{upgrade}enable the {name} plugin in the data plane's `plugins` setting (KONG_PLUGINS), or remove it from the configuration"
                )
            } else {
                format!(
                    "install the {name} plugin on the data plane and add it to its `plugins` setting (KONG_PLUGINS), or remove it from the configuration"
                )
            };
            issues.push(error_issue(
                PLUGIN_SET_INCOMPATIBLE,
                format!("configured plugin {name}{with_version} is missing on the data plane"),
                resolution,
                affected(),
            ));
            continue;
        };
        let (Some(cp_text), Some(dp_text)) = (cp_version.as_deref(), dp_plugin.version.as_deref())
        else {
            continue;
        };
        let (Some(cp_v), Some(dp_v)) = (KongVersion::parse(cp_text), KongVersion::parse(dp_text))
        else {
            continue;
        };
        // Kong shipped opentelemetry as 0.1.0 for a while and accepts it still.
        if *name == "opentelemetry" && dp_v.major == 0 && dp_v.minor == 1 {
            continue;
        }
        if cp_v.major != dp_v.major || cp_v.minor < dp_v.minor {
            issues.push(error_issue(
                PLUGIN_VERSION_INCOMPATIBLE,
                format!(
                    "configured plugin {name}: data plane version {dp_text} is incompatible with control plane version {cp_text}"
                ),
                format!(
                    "run version {}.x of the {name} plugin, no newer than {cp_text}, on the data plane",
                    cp_v.major
                ),
                affected(),
            ));
        }
    }
    issues
}

// ---------------------------------------------------------------------------
// Kong's tables

/// Fields per plugin (Kong's key: the name with `-` as `_`) that a data plane
/// OLDER than the version (Kong's `version_num`) does not know; dotted names
/// are paths into the plugin's `config`.
pub type RemovedFields = [(u64, &'static [(&'static str, &'static [&'static str])])];

/// Kong's `kong/clustering/compat/removed_fields.lua` at Kong/kong
/// 22246ef28c16842098369b494eef879222e30c7b (Kong 3.10.0; last changed there
/// by e5b19746a2, 2025-03-02). Keys ascending.
pub static REMOVED_FIELDS: &RemovedFields = &[
    (
        3_001_000_000,
        &[
            (
                "acme",
                &[
                    "enable_ipv4_common_name",
                    "storage_config.redis.ssl",
                    "storage_config.redis.ssl_verify",
                    "storage_config.redis.ssl_server_name",
                ],
            ),
            ("rate_limiting", &["error_code", "error_message"]),
            (
                "response_ratelimiting",
                &["redis_ssl", "redis_ssl_verify", "redis_server_name"],
            ),
            ("datadog", &["retry_count", "queue_size", "flush_timeout"]),
            ("statsd", &["retry_count", "queue_size", "flush_timeout"]),
            ("session", &["cookie_persistent"]),
            ("zipkin", &["http_response_header_for_traceid"]),
        ],
    ),
    (
        3_002_000_000,
        &[
            ("statsd", &["tag_style"]),
            (
                "session",
                &[
                    "audience",
                    "absolute_timeout",
                    "remember_cookie_name",
                    "remember_rolling_timeout",
                    "remember_absolute_timeout",
                    "response_headers",
                    "request_headers",
                ],
            ),
            ("aws_lambda", &["aws_imds_protocol_version"]),
            ("zipkin", &["phase_duration_flavor"]),
        ],
    ),
    (
        3_003_000_000,
        &[
            ("acme", &["account_key", "storage_config.redis.namespace"]),
            ("aws_lambda", &["disable_https"]),
            ("proxy_cache", &["ignore_uri_case"]),
            (
                "opentelemetry",
                &["http_response_header_for_traceid", "queue", "header_type"],
            ),
            ("http_log", &["queue"]),
            ("statsd", &["queue"]),
            ("datadog", &["queue"]),
            ("zipkin", &["queue"]),
        ],
    ),
    (
        3_004_000_000,
        &[
            ("rate_limiting", &["sync_rate"]),
            ("proxy_cache", &["response_headers"]),
        ],
    ),
    (
        3_005_000_000,
        &[
            ("acme", &["storage_config.redis.scan_count"]),
            ("cors", &["private_network"]),
            ("session", &["read_body_for_logout"]),
        ],
    ),
    (
        3_006_000_000,
        &[
            ("opentelemetry", &["sampling_rate"]),
            ("basic_auth", &["realm"]),
        ],
    ),
    (
        3_007_000_000,
        &[
            ("opentelemetry", &["propagation"]),
            ("zipkin", &["propagation"]),
            (
                "ai_proxy",
                &["response_streaming", "model.options.upstream_path"],
            ),
            (
                "ai_request_transformer",
                &["llm.model.options.upstream_path"],
            ),
            (
                "ai_response_transformer",
                &["llm.model.options.upstream_path"],
            ),
            ("key_auth", &["realm"]),
        ],
    ),
    (
        3_008_000_000,
        &[
            ("response_transformer", &["rename.json"]),
            ("aws_lambda", &["empty_arrays_mode"]),
            ("ldap_auth", &["realm"]),
            ("hmac_auth", &["realm"]),
            ("jwt", &["realm"]),
            ("oauth2", &["realm"]),
            (
                "opentelemetry",
                &[
                    "traces_endpoint",
                    "logs_endpoint",
                    "queue.concurrency_limit",
                ],
            ),
            (
                "ai_proxy",
                &[
                    "max_request_body_size",
                    "model.options.gemini",
                    "auth.gcp_use_service_account",
                    "auth.gcp_service_account_json",
                    "model.options.bedrock",
                    "auth.aws_access_key_id",
                    "auth.aws_secret_access_key",
                    "auth.allow_override",
                    "model_name_header",
                ],
            ),
            ("ai_prompt_decorator", &["max_request_body_size"]),
            (
                "ai_prompt_guard",
                &["match_all_roles", "max_request_body_size"],
            ),
            ("ai_prompt_template", &["max_request_body_size"]),
            (
                "ai_request_transformer",
                &[
                    "max_request_body_size",
                    "llm.model.options.gemini",
                    "llm.auth.gcp_use_service_account",
                    "llm.auth.gcp_service_account_json",
                    "llm.model.options.bedrock",
                    "llm.auth.aws_access_key_id",
                    "llm.auth.aws_secret_access_key",
                    "llm.auth.allow_override",
                ],
            ),
            (
                "ai_response_transformer",
                &[
                    "max_request_body_size",
                    "llm.model.options.gemini",
                    "llm.auth.gcp_use_service_account",
                    "llm.auth.gcp_service_account_json",
                    "llm.model.options.bedrock",
                    "llm.auth.aws_access_key_id",
                    "llm.auth.aws_secret_access_key",
                    "llm.auth.allow_override",
                ],
            ),
            ("prometheus", &["ai_metrics"]),
            ("acl", &["always_use_authenticated_groups"]),
            ("http_log", &["queue.concurrency_limit"]),
            ("statsd", &["queue.concurrency_limit"]),
            ("datadog", &["queue.concurrency_limit"]),
            ("zipkin", &["queue.concurrency_limit"]),
        ],
    ),
    (
        3_010_000_000,
        &[
            ("cors", &["allow_origin_absent"]),
            ("session", &["hash_subject", "store_metadata"]),
            ("prometheus", &["wasm_metrics"]),
            ("ai_proxy", &["llm_format"]),
            ("ai_prompt_guard", &["llm_format"]),
            ("ai_prompt_decorator", &["llm_format"]),
        ],
    ),
];

/// (DPs older than, plugin, [(current name, old name)]).
type Rename = (u64, &'static str, &'static [(&'static str, &'static str)]);

/// Renames init.lua applies (`rename_field`, old name restored) before
/// removing fields, for DPs older than the version, when that plugin has
/// removed fields at all (always true for these two).
static RENAMED_FIELDS: &[Rename] = &[
    (
        3_002_000_000,
        "session",
        &[
            ("idling_timeout", "cookie_idletime"),
            ("rolling_timeout", "cookie_lifetime"),
            ("stale_ttl", "cookie_discard"),
            ("cookie_same_site", "cookie_samesite"),
            ("cookie_http_only", "cookie_httponly"),
            ("remember", "cookie_persistent"),
        ],
    ),
    (
        3_008_000_000,
        "opentelemetry",
        &[("traces_endpoint", "endpoint")],
    ),
];

/// Kong's `get_removed_fields`: every table entry keyed above `dp_num`, merged
/// per plugin and sorted.
fn fields_for(table: &RemovedFields, dp_num: u64) -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut out: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for (version, plugins) in table {
        if dp_num < *version {
            for (plugin, fields) in *plugins {
                out.entry(*plugin).or_default().extend_from_slice(fields);
            }
        }
    }
    for list in out.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    out
}

/// An entity-level rewrite from checkers.lua: (DPs older than, rewrite).
type Checker = (u64, fn(&mut Value, &mut Changes));

/// checkers.lua, in Kong's order (it matters: 3.9's and 3.8's AI fallbacks
/// set `route_type = "preserve"`, which 3.7's then turns into `llm/v1/chat`).
static CHECKERS: &[Checker] = &[
    (3_009_000_000, ai_providers_3_9),
    (3_008_000_000, checks_3_8),
    (3_007_000_000, ai_preserve_3_7),
    (3_006_000_000, redis_shape_3_6),
    (3_005_000_000, header_type_gcp_3_5),
    (3_004_000_000, header_type_aws_3_4),
    (3_003_000_000, legacy_queue_3_3),
    (3_003_000_000, env_vault_prefix_3_3),
    (3_003_000_000, updated_at_3_3),
    (3_002_000_000, tls_service_3_2),
    (3_002_000_000, latency_algorithm_3_2),
    (3_002_000_000, instance_name_3_2),
    (3_001_000_000, use_srv_name_3_1),
];

/// AI providers and the Kong version that added them (checkers.lua's
/// `_AI_PROVIDERS_ADDED`).
const AI_PROVIDERS_ADDED: &[(u64, &[&str])] = &[
    (3_009_000_000, &["huggingface"]),
    (3_008_000_000, &["gemini", "bedrock"]),
];

// ---------------------------------------------------------------------------
// Downgrading

/// Every distinct version some rule is keyed on, ascending.
static THRESHOLDS: LazyLock<Vec<u64>> = LazyLock::new(|| {
    let mut v: Vec<u64> = REMOVED_FIELDS
        .iter()
        .map(|e| e.0)
        .chain(CHECKERS.iter().map(|c| c.0))
        .chain(RENAMED_FIELDS.iter().map(|r| r.0))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
});

/// The compat variant key of a version: the number of rule versions it is
/// older than. Since every rule applies to all DPs older than its version,
/// equal keys mean the same rule set and so byte-identical payloads; 0 means
/// the payload is sent unchanged.
pub fn variant(dp: KongVersion) -> u32 {
    let n = dp.num();
    let newer = THRESHOLDS.len() - THRESHOLDS.partition_point(|t| *t <= n);
    u32::try_from(newer).unwrap_or(u32::MAX)
}

/// The config a DP of version `dp` can load: `config` with what Kong's
/// removed_fields table and checkers.lua say that version does not know
/// removed or rewritten. None when nothing changes (share the unchanged
/// bytes); else the new value and one line per change ("plugin cors <id>:
/// removed config.allow_origin_absent").
pub fn downgrade(config: &Value, dp: KongVersion) -> Option<(Value, Vec<String>)> {
    downgrade_with(config, dp, REMOVED_FIELDS)
}

fn downgrade_with(
    config: &Value,
    dp: KongVersion,
    table: &RemovedFields,
) -> Option<(Value, Vec<String>)> {
    let n = dp.num();
    let fields = fields_for(table, n);
    let checkers = CHECKERS.iter().filter(|c| n < c.0);
    if fields.is_empty() && checkers.clone().next().is_none() {
        return None;
    }
    let mut out = config.clone();
    let mut changes = Changes::default();
    for checker in checkers {
        (checker.1)(&mut out, &mut changes);
    }
    if !fields.is_empty() {
        strip_plugin_fields(&mut out, &fields, n, &mut changes);
    }
    (!changes.0.is_empty()).then_some((out, changes.0))
}

/// init.lua's `invalidate_keys_from_config`, on every plugin.
fn strip_plugin_fields(
    config: &mut Value,
    fields: &BTreeMap<&str, Vec<&str>>,
    dp_num: u64,
    ch: &mut Changes,
) {
    for plugin in entities_mut(config, "plugins") {
        let Some(key) = plugin
            .get("name")
            .and_then(Value::as_str)
            .map(|n| n.replace('-', "_"))
        else {
            continue;
        };
        let Some(list) = fields.get(key.as_str()) else {
            continue;
        };
        let who = label("plugin", plugin);
        let Some(cfg) = config_of(plugin) else {
            continue;
        };
        for (before, name, pairs) in RENAMED_FIELDS {
            if dp_num < *before && key == *name {
                for (from, to) in *pairs {
                    if let Some(v) = cfg.shift_remove(*from) {
                        cfg.insert((*to).to_owned(), v);
                        ch.push(&who, format!("renamed config.{from} to config.{to}"));
                    }
                }
            }
        }
        if dp_num < 3_002_000_000 && key == "session" {
            set_if_eq(cfg, "cookie_samesite", "Default", "Lax", &who, ch);
        }
        for field in list {
            if delete_at(cfg, field) {
                ch.push(&who, format!("removed config.{field}"));
            }
        }
    }
}

/// What [`downgrade`] changed, one line each.
#[derive(Default)]
struct Changes(Vec<String>);

impl Changes {
    fn push(&mut self, who: &str, what: String) {
        self.0.push(format!("{who}: {what}"));
    }
}

/// "plugin cors <id>", "upstream <id or name>".
fn label(kind: &str, e: &Object) -> String {
    let s = |k: &str| e.get(k).and_then(Value::as_str);
    let mut out = kind.to_owned();
    if kind == "plugin" {
        if let Some(name) = s("name") {
            out.push(' ');
            out.push_str(name);
        }
        if let Some(id) = s("id") {
            out.push(' ');
            out.push_str(id);
        }
    } else if let Some(id) = s("id").or_else(|| s("name")) {
        out.push(' ');
        out.push_str(id);
    }
    out
}

// ---------------------------------------------------------------------------
// JSON walking

/// Where Kong's declarative format nests an entity kind besides the top level.
fn parents_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "plugins" => &["services", "routes", "consumers", "consumer_groups"],
        "routes" => &["services"],
        "targets" => &["upstreams"],
        "snis" => &["certificates"],
        _ => &[],
    }
}

fn objects(v: Option<&Value>) -> impl Iterator<Item = &Object> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn objects_mut(v: Option<&mut Value>) -> impl Iterator<Item = &mut Object> {
    v.and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Every entity of `kind`, top-level or nested (plugins also under services' routes).
fn entities<'a>(config: &'a Value, kind: &str) -> Vec<&'a Object> {
    let mut out = Vec::new();
    let Some(root) = config.as_object() else {
        return out;
    };
    out.extend(objects(root.get(kind)));
    for parent_kind in parents_of(kind) {
        for parent in objects(root.get(*parent_kind)) {
            out.extend(objects(parent.get(kind)));
            if kind == "plugins" && *parent_kind == "services" {
                for route in objects(parent.get("routes")) {
                    out.extend(objects(route.get("plugins")));
                }
            }
        }
    }
    out
}

fn entities_mut<'a>(config: &'a mut Value, kind: &str) -> Vec<&'a mut Object> {
    let mut out = Vec::new();
    let Some(root) = config.as_object_mut() else {
        return out;
    };
    let parents = parents_of(kind);
    for (key, value) in root.iter_mut() {
        if key == kind {
            out.extend(objects_mut(Some(value)));
        } else if parents.contains(&key.as_str()) {
            let services = key == "services";
            for parent in objects_mut(Some(value)) {
                for (child_key, child) in parent.iter_mut() {
                    if child_key == kind {
                        out.extend(objects_mut(Some(child)));
                    } else if services && kind == "plugins" && child_key == "routes" {
                        for route in objects_mut(Some(child)) {
                            out.extend(objects_mut(route.get_mut("plugins")));
                        }
                    }
                }
            }
        }
    }
    out
}

fn config_of(entity: &mut Object) -> Option<&mut Object> {
    entity.get_mut("config")?.as_object_mut()
}

fn name_is(entity: &Object, names: &[&str]) -> bool {
    entity
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| names.contains(&n))
}

fn get_path<'a>(obj: &'a Object, path: &[&str]) -> Option<&'a Value> {
    let (last, init) = path.split_last()?;
    let mut cur = obj;
    for key in init {
        cur = cur.get(*key)?.as_object()?;
    }
    cur.get(*last)
}

fn obj_at_mut<'a>(obj: &'a mut Object, path: &[&str]) -> Option<&'a mut Object> {
    let mut cur = obj;
    for key in path {
        cur = cur.get_mut(*key)?.as_object_mut()?;
    }
    Some(cur)
}

/// init.lua's `delete_at`: follows the dotted path through objects and removes
/// the last key if present (even when null or false).
fn delete_at(obj: &mut Object, dotted: &str) -> bool {
    let path: Vec<&str> = dotted.split('.').collect();
    let Some((last, init)) = path.split_last() else {
        return false;
    };
    obj_at_mut(obj, init).is_some_and(|o| o.shift_remove(*last).is_some())
}

/// Lua truthiness of a decoded field: absent and `false` are false; JSON null
/// (`ngx.null`) is true.
fn truthy(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Bool(false)))
}

fn set_if_eq(obj: &mut Object, key: &str, from: &str, to: &str, who: &str, ch: &mut Changes) {
    if obj.get(key).and_then(Value::as_str) == Some(from) {
        obj.insert(key.to_owned(), Value::from(to));
        ch.push(who, format!("config.{key} {from} -> {to}"));
    }
}

fn remove_noted(obj: &mut Object, key: &str, prefix: &str, who: &str, ch: &mut Changes) {
    if obj.shift_remove(key).is_some() {
        ch.push(who, format!("removed {prefix}{key}"));
    }
}

// ---------------------------------------------------------------------------
// checkers.lua

fn ai_provider_added_since(provider: Option<&str>, ver: u64) -> bool {
    provider.is_some_and(|p| {
        AI_PROVIDERS_ADDED
            .iter()
            .any(|(added, names)| *added >= ver && names.contains(&p))
    })
}

/// "openai preserve mode": an AI plugin whose provider the DP lacks talks to
/// OpenAI instead. `model` is the path to the model record inside `config`.
fn ai_fallback(
    cfg: &mut Object,
    model: &[&str],
    ver: u64,
    preserve: bool,
    drop_hf: bool,
    who: &str,
    ch: &mut Changes,
) {
    let at = model.join(".");
    let Some(m) = obj_at_mut(cfg, model) else {
        return;
    };
    let provider = m.get("provider").and_then(Value::as_str);
    if !ai_provider_added_since(provider, ver) {
        return;
    }
    let old = provider.unwrap_or_default().to_owned();
    m.insert("provider".to_owned(), Value::from("openai"));
    ch.push(who, format!("config.{at}.provider {old} -> openai"));
    if drop_hf
        && let Some(options) = m.get_mut("options").and_then(Value::as_object_mut)
        && truthy(options.get("huggingface"))
    {
        options.shift_remove("huggingface");
        ch.push(who, format!("removed config.{at}.options.huggingface"));
    }
    if preserve && cfg.get("route_type").and_then(Value::as_str) != Some("preserve") {
        cfg.insert("route_type".to_owned(), Value::from("preserve"));
        ch.push(who, "config.route_type -> preserve".to_owned());
    }
}

const AI_TRANSFORMERS: &[&str] = &["ai-request-transformer", "ai-response-transformer"];

fn ai_providers_3_9(config: &mut Value, ch: &mut Changes) {
    ai_providers(config, 3_009_000_000, true, ch);
}

fn ai_providers(config: &mut Value, ver: u64, drop_hf: bool, ch: &mut Changes) {
    for p in entities_mut(config, "plugins") {
        let proxy = name_is(p, &["ai-proxy"]);
        if !proxy && !name_is(p, AI_TRANSFORMERS) {
            continue;
        }
        let who = label("plugin", p);
        let Some(cfg) = config_of(p) else { continue };
        if proxy {
            ai_fallback(cfg, &["model"], ver, true, drop_hf, &who, ch);
        } else {
            ai_fallback(cfg, &["llm", "model"], ver, false, drop_hf, &who, ch);
        }
    }
}

fn checks_3_8(config: &mut Value, ch: &mut Changes) {
    ai_providers(config, 3_008_000_000, false, ch);
    for p in entities_mut(config, "plugins") {
        let lambda = name_is(p, &["aws-lambda"]);
        if !lambda && !name_is(p, &["ai-proxy"]) {
            continue;
        }
        let who = label("plugin", p);
        let Some(cfg) = config_of(p) else { continue };
        if lambda {
            remove_noted(cfg, "aws_sts_endpoint_url", "config.", &who, ch);
            continue;
        }
        // Mistral without an upstream_url needs the managed endpoint spelled out.
        let Some(model) = obj_at_mut(cfg, &["model"]) else {
            continue;
        };
        if model.get("provider").and_then(Value::as_str) != Some("mistral") {
            continue;
        }
        if !matches!(model.get("options"), Some(Value::Object(_))) {
            model.insert("options".to_owned(), Value::Object(Object::new()));
        }
        if let Some(options) = model.get_mut("options").and_then(Value::as_object_mut)
            && matches!(
                options.get("upstream_url"),
                None | Some(Value::Null | Value::Bool(false))
            )
        {
            options.insert(
                "upstream_url".to_owned(),
                Value::from("https://api.mistral.ai:443"),
            );
            ch.push(
                &who,
                "config.model.options.upstream_url -> https://api.mistral.ai:443".to_owned(),
            );
        }
    }
}

fn ai_preserve_3_7(config: &mut Value, ch: &mut Changes) {
    for p in entities_mut(config, "plugins") {
        if !name_is(p, &["ai-proxy"]) {
            continue;
        }
        let who = label("plugin", p);
        if let Some(cfg) = config_of(p) {
            set_if_eq(cfg, "route_type", "preserve", "llm/v1/chat", &who, ch);
        }
    }
}

/// The plugins' `clustering/compat/redis_translation.lua` adapters: the shared
/// `redis` record of 3.6 back to each plugin's older fields.
fn redis_shape_3_6(config: &mut Value, ch: &mut Changes) {
    const FLAT: &[(&str, &str)] = &[
        ("redis_host", "host"),
        ("redis_port", "port"),
        ("redis_username", "username"),
        ("redis_password", "password"),
        ("redis_database", "database"),
        ("redis_timeout", "timeout"),
        ("redis_ssl", "ssl"),
        ("redis_ssl_verify", "ssl_verify"),
        ("redis_server_name", "server_name"),
    ];
    const ACME: &[(&str, &[&str])] = &[
        ("host", &["host"]),
        ("port", &["port"]),
        ("auth", &["password"]),
        ("database", &["database"]),
        ("ssl", &["ssl"]),
        ("ssl_verify", &["ssl_verify"]),
        ("ssl_server_name", &["server_name"]),
        ("namespace", &["extra_options", "namespace"]),
        ("scan_count", &["extra_options", "scan_count"]),
    ];
    for p in entities_mut(config, "plugins") {
        let acme = name_is(p, &["acme"]);
        if !acme && !name_is(p, &["rate-limiting", "response-ratelimiting"]) {
            continue;
        }
        let who = label("plugin", p);
        let Some(cfg) = config_of(p) else { continue };
        if acme {
            if cfg.get("storage").and_then(Value::as_str) != Some("redis") {
                continue;
            }
            let Some(redis) = obj_at_mut(cfg, &["storage_config", "redis"]) else {
                continue;
            };
            let old: Object = std::mem::take(redis);
            for (to, from) in ACME {
                if let Some(v) = get_path(&old, from) {
                    redis.insert((*to).to_owned(), v.clone());
                }
            }
            ch.push(
                &who,
                "config.storage_config.redis converted to the pre-3.6 fields".to_owned(),
            );
        } else {
            if cfg.get("policy").and_then(Value::as_str) != Some("redis") {
                continue;
            }
            let old = cfg.shift_remove("redis");
            let old = old.as_ref().and_then(Value::as_object);
            for (to, from) in FLAT {
                // Lua assigns nil for an absent source, which deletes the target.
                match old.and_then(|o| o.get(*from)) {
                    Some(v) => cfg.insert((*to).to_owned(), v.clone()),
                    None => cfg.shift_remove(*to),
                };
            }
            ch.push(
                &who,
                "config.redis flattened to the pre-3.6 redis_* fields".to_owned(),
            );
        }
    }
}

/// Propagation header types a DP does not know fall back to the defaults.
fn header_type_fallback(config: &mut Value, value: &str, ch: &mut Changes) {
    for p in entities_mut(config, "plugins") {
        let zipkin = name_is(p, &["zipkin"]);
        if !zipkin && !name_is(p, &["opentelemetry"]) {
            continue;
        }
        let who = label("plugin", p);
        let Some(cfg) = config_of(p) else { continue };
        set_if_eq(cfg, "header_type", value, "preserve", &who, ch);
        if zipkin {
            set_if_eq(cfg, "default_header_type", value, "b3", &who, ch);
        }
    }
}

fn header_type_gcp_3_5(config: &mut Value, ch: &mut Changes) {
    header_type_fallback(config, "gcp", ch);
}

fn header_type_aws_3_4(config: &mut Value, ch: &mut Changes) {
    header_type_fallback(config, "aws", ch);
}

/// Pre-3.3 queueing parameters, derived from the `queue` record where set.
fn legacy_queue_3_3(config: &mut Value, ch: &mut Changes) {
    for p in entities_mut(config, "plugins") {
        let legacy: &[(&str, Option<&str>, i64)] = if name_is(p, &["statsd", "datadog"]) {
            &[
                ("retry_count", None, 10),
                ("queue_size", Some("max_batch_size"), 1),
                ("flush_timeout", Some("max_coalescing_delay"), 2),
            ]
        } else if name_is(p, &["opentelemetry"]) {
            &[
                ("batch_span_count", Some("max_batch_size"), 200),
                ("batch_flush_delay", Some("max_coalescing_delay"), 3),
            ]
        } else {
            continue;
        };
        let who = label("plugin", p);
        let Some(cfg) = config_of(p) else { continue };
        for (field, from_queue, default) in legacy {
            if cfg.get(*field).is_some_and(Value::is_number) {
                continue;
            }
            let queued = from_queue
                .and_then(|q| get_path(cfg, &["queue", q]))
                .filter(|v| v.is_number());
            let v = queued.cloned().unwrap_or_else(|| Value::from(*default));
            ch.push(&who, format!("set config.{field} = {v}"));
            cfg.insert((*field).to_owned(), v);
        }
    }
}

/// Older env vaults only accept `_` in the prefix.
fn env_vault_prefix_3_3(config: &mut Value, ch: &mut Changes) {
    for vault in entities_mut(config, "vaults") {
        if !name_is(vault, &["env"]) {
            continue;
        }
        let who = label("vault", vault);
        let Some(cfg) = config_of(vault) else {
            continue;
        };
        let Some(prefix) = cfg.get("prefix").and_then(Value::as_str) else {
            continue;
        };
        if prefix.contains('-') {
            let new = prefix.replace('-', "_");
            ch.push(&who, format!("config.prefix {prefix} -> {new}"));
            cfg.insert("prefix".to_owned(), Value::from(new));
        }
    }
}

fn updated_at_3_3(config: &mut Value, ch: &mut Changes) {
    const KINDS: &[(&str, &str)] = &[
        ("ca_certificates", "ca_certificate"),
        ("certificates", "certificate"),
        ("consumers", "consumer"),
        ("targets", "target"),
        ("upstreams", "upstream"),
        ("plugins", "plugin"),
        ("workspaces", "workspace"),
        ("snis", "sni"),
    ];
    for (kind, one) in KINDS {
        for e in entities_mut(config, kind) {
            if truthy(e.get("updated_at")) {
                let who = label(one, e);
                remove_noted(e, "updated_at", "", &who, ch);
            }
        }
    }
}

/// TLS-protocol services could not verify upstreams before 3.2.
fn tls_service_3_2(config: &mut Value, ch: &mut Changes) {
    const FIELDS: &[&str] = &[
        "client_certificate",
        "tls_verify",
        "tls_verify_depth",
        "ca_certificates",
    ];
    for s in entities_mut(config, "services") {
        if s.get("protocol").and_then(Value::as_str) != Some("tls") {
            continue;
        }
        if FIELDS.iter().any(|f| truthy(s.get(*f))) {
            let who = label("service", s);
            for f in FIELDS {
                remove_noted(s, f, "", &who, ch);
            }
        }
    }
}

fn latency_algorithm_3_2(config: &mut Value, ch: &mut Changes) {
    for u in entities_mut(config, "upstreams") {
        if u.get("algorithm").and_then(Value::as_str) == Some("latency") {
            let who = label("upstream", u);
            u.insert("algorithm".to_owned(), Value::from("round-robin"));
            ch.push(&who, "algorithm latency -> round-robin".to_owned());
        }
    }
}

fn instance_name_3_2(config: &mut Value, ch: &mut Changes) {
    for p in entities_mut(config, "plugins") {
        if p.contains_key("instance_name") {
            let who = label("plugin", p);
            remove_noted(p, "instance_name", "", &who, ch);
        }
    }
}

fn use_srv_name_3_1(config: &mut Value, ch: &mut Changes) {
    for u in entities_mut(config, "upstreams") {
        if u.contains_key("use_srv_name") {
            let who = label("upstream", u);
            remove_noted(u, "use_srv_name", "", &who, ch);
        }
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CP: KongVersion = KongVersion::new(3, 10, 0);

    fn v(s: &str) -> KongVersion {
        KongVersion::parse(s).unwrap_or_else(|| panic!("test version {s:?} must parse"))
    }

    #[test]
    fn parses_versions_like_kong() {
        type Case = (&'static str, Option<(u32, u32, u32)>);
        let cases: &[Case] = &[
            ("3.10.0", Some((3, 10, 0))),
            ("3.10.0.0", Some((3, 10, 0))),
            ("3.9.1.2", Some((3, 9, 1))),
            ("3.4.3.12-enterprise-edition", Some((3, 4, 3))),
            ("3.10.0-rc.1", Some((3, 10, 0))),
            ("3.8.0.0-20240801", Some((3, 8, 0))),
            ("2.8.4", Some((2, 8, 4))),
            ("3.10.0abc", Some((3, 10, 0))),
            ("3.10", None),
            ("3", None),
            ("", None),
            ("v3.10.0", None),
            (" 3.10.0", None),
            ("3.x.0", None),
            ("3.10.", None),
            ("3..0", None),
            ("-3.10.0", None),
            ("99999999999.1.1", None),
        ];
        for (s, want) in cases {
            let got = KongVersion::parse(s).map(|v| (v.major, v.minor, v.patch));
            assert_eq!(got, *want, "parse({s:?})");
        }
    }

    #[test]
    fn version_num_and_display() {
        assert_eq!(v("3.10.0.0").num(), 3_010_000_000);
        assert_eq!(v("3.9.0").num(), 3_009_000_000);
        assert_eq!(v("3.0.1").num(), 3_000_001_000);
        assert_eq!(v("3.10.0.0-enterprise-edition").to_string(), "3.10.0");
        assert!(v("3.9.9") < v("3.10.0"));
    }

    #[test]
    fn version_check_follows_kong() {
        // (cp, dp, accepted): from 03-compat_spec.lua, then 3.10-specific ones.
        let cases = [
            ("1.1.2", "1.1.2", true),
            ("1.1.999", "1.1.2222", true),
            ("1.2.0", "1.1.0", true),
            ("1.9999.0", "1.1.33", true),
            ("1.0.0", "2.0.0", false),
            ("2.0.0", "1.0.0", false),
            ("1.0.0", "1.1.0", false),
            ("3.10.0", "3.10.0.0", true),
            ("3.10.0", "3.10.3", true),
            ("3.10.0", "3.0.0", true),
            ("3.10.0", "3.11.0", false),
            ("3.10.0", "2.8.4", false),
            ("3.10.0", "4.0.0", false),
        ];
        for (cp, dp, ok) in cases {
            let got = check_version(v(cp), v(dp));
            assert_eq!(got.is_ok(), ok, "cp {cp} dp {dp}: {got:?}");
            if let Err(issue) = got {
                assert_eq!(issue.code, KONG_VERSION_INCOMPATIBLE);
                assert_eq!(issue.severity, SEVERITY_ERROR);
                assert!(issue.description.contains(&v(dp).to_string()), "{issue:?}");
                assert!(!issue.resolution.is_empty());
            }
        }
        assert_eq!(check_version_str(CP, "3.9.1.0"), Ok(v("3.9.1")));
        let bad = check_version_str(CP, "banana").expect_err("unparsable version is rejected");
        assert_eq!(bad.code, KONG_VERSION_INCOMPATIBLE);
        assert!(
            bad.description.contains("3.x.y are accepted"),
            "{}",
            bad.description
        );
    }

    fn dp(list: &[(&str, Option<&str>)]) -> Vec<DpPlugin> {
        list.iter()
            .map(|(n, ver)| DpPlugin {
                name: (*n).to_owned(),
                version: ver.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn plugin_checks_follow_kong() {
        let cpv = |name: &str| match name {
            "custom" => None,
            "versioned-custom" => Some("1.2.0".to_owned()),
            _ => bundled_plugin_version(name, CP),
        };
        // (configured, dp plugins, expected codes)
        type Case = (
            &'static [&'static str],
            &'static [(&'static str, Option<&'static str>)],
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            (&["cors"], &[("cors", Some("3.10.0"))], &[]),
            (&["cors"], &[("cors", Some("3.4.2"))], &[]),
            (
                &["redirect"],
                &[("cors", Some("3.9.1"))],
                &[PLUGIN_SET_INCOMPATIBLE],
            ),
            (
                &["cors"],
                &[("cors", Some("3.11.0"))],
                &[PLUGIN_VERSION_INCOMPATIBLE],
            ),
            (
                &["cors"],
                &[("cors", Some("2.8.0"))],
                &[PLUGIN_VERSION_INCOMPATIBLE],
            ),
            (&["cors"], &[("cors", None)], &[]),
            (&["cors"], &[("cors", Some("unknown"))], &[]),
            (&["opentelemetry"], &[("opentelemetry", Some("0.1.0"))], &[]),
            (
                &["opentelemetry"],
                &[("opentelemetry", Some("0.2.0"))],
                &[PLUGIN_VERSION_INCOMPATIBLE],
            ),
            (&["custom"], &[("custom", Some("9.9.9"))], &[]),
            (&["custom"], &[], &[PLUGIN_SET_INCOMPATIBLE]),
            (
                &["versioned-custom"],
                &[("versioned-custom", Some("1.3.0"))],
                &[PLUGIN_VERSION_INCOMPATIBLE],
            ),
            (
                &["versioned-custom"],
                &[("versioned-custom", Some("1.1.0"))],
                &[],
            ),
            (
                &["cors", "cors", "ai-proxy", "acl"],
                &[("acl", Some("3.9.0"))],
                &[PLUGIN_SET_INCOMPATIBLE, PLUGIN_SET_INCOMPATIBLE],
            ),
        ];
        for (configured, plugins, want) in cases {
            let issues = check_plugins(configured, &dp(plugins), cpv);
            let codes: Vec<&str> = issues.iter().map(|i| i.code.as_str()).collect();
            assert_eq!(&codes, want, "{configured:?} vs {plugins:?}");
            for issue in &issues {
                assert_eq!(issue.severity, SEVERITY_ERROR);
                assert_eq!(issue.affected_resources.len(), 1);
                assert_eq!(issue.affected_resources[0].r#type, "plugin");
                assert!(
                    issue.description.contains(&issue.affected_resources[0].id),
                    "{issue:?}"
                );
            }
        }
    }

    #[test]
    fn plugin_issue_wording() {
        let issues = check_plugins(&["redirect"], &dp(&[("cors", Some("3.9.1"))]), |n| {
            bundled_plugin_version(n, CP)
        });
        let [issue] = issues.as_slice() else {
            panic!("one issue expected: {issues:?}")
        };
        assert_eq!(
            issue.description,
            "configured plugin redirect 3.10.0 is missing on the data plane"
        );
        assert!(
            issue
                .resolution
                .starts_with("upgrade the data plane to Kong 3.10"),
            "{}",
            issue.resolution
        );
        let issues = check_plugins(&["mine"], &[], |_| None);
        assert_eq!(
            issues[0].description,
            "configured plugin mine is missing on the data plane"
        );
        assert!(
            issues[0].resolution.starts_with("install the mine plugin"),
            "{}",
            issues[0].resolution
        );
    }

    #[test]
    fn config_plugin_check_names_entity_ids() {
        let config = json!({
            "plugins": [{"id": "p1", "name": "ai-proxy", "config": {}}],
            "services": [{"id": "s1", "plugins": [{"id": "p2", "name": "ai-proxy"}],
                          "routes": [{"id": "r1", "plugins": [{"id": "p3", "name": "cors"}]}]}],
            "consumers": [{"id": "c1", "plugins": [{"name": "key-auth"}]}],
        });
        let issues = check_config_plugins(&config, &dp(&[("key-auth", Some("3.5.0"))]), |n| {
            bundled_plugin_version(n, CP)
        });
        let got: Vec<(&str, Vec<&str>)> = issues
            .iter()
            .map(|i| {
                (
                    i.code.as_str(),
                    i.affected_resources.iter().map(|r| r.id.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (PLUGIN_SET_INCOMPATIBLE, vec!["p1", "p2"]),
                (PLUGIN_SET_INCOMPATIBLE, vec!["p3"])
            ]
        );
    }

    /// removed_fields.lua entries: (plugin, config path, DP version, removed?).
    #[test]
    fn removes_fields_from_the_real_table() {
        let cases = [
            ("cors", "allow_origin_absent", "3.9.3", true),
            ("cors", "allow_origin_absent", "3.10.0.0", false),
            ("session", "hash_subject", "3.9.0", true),
            ("session", "store_metadata", "3.9.0.1", true),
            ("prometheus", "wasm_metrics", "3.9.2", true),
            ("prometheus", "ai_metrics", "3.9.2", false),
            ("prometheus", "ai_metrics", "3.7.1", true),
            ("ai-proxy", "llm_format", "3.9.0", true),
            ("ai-proxy", "llm_format", "3.10.0", false),
            ("ai-prompt-guard", "llm_format", "3.8.0", true),
            ("ai-prompt-template", "llm_format", "3.8.0", false),
            ("opentelemetry", "queue.concurrency_limit", "3.7.1", true),
            ("opentelemetry", "queue.concurrency_limit", "3.8.0", false),
            ("opentelemetry", "sampling_rate", "3.5.0", true),
            ("rate-limiting", "sync_rate", "3.3.1", true),
            ("rate-limiting", "sync_rate", "3.4.0", false),
            ("basic-auth", "realm", "3.5.0", true),
            ("basic-auth", "realm", "3.6.0", false),
            ("key-auth", "realm", "3.6.1", true),
            ("response-transformer", "rename.json", "3.7.0", true),
            (
                "ai-request-transformer",
                "llm.model.options.upstream_path",
                "3.6.0",
                true,
            ),
            (
                "ai-request-transformer",
                "llm.model.options.upstream_path",
                "3.7.0",
                false,
            ),
            ("acme", "storage_config.redis.scan_count", "3.4.2", true),
            ("acme", "storage_config.redis.scan_count", "3.5.0", false),
            ("zipkin", "http_response_header_for_traceid", "3.0.1", true),
            ("zipkin", "http_response_header_for_traceid", "3.1.0", false),
            ("acl", "always_use_authenticated_groups", "3.7.0", true),
            ("acl", "always_use_authenticated_groups", "3.8.0", false),
        ];
        for (plugin, path, version, removed) in cases {
            let mut cfg = json!({"keep_me": 1});
            let segments: Vec<&str> = path.split('.').collect();
            let mut at = &mut cfg;
            for seg in &segments {
                at = &mut at[*seg];
            }
            *at = json!("x");
            let config = json!({"plugins": [{"id": "p", "name": plugin, "config": cfg}]});
            let out = downgrade(&config, v(version));
            let new = out.as_ref().map_or(&config, |(c, _)| c);
            let pointer = format!("/plugins/0/config/{}", segments.join("/"));
            assert_eq!(
                new.pointer(&pointer).is_none(),
                removed,
                "{plugin} {path} on {version}: {new}"
            );
            assert_eq!(new.pointer("/plugins/0/config/keep_me"), Some(&json!(1)));
            if removed {
                let notes = out.map(|(_, n)| n).unwrap_or_default();
                assert!(
                    notes.contains(&format!("plugin {plugin} p: removed config.{path}")),
                    "{notes:?}"
                );
            }
        }
    }

    #[test]
    fn a_3_9_dp_loses_exactly_the_3_10_fields() {
        let got = fields_for(REMOVED_FIELDS, v("3.9.3").num());
        let want: BTreeMap<&str, Vec<&str>> = [
            ("ai_prompt_decorator", vec!["llm_format"]),
            ("ai_prompt_guard", vec!["llm_format"]),
            ("ai_proxy", vec!["llm_format"]),
            ("cors", vec!["allow_origin_absent"]),
            ("prometheus", vec!["wasm_metrics"]),
            ("session", vec!["hash_subject", "store_metadata"]),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        assert!(fields_for(REMOVED_FIELDS, CP.num()).is_empty());
    }

    #[test]
    fn table_is_well_formed() {
        assert!(
            REMOVED_FIELDS.windows(2).all(|w| w[0].0 < w[1].0),
            "keys ascending"
        );
        for (version, plugins) in REMOVED_FIELDS {
            assert_eq!(version % 1_000_000, 0, "keys are x.y.0.0");
            for (plugin, fields) in *plugins {
                let name = plugin.replace('_', "-");
                assert!(
                    BUNDLED_PLUGINS.contains(&name.as_str()),
                    "{plugin} is not bundled"
                );
                for f in *fields {
                    assert!(f.split('.').all(|s| !s.is_empty()), "{plugin}: {f}");
                }
            }
        }
    }

    /// The fake table of 03-compat_spec.lua ("calculating fields to remove").
    static SPEC_MERGE: &RemovedFields = &[
        (
            200,
            &[
                ("my_plugin", &["a", "c"]),
                ("my_other_plugin", &["my_field"]),
            ],
        ),
        (
            300,
            &[
                ("my_plugin", &["b"]),
                ("my_other_plugin", &["my_extra_field"]),
                ("my_third_plugin", &["my_new_field"]),
            ],
        ),
    ];

    #[test]
    fn merges_versions_like_the_spec() {
        let as_vec =
            |m: BTreeMap<&'static str, Vec<&'static str>>| m.into_iter().collect::<Vec<_>>();
        assert_eq!(
            as_vec(fields_for(SPEC_MERGE, 100)),
            vec![
                ("my_other_plugin", vec!["my_extra_field", "my_field"]),
                ("my_plugin", vec!["a", "b", "c"]),
                ("my_third_plugin", vec!["my_new_field"]),
            ]
        );
        assert_eq!(
            as_vec(fields_for(SPEC_MERGE, 200)),
            vec![
                ("my_other_plugin", vec!["my_extra_field"]),
                ("my_plugin", vec!["b"]),
                ("my_third_plugin", vec!["my_new_field"]),
            ]
        );
        assert!(fields_for(SPEC_MERGE, 300).is_empty());
    }

    /// The fake table of 03-compat_spec.lua ("update_compatible_payload()").
    static SPEC_PAYLOAD: &RemovedFields = &[
        (2_000_000_000, &[("my_plugin", &["delete_me"])]),
        (
            3_000_000_000,
            &[
                ("my_plugin", &["delete_me_too"]),
                ("other_plugin", &["goodbye", "my.nested.field"]),
                ("session", &["anything"]),
            ],
        ),
    ];

    #[test]
    fn update_compatible_payload_cases_from_the_spec() {
        // (name, DP version, plugins, expected plugins)
        let cases = [
            ("empty", "3.0.0", json!([]), json!([])),
            (
                "merged",
                "1.0.0",
                json!([
                    {"name": "my-plugin", "config": {"do_not_delete": true, "delete_me": false, "delete_me_too": null}},
                    {"name": "other-plugin", "config": {"hello": {"a": 1}}},
                ]),
                json!([
                    {"name": "my-plugin", "config": {"do_not_delete": true}},
                    {"name": "other-plugin", "config": {"hello": {"a": 1}}},
                ]),
            ),
            (
                "nested fields",
                "1.0.0",
                json!([
                    {"name": "other-plugin", "config": {"do_not_delete": 1, "my": 123}},
                    {"name": "other-plugin", "config": {"do_not_delete": 1, "my": {"nested": "not a table"}}},
                    {"name": "other-plugin", "config": {"do_not_delete": 1, "my": {"nested": {"field": "this one", "stay": "I'm still here"}}}},
                ]),
                json!([
                    {"name": "other-plugin", "config": {"do_not_delete": 1, "my": 123}},
                    {"name": "other-plugin", "config": {"do_not_delete": 1, "my": {"nested": "not a table"}}},
                    {"name": "other-plugin", "config": {"do_not_delete": 1, "my": {"nested": {"stay": "I'm still here"}}}},
                ]),
            ),
            (
                "renamed fields",
                "1.0.0",
                json!([{"name": "session", "config": {
                    "idling_timeout": 60, "rolling_timeout": 60, "stale_ttl": 60,
                    "cookie_same_site": "Default", "cookie_http_only": false, "remember": true,
                }}]),
                json!([{"name": "session", "config": {
                    "cookie_idletime": 60, "cookie_lifetime": 60, "cookie_discard": 60,
                    "cookie_samesite": "Lax", "cookie_httponly": false, "cookie_persistent": true,
                }}]),
            ),
        ];
        for (name, version, plugins, expect) in cases {
            let config = json!({ "plugins": plugins });
            let got = downgrade_with(&config, v(version), SPEC_PAYLOAD).map_or(config, |(c, _)| c);
            assert_eq!(got["plugins"], expect, "{name}");
        }
    }

    fn core_entities() -> Value {
        json!({
            "upstreams": [
                {"id": "u1", "name": "upstreams1", "slots": 10, "use_srv_name": true},
                {"id": "u2", "name": "upstreams2", "slots": 10},
                {"id": "u3", "name": "upstreams3", "slots": 10, "use_srv_name": false},
                {"id": "u4", "name": "upstreams4", "slots": 10, "algorithm": "latency"},
                {"id": "u5", "name": "upstreams5", "slots": 10, "algorithm": "round-robin"},
            ],
            "plugins": [
                {"id": "p1", "name": "cors", "instance_name": "my-cors"},
                {"id": "p2", "name": "correlation-id", "instance_name": "my-correlation-id"},
                {"id": "p3", "name": "statsd", "config": {"queue": {"max_batch_size": 9, "max_coalescing_delay": 9}}},
                {"id": "p4", "name": "datadog", "config": {"queue": {"max_batch_size": 9, "max_coalescing_delay": 9}}},
                {"id": "p5", "name": "opentelemetry", "config": {"traces_endpoint": "http://example.com",
                    "queue": {"max_batch_size": 9, "max_coalescing_delay": 9}}},
            ],
            "services": [
                {"id": "s1", "protocol": "tls", "client_certificate": {"id": "c"}, "tls_verify_depth": 1,
                 "tls_verify": true, "ca_certificates": ["ca"], "updated_at": 1234567890},
                {"id": "s2", "protocol": "https", "client_certificate": {"id": "c"}, "tls_verify_depth": 1,
                 "tls_verify": true, "ca_certificates": ["ca"]},
                {"id": "s3", "protocol": "tls"},
                {"id": "s4", "protocol": "tls", "tls_verify": false},
            ],
        })
    }

    #[test]
    fn core_entity_changes_from_the_spec() {
        let config = core_entities();
        let down = |ver: &str| {
            downgrade(&config, v(ver))
                .map(|(c, _)| c)
                .expect("changes expected")
        };

        let c = down("3.0.0");
        for i in 0..5 {
            assert!(
                c["upstreams"][i].get("use_srv_name").is_none(),
                "{}",
                c["upstreams"][i]
            );
        }

        let c = down("3.1.0");
        assert!(c["plugins"][0].get("instance_name").is_none());
        assert!(c["plugins"][1].get("instance_name").is_none());
        assert_eq!(c["upstreams"][3]["algorithm"], "round-robin");
        assert_eq!(c["upstreams"][4]["algorithm"], "round-robin");
        assert_eq!(
            c["upstreams"][0]["use_srv_name"], true,
            "3.1 knows use_srv_name"
        );
        for f in [
            "client_certificate",
            "tls_verify",
            "tls_verify_depth",
            "ca_certificates",
        ] {
            assert!(c["services"][0].get(f).is_none(), "tls service keeps {f}");
            assert!(c["services"][1].get(f).is_some(), "https service lost {f}");
        }
        assert_eq!(
            c["services"][3]["tls_verify"], false,
            "Lua: false alone does not trigger"
        );
        assert_eq!(
            c["services"][0]["updated_at"], 1234567890,
            "services keep updated_at"
        );

        let c = down("3.2.0");
        for (i, name) in [(2, "statsd"), (3, "datadog")] {
            let cfg = &c["plugins"][i]["config"];
            assert_eq!(cfg["retry_count"], 10, "{name}");
            assert_eq!(cfg["queue_size"], 9, "{name}");
            assert_eq!(cfg["flush_timeout"], 9, "{name}");
            assert!(cfg.get("queue").is_none(), "{name}: queue is 3.3+");
        }
        let otel = &c["plugins"][4]["config"];
        assert_eq!(otel["batch_span_count"], 9);
        assert_eq!(otel["batch_flush_delay"], 9);
        assert_eq!(otel["endpoint"], "http://example.com");
        assert!(otel.get("traces_endpoint").is_none());
        assert_eq!(
            c["plugins"][0]["instance_name"], "my-cors",
            "3.2 knows instance_name"
        );

        // 3.0 drops what 3.3 added back in: retry_count & co. are 3.1+.
        let c = down("3.0.0");
        assert!(c["plugins"][2]["config"].get("retry_count").is_none());
    }

    #[test]
    fn legacy_queue_defaults_without_queue_record() {
        let config = json!({"plugins": [{"name": "datadog", "config": {}}, {"name": "opentelemetry", "config": {}}]});
        let (c, _) = downgrade(&config, v("3.2.0")).expect("changes expected");
        assert_eq!(
            c["plugins"][0]["config"],
            json!({"retry_count": 10, "queue_size": 1, "flush_timeout": 2})
        );
        assert_eq!(
            c["plugins"][1]["config"],
            json!({"batch_span_count": 200, "batch_flush_delay": 3})
        );
    }

    #[test]
    fn updated_at_goes_for_old_dps_also_when_nested() {
        let config = json!({
            "upstreams": [{"id": "u", "updated_at": 1, "targets": [{"id": "t", "updated_at": 1}]}],
            "certificates": [{"id": "c", "updated_at": 1, "snis": [{"id": "n", "updated_at": 1}]}],
            "consumers": [{"id": "k", "updated_at": 1, "plugins": [{"id": "p", "name": "acl", "updated_at": 1}]}],
            "routes": [{"id": "r", "updated_at": 1}],
        });
        let (c, notes) = downgrade(&config, v("3.2.4")).expect("changes expected");
        for ptr in [
            "/upstreams/0",
            "/upstreams/0/targets/0",
            "/certificates/0",
            "/certificates/0/snis/0",
            "/consumers/0",
            "/consumers/0/plugins/0",
        ] {
            assert!(c.pointer(&format!("{ptr}/updated_at")).is_none(), "{ptr}");
        }
        assert_eq!(
            c["routes"][0]["updated_at"], 1,
            "routes are not in Kong's list"
        );
        assert!(
            notes.contains(&"target t: removed updated_at".to_owned()),
            "{notes:?}"
        );
        assert!(downgrade(&config, v("3.3.0")).is_none());
    }

    #[test]
    fn nested_plugins_are_downgraded() {
        let cors = |id: &str| json!({"id": id, "name": "cors", "config": {"allow_origin_absent": true, "origins": ["*"]}});
        let config = json!({
            "plugins": [cors("p0")],
            "services": [{"id": "s", "plugins": [cors("p1")], "routes": [{"id": "r", "plugins": [cors("p2")]}]}],
            "routes": [{"id": "r2", "plugins": [cors("p3")]}],
            "consumers": [{"id": "c", "plugins": [cors("p4")]}],
            "consumer_groups": [{"id": "g", "plugins": [cors("p5")]}],
        });
        let (c, notes) = downgrade(&config, v("3.9.1")).expect("changes expected");
        for ptr in [
            "/plugins/0",
            "/services/0/plugins/0",
            "/services/0/routes/0/plugins/0",
            "/routes/0/plugins/0",
            "/consumers/0/plugins/0",
            "/consumer_groups/0/plugins/0",
        ] {
            assert!(
                c.pointer(&format!("{ptr}/config/allow_origin_absent"))
                    .is_none(),
                "{ptr}"
            );
            assert_eq!(
                c.pointer(&format!("{ptr}/config/origins")),
                Some(&json!(["*"])),
                "{ptr}"
            );
        }
        assert_eq!(notes.len(), 6, "{notes:?}");
        assert!(downgrade(&config, v("3.10.0")).is_none());
    }

    #[test]
    fn ai_provider_fallbacks() {
        let proxy = |provider: &str| {
            json!({"plugins": [{"id": "a", "name": "ai-proxy", "config": {"route_type": "llm/v1/chat",
                "model": {"provider": provider, "options": {"huggingface": {"use_cache": true}, "upstream_url": null}}}}]})
        };
        // (provider, DP, provider after, route_type after, huggingface options kept)
        let cases = [
            ("huggingface", "3.9.0", "huggingface", "llm/v1/chat", true),
            ("huggingface", "3.8.2", "openai", "preserve", false),
            ("huggingface", "3.6.0", "openai", "llm/v1/chat", false),
            ("gemini", "3.8.0", "gemini", "llm/v1/chat", true),
            ("gemini", "3.7.1", "openai", "preserve", true),
            ("bedrock", "3.6.1", "openai", "llm/v1/chat", true),
            ("openai", "3.6.1", "openai", "llm/v1/chat", true),
        ];
        for (provider, version, want_provider, want_route, hf_kept) in cases {
            let config = proxy(provider);
            let c = downgrade(&config, v(version)).map_or(config, |(c, _)| c);
            let cfg = &c["plugins"][0]["config"];
            assert_eq!(
                cfg["model"]["provider"], want_provider,
                "{provider} on {version}"
            );
            assert_eq!(cfg["route_type"], want_route, "{provider} on {version}");
            assert_eq!(
                cfg.pointer("/model/options/huggingface").is_some(),
                hf_kept,
                "{provider} on {version}"
            );
        }
        let t = json!({"plugins": [{"name": "ai-response-transformer", "config": {"llm": {"model": {"provider": "gemini"}}}}]});
        let (c, _) = downgrade(&t, v("3.7.0")).expect("changes expected");
        assert_eq!(
            c.pointer("/plugins/0/config/llm/model/provider"),
            Some(&json!("openai"))
        );
        assert!(
            c.pointer("/plugins/0/config/route_type").is_none(),
            "transformers have no route_type"
        );
    }

    #[test]
    fn ai_proxy_preserve_and_mistral() {
        let config = json!({"plugins": [
            {"name": "ai-proxy", "config": {"route_type": "preserve", "model": {"provider": "openai"}}},
            {"name": "ai-proxy", "config": {"route_type": "llm/v1/chat", "model": {"provider": "mistral", "options": null}}},
            {"name": "ai-proxy", "config": {"route_type": "llm/v1/chat", "model": {"provider": "mistral", "options": {"upstream_url": "http://m"}}}},
        ]});
        let (c, _) = downgrade(&config, v("3.6.0")).expect("changes expected");
        assert_eq!(c["plugins"][0]["config"]["route_type"], "llm/v1/chat");
        assert_eq!(
            c["plugins"][1]["config"]["model"]["options"],
            json!({"upstream_url": "https://api.mistral.ai:443"})
        );
        assert_eq!(
            c["plugins"][2]["config"]["model"]["options"]["upstream_url"],
            "http://m"
        );
        let (c, _) = downgrade(&config, v("3.7.0")).expect("changes expected");
        assert_eq!(
            c["plugins"][0]["config"]["route_type"], "preserve",
            "3.7 knows preserve"
        );
    }

    #[test]
    fn aws_lambda_sts_endpoint() {
        let config = json!({"plugins": [{"name": "aws-lambda", "config": {"aws_sts_endpoint_url": null, "timeout": 1}}]});
        let (c, _) = downgrade(&config, v("3.7.0")).expect("changes expected");
        assert_eq!(c["plugins"][0]["config"], json!({"timeout": 1}));
        assert!(downgrade(&config, v("3.8.0")).is_none());
    }

    #[test]
    fn redis_records_flatten_for_pre_3_6() {
        let config = json!({"plugins": [
            {"name": "rate-limiting", "config": {"policy": "redis", "minute": 5,
                "redis": {"host": "r", "port": 6379, "username": null, "password": "pw", "database": 0,
                          "timeout": 2000, "ssl": false, "ssl_verify": false, "server_name": null}}},
            {"name": "response-ratelimiting", "config": {"policy": "local", "redis": {"host": "r"}}},
            {"name": "acme", "config": {"storage": "redis", "storage_config": {"redis": {
                "host": "r", "port": 6379, "password": "pw", "database": 0, "ssl": true, "ssl_verify": true,
                "server_name": "sni", "username": null, "extra_options": {"namespace": "ns", "scan_count": 10}}}}},
        ]});
        let (c, _) = downgrade(&config, v("3.5.0")).expect("changes expected");
        assert_eq!(
            c["plugins"][0]["config"],
            json!({"policy": "redis", "minute": 5, "redis_host": "r", "redis_port": 6379, "redis_username": null,
                   "redis_password": "pw", "redis_database": 0, "redis_timeout": 2000, "redis_ssl": false,
                   "redis_ssl_verify": false, "redis_server_name": null})
        );
        assert_eq!(
            c["plugins"][1]["config"]["redis"]["host"], "r",
            "local policy untouched"
        );
        assert_eq!(
            c["plugins"][2]["config"]["storage_config"]["redis"],
            json!({"host": "r", "port": 6379, "auth": "pw", "database": 0, "ssl": true, "ssl_verify": true,
                   "ssl_server_name": "sni", "namespace": "ns", "scan_count": 10})
        );
        // Older still: removed_fields then strips what those versions lacked.
        let (c, _) = downgrade(&config, v("3.0.0")).expect("changes expected");
        assert_eq!(
            c["plugins"][2]["config"]["storage_config"]["redis"],
            json!({"host": "r", "port": 6379, "auth": "pw", "database": 0})
        );
        // Kong strips redis_ssl* for response-ratelimiting only, not rate-limiting.
        assert_eq!(c["plugins"][0]["config"]["redis_ssl"], false);
        assert!(c["plugins"][0]["config"].get("redis_host").is_some());
    }

    #[test]
    fn header_types_and_vault_prefix() {
        let config = json!({
            "plugins": [
                {"name": "zipkin", "config": {"header_type": "gcp", "default_header_type": "aws"}},
                {"name": "opentelemetry", "config": {"header_type": "aws"}},
            ],
            "vaults": [{"id": "v", "name": "env", "prefix": "my-env", "config": {"prefix": "my-prefix-"}}],
        });
        let (c, _) = downgrade(&config, v("3.4.0")).expect("changes expected");
        assert_eq!(
            c["plugins"][0]["config"],
            json!({"header_type": "preserve", "default_header_type": "aws"})
        );
        assert_eq!(c["plugins"][1]["config"]["header_type"], "aws");
        let (c, notes) = downgrade(&config, v("3.3.0")).expect("changes expected");
        assert_eq!(
            c["plugins"][0]["config"],
            json!({"header_type": "preserve", "default_header_type": "b3"})
        );
        assert_eq!(c["plugins"][1]["config"]["header_type"], "preserve");
        assert_eq!(
            c["vaults"][0]["config"]["prefix"], "my-prefix-",
            "3.3 knows dashes"
        );
        assert!(notes.iter().all(|n| !n.starts_with("vault")), "{notes:?}");
        let (c, _) = downgrade(&config, v("3.2.0")).expect("changes expected");
        assert_eq!(c["vaults"][0]["config"]["prefix"], "my_prefix_");
        assert!(
            c["plugins"][1]["config"].get("header_type").is_none(),
            "otel header_type is 3.3+"
        );
    }

    #[test]
    fn variants_match_rule_sets() {
        let cases = [
            ("3.10.0", 0),
            ("3.10.0.0", 0),
            ("3.10.2", 0),
            ("3.9.0", 1),
            ("3.9.3.1", 1),
            ("3.8.0", 2),
            ("3.1.0", 9),
            ("3.0.0", 10),
            ("2.8.4", 10),
        ];
        for (version, want) in cases {
            assert_eq!(variant(v(version)), want, "{version}");
        }
        // Same key, same bytes; different key, different bytes for a config using both fields.
        let config = json!({"plugins": [{"name": "cors", "config": {"allow_origin_absent": true, "private_network": true}}]});
        let out = |s: &str| downgrade(&config, v(s)).map(|(c, _)| c);
        assert_eq!(out("3.9.0"), out("3.9.3"));
        assert_ne!(out("3.9.0"), out("3.4.0"));
        assert_eq!(out("3.10.0"), None);
    }

    #[test]
    fn unchanged_configs_are_shared() {
        let config = json!({"plugins": [{"name": "cors", "config": {"origins": ["*"]}}], "services": [{"id": "s", "protocol": "http"}]});
        for version in ["3.10.0", "3.9.0", "3.4.0"] {
            assert!(downgrade(&config, v(version)).is_none(), "{version}");
        }
        assert!(downgrade(&json!(null), v("3.0.0")).is_none());
        assert!(
            downgrade(
                &json!({"plugins": "nope", "services": [1, "x"]}),
                v("3.0.0")
            )
            .is_none()
        );
    }

    #[test]
    fn downgrade_keeps_key_order() {
        let config = json!({"plugins": [{"name": "cors", "config": {"a": 1, "allow_origin_absent": true, "z": 2}}]});
        let (c, _) = downgrade(&config, v("3.9.0")).expect("changes expected");
        let keys: Vec<&String> = c["plugins"][0]["config"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["a", "z"]);
    }

    #[test]
    fn issue_json_uses_konnect_names() {
        let issue = CompatIssue {
            code: PLUGIN_SET_INCOMPATIBLE.to_owned(),
            severity: SEVERITY_ERROR.to_owned(),
            description: "d".to_owned(),
            resolution: "r".to_owned(),
            affected_resources: vec![AffectedResource {
                id: "p1".to_owned(),
                r#type: "plugin".to_owned(),
                ..AffectedResource::default()
            }],
            documentation_url: None,
        };
        let status = CompatStatus::from_issues(vec![issue.clone()]);
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(
            json,
            json!({"state": "COMPATIBILITY_STATE_INCOMPATIBLE", "issues": [{"code": "PLUGIN_SET_INCOMPATIBLE",
                "severity": "error", "description": "d", "resolution": "r",
                "affected_resources": [{"id": "p1", "type": "plugin"}]}]})
        );
        let back: CompatStatus = serde_json::from_value(json).expect("round trips");
        assert_eq!(back, status);
        assert_eq!(
            serde_json::to_value(CompatStatus::from_issues(Vec::new())).expect("serializes"),
            json!({"state": "COMPATIBILITY_STATE_FULLY_COMPATIBLE"})
        );
        let plugins: Vec<DpPlugin> =
            serde_json::from_value(json!([{"name": "cors", "version": "3.9.1"}, {"name": "mine"}]))
                .expect("basic_info plugins");
        assert_eq!(plugins, dp(&[("cors", Some("3.9.1")), ("mine", None)]));
    }

    /// Property names of a schema in the Konnect spec, read as plain text.
    fn spec_properties(spec: &str, schema: &str) -> Vec<String> {
        let header = format!("    {schema}:");
        let mut lines = spec.lines().skip_while(|l| *l != header).skip(1);
        let mut out = Vec::new();
        let mut in_props = false;
        for line in lines.by_ref() {
            let indent = line.len() - line.trim_start().len();
            if !line.trim().is_empty() && indent <= 4 {
                break;
            }
            if indent == 6 {
                in_props = line.trim() == "properties:";
            } else if in_props && indent == 8 {
                out.push(line.trim().trim_end_matches(':').to_owned());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn issue_fields_mirror_the_konnect_spec() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/konnect-api/control-planes-config.v2.openapi.yaml"
        );
        let spec = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let full = CompatIssue {
            documentation_url: Some("u".to_owned()),
            affected_resources: vec![AffectedResource {
                parent_code: Some("c".to_owned()),
                details: vec!["d".to_owned()],
                ..AffectedResource::default()
            }],
            ..CompatIssue::default()
        };
        let json = serde_json::to_value(&full).expect("serializes");
        let keys = |v: &Value| {
            let mut k: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        };
        assert_eq!(
            keys(&json),
            spec_properties(&spec, "NodeCompatibilityIssue")
        );
        assert_eq!(
            keys(&json["affected_resources"][0]),
            spec_properties(&spec, "NodeCompatibilityIssueAffectedResource")
        );
    }
}

//! Kong Gateway's bundled plugins (3.10): which edition ships each, and the
//! scopes and protocols it allows. Their config schemas are data
//! (`plugin_schemas.json`, read by `schemas`); a plugin described there is
//! checked, any other is reported once per member as a note — it never
//! passes silently.

/// The protocols a plugin may run on (its `protocols` field's elements).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Protos {
    /// `typedefs.protocols_http`: grpc, grpcs, http, https (ws, wss on Enterprise).
    Http,
    /// `typedefs.protocols`: every protocol, streams included.
    All,
    /// A list of the plugin's own (Enterprise's TLS and WebSocket plugins).
    Only(&'static [&'static str]),
}

impl Protos {
    /// The protocols allowed.
    pub fn allowed(self) -> &'static [&'static str] {
        match self {
            Protos::Http => HTTP_PROTOCOLS,
            Protos::All => ALL_PROTOCOLS,
            Protos::Only(list) => list,
        }
    }
}

pub const HTTP_PROTOCOLS: &[&str] = &["grpc", "grpcs", "http", "https", "ws", "wss"];
pub const ALL_PROTOCOLS: &[&str] = &[
    "grpc",
    "grpcs",
    "http",
    "https",
    "tcp",
    "tls",
    "tls_passthrough",
    "udp",
    "ws",
    "wss",
];

/// One bundled plugin: who ships it, where it may run. Its config schema
/// is data (`schemas`, `plugin_schemas.json`).
#[derive(Debug)]
pub struct Plugin {
    pub name: &'static str,
    pub enterprise: bool,
    pub protocols: Protos,
    /// Scopes its schema forbids (`typedefs.no_consumer` & co.).
    pub no_consumer: bool,
    pub no_route: bool,
    pub no_service: bool,
}

const fn p(name: &'static str, enterprise: bool, protocols: Protos) -> Plugin {
    Plugin {
        name,
        enterprise,
        protocols,
        no_consumer: false,
        no_route: false,
        no_service: false,
    }
}

/// A plugin whose schema says `consumer = typedefs.no_consumer`: the
/// authentication plugins (they identify the consumer) and a few that run
/// before a consumer is known.
const fn no_consumer(name: &'static str, enterprise: bool) -> Plugin {
    Plugin {
        no_consumer: true,
        ..p(name, enterprise, Protos::Http)
    }
}

const OSS: bool = false;
const EE: bool = true;
use Protos::{All, Http, Only};

/// Every plugin Kong Gateway 3.10 bundles, sorted by name. The OSS rows'
/// protocols and forbidden scopes follow each `schema.lua` at 3.10; the
/// Enterprise rows follow Kong's published 3.10 schemas (a unit test holds
/// them to `plugin_schemas_enterprise.json`). `Http` also takes `ws`/`wss`,
/// which Enterprise allows only for the plugins that say so: not checked.
pub static BUNDLED: &[Plugin] = &[
    no_consumer("acl", OSS),
    Plugin {
        no_consumer: true,
        no_route: true,
        no_service: true,
        ..p("acme", OSS, Http)
    },
    p("ai-aws-guardrails", EE, Http),
    no_consumer("ai-azure-content-safety", EE),
    p("ai-prompt-compressor", EE, Http),
    p("ai-prompt-decorator", OSS, Http),
    p("ai-prompt-guard", OSS, Http),
    p("ai-prompt-template", OSS, Http),
    p("ai-proxy", OSS, Http),
    p("ai-proxy-advanced", EE, Http),
    p("ai-rag-injector", EE, Http),
    p("ai-rate-limiting-advanced", EE, Http),
    no_consumer("ai-request-transformer", OSS),
    p("ai-response-transformer", OSS, Http),
    p("ai-sanitizer", EE, Http),
    p("ai-semantic-cache", EE, Http),
    p("ai-semantic-prompt-guard", EE, Http),
    p("app-dynamics", EE, Http),
    no_consumer("application-registration", EE),
    p("aws-lambda", OSS, Http),
    p("azure-functions", OSS, All),
    no_consumer("basic-auth", OSS),
    no_consumer("bot-detection", OSS),
    no_consumer("canary", EE),
    p("confluent", EE, Http),
    p("confluent-consume", EE, Http),
    p("correlation-id", OSS, Http),
    no_consumer("cors", OSS),
    p("datadog", OSS, All),
    p("datakit", EE, Http),
    no_consumer("degraphql", EE),
    p("exit-transformer", EE, Http),
    p("file-log", OSS, All),
    p("forward-proxy", EE, Http),
    p("graphql-proxy-cache-advanced", EE, Http),
    p("graphql-rate-limiting-advanced", EE, Http),
    p("grpc-gateway", OSS, All),
    p("grpc-web", OSS, All),
    no_consumer("header-cert-auth", EE),
    no_consumer("hmac-auth", OSS),
    p("http-log", OSS, All),
    no_consumer("injection-protection", EE),
    p("ip-restriction", OSS, All),
    p("jq", EE, Http),
    no_consumer("json-threat-protection", EE),
    no_consumer("jwe-decrypt", EE),
    no_consumer("jwt", OSS),
    no_consumer("jwt-signer", EE),
    p("kafka-consume", EE, Http),
    p("kafka-log", EE, Http),
    p("kafka-upstream", EE, Http),
    no_consumer("key-auth", OSS),
    no_consumer("key-auth-enc", EE),
    no_consumer("konnect-application-auth", EE),
    no_consumer("ldap-auth", OSS),
    no_consumer("ldap-auth-advanced", EE),
    p("loggly", OSS, All),
    p("mocking", EE, Http),
    no_consumer("mtls-auth", EE),
    p("oas-validation", EE, Http),
    no_consumer("oauth2", OSS),
    no_consumer("oauth2-introspection", EE),
    no_consumer("opa", EE),
    no_consumer("openid-connect", EE),
    p("opentelemetry", OSS, Http),
    Plugin {
        protocols: All,
        ..no_consumer("post-function", OSS)
    },
    Plugin {
        protocols: All,
        ..no_consumer("pre-function", OSS)
    },
    p("prometheus", OSS, All),
    p("proxy-cache", OSS, All),
    p("proxy-cache-advanced", EE, Http),
    p("rate-limiting", OSS, Http),
    p("rate-limiting-advanced", EE, Http),
    p("redirect", OSS, Http),
    p("request-callout", EE, Http),
    p("request-size-limiting", OSS, Http),
    p("request-termination", OSS, Http),
    p("request-transformer", OSS, All),
    p("request-transformer-advanced", EE, Http),
    p("request-validator", EE, Http),
    p("response-ratelimiting", OSS, Http),
    p("response-transformer", OSS, Http),
    p("response-transformer-advanced", EE, Http),
    p("route-by-header", EE, Http),
    p("route-transformer-advanced", EE, Http),
    no_consumer("saml", EE),
    Plugin {
        no_route: true,
        ..no_consumer("service-protection", EE)
    },
    Plugin {
        protocols: All,
        ..no_consumer("session", OSS)
    },
    no_consumer("standard-webhooks", OSS),
    p("statsd", OSS, All),
    p("statsd-advanced", EE, All),
    p("syslog", OSS, All),
    p("tcp-log", OSS, All),
    Plugin {
        protocols: Only(&["grpcs", "https", "tls"]),
        ..no_consumer("tls-handshake-modifier", EE)
    },
    Plugin {
        protocols: Only(&["grpcs", "https", "tls"]),
        ..no_consumer("tls-metadata-headers", EE)
    },
    p("udp-log", OSS, All),
    p("upstream-oauth", EE, Http),
    p("upstream-timeout", EE, Http),
    no_consumer("vault-auth", EE),
    p("websocket-size-limit", EE, Only(&["ws", "wss"])),
    p("websocket-validator", EE, Only(&["ws", "wss"])),
    p("xml-threat-protection", EE, Http),
    p("zipkin", OSS, All),
];

/// The bundled plugin of this name.
pub fn bundled(name: &str) -> Option<&'static Plugin> {
    BUNDLED
        .binary_search_by(|p| p.name.cmp(name))
        .ok()
        .map(|i| &BUNDLED[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_unique() {
        for w in BUNDLED.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
        assert!(bundled("key-auth").is_some());
        assert!(bundled("rate-limiting-advanced").unwrap().enterprise);
        assert!(bundled("no-such-plugin").is_none());
    }

    /// Every row agrees with Kong's published schema: the scopes it forbids,
    /// the protocols it takes (`Http` also takes `ws`/`wss`: see
    /// [`BUNDLED`]).
    #[test]
    fn rows_agree_with_the_published_schemas() {
        let ee = super::super::schemas::enterprise_file().expect("parses");
        let mut checked = 0;
        for (name, s) in &ee.published_scopes {
            let p = bundled(name).expect("bundled");
            let scopes = &s.scopes;
            let has = |f: &str| scopes.iter().any(|s| s == f);
            assert_eq!(p.no_consumer, !has("consumer"), "{name}: consumer");
            assert_eq!(p.no_route, !has("route"), "{name}: route");
            assert_eq!(p.no_service, !has("service"), "{name}: service");
            let published = &s.protocols;
            let allowed = p.protocols.allowed();
            for proto in published {
                assert!(allowed.contains(&proto.as_str()), "{name}: {proto}");
            }
            for proto in allowed {
                assert!(
                    published.iter().any(|p| p == proto)
                        || (p.protocols == Protos::Http && proto.starts_with("ws")),
                    "{name}: {proto} is not published"
                );
            }
            checked += 1;
        }
        assert_eq!(
            checked,
            BUNDLED.len() - 1,
            "all but application-registration"
        );
    }
}

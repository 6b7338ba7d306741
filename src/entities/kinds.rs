//! Each kind of entity the core-entities API serves: where it sits in the URL,
//! which decK collection holds it, and its fields as Kong's entity schema
//! (`kong/db/schema/entities/*.lua`, 3.10) declares them, with Kong's
//! defaults. An answer carries exactly these fields: the published schemas
//! allow no others (`additionalProperties: false`).

use crate::config::Coll;

/// Which timestamps an entity of this kind carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamps {
    Both,
    CreatedOnly,
    None,
}

#[derive(Debug)]
pub struct EntityKind {
    pub coll: Coll,
    /// The path segment(s) at the top of core-entities.
    pub top: &'static str,
    /// The segment(s) under a parent, when it has a parent route.
    pub nested: &'static str,
    /// Fields besides `id`, the timestamps and the foreign keys, each with
    /// Kong's default as JSON (`None`: no default).
    pub fields: &'static [(&'static str, Option<&'static str>)],
    /// Foreign keys: the field and the kind it names.
    pub foreign: &'static [(&'static str, Coll)],
    pub stamps: Stamps,
    /// The fields Kong's `endpoint_key` and unique constraints name, which
    /// a path segment may name instead of the id, and which make the id
    /// of an entity written without one.
    pub keys: &'static [&'static str],
    /// Kong generates these when a create leaves them out.
    pub generated: &'static [&'static str],
}

const HEALTHCHECKS: &str = r#"{"active":{"concurrency":10,"healthy":{"http_statuses":[200,302],"interval":0,"successes":0},"http_path":"/","https_verify_certificate":true,"timeout":1,"type":"http","unhealthy":{"http_failures":0,"http_statuses":[429,404,500,501,502,503,504,505],"interval":0,"tcp_failures":0,"timeouts":0}},"passive":{"healthy":{"http_statuses":[200,201,202,203,204,205,206,207,208,226,300,301,302,303,304,305,306,307,308],"successes":0},"type":"http","unhealthy":{"http_failures":0,"http_statuses":[429,500,503],"tcp_failures":0,"timeouts":0}},"threshold":0}"#;

pub static KINDS: &[EntityKind] = &[
    EntityKind {
        coll: Coll::Services,
        top: "services",
        nested: "",
        fields: &[
            ("name", None),
            ("retries", Some("5")),
            ("protocol", Some(r#""http""#)),
            ("host", None),
            ("port", Some("80")),
            ("path", None),
            ("connect_timeout", Some("60000")),
            ("write_timeout", Some("60000")),
            ("read_timeout", Some("60000")),
            ("tags", None),
            ("tls_verify", None),
            ("tls_verify_depth", None),
            ("ca_certificates", None),
            ("tls_sans", None),
            ("enabled", Some("true")),
        ],
        foreign: &[("client_certificate", Coll::Certificates)],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Routes,
        top: "routes",
        nested: "routes",
        fields: &[
            ("name", None),
            ("protocols", Some(r#"["http","https"]"#)),
            ("methods", None),
            ("hosts", None),
            ("paths", None),
            ("headers", None),
            ("https_redirect_status_code", Some("426")),
            ("regex_priority", Some("0")),
            ("strip_path", Some("true")),
            ("path_handling", Some(r#""v0""#)),
            ("preserve_host", Some("false")),
            ("request_buffering", Some("true")),
            ("response_buffering", Some("true")),
            ("snis", None),
            ("sources", None),
            ("destinations", None),
            ("tags", None),
            ("expression", None),
            ("priority", None),
        ],
        foreign: &[("service", Coll::Services)],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Plugins,
        top: "plugins",
        nested: "plugins",
        fields: &[
            ("name", None),
            ("instance_name", None),
            ("config", None),
            ("protocols", Some(r#"["grpc","grpcs","http","https"]"#)),
            ("enabled", Some("true")),
            ("tags", None),
            ("ordering", None),
            ("partials", None),
            ("condition", None),
        ],
        foreign: &[
            ("service", Coll::Services),
            ("route", Coll::Routes),
            ("consumer", Coll::Consumers),
            ("consumer_group", Coll::ConsumerGroups),
        ],
        stamps: Stamps::Both,
        keys: &["instance_name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Consumers,
        top: "consumers",
        nested: "",
        fields: &[("username", None), ("custom_id", None), ("tags", None)],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &["username", "custom_id"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::ConsumerGroups,
        top: "consumer_groups",
        nested: "",
        fields: &[("name", None), ("tags", None)],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Certificates,
        top: "certificates",
        nested: "",
        fields: &[
            ("cert", None),
            ("key", None),
            ("cert_alt", None),
            ("key_alt", None),
            ("tags", None),
        ],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &[],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Snis,
        top: "snis",
        nested: "snis",
        fields: &[("name", None), ("tags", None)],
        foreign: &[("certificate", Coll::Certificates)],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::CaCertificates,
        top: "ca_certificates",
        nested: "",
        fields: &[("cert", None), ("cert_digest", None), ("tags", None)],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &[],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Upstreams,
        top: "upstreams",
        nested: "",
        fields: &[
            ("name", None),
            ("algorithm", Some(r#""round-robin""#)),
            ("hash_on", Some(r#""none""#)),
            ("hash_fallback", Some(r#""none""#)),
            ("hash_on_header", None),
            ("hash_fallback_header", None),
            ("hash_on_cookie", None),
            ("hash_on_cookie_path", Some(r#""/""#)),
            ("hash_on_query_arg", None),
            ("hash_fallback_query_arg", None),
            ("hash_on_uri_capture", None),
            ("hash_fallback_uri_capture", None),
            ("slots", Some("10000")),
            ("healthchecks", Some(HEALTHCHECKS)),
            ("tags", None),
            ("host_header", None),
            ("use_srv_name", Some("false")),
            ("sticky_sessions_cookie", None),
            ("sticky_sessions_cookie_path", Some(r#""/""#)),
        ],
        foreign: &[("client_certificate", Coll::Certificates)],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Targets,
        top: "targets",
        nested: "targets",
        fields: &[
            ("target", None),
            ("weight", Some("100")),
            ("tags", None),
            ("failover", None),
        ],
        foreign: &[("upstream", Coll::Upstreams)],
        stamps: Stamps::Both,
        keys: &[],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Vaults,
        top: "vaults",
        nested: "",
        fields: &[
            ("name", None),
            ("prefix", None),
            ("description", None),
            ("config", None),
            ("tags", None),
        ],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &["prefix"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Keys,
        top: "keys",
        nested: "keys",
        fields: &[
            ("name", None),
            ("kid", None),
            ("jwk", None),
            ("pem", None),
            ("tags", None),
            ("x5t", None),
        ],
        foreign: &[("set", Coll::KeySets)],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::KeySets,
        top: "key-sets",
        nested: "",
        fields: &[("name", None), ("tags", None)],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Partials,
        top: "partials",
        nested: "",
        fields: &[
            ("name", None),
            ("type", None),
            ("config", None),
            ("tags", None),
        ],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::Acls,
        top: "acls",
        nested: "acls",
        fields: &[("group", None), ("tags", None)],
        foreign: &[("consumer", Coll::Consumers)],
        stamps: Stamps::CreatedOnly,
        keys: &[],
        generated: &[],
    },
    EntityKind {
        coll: Coll::BasicauthCredentials,
        top: "basic-auths",
        nested: "basic-auth",
        fields: &[("username", None), ("password", None), ("tags", None)],
        foreign: &[("consumer", Coll::Consumers)],
        stamps: Stamps::CreatedOnly,
        keys: &["username"],
        generated: &[],
    },
    EntityKind {
        coll: Coll::HmacauthCredentials,
        top: "hmac-auths",
        nested: "hmac-auth",
        fields: &[("username", None), ("secret", None), ("tags", None)],
        foreign: &[("consumer", Coll::Consumers)],
        stamps: Stamps::CreatedOnly,
        keys: &["username"],
        generated: &["secret"],
    },
    EntityKind {
        coll: Coll::JwtSecrets,
        top: "jwts",
        nested: "jwt",
        fields: &[
            ("key", None),
            ("secret", None),
            ("algorithm", Some(r#""HS256""#)),
            ("rsa_public_key", None),
            ("tags", None),
        ],
        foreign: &[("consumer", Coll::Consumers)],
        stamps: Stamps::CreatedOnly,
        keys: &["key"],
        generated: &["key", "secret"],
    },
    EntityKind {
        coll: Coll::KeyauthCredentials,
        top: "key-auths",
        nested: "key-auth",
        fields: &[("key", None), ("ttl", None), ("tags", None)],
        foreign: &[("consumer", Coll::Consumers)],
        stamps: Stamps::CreatedOnly,
        keys: &["key"],
        generated: &["key"],
    },
    EntityKind {
        coll: Coll::MtlsAuthCredentials,
        top: "mtls-auths",
        nested: "mtls-auth",
        fields: &[("subject_name", None), ("tags", None)],
        foreign: &[
            ("consumer", Coll::Consumers),
            ("ca_certificate", Coll::CaCertificates),
        ],
        stamps: Stamps::CreatedOnly,
        keys: &[],
        generated: &[],
    },
    EntityKind {
        coll: Coll::DegraphqlRoutes,
        top: "degraphql_routes",
        nested: "degraphql/routes",
        fields: &[
            ("uri", None),
            ("query", None),
            ("methods", Some(r#"["GET"]"#)),
        ],
        foreign: &[("service", Coll::Services)],
        stamps: Stamps::Both,
        keys: &[],
        generated: &[],
    },
    EntityKind {
        coll: Coll::GraphqlCostDecorations,
        top: "graphql-rate-limiting-advanced/costs",
        nested: "graphql-rate-limiting-advanced/costs",
        fields: &[
            ("type_path", None),
            ("add_constant", Some("1")),
            ("add_arguments", Some("[]")),
            ("mul_constant", Some("1")),
            ("mul_arguments", Some("[]")),
        ],
        foreign: &[("service", Coll::Services)],
        stamps: Stamps::CreatedOnly,
        keys: &[],
        generated: &[],
    },
    EntityKind {
        coll: Coll::CustomPlugins,
        top: "custom-plugins",
        nested: "",
        fields: &[
            ("name", None),
            ("handler", None),
            ("schema", None),
            ("tags", None),
        ],
        foreign: &[],
        stamps: Stamps::Both,
        keys: &["name"],
        generated: &[],
    },
];

pub fn by_coll(coll: Coll) -> Option<&'static EntityKind> {
    KINDS.iter().find(|k| k.coll == coll)
}

/// An entity route, read off its template (`…/core-entities/services/{eid}/routes/{cid}`).
#[derive(Clone, Copy, Debug)]
pub struct Addr {
    /// The parent kind, for a nested route.
    pub parent: Option<&'static EntityKind>,
    pub kind: &'static EntityKind,
}

/// The address a core-entities template stands for.
pub fn addr(template: &str) -> Option<Addr> {
    let rest = template.split_once("/core-entities/")?.1;
    let (head, tail) = match rest.split_once("/{eid}") {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let top = KINDS.iter().find(|k| k.top == head)?;
    let Some(tail) = tail.filter(|t| !t.is_empty()) else {
        return Some(Addr {
            parent: None,
            kind: top,
        });
    };
    let tail = tail.strip_prefix('/')?;
    let child = tail.strip_suffix("/{cid}").unwrap_or(tail);
    let kind = KINDS
        .iter()
        .find(|k| k.nested == child && k.foreign.iter().any(|(_, c)| *c == top.coll))?;
    Some(Addr {
        parent: Some(top),
        kind,
    })
}

/// Whether deleting what foreign key `fk` of `kind` names deletes the
/// entity too (Kong's `on_delete = "cascade"`); otherwise the delete is
/// refused while it names it.
pub fn cascades(kind: &EntityKind, fk: &str) -> bool {
    match kind.coll {
        // Kong's certificates DAO deletes a certificate's SNIs with it.
        Coll::Plugins
        | Coll::Targets
        | Coll::Snis
        | Coll::DegraphqlRoutes
        | Coll::GraphqlCostDecorations => true,
        Coll::Keys => fk == "set",
        c if c.is_credential() => true,
        _ => false,
    }
}

impl EntityKind {
    /// What one is called in a sentence.
    pub fn noun(&self) -> &'static str {
        self.coll.noun()
    }

    /// Whether `other` is this kind.
    pub fn is(&self, other: &EntityKind) -> bool {
        self.coll == other.coll
    }
}

fn named(top: &str) -> &'static EntityKind {
    KINDS.iter().find(|k| k.top == top).unwrap_or(&KINDS[0])
}

pub fn consumers() -> &'static EntityKind {
    named("consumers")
}

pub fn consumer_groups() -> &'static EntityKind {
    named("consumer_groups")
}

pub fn plugins() -> &'static EntityKind {
    named("plugins")
}

pub fn partials() -> &'static EntityKind {
    named("partials")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_kinds_are_theirs() {
        assert_eq!(consumers().coll, Coll::Consumers);
        assert_eq!(consumer_groups().coll, Coll::ConsumerGroups);
        assert_eq!(plugins().coll, Coll::Plugins);
        assert_eq!(partials().coll, Coll::Partials);
    }

    #[test]
    fn nested_addresses() {
        let a = addr("/v2/control-planes/{id}/core-entities/consumers/{eid}/basic-auth/{cid}")
            .expect("address");
        assert_eq!(a.kind.coll, Coll::BasicauthCredentials);
        assert_eq!(a.parent.map(|p| p.coll), Some(Coll::Consumers));
        let a = addr("/v2/control-planes/{id}/core-entities/services/{eid}/degraphql/routes")
            .expect("address");
        assert_eq!(a.kind.coll, Coll::DegraphqlRoutes);
        let a = addr(
            "/v2/control-planes/{id}/core-entities/graphql-rate-limiting-advanced/costs/{eid}",
        )
        .expect("address");
        assert_eq!(a.kind.coll, Coll::GraphqlCostDecorations);
        assert!(a.parent.is_none());
    }
}

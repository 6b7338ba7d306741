//! What decK 3.0 says about each collection: its name, its fields' types,
//! which fields nest other collections, and which keys are unique (README: Finding codes).

use crate::report::ConflictKind;

/// Which unique key of README: Finding codes, `duplicate_name` a value is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Id,
    Name,
    Username,
    CustomId,
    InstanceName,
    /// `(upstream, target)` of a target.
    UpstreamTarget,
    /// `(set, kid)` of a key.
    SetKid,
    /// A vault's `prefix`.
    Prefix,
    /// A global plugin's `name`.
    GlobalPlugin,
    SecretKey,
    SecretUsername,
    SecretClientId,
    /// A scoped plugin's `(name, service, route, consumer, consumer_group)`:
    /// unique inside one member only.
    PluginScope,
}

impl KeyKind {
    /// Every kind, in declaration order (`ALL[k as usize] == k`).
    pub const ALL: [KeyKind; 13] = [
        KeyKind::Id,
        KeyKind::Name,
        KeyKind::Username,
        KeyKind::CustomId,
        KeyKind::InstanceName,
        KeyKind::UpstreamTarget,
        KeyKind::SetKid,
        KeyKind::Prefix,
        KeyKind::GlobalPlugin,
        KeyKind::SecretKey,
        KeyKind::SecretUsername,
        KeyKind::SecretClientId,
        KeyKind::PluginScope,
    ];

    /// The field named in findings.
    pub fn field(self) -> &'static str {
        match self {
            KeyKind::Id => "id",
            KeyKind::Name | KeyKind::GlobalPlugin => "name",
            KeyKind::Username | KeyKind::SecretUsername => "username",
            KeyKind::CustomId => "custom_id",
            KeyKind::InstanceName => "instance_name",
            KeyKind::UpstreamTarget => "target",
            KeyKind::SetKid => "kid",
            KeyKind::Prefix => "prefix",
            KeyKind::SecretKey => "key",
            KeyKind::SecretClientId => "client_id",
            KeyKind::PluginScope => "scope",
        }
    }

    /// The conflict a key shared by two members causes; `None` for keys that
    /// only need to be unique inside one member.
    pub fn conflict(self) -> Option<ConflictKind> {
        Some(match self {
            KeyKind::Id => ConflictKind::DuplicateId,
            KeyKind::Prefix => ConflictKind::DuplicateVaultPrefix,
            KeyKind::GlobalPlugin => ConflictKind::DuplicateGlobalPlugin,
            KeyKind::SecretKey | KeyKind::SecretUsername | KeyKind::SecretClientId => {
                ConflictKind::DuplicateCredential
            }
            KeyKind::PluginScope => return None,
            _ => ConflictKind::DuplicateName,
        })
    }
}

/// Every entity collection a member config may hold, in snapshot order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coll {
    Services,
    Routes,
    Upstreams,
    Targets,
    Certificates,
    Snis,
    CaCertificates,
    Consumers,
    ConsumerGroups,
    ConsumerGroupConsumers,
    Plugins,
    Keys,
    KeySets,
    Vaults,
    DegraphqlRoutes,
    GraphqlCostDecorations,
    KeyauthCredentials,
    BasicauthCredentials,
    JwtSecrets,
    HmacauthCredentials,
    Oauth2Credentials,
    MtlsAuthCredentials,
    Acls,
    Partials,
    FilterChains,
    CustomEntities,
    Licenses,
    RbacRoles,
    ServicePackages,
    CustomPlugins,
    ClonedPlugins,
    AiModels,
    /// Kong's DB-less form of plugins scoped to a consumer group (`kong config db_export`).
    ConsumerGroupPlugins,
    /// `_plugin_configs`: a map of name to plugin config, not a list.
    PluginConfigs,
}

impl Coll {
    pub const ALL: [Coll; 34] = [
        Coll::Services,
        Coll::Routes,
        Coll::Upstreams,
        Coll::Targets,
        Coll::Certificates,
        Coll::Snis,
        Coll::CaCertificates,
        Coll::Consumers,
        Coll::ConsumerGroups,
        Coll::ConsumerGroupConsumers,
        Coll::Plugins,
        Coll::Keys,
        Coll::KeySets,
        Coll::Vaults,
        Coll::DegraphqlRoutes,
        Coll::GraphqlCostDecorations,
        Coll::KeyauthCredentials,
        Coll::BasicauthCredentials,
        Coll::JwtSecrets,
        Coll::HmacauthCredentials,
        Coll::Oauth2Credentials,
        Coll::MtlsAuthCredentials,
        Coll::Acls,
        Coll::Partials,
        Coll::FilterChains,
        Coll::CustomEntities,
        Coll::Licenses,
        Coll::RbacRoles,
        Coll::ServicePackages,
        Coll::CustomPlugins,
        Coll::ClonedPlugins,
        Coll::AiModels,
        Coll::ConsumerGroupPlugins,
        Coll::PluginConfigs,
    ];

    /// The key in a decK file.
    pub fn name(self) -> &'static str {
        match self {
            Coll::Services => "services",
            Coll::Routes => "routes",
            Coll::Upstreams => "upstreams",
            Coll::Targets => "targets",
            Coll::Certificates => "certificates",
            Coll::Snis => "snis",
            Coll::CaCertificates => "ca_certificates",
            Coll::Consumers => "consumers",
            Coll::ConsumerGroups => "consumer_groups",
            Coll::ConsumerGroupConsumers => "consumer_group_consumers",
            Coll::Plugins => "plugins",
            Coll::Keys => "keys",
            Coll::KeySets => "key_sets",
            Coll::Vaults => "vaults",
            Coll::DegraphqlRoutes => "degraphql_routes",
            Coll::GraphqlCostDecorations => "graphql_ratelimiting_cost_decorations",
            Coll::KeyauthCredentials => "keyauth_credentials",
            Coll::BasicauthCredentials => "basicauth_credentials",
            Coll::JwtSecrets => "jwt_secrets",
            Coll::HmacauthCredentials => "hmacauth_credentials",
            Coll::Oauth2Credentials => "oauth2_credentials",
            Coll::MtlsAuthCredentials => "mtls_auth_credentials",
            Coll::Acls => "acls",
            Coll::Partials => "partials",
            Coll::FilterChains => "filter_chains",
            Coll::CustomEntities => "custom_entities",
            Coll::Licenses => "licenses",
            Coll::RbacRoles => "rbac_roles",
            Coll::ServicePackages => "service_packages",
            Coll::CustomPlugins => "custom_plugins",
            Coll::ClonedPlugins => "cloned_plugins",
            Coll::AiModels => "ai_models",
            Coll::ConsumerGroupPlugins => "consumer_group_plugins",
            Coll::PluginConfigs => "_plugin_configs",
        }
    }

    pub fn from_name(s: &str) -> Option<Coll> {
        Coll::ALL.iter().copied().find(|c| c.name() == s)
    }

    /// What one entity is called in a sentence.
    pub fn noun(self) -> &'static str {
        match self {
            Coll::Services => "service",
            Coll::Routes => "route",
            Coll::Upstreams => "upstream",
            Coll::Targets => "target",
            Coll::Certificates => "certificate",
            Coll::Snis => "SNI",
            Coll::CaCertificates => "CA certificate",
            Coll::Consumers => "consumer",
            Coll::ConsumerGroups => "consumer group",
            Coll::ConsumerGroupConsumers => "consumer-group membership",
            Coll::Plugins => "plugin",
            Coll::Keys => "key",
            Coll::KeySets => "key set",
            Coll::Vaults => "vault",
            Coll::DegraphqlRoutes => "deGraphQL route",
            Coll::GraphqlCostDecorations => "GraphQL cost decoration",
            Coll::KeyauthCredentials => "key-auth credential",
            Coll::BasicauthCredentials => "basic-auth credential",
            Coll::JwtSecrets => "JWT secret",
            Coll::HmacauthCredentials => "HMAC-auth credential",
            Coll::Oauth2Credentials => "OAuth2 credential",
            Coll::MtlsAuthCredentials => "mTLS-auth credential",
            Coll::Acls => "ACL",
            Coll::Partials => "partial",
            Coll::FilterChains => "filter chain",
            Coll::CustomEntities => "custom entity",
            Coll::Licenses => "license",
            Coll::RbacRoles => "RBAC role",
            Coll::ServicePackages => "service package",
            Coll::CustomPlugins => "custom plugin",
            Coll::ClonedPlugins => "cloned plugin",
            Coll::AiModels => "AI model",
            Coll::ConsumerGroupPlugins => "consumer-group plugin",
            Coll::PluginConfigs => "plugin config",
        }
    }

    pub fn is_credential(self) -> bool {
        matches!(
            self,
            Coll::KeyauthCredentials
                | Coll::BasicauthCredentials
                | Coll::JwtSecrets
                | Coll::HmacauthCredentials
                | Coll::Oauth2Credentials
                | Coll::MtlsAuthCredentials
                | Coll::Acls
        )
    }

    /// Fields holding another collection nested under this one.
    pub fn nested(self) -> &'static [(&'static str, Coll)] {
        match self {
            Coll::Services => &[("routes", Coll::Routes), ("plugins", Coll::Plugins)],
            Coll::Routes => &[("plugins", Coll::Plugins)],
            Coll::Upstreams => &[("targets", Coll::Targets)],
            Coll::Certificates => &[("snis", Coll::Snis)],
            Coll::Consumers => &[
                ("plugins", Coll::Plugins),
                ("keyauth_credentials", Coll::KeyauthCredentials),
                ("basicauth_credentials", Coll::BasicauthCredentials),
                ("jwt_secrets", Coll::JwtSecrets),
                ("hmacauth_credentials", Coll::HmacauthCredentials),
                ("oauth2_credentials", Coll::Oauth2Credentials),
                ("mtls_auth_credentials", Coll::MtlsAuthCredentials),
                ("acls", Coll::Acls),
            ],
            Coll::ConsumerGroups => &[("plugins", Coll::Plugins)],
            _ => &[],
        }
    }

    /// The unique name-like keys of README: Finding codes, `duplicate_name` (besides `id`), as plain fields.
    pub fn name_keys(self) -> &'static [(&'static str, KeyKind)] {
        match self {
            Coll::Services
            | Coll::Routes
            | Coll::Upstreams
            | Coll::ConsumerGroups
            | Coll::KeySets
            | Coll::Keys
            | Coll::Snis
            | Coll::Partials
            | Coll::FilterChains
            | Coll::RbacRoles
            | Coll::ServicePackages
            | Coll::CustomPlugins
            | Coll::ClonedPlugins
            | Coll::AiModels => &[("name", KeyKind::Name)],
            Coll::Consumers => &[
                ("username", KeyKind::Username),
                ("custom_id", KeyKind::CustomId),
            ],
            Coll::Plugins => &[("instance_name", KeyKind::InstanceName)],
            Coll::Vaults => &[("prefix", KeyKind::Prefix)],
            Coll::KeyauthCredentials | Coll::JwtSecrets => &[("key", KeyKind::SecretKey)],
            Coll::BasicauthCredentials | Coll::HmacauthCredentials => {
                &[("username", KeyKind::SecretUsername)]
            }
            Coll::Oauth2Credentials => &[("client_id", KeyKind::SecretClientId)],
            _ => &[],
        }
    }

    /// Field types checked on this collection; every other field passes through.
    pub fn fields(self) -> &'static [(&'static str, Ty)] {
        use Ty::*;
        match self {
            Coll::Services => &[
                ("name", Str),
                ("host", Str),
                ("tls_verify_depth", Int),
                ("url", Str),
                ("path", Str),
                ("protocol", Str),
                ("port", Int),
                ("retries", Int),
                ("connect_timeout", Int),
                ("read_timeout", Int),
                ("write_timeout", Int),
                ("enabled", Bool),
                ("tls_verify", Bool),
                ("ca_certificates", StrList),
                ("tags", StrList),
            ],
            Coll::Routes => &[
                ("name", Str),
                ("paths", StrList),
                ("hosts", StrList),
                ("methods", StrList),
                ("protocols", StrList),
                ("snis", StrList),
                ("headers", Obj),
                ("sources", List),
                ("destinations", List),
                ("expression", Str),
                ("priority", Int),
                ("regex_priority", Int),
                ("https_redirect_status_code", Int),
                ("strip_path", Bool),
                ("preserve_host", Bool),
                ("request_buffering", Bool),
                ("response_buffering", Bool),
                ("path_handling", Str),
                ("tags", StrList),
            ],
            Coll::Upstreams => &[
                ("name", Str),
                ("algorithm", Str),
                ("slots", Int),
                ("hash_on", Str),
                ("hash_fallback", Str),
                ("hash_on_header", Str),
                ("hash_fallback_header", Str),
                ("hash_on_cookie", Str),
                ("hash_on_cookie_path", Str),
                ("hash_on_query_arg", Str),
                ("hash_fallback_query_arg", Str),
                ("hash_on_uri_capture", Str),
                ("hash_fallback_uri_capture", Str),
                ("host_header", Str),
                ("healthchecks", Obj),
                ("tags", StrList),
            ],
            Coll::Targets => &[("target", Str), ("weight", Int), ("tags", StrList)],
            Coll::Certificates => &[
                ("cert", Str),
                ("key", Str),
                ("cert_alt", Str),
                ("key_alt", Str),
                ("tags", StrList),
            ],
            Coll::Snis => &[("name", Str), ("tags", StrList)],
            Coll::CaCertificates => &[("cert", Str), ("cert_digest", Str), ("tags", StrList)],
            Coll::Consumers => &[("username", Str), ("custom_id", Str), ("tags", StrList)],
            Coll::ConsumerGroups => &[("name", Str), ("tags", StrList)],
            Coll::Plugins => &[
                ("name", Str),
                ("instance_name", Str),
                ("enabled", Bool),
                ("config", Obj),
                ("protocols", StrList),
                ("ordering", Obj),
                ("partials", List),
                ("_config", Str),
                ("tags", StrList),
            ],
            Coll::Keys => &[
                ("name", Str),
                ("kid", Str),
                ("jwk", Str),
                ("pem", Obj),
                ("tags", StrList),
            ],
            Coll::KeySets => &[("name", Str), ("tags", StrList)],
            Coll::Vaults => &[
                ("name", Str),
                ("prefix", Str),
                ("description", Str),
                ("config", Obj),
                ("tags", StrList),
            ],
            Coll::DegraphqlRoutes => &[("uri", Str), ("query", Str), ("methods", StrList)],
            Coll::GraphqlCostDecorations => &[
                ("type_path", Str),
                ("add_constant", Num),
                ("mul_constant", Num),
                ("add_arguments", StrList),
                ("mul_arguments", StrList),
            ],
            Coll::KeyauthCredentials => &[("key", Str), ("ttl", Int), ("tags", StrList)],
            Coll::BasicauthCredentials => {
                &[("username", Str), ("password", Str), ("tags", StrList)]
            }
            Coll::JwtSecrets => &[
                ("key", Str),
                ("secret", Str),
                ("algorithm", Str),
                ("rsa_public_key", Str),
                ("tags", StrList),
            ],
            Coll::HmacauthCredentials => &[("username", Str), ("secret", Str), ("tags", StrList)],
            Coll::Oauth2Credentials => &[
                ("name", Str),
                ("client_id", Str),
                ("client_secret", Str),
                ("redirect_uris", StrList),
                ("hash_secret", Bool),
                ("tags", StrList),
            ],
            Coll::MtlsAuthCredentials => &[("subject_name", Str), ("tags", StrList)],
            Coll::Acls => &[("group", Str), ("tags", StrList)],
            Coll::Partials => &[
                ("name", Str),
                ("type", Str),
                ("config", Obj),
                ("tags", StrList),
            ],
            Coll::CustomEntities => &[("type", Str), ("fields", Obj)],
            _ => &[("name", Str)],
        }
    }

    /// Fields Kong requires; `Any(a, b)` means at least one of them.
    pub fn required(self) -> &'static [Req] {
        use Req::*;
        match self {
            Coll::Services => &[Any(&["host", "url"])],
            Coll::Upstreams => &[One("name")],
            Coll::Targets => &[One("target")],
            Coll::Certificates => &[One("cert"), One("key")],
            Coll::Snis => &[One("name")],
            Coll::CaCertificates => &[One("cert")],
            Coll::Consumers => &[Any(&["username", "custom_id"])],
            Coll::ConsumerGroups => &[One("name")],
            Coll::Plugins => &[One("name")],
            Coll::Keys => &[One("kid"), Any(&["jwk", "pem"])],
            Coll::Vaults => &[One("name"), One("prefix")],
            Coll::DegraphqlRoutes => &[One("uri"), One("query")],
            Coll::GraphqlCostDecorations => &[One("type_path")],
            Coll::BasicauthCredentials => &[One("username"), One("password")],
            Coll::HmacauthCredentials => &[One("username")],
            Coll::Oauth2Credentials => &[One("name")],
            Coll::MtlsAuthCredentials => &[One("subject_name")],
            Coll::Acls => &[One("group")],
            Coll::ConsumerGroupConsumers => &[One("consumer"), One("consumer_group")],
            Coll::Partials => &[One("type")],
            Coll::CustomEntities => &[One("type"), One("fields")],
            _ => &[],
        }
    }
}

/// The JSON type a known field must have. `null` is always accepted: decK
/// writes unset optional fields as null.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Num,
    Bool,
    Obj,
    List,
    StrList,
}

impl Ty {
    /// Kong's own words for a value of the wrong type (`kong/db/schema/init.lua`).
    pub fn kong(self) -> &'static str {
        match self {
            Ty::Str => "expected a string",
            Ty::Int => "expected an integer",
            Ty::Num => "expected a number",
            Ty::Bool => "expected a boolean",
            Ty::Obj => "expected a record",
            Ty::List => "expected an array",
            Ty::StrList => "expected an array of strings",
        }
    }
}

#[derive(Copy, Clone, Debug)]
pub enum Req {
    One(&'static str),
    Any(&'static [&'static str]),
}

/// Top-level keys decK or Kong know that are not entity collections.
/// `_comment` (a string) and `_ignore` (a list) are Kong's own, allowed at
/// the top and in every entity.
pub const METADATA_KEYS: [&str; 7] = [
    "_format_version",
    "_transform",
    "_info",
    "_workspace",
    "_konnect",
    "_comment",
    "_ignore",
];

impl Coll {
    /// Collections only Kong Gateway Enterprise has (refused for an OSS target).
    pub fn enterprise_only(self) -> bool {
        matches!(
            self,
            Coll::ConsumerGroups
                | Coll::ConsumerGroupConsumers
                | Coll::ConsumerGroupPlugins
                | Coll::Partials
                | Coll::DegraphqlRoutes
                | Coll::GraphqlCostDecorations
                | Coll::CustomEntities
                | Coll::Licenses
                | Coll::RbacRoles
                | Coll::ServicePackages
                | Coll::CustomPlugins
                | Coll::MtlsAuthCredentials
        )
    }

    /// The foreign key a nested entity of this collection would name its
    /// parent of collection `parent` by (`service` for a route in a service).
    pub fn parent_key(self, parent: Coll) -> Option<&'static str> {
        Some(match parent {
            Coll::Services => "service",
            Coll::Routes => "route",
            Coll::Consumers => "consumer",
            Coll::ConsumerGroups => "consumer_group",
            Coll::Upstreams => "upstream",
            Coll::Certificates => "certificate",
            _ => return None,
        })
    }
}

/// Vault backends Kong ships; a `{vault://env/...}` needs no vault entity.
pub const BUILTIN_VAULTS: [&str; 6] = ["env", "aws", "gcp", "hcv", "azure", "conjur"];

/// The collection a decK custom entity of this type stands for.
pub fn custom_entity_coll(ty: &str) -> Option<Coll> {
    match ty {
        "degraphql_routes" => Some(Coll::DegraphqlRoutes),
        "graphql_ratelimiting_cost_decorations" => Some(Coll::GraphqlCostDecorations),
        _ => None,
    }
}

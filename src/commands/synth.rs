//! `rgmerge gen` (module `synth`: `gen` is a reserved word in Rust 2024):
//! synthetic, realistic decK 3.0 member configs for benchmarks and tests.
//!
//! A member of `entities` entities (nested ones counted, exactly that many)
//! holds services with routes and plugins, consumers with
//! credentials, ACLs and consumer-group memberships, consumer groups with
//! plugins, upstreams with targets, certificates with SNIs, key sets with
//! keys, vaults and `{vault://…}` references to them. Member 0 also holds the
//! composite's global plugins. Every name carries its member's tag, so members
//! are valid alone and conflict-free together unless conflicts are planted.
//!
//! **Planted conflicts** pair member `2k` with member `2k+1`: for a share
//! `conflicts` of their services and consumers, both members of the pair write
//! the same service name, consumer username or key-auth key; with that same
//! probability a pair also gets the same global plugin. Decisions depend only
//! on the seed, the pair and the unit's ordinal, so each member is generated
//! alone and the two halves still meet.
//!
//! **Reproducible**: the same arguments give byte-identical files. The *shape*
//! (which units, how many children) comes from a PRNG seeded by the seed and
//! the size only, so every member of a run has the same shape and the planted
//! units exist on both sides; the *content* (hosts, keys, secrets) comes from a
//! PRNG seeded by the seed, the member and a revision.

use std::path::PathBuf;

use rayon::prelude::*;
use serde_json::{Map, Value, json};

use crate::batch::BatchError;

/// What members `rgmerge gen` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GenShape {
    /// Realistic members: services, routes, plugins, consumers, … (above).
    #[default]
    Mixed,
    /// Only tiny consumers (a username), each with one key-auth credential:
    /// the densest shape per input byte (issue 17's "million tiny consumers").
    KeyAuthConsumers,
}

/// Output syntax of `rgmerge gen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenFormat {
    Json,
    Yaml,
}

#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Directory to write the member configs to (created if missing).
    pub out: PathBuf,
    /// Number of member configs.
    pub members: usize,
    /// Entities per member, nested ones included.
    pub entities: usize,
    /// Share (0..=1) of services and consumers planted as conflicts between
    /// member 2k and member 2k+1.
    pub conflicts: f64,
    /// The same seed and sizes give byte-identical files.
    pub seed: u64,
    /// Written as decK writes them: pretty JSON, or YAML.
    pub format: GenFormat,
    /// Which kind of member.
    pub shape: GenShape,
}

/// What to generate; the same `Spec` always gives the same bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spec {
    pub entities: usize,
    pub conflicts: f64,
    pub seed: u64,
}

/// Writes `args.members` configs named `member-000.json` (or `.yaml`) …
pub fn run(args: &GenOptions) -> Result<(), BatchError> {
    if !(0.0..=1.0).contains(&args.conflicts) {
        return Err(BatchError::Usage(format!(
            "--conflicts must be a fraction between 0 and 1, got {}",
            args.conflicts
        )));
    }
    if args.members == 0 {
        return Err(BatchError::Usage("--members must be at least 1".into()));
    }
    let spec = Spec {
        entities: args.entities,
        conflicts: args.conflicts,
        seed: args.seed,
    };
    std::fs::create_dir_all(&args.out).map_err(|source| BatchError::Io {
        path: args.out.clone(),
        source,
    })?;
    let ext = match args.format {
        GenFormat::Json => "json",
        GenFormat::Yaml => "yaml",
    };
    let bytes: Result<Vec<usize>, BatchError> = (0..args.members)
        .into_par_iter()
        .map(|i| {
            let doc = match args.shape {
                GenShape::Mixed => member_document(i, &spec, 0),
                GenShape::KeyAuthConsumers => consumers_document(i, &spec, 0),
            };
            let data = match args.format {
                GenFormat::Json => to_json(&doc),
                GenFormat::Yaml => to_yaml(&doc)?,
            };
            let path = args
                .out
                .join(format!("{}.{ext}", member_name(i, args.members)));
            std::fs::write(&path, &data).map_err(|source| BatchError::Io { path, source })?;
            Ok(data.len())
        })
        .collect();
    let total: usize = bytes?.iter().sum();
    eprintln!(
        "rgmerge gen: wrote {} member configs of {} entities ({} bytes) to {}",
        args.members,
        args.entities,
        total,
        args.out.display()
    );
    Ok(())
}

/// `member-007`: zero-padded so that file order is member order.
pub fn member_name(index: usize, members: usize) -> String {
    let width = members.saturating_sub(1).max(1).to_string().len().max(3);
    format!("member-{index:0width$}")
}

/// One member config as pretty-printed JSON (decK's JSON layout).
pub fn member_config(index: usize, entities: usize, conflicts: f64, seed: u64) -> Vec<u8> {
    to_json(&member_document(
        index,
        &Spec {
            entities,
            conflicts,
            seed,
        },
        0,
    ))
}

/// Pretty JSON with a final newline.
pub fn to_json(doc: &Value) -> Vec<u8> {
    // Serializing a `Value` to memory cannot fail: keys are strings, numbers finite.
    let mut out = serde_json::to_vec_pretty(doc).unwrap_or_default();
    out.push(b'\n');
    out
}

pub fn to_yaml(doc: &Value) -> Result<Vec<u8>, BatchError> {
    serde_saphyr::to_string(doc)
        .map(String::into_bytes)
        .map_err(|e| BatchError::Usage(format!("could not write YAML: {e}")))
}

/// The document of member `index`. `revision` changes the content (hosts,
/// secrets, ports) but not the names, shape or planted conflicts: it stands
/// for the same team editing its config.
pub fn member_document(index: usize, spec: &Spec, revision: u64) -> Value {
    let mut g = Gen::new(index, spec, revision);
    g.generate();
    g.finish()
}

/// Member `index` of the [`GenShape::KeyAuthConsumers`] shape: `entities / 2`
/// consumers (`{tag}-user-{k}`), each with one key-auth credential (a
/// 32-hex-digit key), nothing else. Conflict-free between members; `revision`
/// changes the keys only.
pub fn consumers_document(index: usize, spec: &Spec, revision: u64) -> Value {
    let tag = format!("{}{index:03}", TEAMS[index % TEAMS.len()]);
    let mut rng = Rng::new(mix(&[spec.seed, index as u64, revision, 0xc0de]));
    let consumers: Vec<Value> = (0..spec.entities / 2)
        .map(|k| {
            json!({
                "username": format!("{tag}-user-{k}"),
                "keyauth_credentials": [{"key": rng.hex(32)}],
            })
        })
        .collect();
    json!({"_format_version": "3.0", "consumers": consumers})
}

/// A SplitMix64 generator: tiny, fast and good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    pub fn hex(&mut self, len: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| HEX[(self.next_u64() & 15) as usize] as char)
            .collect()
    }

    /// A random (version 4) UUID.
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        let variant = ['8', '9', 'a', 'b'][self.below(4)];
        format!(
            "{}-{}-4{}-{}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            variant,
            &h[17..20],
            &h[20..32]
        )
    }

    /// `len` characters of base64 text in 64-character lines, like a PEM body.
    pub fn base64_lines(&mut self, len: usize) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(len + len / 64 + 1);
        for i in 0..len {
            out.push(B64[(self.next_u64() & 63) as usize] as char);
            if i % 64 == 63 {
                out.push('\n');
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// One well-mixed value from several inputs (seeding, planted decisions).
fn mix(parts: &[u64]) -> u64 {
    // Chained through the output, not the state: SplitMix's state only
    // advances by a constant, so XORing inputs into it would merely permute.
    parts
        .iter()
        .fold(0x5eed_c0ff_ee00_0001, |h, &p| Rng::new(h ^ p).next_u64())
}

const TEAMS: [&str; 16] = [
    "orders",
    "payments",
    "billing",
    "search",
    "catalog",
    "identity",
    "shipping",
    "inventory",
    "pricing",
    "reviews",
    "media",
    "notify",
    "ledger",
    "support",
    "partners",
    "analytics",
];
const WORDS: [&str; 24] = [
    "api", "gateway", "core", "edge", "public", "internal", "admin", "v1", "v2", "graphql",
    "events", "webhooks", "reports", "export", "import", "sync", "auth", "profile", "cart",
    "quotes", "refunds", "invoices", "status", "health",
];
const SCOPED_PLUGINS: [&str; 8] = [
    "rate-limiting",
    "key-auth",
    "acl",
    "cors",
    "request-transformer",
    "response-transformer",
    "proxy-cache",
    "ip-restriction",
];
/// Global plugins a planted pair adds; member 0's own globals are not in here.
const PLANTED_GLOBALS: [&str; 4] = [
    "request-size-limiting",
    "bot-detection",
    "request-termination",
    "http-log",
];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Entity budget shares of the units, as pick weights: services, consumers,
/// upstreams, certificates, key sets (tuned so entities split roughly
/// 45/30/10/5/5 %, the rest being groups, vaults and global plugins).
const UNIT_WEIGHTS: [usize; 5] = [10, 9, 3, 2, 2];

/// Planted-conflict decision kinds.
const PLANT_SERVICE: u64 = 1;
const PLANT_CONSUMER: u64 = 2;
const PLANT_GLOBAL: u64 = 3;

struct Gen<'a> {
    index: usize,
    spec: &'a Spec,
    /// `orders007`: part of every name this member defines.
    tag: String,
    pair: u64,
    shape: Rng,
    /// Names and ids: the same in every revision of a member.
    names: Rng,
    /// Everything else: changes with the revision.
    rng: Rng,
    left: usize,
    groups: Vec<String>,
    acl_groups: Vec<String>,
    secrets: String,
    services: Vec<Value>,
    routes: Vec<Value>,
    upstreams: Vec<Value>,
    certificates: Vec<Value>,
    consumer_groups: Vec<Value>,
    consumers: Vec<Value>,
    plugins: Vec<Value>,
    key_sets: Vec<Value>,
    keys: Vec<Value>,
    vaults: Vec<Value>,
    /// Ordinals of units, for planted decisions and names.
    n_services: u64,
    n_consumers: u64,
    n_upstreams: u64,
    n_certs: u64,
    n_key_sets: u64,
}

impl<'a> Gen<'a> {
    fn new(index: usize, spec: &'a Spec, revision: u64) -> Gen<'a> {
        let tag = format!("{}{index:03}", TEAMS[index % TEAMS.len()]);
        Gen {
            index,
            spec,
            secrets: format!("{tag}-secrets"),
            tag,
            pair: (index / 2) as u64,
            shape: Rng::new(mix(&[spec.seed, spec.entities as u64])),
            names: Rng::new(mix(&[spec.seed, index as u64, 0x4a3e])),
            rng: Rng::new(mix(&[spec.seed, index as u64, revision, 0xc0de])),
            left: spec.entities,
            groups: Vec::new(),
            acl_groups: Vec::new(),
            services: Vec::new(),
            routes: Vec::new(),
            upstreams: Vec::new(),
            certificates: Vec::new(),
            consumer_groups: Vec::new(),
            consumers: Vec::new(),
            plugins: Vec::new(),
            key_sets: Vec::new(),
            keys: Vec::new(),
            vaults: Vec::new(),
            n_services: 0,
            n_consumers: 0,
            n_upstreams: 0,
            n_certs: 0,
            n_key_sets: 0,
        }
    }

    /// Takes one entity from the budget; false when it is spent.
    fn take(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }

    /// Whether unit `ordinal` of `kind` is shared with the pair partner.
    fn planted(&self, kind: u64, ordinal: u64) -> bool {
        if self.spec.conflicts <= 0.0 {
            return false;
        }
        Rng::new(mix(&[self.spec.seed, self.pair, kind, ordinal])).unit() < self.spec.conflicts
    }

    fn generate(&mut self) {
        self.vaults();
        self.global_plugins();
        self.consumer_group_units();
        while self.left > 0 {
            let total: usize = UNIT_WEIGHTS.iter().sum();
            let mut r = self.shape.below(total);
            let mut kind = 0;
            while r >= UNIT_WEIGHTS[kind] {
                r -= UNIT_WEIGHTS[kind];
                kind += 1;
            }
            match kind {
                0 => self.service_unit(),
                1 => self.consumer_unit(),
                2 => self.upstream_unit(),
                3 => self.certificate_unit(),
                _ => self.key_set_unit(),
            }
        }
    }

    fn vaults(&mut self) {
        if self.take() {
            let host = format!("vault-{}.internal", self.rng.below(4));
            let v = json!({
                "name": "hcv",
                "prefix": self.secrets,
                "description": format!("HashiCorp Vault of team {}", self.tag),
                "config": {
                    "protocol": "https",
                    "host": host,
                    "port": 8200,
                    "mount": "secret",
                    "kv": "v2",
                    "auth_method": "token",
                },
                "tags": [self.tag],
            });
            self.vaults.push(v);
        }
        if self.take() {
            let v = json!({
                "name": "env",
                "prefix": format!("{}-env", self.tag),
                "description": "environment variables of the data plane",
                "config": {"prefix": format!("{}_", self.tag.to_uppercase())},
                "tags": [self.tag],
            });
            self.vaults.push(v);
        }
    }

    fn global_plugins(&mut self) {
        if self.index == 0 {
            if self.take() {
                self.plugins.push(json!({
                    "name": "prometheus",
                    "enabled": true,
                    "config": {"per_consumer": false, "status_code_metrics": true,
                               "latency_metrics": true, "bandwidth_metrics": true},
                    "protocols": ["grpc", "grpcs", "http", "https"],
                }));
            }
            if self.take() {
                self.plugins.push(json!({
                    "name": "correlation-id",
                    "enabled": true,
                    "config": {"header_name": "Kong-Request-ID", "generator": "uuid#counter",
                               "echo_downstream": true},
                }));
            }
        }
        if self.planted(PLANT_GLOBAL, 0) && self.take() {
            let name = PLANTED_GLOBALS[self.pair as usize % PLANTED_GLOBALS.len()];
            self.plugins.push(json!({
                "name": name,
                "enabled": true,
                "config": {},
                "tags": [self.tag],
            }));
        }
    }

    fn consumer_group_units(&mut self) {
        let count = (self.spec.entities / 100).max(1);
        for k in 0..count {
            if !self.take() {
                return;
            }
            let name = format!(
                "{}-{}",
                self.tag,
                ["gold", "silver", "bronze", "partners"][k % 4]
            );
            let name = if k >= 4 { format!("{name}-{k}") } else { name };
            let limit = 100 * (self.rng.below(50) + 1);
            let mut group = json!({"name": name, "tags": [self.tag]});
            if self.take() {
                group["plugins"] = json!([{
                    "name": "rate-limiting-advanced",
                    "config": {
                        "limit": [limit],
                        "window_size": [60],
                        "window_type": "sliding",
                        "namespace": format!("{name}-rl"),
                        "sync_rate": -1,
                    },
                }]);
            }
            self.groups.push(name);
            self.consumer_groups.push(group);
        }
    }

    fn service_unit(&mut self) {
        // Shape first, all of it, so every member draws the same sequence.
        let routes = self.shape.range(1, 3);
        let svc_plugins = self.shape.range(0, 2);
        let route_plugin: Vec<bool> = (0..routes).map(|_| self.shape.chance(0.3)).collect();
        let top_route = self.shape.chance(0.1);
        let top_plugin = self.shape.chance(0.1);
        let k = self.n_services;
        self.n_services += 1;
        if !self.take() {
            return;
        }
        let word = *self.names.pick(&WORDS);
        let name = if self.planted(PLANT_SERVICE, k) {
            format!("shared{:03}-svc-{k}", self.pair)
        } else {
            format!("{}-{word}-{k}", self.tag)
        };
        let host = if !self.upstreams.is_empty() && self.rng.chance(0.3) {
            let i = self.rng.below(self.upstreams.len());
            self.upstreams[i]["name"]
                .as_str()
                .unwrap_or("localhost")
                .to_string()
        } else {
            format!("{word}.{}.svc.cluster.local", self.tag)
        };
        let mut svc = Map::new();
        svc.insert("id".into(), self.names.uuid().into());
        svc.insert("name".into(), name.clone().into());
        svc.insert("host".into(), host.into());
        svc.insert(
            "port".into(),
            [80, 443, 8080, 8443][self.rng.below(4)].into(),
        );
        svc.insert(
            "protocol".into(),
            (*self.rng.pick(&["http", "https"])).into(),
        );
        svc.insert("path".into(), format!("/{word}").into());
        svc.insert("retries".into(), 5.into());
        svc.insert("connect_timeout".into(), 60000.into());
        svc.insert("read_timeout".into(), 60000.into());
        svc.insert("write_timeout".into(), 60000.into());
        svc.insert("enabled".into(), true.into());
        svc.insert("tags".into(), json!([self.tag, word]));

        let mut nested_routes = Vec::new();
        let mut used_route_names = Vec::new();
        for (r, with_plugin) in route_plugin.iter().enumerate() {
            if !self.take() {
                break;
            }
            let rname = format!("{}-{word}-{k}-r{r}", self.tag);
            let mut route = self.route(&rname, word);
            if *with_plugin && self.take() {
                route.insert(
                    "plugins".into(),
                    json!([self.plugin("rate-limiting", None)]),
                );
            }
            used_route_names.push(rname);
            nested_routes.push(Value::Object(route));
        }
        if !nested_routes.is_empty() {
            svc.insert("routes".into(), Value::Array(nested_routes));
        }
        let mut names: Vec<&str> = SCOPED_PLUGINS.to_vec();
        let mut nested_plugins = Vec::new();
        for _ in 0..svc_plugins {
            if !self.take() {
                break;
            }
            let pname = names.remove(self.rng.below(names.len()));
            nested_plugins.push(self.plugin(pname, None));
        }
        if !nested_plugins.is_empty() {
            svc.insert("plugins".into(), Value::Array(nested_plugins));
        }
        self.services.push(Value::Object(svc));

        if top_route && self.take() {
            // decK's top-level form: the route names its service.
            let rname = format!("{}-{word}-{k}-extra", self.tag);
            let mut route = self.route(&rname, word);
            route.insert("service".into(), json!({"name": name}));
            self.routes.push(Value::Object(route));
        }
        if top_plugin && self.take() {
            // Scoped by a plain string, as decK writes it; a plugin name not
            // already nested on this service, or the member would repeat a scope.
            let pname = names.remove(self.rng.below(names.len()));
            let mut p = self.plugin(pname, None);
            if let Value::Object(o) = &mut p {
                o.insert("service".into(), name.into());
            }
            self.plugins.push(p);
        }
    }

    fn route(&mut self, name: &str, word: &str) -> Map<String, Value> {
        let mut route = Map::new();
        route.insert("name".into(), name.into());
        let depth = self.rng.below(3);
        let mut path = format!("/{word}");
        for _ in 0..depth {
            path.push('/');
            let w: &&str = self.rng.pick(&WORDS);
            path.push_str(w);
        }
        route.insert("paths".into(), json!([path]));
        let m = self.rng.range(1, 3);
        let start = self.rng.below(METHODS.len());
        let methods: Vec<&str> = (0..m)
            .map(|i| METHODS[(start + i) % METHODS.len()])
            .collect();
        route.insert("methods".into(), json!(methods));
        route.insert("protocols".into(), json!(["http", "https"]));
        if self.rng.chance(0.3) {
            route.insert(
                "hosts".into(),
                json!([format!("{}.{}.example.com", word, self.tag)]),
            );
        }
        route.insert("strip_path".into(), self.rng.chance(0.5).into());
        route.insert("preserve_host".into(), false.into());
        route.insert("https_redirect_status_code".into(), 426.into());
        route.insert("tags".into(), json!([self.tag]));
        route
    }

    /// A plugin's body, realistic per plugin name.
    fn plugin(&mut self, name: &str, tags: Option<&str>) -> Value {
        let config = match name {
            "rate-limiting" => json!({
                "minute": 60 * (self.rng.below(20) + 1),
                "hour": 10000,
                "policy": "redis",
                "limit_by": "consumer",
                "redis": {
                    "host": format!("redis-{}.{}.internal", self.rng.below(3), self.tag),
                    "port": 6379,
                    "password": format!("{{vault://{}/redis/password}}", self.secrets),
                    "timeout": 2000,
                    "database": 0,
                },
                "fault_tolerant": true,
                "hide_client_headers": false,
            }),
            "key-auth" => json!({"key_names": ["apikey", "x-api-key"], "hide_credentials": true,
                                 "key_in_header": true, "key_in_query": false}),
            "acl" => {
                let g = if self.acl_groups.is_empty() {
                    format!("{}-readers", self.tag)
                } else {
                    self.acl_groups[self.rng.below(self.acl_groups.len())].clone()
                };
                json!({"allow": [g], "hide_groups_header": true})
            }
            "cors" => json!({
                "origins": [format!("https://{}.example.com", self.tag)],
                "methods": ["GET", "POST", "OPTIONS"],
                "headers": ["Accept", "Authorization", "Content-Type"],
                "credentials": true,
                "max_age": 3600,
            }),
            "request-transformer" => json!({
                "add": {"headers": [format!("x-team:{}", self.tag)], "querystring": [], "body": []},
                "remove": {"headers": ["x-internal-debug"]},
            }),
            "response-transformer" => json!({
                "add": {"headers": ["x-served-by:kong"]},
                "remove": {"headers": ["server", "x-powered-by"]},
            }),
            "proxy-cache" => json!({
                "strategy": "memory",
                "content_type": ["application/json"],
                "cache_ttl": 30 * (self.rng.below(10) + 1),
                "request_method": ["GET", "HEAD"],
                "response_code": [200, 301, 404],
            }),
            "http-log" => json!({
                "http_endpoint": format!("https://logs.{}.internal/ingest", self.tag),
            }),
            "ip-restriction" => json!({
                "allow": [format!("10.{}.0.0/16", self.index % 256)],
                "status": 403,
            }),
            _ => json!({}),
        };
        let mut p = Map::new();
        p.insert("name".into(), name.into());
        p.insert("enabled".into(), true.into());
        p.insert("config".into(), config);
        p.insert(
            "protocols".into(),
            json!(["grpc", "grpcs", "http", "https"]),
        );
        if let Some(t) = tags {
            p.insert("tags".into(), json!([t]));
        }
        Value::Object(p)
    }

    fn consumer_unit(&mut self) {
        let keyauth = self.shape.chance(0.7);
        let basic = self.shape.chance(0.3);
        let jwt = self.shape.chance(0.2);
        let acls = self.shape.range(0, 2);
        let in_group = self.shape.chance(0.5);
        let with_plugin = self.shape.chance(0.1);
        let with_custom_id = self.shape.chance(0.4);
        let k = self.n_consumers;
        self.n_consumers += 1;
        if !self.take() {
            return;
        }
        // Even ordinals plant a username, odd ones a key-auth key.
        let planted = self.planted(PLANT_CONSUMER, k);
        let plant_username = planted && k.is_multiple_of(2);
        let plant_key = planted && !k.is_multiple_of(2);
        let own = format!("{}-user-{k}", self.tag);
        let username = if plant_username {
            format!("shared{:03}-user-{k}", self.pair)
        } else {
            own.clone()
        };
        let mut c = Map::new();
        c.insert("id".into(), self.names.uuid().into());
        c.insert("username".into(), username.into());
        if with_custom_id {
            c.insert(
                "custom_id".into(),
                format!("{}-crm-{}", own, self.names.hex(8)).into(),
            );
        }
        c.insert("tags".into(), json!([self.tag, "consumer"]));
        if in_group && !self.groups.is_empty() {
            let g = self.groups[self.rng.below(self.groups.len())].clone();
            c.insert("groups".into(), json!([{"name": g}]));
        }
        if (keyauth || plant_key) && self.take() {
            let key = if plant_key {
                Rng::new(mix(&[self.spec.seed, self.pair, PLANT_CONSUMER, k])).hex(32)
            } else {
                self.rng.hex(32)
            };
            c.insert(
                "keyauth_credentials".into(),
                json!([{"key": key, "tags": [self.tag]}]),
            );
        }
        if basic && self.take() {
            let pw = if self.rng.chance(0.5) {
                format!("{{vault://{}/consumers/{k}/password}}", self.secrets)
            } else {
                self.rng.hex(24)
            };
            c.insert(
                "basicauth_credentials".into(),
                json!([{"username": format!("{own}-basic"), "password": pw}]),
            );
        }
        if jwt && self.take() {
            let secret = self.rng.hex(40);
            c.insert(
                "jwt_secrets".into(),
                json!([{"key": format!("{own}-{}", self.names.hex(12)), "algorithm": "HS256",
                        "secret": secret}]),
            );
        }
        let mut acl_list = Vec::new();
        for a in 0..acls {
            if !self.take() {
                break;
            }
            let group = format!(
                "{}-{}",
                self.tag,
                ["readers", "writers", "admins", "auditors"][(k as usize + a) % 4]
            );
            if !self.acl_groups.contains(&group) {
                self.acl_groups.push(group.clone());
            }
            acl_list.push(json!({"group": group}));
        }
        if !acl_list.is_empty() {
            c.insert("acls".into(), Value::Array(acl_list));
        }
        if with_plugin && self.take() {
            c.insert(
                "plugins".into(),
                json!([self.plugin("rate-limiting", Some("per-consumer"))]),
            );
        }
        self.consumers.push(Value::Object(c));
    }

    fn upstream_unit(&mut self) {
        let targets = self.shape.range(1, 4);
        let k = self.n_upstreams;
        self.n_upstreams += 1;
        if !self.take() {
            return;
        }
        let name = format!("{}-{}-upstream-{k}", self.tag, self.names.pick(&WORDS));
        let mut list = Vec::new();
        for t in 0..targets {
            if !self.take() {
                break;
            }
            list.push(json!({
                "target": format!("10.{}.{}.{}:{}", self.index % 256, k % 256, t + 10,
                                  [8000, 8080, 9000][self.rng.below(3)]),
                "weight": 100,
            }));
        }
        let mut up = json!({
            "name": name,
            "algorithm": *self.rng.pick(&["round-robin", "consistent-hashing", "least-connections"]),
            "slots": 10000,
            "hash_on": "none",
            "hash_fallback": "none",
            "healthchecks": {
                "active": {
                    "type": "http",
                    "http_path": "/health",
                    "timeout": 1,
                    "concurrency": 10,
                    "healthy": {"interval": 5, "successes": 2, "http_statuses": [200, 302]},
                    "unhealthy": {"interval": 5, "http_failures": 3, "tcp_failures": 3,
                                  "timeouts": 3, "http_statuses": [429, 500, 503]},
                },
                "threshold": 0,
            },
            "tags": [self.tag],
        });
        if !list.is_empty() {
            up["targets"] = Value::Array(list);
        }
        self.upstreams.push(up);
    }

    fn certificate_unit(&mut self) {
        let snis = self.shape.range(1, 2);
        let key_in_vault = self.shape.chance(0.5);
        let k = self.n_certs;
        self.n_certs += 1;
        if !self.take() {
            return;
        }
        // A real certificate: Kong (and rgmerge) parse it.
        let cert = SYNTH_CERT.to_string();
        let key = if key_in_vault {
            format!("{{vault://{}/tls/cert-{k}-key}}", self.secrets)
        } else {
            SYNTH_KEY.to_string()
        };
        let mut list = Vec::new();
        for s in 0..snis {
            if !self.take() {
                break;
            }
            list.push(json!({"name": format!("{}-{k}.{}.example.com",
                                            ["api", "www", "edge"][s % 3], self.tag)}));
        }
        let mut c = json!({
            "id": self.names.uuid(),
            "cert": cert,
            "key": key,
            "tags": [self.tag],
        });
        if !list.is_empty() {
            c["snis"] = Value::Array(list);
        }
        self.certificates.push(c);
    }

    fn key_set_unit(&mut self) {
        let keys = self.shape.range(1, 3);
        let k = self.n_key_sets;
        self.n_key_sets += 1;
        if !self.take() {
            return;
        }
        let set = format!("{}-jwks-{k}", self.tag);
        self.key_sets.push(json!({"name": set, "tags": [self.tag]}));
        for j in 0..keys {
            if !self.take() {
                break;
            }
            let kid = self.names.hex(16);
            let jwk = format!(
                r#"{{"kty":"RSA","kid":"{kid}","use":"sig","alg":"RS256","e":"AQAB","n":"{}"}}"#,
                self.rng.base64_lines(342).replace(['\n', '+', '/'], "")
            );
            self.keys.push(json!({
                "name": format!("{set}-key-{j}"),
                "kid": kid,
                "jwk": jwk,
                "set": {"name": set},
                "tags": [self.tag],
            }));
        }
    }

    fn finish(self) -> Value {
        let mut doc = Map::new();
        doc.insert("_format_version".into(), "3.0".into());
        doc.insert(
            "_konnect".into(),
            json!({"control_plane_name": format!("team-{}", self.tag)}),
        );
        let colls = [
            ("services", self.services),
            ("routes", self.routes),
            ("upstreams", self.upstreams),
            ("certificates", self.certificates),
            ("consumer_groups", self.consumer_groups),
            ("consumers", self.consumers),
            ("plugins", self.plugins),
            ("key_sets", self.key_sets),
            ("keys", self.keys),
            ("vaults", self.vaults),
        ];
        for (name, items) in colls {
            if !items.is_empty() {
                doc.insert(name.into(), Value::Array(items));
            }
        }
        Value::Object(doc)
    }
}

/// A self-signed EC P-256 certificate and its key (test material only):
/// Kong, and rgmerge, parse certificates.
const SYNTH_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBhDCCASugAwIBAgIUbutvtG+Ea1Hle7UEXKSz8diFgl8wCgYIKoZIzj0EAwIw\nFzEVMBMGA1UEAwwMcmdtZXJnZS10ZXN0MCAXDTI2MTEzMDIxNDk1M1oYDzIxMjYx\nMTA2MjE0OTUzWjAXMRUwEwYDVQQDDAxyZ21lcmdlLXRlc3QwWTATBgcqhkjOPQIB\nBggqhkjOPQMBBwNCAAQWxA983aDagnhGqH39RqAkv/jbO8pyhjq5pjL5yprhKl9y\nsEfxplYQdehnHOFB0ei4mwlX3JeVvRxj4oqPTMLQo1MwUTAdBgNVHQ4EFgQU2+cA\n+JesbWLET0+0qN2IH94jii4wHwYDVR0jBBgwFoAU2+cA+JesbWLET0+0qN2IH94j\nii4wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAEoexa6GrlKDG5\n0+HaJu8jTuK8SFuCmwmp92aoSVx/SgIgZdfgdV0YZtgzeW736nTYhbTGhdyrgjqi\n/XGrp5QbEds=\n-----END CERTIFICATE-----\n";
const SYNTH_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHq12ftaWYM031+K2\nSNi5eGtD2GJ5ybgV5UGAbWFNCsWhRANCAAQWxA983aDagnhGqH39RqAkv/jbO8py\nhjq5pjL5yprhKl9ysEfxplYQdehnHOFB0ei4mwlX3JeVvRxj4oqPTMLQ\n-----END PRIVATE KEY-----\n";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::compose::Composite;
    use crate::config::Format;
    use crate::intern::Interner;
    use crate::member::{Member, MemberInfo};
    use crate::report::{ConflictKind, State};

    fn build(i: usize, spec: &Spec, interner: &Interner) -> Arc<Member> {
        let name = member_name(i, 8);
        let info = MemberInfo::unnamed(name);
        let bytes = to_json(&member_document(i, spec, 0));
        Arc::new(Member::build(info, &bytes, Format::Json, interner))
    }

    #[test]
    fn same_arguments_same_bytes() {
        assert_eq!(member_config(3, 500, 0.1, 7), member_config(3, 500, 0.1, 7));
        assert_ne!(member_config(3, 500, 0.1, 7), member_config(3, 500, 0.1, 8));
        assert_ne!(member_config(3, 500, 0.1, 7), member_config(4, 500, 0.1, 7));
    }

    #[test]
    fn members_are_valid_alone_with_the_asked_size_and_merge_cleanly() {
        let interner = Arc::new(Interner::new());
        let spec = Spec {
            entities: 300,
            conflicts: 0.0,
            seed: 42,
        };
        let members: Vec<_> = (0..4).map(|i| build(i, &spec, &interner)).collect();
        for m in &members {
            assert!(m.errors.is_empty(), "{:#?}", m.errors);
            assert_eq!(m.entities, 300);
            assert!(m.chunk(crate::config::Coll::Vaults).is_some());
            assert!(!m.vault_refs.is_empty());
        }
        let report = Composite::from_members(interner, members).report();
        assert_eq!(report.state, State::Ok, "{:#?}", report.conflicts);
    }

    #[test]
    fn planted_conflicts_appear_between_pair_partners_only() {
        let interner = Arc::new(Interner::new());
        let spec = Spec {
            entities: 400,
            conflicts: 0.2,
            seed: 9,
        };
        let members: Vec<_> = (0..4).map(|i| build(i, &spec, &interner)).collect();
        assert!(members.iter().all(|m| m.errors.is_empty()));
        let report = Composite::from_members(interner, members).report();
        assert_eq!(report.state, State::Conflict);
        let kinds: Vec<_> = report.conflicts.iter().map(|c| c.kind).collect();
        assert!(kinds.contains(&ConflictKind::DuplicateName));
        assert!(kinds.contains(&ConflictKind::DuplicateCredential));
        for c in &report.conflicts {
            // Pairs are (0,1) and (2,3); globals may meet across pairs.
            if c.kind != ConflictKind::DuplicateGlobalPlugin {
                assert_eq!(c.members.len(), 2, "{c:?}");
                let a = c.members[0].trim_start_matches("member-").parse::<usize>();
                let b = c.members[1].trim_start_matches("member-").parse::<usize>();
                assert_eq!(a.map(|a| a / 2), b.map(|b| b / 2), "{c:?}");
            }
        }
    }

    #[test]
    fn yaml_and_json_outputs_read_the_same() {
        let doc = member_document(
            1,
            &Spec {
                entities: 120,
                conflicts: 0.0,
                seed: 3,
            },
            0,
        );
        let yaml = to_yaml(&doc).expect("yaml");
        let from_yaml = crate::config::parse(&yaml, Format::Yaml).expect("parse yaml");
        let from_json = crate::config::parse(&to_json(&doc), Format::Json).expect("parse json");
        assert_eq!(from_yaml, from_json);
    }

    #[test]
    fn revisions_keep_names_and_change_content() {
        let spec = Spec {
            entities: 200,
            conflicts: 0.0,
            seed: 5,
        };
        let a = member_document(2, &spec, 0);
        let b = member_document(2, &spec, 1);
        assert_ne!(a, b);
        let names = |d: &Value| -> Vec<String> {
            d["services"]
                .as_array()
                .map(|s| s.iter().map(|s| s["name"].to_string()).collect())
                .unwrap_or_default()
        };
        assert!(!names(&a).is_empty());
        assert_eq!(names(&a), names(&b));
    }
}

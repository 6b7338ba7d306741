//! A fake Kong Gateway 3.10 data plane (hybrid mode, sync v1 over `/v1/outlet`).
//!
//! It does what Kong's own data plane does, step by step, so that rgmerge's
//! control plane can be tested without a real Kong. The reference is Kong's
//! master branch as released for 3.10.0 (`kong/meta.lua` says 3.10.0;
//! `kong/clustering/data_plane.lua` last changed 2025-02-13), together with
//! what it calls:
//!
//! * `kong/clustering/data_plane.lua` — `_M:communicate` (the connection, its
//!   three threads), `send_ping`, `send_error`;
//! * `kong/clustering/utils.lua` — `connect_cp` (URI, TLS options, `WS_OPTS`);
//! * `kong/clustering/config_helper.lua` — `update` (when a config is
//!   skipped, applied or refused; which hash is kept);
//! * `kong/db/declarative/import.lua` — `load_into_cache` (the stored hash),
//!   `get_current_hash`; `kong/db/declarative/init.lua` — `parse_table`;
//! * `kong/clustering/init.lua` — `init_worker` (the `plugins` and `filters`
//!   of basic_info);
//! * `kong/constants.lua` — bundled plugins, `CLUSTERING_PING_INTERVAL`,
//!   `CLUSTERING_TIMEOUT`, `DECLARATIVE_EMPTY_CONFIG_HASH`,
//!   `CLUSTERING_DATA_PLANE_ERROR`;
//! * `kong/templates/kong_defaults.lua` — `cluster_max_payload`, `cluster_*`;
//! * Kong's fork of lua-resty-websocket (0.4.0.1, pinned by Kong's
//!   `.requirements` as `LUA_RESTY_WEBSOCKET`): `client.lua` (`connect`,
//!   `recv_frame`, `send_frame`, `send_close`, `close`) and `protocol.lua`
//!   (`recv_frame`, `send_frame`, `build_frame`);
//! * lua-ffi-zlib 0.6 `inflateGzip` (through `kong/tools/gzip.lua`).
//!
//! Nothing here is copied from Kong: it is our own Rust written from those
//! facts, and each behaviour cites the Lua it follows. Where the fake cannot
//! do what Kong does (it has no schema, no LMDB, no router) the comment says
//! what it does instead.
//!
//! Used by the integration tests as `common::dataplane` and by
//! `examples/fleet.rs` through `#[path]`, so it refers to no other module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use serde::de::{self, IgnoredAny};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

// ---------------------------------------------------------------------------
// Kong's constants
// ---------------------------------------------------------------------------

/// `constants.DECLARATIVE_EMPTY_CONFIG_HASH = string.rep("0", 32)`
/// (kong/constants.lua): the hash a data plane pings before it has any
/// config, and the hash it stores for an empty config.
pub const DECLARATIVE_EMPTY_CONFIG_HASH: &str = "00000000000000000000000000000000";
/// `constants.CLUSTERING_PING_INTERVAL = 30` (kong/constants.lua).
pub const CLUSTERING_PING_INTERVAL: Duration = Duration::from_secs(30);
/// `constants.CLUSTERING_TIMEOUT = 5000` ms (kong/constants.lua): utils.lua
/// `WS_OPTS.timeout`, the socket timeout of every connect, send and receive.
pub const CLUSTERING_TIMEOUT: Duration = Duration::from_millis(5000);
/// `cluster_max_payload = 16777216` (kong/templates/kong_defaults.lua):
/// utils.lua `WS_OPTS.max_payload_len`, the limit on every frame either way.
pub const CLUSTER_MAX_PAYLOAD: usize = 16_777_216;
/// `kong/meta.lua` version of the Kong this fake follows.
pub const KONG_VERSION: &str = "3.10.0";
/// The sync v1 endpoint: data_plane.lua `connect_cp(self, "/v1/outlet")`.
pub const OUTLET_PATH: &str = "/v1/outlet";
/// `CONF_SENSITIVE_PLACEHOLDER` (kong/conf_loader/constants.lua), what
/// `remove_sensitive()` puts in place of `cluster_cert_key` and the like.
pub const CONF_SENSITIVE_PLACEHOLDER: &str = "******";
/// `CLUSTERING_DATA_PLANE_ERROR` names (kong/constants.lua).
pub const ERR_CONFIG_PARSE: &str = "declarative configuration parse failure";
pub const ERR_RELOAD: &str = "configuration reload failed";
pub const ERR_GENERIC: &str = "generic or unknown error";

/// The bundled plugins of Kong 3.10 OSS (kong/constants.lua): the same fact
/// the control plane's compat table holds, so one list.
const KONG_3_10_PLUGINS: &[&str] = rgmerge::cluster::compat::BUNDLED_PLUGINS;

// WebSocket opcodes (protocol.lua `types`).
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// What config_helper.lua's `calculate_config_hash(config_table)` returns:
/// `(config_hash, hashes)`. Kong computes it when a reconfigure message has
/// no `config_hash`; the hashing lives in rgmerge, so tests pass it in.
pub type HashFn = fn(&Value) -> (String, Value);
/// Called with the node id and every event, as it happens (also when
/// `record_events` is off). The fleet driver uses it for timings.
pub type Observer = Arc<dyn Fn(&str, &DpEvent) + Send + Sync>;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// What a Kong data plane's `kong.conf` and node say, as far as the
/// clustering code reads them.
#[derive(Clone)]
pub struct DpOptions {
    /// Where `cluster_control_plane` resolves (the fake connects here).
    pub addr: SocketAddr,
    /// `cluster_server_name`: the SNI and the name the server certificate is
    /// checked against (utils.lua `connect_cp`: `opts.server_name`).
    pub server_name: String,
    /// `lua_ssl_trusted_certificate`: the server chain is verified against
    /// it (`ssl_verify = true` in `connect_cp`; `cluster_mtls = pki`).
    pub ca_pem: Vec<u8>,
    /// `cluster_cert` / `cluster_cert_key`, the client certificate
    /// (`client_cert`, `client_priv_key` in `connect_cp`). An empty
    /// `cert_pem` sends no client certificate (for refusal tests; Kong
    /// always has one).
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// `kong.node.get_id()`, `kong.node.get_hostname()`, `KONG_VERSION`:
    /// the three query arguments of the outlet URI.
    pub node_id: String,
    pub hostname: String,
    pub version: String,
    /// `(name, handler VERSION)` of every loaded plugin (clustering/init.lua
    /// `init_worker`); sent sorted by lowercased name.
    pub plugins: Vec<(String, String)>,
    /// `cluster_dp_labels` parsed as `name:value` (data_plane.lua
    /// `communicate` L223-231). Empty: `labels` is left out of basic_info,
    /// as Kong does when `cluster_dp_labels` is unset.
    pub labels: Map<String, Value>,
    /// `kong.configuration.remove_sensitive()`: the node's whole parsed
    /// kong.conf with secrets replaced by `******` (data_plane.lua L233).
    pub process_conf: Value,
    /// Names of the Wasm filters (clustering/init.lua `init_worker`
    /// L105-110); empty with Kong's default `wasm = off`.
    pub filters: Vec<String>,
    /// `cluster_max_payload` (utils.lua `WS_OPTS.max_payload_len`).
    pub max_payload: usize,
    /// `CLUSTERING_PING_INTERVAL` (30 s in Kong; tests shorten it). The
    /// ping-wait is 1.5 times it (data_plane.lua L34).
    pub ping_interval: Duration,
    /// Send basic_info as a text frame instead of Kong 3.10's binary frame.
    pub text_basic_info: bool,
    /// `cluster_control_plane` (`host:port`): the authority of the
    /// `wss://` URI, hence the `Host` header. `new()` makes it
    /// `server_name:port`.
    pub cluster_control_plane: String,
    /// `CLUSTERING_TIMEOUT` (utils.lua `WS_OPTS.timeout`): TCP connect, TLS,
    /// each send and each receive.
    pub timeout: Duration,
    /// `konnect_mode` (data_plane.lua `_M.new`: `error_reporting`): report
    /// a config that failed to apply to the CP as a binary `error` frame.
    /// Off by default, as in Kong.
    pub error_reporting: bool,
    /// Kong's `calculate_config_hash`, used when a reconfigure message has
    /// no `config_hash` (config_helper.lua `update` L303-310). Without it
    /// such a message is refused (an `Error` event) instead.
    pub hash_fn: Option<HashFn>,
    /// Kong reconnects `math.random(5, 10)` seconds after a connection ends
    /// (data_plane.lua L209, L437-441). `None` (the default): stay down, so
    /// tests see the disconnect. `Some((min, max))`: reconnect after a
    /// random delay in that range, keeping the held hash (LMDB survives).
    pub reconnect: Option<(Duration, Duration)>,
    /// Keep the last applied config_table for `config()`. The fleet turns
    /// it off and keeps only the hash and size.
    pub keep_config: bool,
    /// Record every event for `events()`. The fleet turns it off.
    pub record_events: bool,
    pub observer: Option<Observer>,
}

impl fmt::Debug for DpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpOptions")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .field("node_id", &self.node_id)
            .field("hostname", &self.hostname)
            .field("version", &self.version)
            .field("plugins", &self.plugins.len())
            .field("labels", &self.labels)
            .field("max_payload", &self.max_payload)
            .field("ping_interval", &self.ping_interval)
            .field("text_basic_info", &self.text_basic_info)
            .field("cluster_control_plane", &self.cluster_control_plane)
            .field("timeout", &self.timeout)
            .field("error_reporting", &self.error_reporting)
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

impl DpOptions {
    /// Kong's defaults: a random node id (uuid v4, as `kong.node.get_id()`
    /// makes one), hostname `fake-dp`, version 3.10.0, Kong 3.10's bundled
    /// plugins, no labels, no filters, `cluster_max_payload = 16777216`,
    /// 30 s pings, 5 s timeouts, basic_info as a binary frame.
    pub fn new(
        addr: SocketAddr,
        server_name: impl Into<String>,
        ca_pem: impl Into<Vec<u8>>,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> DpOptions {
        let server_name = server_name.into();
        let cluster_control_plane = format!("{server_name}:{}", addr.port());
        let mut opts = DpOptions {
            addr,
            server_name,
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            node_id: uuid::Uuid::new_v4().to_string(),
            hostname: "fake-dp".to_string(),
            version: KONG_VERSION.to_string(),
            plugins: DpOptions::kong_3_10_plugins(),
            labels: Map::new(),
            process_conf: Value::Null,
            filters: Vec::new(),
            max_payload: CLUSTER_MAX_PAYLOAD,
            ping_interval: CLUSTERING_PING_INTERVAL,
            text_basic_info: false,
            cluster_control_plane,
            timeout: CLUSTERING_TIMEOUT,
            error_reporting: false,
            hash_fn: None,
            reconnect: None,
            keep_config: true,
            record_events: true,
            observer: None,
        };
        opts.process_conf = opts.default_process_conf();
        opts
    }

    /// Kong 3.10 OSS's bundled plugins (kong/constants.lua `plugins`), each
    /// at "3.10.0": every bundled handler sets `VERSION = kong_meta.version`.
    /// Sorted by lowercased name, as clustering/init.lua `init_worker`
    /// (L96-99) sorts the list it sends.
    pub fn kong_3_10_plugins() -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = KONG_3_10_PLUGINS
            .iter()
            .map(|n| (n.to_string(), KONG_VERSION.to_string()))
            .collect();
        v.sort_by_key(|(n, _)| n.to_lowercase());
        v
    }

    /// A representative `kong.configuration.remove_sensitive()` of a data
    /// plane with these options (data_plane.lua L233; conf_loader
    /// `remove_sensitive` puts `******` in place of `cluster_cert_key`).
    /// Kong sends the whole parsed kong.conf; this is the clustering part
    /// and a few well-known keys, with Kong's defaults.
    pub fn default_process_conf(&self) -> Value {
        let mut conf = json!({
            "role": "data_plane",
            "database": "off",
            "prefix": "/usr/local/kong",
            "kong_env": "/usr/local/kong/.kong_env",
            "cluster_control_plane": self.cluster_control_plane,
            "cluster_server_name": self.server_name,
            "cluster_mtls": "pki",
            "cluster_cert": "/etc/kong/cluster.crt",
            "cluster_cert_key": CONF_SENSITIVE_PLACEHOLDER,
            "cluster_max_payload": self.max_payload,
            "cluster_use_proxy": false,
            "cluster_rpc": false,
            "cluster_rpc_sync": false,
            "cluster_cjson": false,
            "cluster_data_plane_purge_delay": 1209600,
            "cluster_ocsp": "off",
            "konnect_mode": self.error_reporting,
            "lua_ssl_trusted_certificate": ["/etc/kong/cluster-ca.crt"],
            "lua_ssl_verify_depth": 1,
            "plugins": ["bundled"],
            "proxy_listen": ["0.0.0.0:8000 reuseport backlog=16384",
                             "0.0.0.0:8443 http2 ssl reuseport backlog=16384"],
            "nginx_worker_processes": "auto",
            "dedicated_config_processing": true,
            "router_flavor": "traditional_compatible",
            "lmdb_environment_path": "dbless.lmdb",
            "lmdb_map_size": "2048m",
            "wasm": !self.filters.is_empty(),
            "log_level": "notice",
        });
        if !self.labels.is_empty() {
            let labels: Vec<Value> = self
                .labels
                .iter()
                .map(|(k, v)| Value::String(format!("{k}:{}", value_text(v))))
                .collect();
            conf["cluster_dp_labels"] = Value::Array(labels);
        }
        conf
    }

    fn ping_wait(&self) -> Duration {
        // data_plane.lua L34: PING_WAIT = PING_INTERVAL * 1.5
        self.ping_interval.mul_f64(1.5)
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The path and query the data plane requests (utils.lua `connect_cp`
/// L74-77): `/v1/outlet?node_id=…&node_hostname=…&node_version=…`, the
/// values put in as they are, unescaped, as Kong does.
pub fn outlet_path(opts: &DpOptions) -> String {
    format!(
        "{OUTLET_PATH}?node_id={}&node_hostname={}&node_version={}",
        opts.node_id, opts.hostname, opts.version
    )
}

/// The basic_info message (data_plane.lua `communicate` L240-244):
/// `{type = "basic_info", plugins, process_conf, filters, labels}`
/// encoded with cjson, which escapes `/` as `\/`. `plugins` is the sorted
/// `[{name, version}]` list; `filters` is a table keyed by filter name, so
/// with no filters cjson sends `{}` (an empty Lua table encodes as an
/// object); `labels` is absent when there are none.
pub fn basic_info_payload(opts: &DpOptions) -> Vec<u8> {
    let mut plugins = opts.plugins.clone();
    // clustering/init.lua init_worker L96-99: sorted by lowercased name.
    plugins.sort_by_key(|(n, _)| n.to_lowercase());
    let plugins: Vec<Value> = plugins
        .into_iter()
        .map(|(name, version)| json!({ "name": name, "version": version }))
        .collect();
    // clustering/init.lua init_worker L105-110: filters[name] = { name = name }
    let mut filters = Map::new();
    for f in &opts.filters {
        filters.insert(f.clone(), json!({ "name": f }));
    }
    let mut msg = Map::new();
    msg.insert("type".into(), Value::String("basic_info".into()));
    msg.insert("plugins".into(), Value::Array(plugins));
    msg.insert("process_conf".into(), opts.process_conf.clone());
    msg.insert("filters".into(), Value::Object(filters));
    if !opts.labels.is_empty() {
        msg.insert("labels".into(), Value::Object(opts.labels.clone()));
    }
    cjson_encode(&Value::Object(msg))
}

/// cjson.encode as Kong uses it (clustering/utils.lua `json_encode =
/// cjson.encode`, default settings): like JSON, but `/` is written `\/`.
/// A `/` can only occur inside a JSON string, so replacing it is exact.
fn cjson_encode(v: &Value) -> Vec<u8> {
    let plain = serde_json::to_vec(v).unwrap_or_default();
    let mut out = Vec::with_capacity(plain.len() + 16);
    for b in plain {
        if b == b'/' {
            out.extend_from_slice(b"\\/");
        } else {
            out.push(b);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Errors and events
// ---------------------------------------------------------------------------

/// Why a connection could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpError {
    /// Certificates could not be loaded, or the TLS handshake failed (the
    /// server certificate did not verify, or the server refused ours).
    Tls(String),
    /// The WebSocket upgrade was answered with something other than 101
    /// (Kong's client: "unexpected HTTP response code: …"), or with no
    /// HTTP/1.1 status line (`status: None`).
    Handshake { status: Option<u16>, body: String },
    /// TCP connect, send or receive failed, or timed out.
    Io(String),
    /// The connection is closed (or was never open).
    Closed(String),
}

impl fmt::Display for DpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpError::Tls(e) => write!(f, "ssl handshake failed: {e}"),
            DpError::Handshake {
                status: Some(s),
                body,
            } => write!(f, "unexpected HTTP response code: {s}: {body}"),
            DpError::Handshake { status: None, body } => {
                write!(f, "bad HTTP response status line: {body}")
            }
            DpError::Io(e) => write!(f, "{e}"),
            DpError::Closed(e) => write!(f, "closed: {e}"),
        }
    }
}

impl std::error::Error for DpError {}

/// What the data plane saw or did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum DpEvent {
    /// The connection (or a reconnection) is up and basic_info was sent.
    Connected,
    /// A `reconfigure` message was decoded and handed to `update()`:
    /// `hash` is its `config_hash` (or the one `hash_fn` computed; "" when
    /// neither), `bytes` the size of the frame as received (gzip'd).
    Reconfigure { hash: String, bytes: usize },
    /// `update()` loaded the config; the node now holds `hash`.
    Applied { hash: String },
    /// `update()` returned early: the config's hash is the one held
    /// (config_helper.lua L316-321).
    Unchanged { hash: String },
    /// A pong from the CP.
    Pong { payload: Vec<u8> },
    /// A close frame from the CP (`code` is None for an empty close frame).
    Close { code: Option<u16>, reason: String },
    /// A text, ping or continuation frame: Kong logs "received unknown
    /// (…) frame" and ignores it (data_plane.lua L401-404). Kong never
    /// answers a ping.
    Unknown { typ: &'static str, bytes: usize },
    /// A binary frame replaced an earlier one the config thread had not
    /// taken yet (data_plane.lua L385: `next_data = data`); the earlier one
    /// is never decoded.
    Superseded { bytes: usize },
    /// A ping went out carrying this hash.
    PingSent { hash: String },
    /// An `error` report went out (konnect_mode only).
    ErrorReportSent(Value),
    /// Something failed: a config that did not apply, a frame error, a
    /// failed send or reconnect.
    Error(String),
    /// The connection ended; `reason` is the text Kong logs for it (for a
    /// frame that fails to inflate or decode, where Kong's config thread
    /// dies on an `assert`, the assertion).
    Disconnected { reason: String },
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

#[derive(Default)]
struct State {
    /// `declarative.get_current_hash()`: None until a config is loaded.
    hash: Option<String>,
    config: Option<Value>,
    hashes: Option<Value>,
    config_size: usize,
    events: Vec<DpEvent>,
}

struct Shared {
    node_id: String,
    record_events: bool,
    keep_config: bool,
    observer: Option<Observer>,
    state: Mutex<State>,
    session: Mutex<Option<Arc<SessionIo>>>,
    connected: AtomicBool,
    received: AtomicUsize,
    applied: AtomicUsize,
    pings_sent: AtomicUsize,
    pongs: AtomicUsize,
    connects: AtomicUsize,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn event(&self, ev: DpEvent) {
        if let Some(obs) = &self.observer {
            obs(&self.node_id, &ev);
        }
        if self.record_events {
            lock(&self.state).events.push(ev);
        }
        self.changed.notify_waiters();
    }

    /// data_plane.lua `send_ping` L143-147: the current hash, or the
    /// empty-config hash when there is none (or it is "").
    fn ping_hash(&self) -> String {
        match &lock(&self.state).hash {
            Some(h) if !h.is_empty() => h.clone(),
            _ => DECLARATIVE_EMPTY_CONFIG_HASH.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// The rustls client config for these certificates, built once per
/// distinct (CA, cert, key) and shared (10 000 fleet nodes use one).
fn client_config(opts: &DpOptions) -> Result<Arc<rustls::ClientConfig>, DpError> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Arc<rustls::ClientConfig>>>> = OnceLock::new();
    let mut h = DefaultHasher::new();
    (&opts.ca_pem, &opts.cert_pem, &opts.key_pem).hash(&mut h);
    let key = h.finish();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = lock(cache).get(&key) {
        return Ok(c.clone());
    }

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&opts.ca_pem) {
        let cert = cert.map_err(|e| DpError::Tls(format!("bad CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| DpError::Tls(format!("bad CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(DpError::Tls("no CA certificate in ca_pem".into()));
    }
    // ring, as the main crate uses: deprecated in rustls only for lacking
    // post-quantum key exchange, which Kong's data planes do not offer.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // lua_ssl_protocols defaults to "TLSv1.2 TLSv1.3".
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| DpError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = if opts.cert_pem.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&opts.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| DpError::Tls(format!("bad cluster_cert PEM: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(&opts.key_pem)
            .map_err(|e| DpError::Tls(format!("bad cluster_cert_key PEM: {e}")))?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| DpError::Tls(format!("bad client certificate: {e}")))?
    };
    // client.lua `connect`: `sock:sslhandshake(false, server_name,
    // ssl_verify)`: the first argument (reused_session) is false, so Kong
    // never resumes a TLS session. No ALPN either.
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    lock(cache).insert(key, config.clone());
    Ok(config)
}

/// TCP connect then TLS handshake, as client.lua `connect` does: connect
/// (within `timeout`), present the client certificate, verify the server
/// against `ca_pem` for `server_name` (utils.lua `connect_cp`: `ssl_verify
/// = true`, `server_name = cluster_server_name`).
pub async fn tls_connect(opts: &DpOptions) -> Result<TlsStream<TcpStream>, DpError> {
    let config = client_config(opts)?;
    tls_connect_with(config, opts.addr, &opts.server_name, opts.timeout).await
}

async fn tls_connect_with(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, DpError> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| DpError::Tls(format!("bad server name {server_name:?}: {e}")))?;
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(DpError::Io("failed to connect: timeout".into())),
        Ok(Err(e)) => return Err(DpError::Io(format!("failed to connect: {e}"))),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(timeout, TlsConnector::from(config).connect(name, tcp)).await {
        Err(_) => Err(DpError::Tls("timeout".into())),
        Ok(Err(e)) => Err(DpError::Tls(e.to_string())),
        Ok(Ok(s)) => Ok(s),
    }
}

/// An io error that carries a TLS alert (e.g. the server refusing our
/// certificate, which TLS 1.3 reports only on the first read).
fn io_error(prefix: &str, e: &std::io::Error) -> DpError {
    if e.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .is_some()
    {
        DpError::Tls(format!("{prefix}: {e}"))
    } else {
        DpError::Io(format!("{prefix}: {e}"))
    }
}

// ---------------------------------------------------------------------------
// HTTP upgrade
// ---------------------------------------------------------------------------

/// The answer to a raw HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: Option<u16>,
    /// The status line and headers, without the final blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// Reads the response head (client.lua `connect`: `receiveuntil("\r\n\r\n")`)
/// and returns it with whatever bytes came after it.
async fn read_head<S: AsyncRead + Unpin>(
    s: &mut S,
    timeout: Duration,
) -> Result<(String, Vec<u8>), DpError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(p + 4);
            buf.truncate(p);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(DpError::Io(
                "failed to receive response header: too big".into(),
            ));
        }
        buf.reserve(4096);
        match tokio::time::timeout(timeout, s.read_buf(&mut buf)).await {
            Err(_) => {
                return Err(DpError::Io(
                    "failed to receive response header: timeout".into(),
                ));
            }
            Ok(Err(e)) => return Err(io_error("failed to receive response header", &e)),
            Ok(Ok(0)) => {
                return Err(DpError::Closed(
                    "failed to receive response header: closed".into(),
                ));
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// client.lua `connect` L257: `^\s*HTTP/1\.1\s+(\d{3})`.
fn parse_status(head: &str) -> Option<u16> {
    let rest = head.trim_start().strip_prefix("HTTP/1.1")?;
    let trimmed = rest.trim_start();
    if trimmed.len() == rest.len() {
        return None;
    }
    let code = trimmed.get(..3)?;
    if code.bytes().all(|b| b.is_ascii_digit()) {
        code.parse().ok()
    } else {
        None
    }
}

/// Reads a body after a head: Content-Length bytes, or until the server
/// closes (bounded by `timeout` and 1 MiB). Kong itself never reads it;
/// tests want it in `DpError::Handshake`.
async fn read_body<S: AsyncRead + Unpin>(
    s: &mut S,
    head: &str,
    mut body: Vec<u8>,
    timeout: Duration,
) -> Vec<u8> {
    let resp = HttpResponse {
        status: None,
        head: head.to_string(),
        body: Vec::new(),
    };
    let want = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| n.min(MAX_BODY));
    loop {
        if want.is_some_and(|n| body.len() >= n) || body.len() >= MAX_BODY {
            break;
        }
        body.reserve(4096);
        match tokio::time::timeout(timeout, s.read_buf(&mut body)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    if let Some(n) = want {
        body.truncate(n);
    }
    body
}

/// The upgrade request of client.lua `connect` L216-239, byte for byte:
/// `GET path HTTP/1.1`, `Upgrade`, `Host: host:port`, `Sec-WebSocket-Key`,
/// `Sec-WebSocket-Version: 13`, `Connection: Upgrade` (no protocols, no
/// origin, no custom headers for `/v1/outlet`).
fn upgrade_request(host: &str, path: &str, rng: &mut Rng) -> String {
    let mut key = [0u8; 16];
    rng.fill(&mut key);
    format!(
        "GET {path} HTTP/1.1\r\nUpgrade: websocket\r\nHost: {host}\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\n\r\n",
        base64(&key)
    )
}

/// Sends the upgrade and checks the answer as Kong's client does: the
/// status line must be HTTP/1.1 and the code 101; nothing else (not even
/// `Sec-WebSocket-Accept`) is checked. Returns the bytes that followed the
/// head (the start of the first frames).
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    path: &str,
    timeout: Duration,
    rng: &mut Rng,
) -> Result<Vec<u8>, DpError> {
    let req = upgrade_request(host, path, rng);
    match tokio::time::timeout(timeout, async {
        s.write_all(req.as_bytes()).await?;
        s.flush().await
    })
    .await
    {
        Err(_) => {
            return Err(DpError::Io(
                "failed to send the handshake request: timeout".into(),
            ));
        }
        Ok(Err(e)) => return Err(io_error("failed to send the handshake request", &e)),
        Ok(Ok(())) => {}
    }
    let (head, rest) = read_head(s, timeout).await?;
    match parse_status(&head) {
        None => Err(DpError::Handshake {
            status: None,
            body: head,
        }),
        Some(101) => Ok(rest),
        Some(code) => {
            let body = read_body(s, &head, rest, timeout).await;
            Err(DpError::Handshake {
                status: Some(code),
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        }
    }
}

/// Sends `request` as it is over a fresh TLS connection and reads the
/// answer (head, then Content-Length bytes or until close/timeout). For
/// refusal tests: wrong paths, missing query arguments, no upgrade.
pub async fn http_request(opts: &DpOptions, request: &[u8]) -> Result<HttpResponse, DpError> {
    let mut s = tls_connect(opts).await?;
    match tokio::time::timeout(opts.timeout, async {
        s.write_all(request).await?;
        s.flush().await
    })
    .await
    {
        Err(_) => return Err(DpError::Io("send: timeout".into())),
        Ok(Err(e)) => return Err(io_error("send", &e)),
        Ok(Ok(())) => {}
    }
    let (head, rest) = read_head(&mut s, opts.timeout).await?;
    let status = parse_status(&head);
    let body = if status == Some(101) {
        rest
    } else {
        read_body(&mut s, &head, rest, opts.timeout).await
    };
    Ok(HttpResponse { status, head, body })
}

// ---------------------------------------------------------------------------
// WebSocket frames (Kong's lua-resty-websocket fork, protocol.lua/client.lua)
// ---------------------------------------------------------------------------

/// A tiny xorshift generator (masking keys, `Sec-WebSocket-Key`, reconnect
/// delays) seeded from a v4 uuid.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let b = uuid::Uuid::new_v4().as_u64_pair();
        Rng((b.0 ^ b.1) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_millis() as u64;
        lo + Duration::from_millis(self.next() % (span + 1))
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// protocol.lua `build_frame`: FIN + opcode, 7/16/64-bit length (only 31
/// bits used), and with masking (the client masks: `not send_unmasked`) a
/// random 4-byte key and the masked payload.
fn build_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(if fin { 0x80 | opcode } else { opcode });
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len <= 125 {
        f.push(mbit | len as u8);
    } else if len <= 65535 {
        f.push(mbit | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(mbit | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// A frame as protocol.lua `recv_frame` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub opcode: u8,
    pub fin: bool,
    pub payload: Vec<u8>,
    /// For a close frame with a body: its status code (the payload is then
    /// the reason).
    pub close_code: Option<u16>,
}

enum RecvError {
    /// The socket timeout: benign for the read thread (it checks the
    /// ping-wait and reads again).
    Timeout,
    /// Anything else: client.lua `recv_frame` sets `self.fatal`.
    Fatal(String),
}

/// The receiving half. Bytes read stay buffered until a whole frame is
/// there, so a timeout in the middle of a frame loses nothing.
struct Reader<R> {
    io: R,
    buf: Vec<u8>,
    max_payload: usize,
    timeout: Duration,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    async fn fill(&mut self, n: usize, what: &str) -> Result<(), RecvError> {
        while self.buf.len() < n {
            self.buf.reserve((n - self.buf.len()).max(4096));
            match tokio::time::timeout(self.timeout, self.io.read_buf(&mut self.buf)).await {
                Err(_) => return Err(RecvError::Timeout),
                Ok(Ok(0)) => return Err(RecvError::Fatal(format!("{what}: closed"))),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(RecvError::Fatal(format!("{what}: {e}"))),
            }
        }
        Ok(())
    }

    /// protocol.lua `recv_frame(sock, max_payload_len, force_masking=false)`
    /// with the same checks, in the same order, and the same messages.
    async fn recv_frame(&mut self) -> Result<RawFrame, RecvError> {
        self.fill(2, "failed to receive the first 2 bytes").await?;
        let (fst, snd) = (self.buf[0], self.buf[1]);
        let fin = fst & 0x80 != 0;
        if fst & 0x70 != 0 {
            return Err(RecvError::Fatal("bad RSV1, RSV2, or RSV3 bits".into()));
        }
        let opcode = fst & 0x0f;
        if (0x3..=0x7).contains(&opcode) {
            return Err(RecvError::Fatal("reserved non-control frames".into()));
        }
        if (0xb..=0xf).contains(&opcode) {
            return Err(RecvError::Fatal("reserved control frames".into()));
        }
        let masked = snd & 0x80 != 0;
        let mut len = (snd & 0x7f) as usize;
        let mut hdr = 2;
        if len == 126 {
            self.fill(4, "failed to receive the 2 byte payload length")
                .await?;
            len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
            hdr = 4;
        } else if len == 127 {
            self.fill(10, "failed to receive the 8 byte payload length")
                .await?;
            let b = &self.buf[2..10];
            if b[0] != 0 || b[1] != 0 || b[2] != 0 || b[3] != 0 || b[4] & 0x80 != 0 {
                return Err(RecvError::Fatal("payload len too large".into()));
            }
            len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            hdr = 10;
        }
        if opcode & 0x8 != 0 {
            if len > 125 {
                return Err(RecvError::Fatal(
                    "too long payload for control frame".into(),
                ));
            }
            if !fin {
                return Err(RecvError::Fatal("fragmented control frame".into()));
            }
        }
        // Checked on the header, before the payload is read.
        if len > self.max_payload {
            return Err(RecvError::Fatal("exceeding max payload len".into()));
        }
        let mask_len = if masked { 4 } else { 0 };
        let total = hdr + mask_len + len;
        self.fill(total, "failed to read masking-len and payload")
            .await?;
        let rest = self.buf.split_off(total);
        let mut frame = std::mem::replace(&mut self.buf, rest);
        // Give back the memory of a big frame once it is consumed.
        if self.buf.capacity() > 256 * 1024 && self.buf.len() < 16 * 1024 {
            self.buf.shrink_to(16 * 1024);
        }
        let mut payload = frame.split_off(hdr + mask_len);
        if masked {
            let key = [frame[hdr], frame[hdr + 1], frame[hdr + 2], frame[hdr + 3]];
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        if opcode == OP_CLOSE {
            if payload.is_empty() {
                return Ok(RawFrame {
                    opcode,
                    fin,
                    payload,
                    close_code: None,
                });
            }
            if payload.len() < 2 {
                return Err(RecvError::Fatal(
                    "close frame with a body must carry a 2-byte status code".into(),
                ));
            }
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return Ok(RawFrame {
                opcode,
                fin,
                payload: payload.split_off(2),
                close_code: Some(code),
            });
        }
        Ok(RawFrame {
            opcode,
            fin,
            payload,
            close_code: None,
        })
    }
}

/// The sending half, with client.lua's `fatal` and `closed` flags.
struct Writer<W> {
    io: W,
    max_payload: usize,
    timeout: Duration,
    rng: Rng,
    closed: bool,
    fatal: Arc<AtomicBool>,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// client.lua `send_frame` + protocol.lua `send_frame`: refuse after a
    /// fatal error or a close, refuse payloads over `max_payload` ("payload
    /// too big") and control payloads over 125 bytes, mask, send. Every
    /// failure makes the connection fatal.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        if self.fatal.load(Ordering::SeqCst) {
            return Err("fatal error already happened".into());
        }
        if self.closed {
            return Err("already closed".into());
        }
        let res = self.send_frame_inner(opcode, payload).await;
        if res.is_err() {
            self.fatal.store(true, Ordering::SeqCst);
        }
        res
    }

    async fn send_frame_inner(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        if payload.len() > self.max_payload {
            return Err("payload too big".into());
        }
        if opcode & 0x8 != 0 && payload.len() > 125 {
            return Err("too much payload for control frame".into());
        }
        let mut key = [0u8; 4];
        self.rng.fill(&mut key);
        let frame = build_frame(true, opcode, payload, Some(key));
        self.write_raw(&frame).await
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
        {
            Err(_) => Err("failed to send frame: timeout".into()),
            Ok(Err(e)) => Err(format!("failed to send frame: {e}")),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// client.lua `close`: unless fatal, send a close frame — `send_close`
    /// with no code, so an empty payload — then close the socket (here: TLS
    /// close_notify and FIN).
    async fn close(&mut self) {
        if !self.fatal.load(Ordering::SeqCst) && !self.closed {
            let _ = self.send_frame(OP_CLOSE, &[]).await;
            self.closed = true;
        }
        let _ = tokio::time::timeout(self.timeout, self.io.shutdown()).await;
    }
}

type Tls = TlsStream<TcpStream>;

/// A WebSocket connection with no Kong logic on top, for refusal tests:
/// upgrade, then send and receive whatever frames the test wants.
pub struct RawWs {
    reader: Reader<ReadHalf<Tls>>,
    writer: Writer<WriteHalf<Tls>>,
}

impl RawWs {
    /// TLS + upgrade to the outlet path of `opts`; sends nothing else.
    pub async fn connect(opts: &DpOptions) -> Result<RawWs, DpError> {
        RawWs::connect_path(opts, &outlet_path(opts)).await
    }

    /// TLS + upgrade to any path and query.
    pub async fn connect_path(opts: &DpOptions, path: &str) -> Result<RawWs, DpError> {
        let mut s = tls_connect(opts).await?;
        let mut rng = Rng::new();
        let rest = upgrade(
            &mut s,
            &opts.cluster_control_plane,
            path,
            opts.timeout,
            &mut rng,
        )
        .await?;
        let (r, w) = tokio::io::split(s);
        Ok(RawWs {
            reader: Reader {
                io: r,
                buf: rest,
                max_payload: opts.max_payload,
                timeout: opts.timeout,
            },
            writer: Writer {
                io: w,
                max_payload: usize::MAX,
                timeout: opts.timeout,
                rng,
                closed: false,
                fatal: Arc::new(AtomicBool::new(false)),
            },
        })
    }

    /// Sends one frame with any FIN bit and opcode, masked or not, with no
    /// size checks.
    pub async fn send_frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: &[u8],
        masked: bool,
    ) -> Result<(), DpError> {
        let mask = masked.then(|| {
            let mut k = [0u8; 4];
            self.writer.rng.fill(&mut k);
            k
        });
        let frame = build_frame(fin, opcode, payload, mask);
        self.send_raw(&frame).await
    }

    /// Sends basic_info as the data plane would (binary or text per opts).
    pub async fn send_basic_info(&mut self, opts: &DpOptions) -> Result<(), DpError> {
        let op = if opts.text_basic_info {
            OP_TEXT
        } else {
            OP_BINARY
        };
        self.send_frame(true, op, &basic_info_payload(opts), true)
            .await
    }

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), DpError> {
        self.writer.write_raw(bytes).await.map_err(DpError::Io)
    }

    /// The next frame, or `Ok(None)` when nothing complete arrives within
    /// `timeout`.
    pub async fn recv_frame(&mut self, timeout: Duration) -> Result<Option<RawFrame>, DpError> {
        self.reader.timeout = timeout;
        match self.reader.recv_frame().await {
            Ok(f) => Ok(Some(f)),
            Err(RecvError::Timeout) => Ok(None),
            Err(RecvError::Fatal(e)) => Err(DpError::Closed(e)),
        }
    }

    /// Sends an empty close frame and shuts the connection.
    pub async fn close(mut self) {
        self.writer.close().await;
    }
}

// ---------------------------------------------------------------------------
// Decoding a reconfigure message
// ---------------------------------------------------------------------------

/// lua-ffi-zlib `inflateGzip` (kong/tools/gzip.lua `inflate_gzip`):
/// `inflateInit2` with windowBits 15+32, i.e. gzip or zlib by header
/// detection; it stops at the end of the first stream and ignores anything
/// after it; a truncated stream is an error.
fn inflate_gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 4);
    let res = if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(data).read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(data).read_to_end(&mut out)
    };
    match res {
        Ok(_) => Ok(out),
        Err(e) => Err(format!("INFLATE: {e}")),
    }
}

/// Deserializes any value into `Some`, so that a JSON `null` is told apart
/// from an absent key (Lua: `ngx.null` is truthy, `nil` is not).
fn present<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What `update()` needs of a config_table without keeping it: its type,
/// the two schema fields the fake checks, and whether it has any entity
/// (import.lua `config_is_empty`).
#[derive(Debug, Default)]
struct TableSummary {
    kind: TableKind,
    format_version: Option<Value>,
    transform: Option<Value>,
    has_entities: bool,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum TableKind {
    #[default]
    Absent,
    Object,
    Array,
    /// null, a string, number or boolean (not a Lua table).
    Other,
}

/// A value seen only as "a collection with at least one element" (or a
/// scalar that is not null).
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<NonEmpty, A::Error> {
                let first = a.next_element::<IgnoredAny>()?.is_some();
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(NonEmpty(first))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<NonEmpty, A::Error> {
                let first = a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some();
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(NonEmpty(first))
            }
            fn visit_unit<E>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_none<E>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_i64<E>(self, _: i64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_u64<E>(self, _: u64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_f64<E>(self, _: f64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_str<E>(self, _: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether a top-level key of a config_table names an entity collection:
/// not the `_format_version`/`_transform`/`_comment`… metadata, and not
/// `workspaces` (import.lua `config_is_empty`: "empty configuration has no
/// entries other than workspaces").
fn is_entity_key(k: &str) -> bool {
    !k.starts_with('_') && k != "workspaces"
}

impl<'de> Deserialize<'de> for TableSummary {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = TableSummary;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<TableSummary, A::Error> {
                let mut t = TableSummary {
                    kind: TableKind::Object,
                    ..TableSummary::default()
                };
                while let Some(k) = a.next_key::<String>()? {
                    if k == "_format_version" {
                        t.format_version = Some(a.next_value()?);
                    } else if k == "_transform" {
                        t.transform = Some(a.next_value()?);
                    } else if is_entity_key(&k) {
                        t.has_entities |= a.next_value::<NonEmpty>()?.0;
                    } else {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(t)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<TableSummary, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TableSummary {
                    kind: TableKind::Array,
                    ..TableSummary::default()
                })
            }
            fn visit_unit<E>(self) -> Result<TableSummary, E> {
                Ok(other_kind())
            }
            fn visit_bool<E>(self, _: bool) -> Result<TableSummary, E> {
                Ok(other_kind())
            }
            fn visit_i64<E>(self, _: i64) -> Result<TableSummary, E> {
                Ok(other_kind())
            }
            fn visit_u64<E>(self, _: u64) -> Result<TableSummary, E> {
                Ok(other_kind())
            }
            fn visit_f64<E>(self, _: f64) -> Result<TableSummary, E> {
                Ok(other_kind())
            }
            fn visit_str<E>(self, _: &str) -> Result<TableSummary, E> {
                Ok(other_kind())
            }
        }
        d.deserialize_any(V)
    }
}

fn other_kind() -> TableSummary {
    TableSummary {
        kind: TableKind::Other,
        ..TableSummary::default()
    }
}

fn summarize(v: &Value) -> TableSummary {
    match v {
        Value::Object(m) => TableSummary {
            kind: TableKind::Object,
            format_version: m.get("_format_version").cloned(),
            transform: m.get("_transform").cloned(),
            has_entities: m.iter().any(|(k, v)| {
                is_entity_key(k)
                    && match v {
                        Value::Null => false,
                        Value::Array(a) => !a.is_empty(),
                        Value::Object(o) => !o.is_empty(),
                        _ => true,
                    }
            }),
        },
        Value::Array(_) => TableSummary {
            kind: TableKind::Array,
            ..TableSummary::default()
        },
        _ => other_kind(),
    }
}

/// The envelope when the config_table itself is not kept.
#[derive(Deserialize)]
struct LightMsg {
    #[serde(rename = "type", default, deserialize_with = "present")]
    typ: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    config_hash: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    hashes: Option<Value>,
    #[serde(default)]
    config_table: Option<TableSummary>,
}

/// A decoded reconfigure message.
struct Msg {
    config_hash: Option<Value>,
    hashes: Option<Value>,
    table: TableSummary,
    /// The config_table itself, when kept (`keep_config`).
    config_table: Option<Value>,
}

/// What the config thread does with a decoded frame.
enum Decoded {
    Reconfigure(Box<Msg>),
    /// data_plane.lua L304-306: `if msg.type ~= "reconfigure"` → skip.
    Ignored,
}

/// data_plane.lua L299-306: `assert(inflate_gzip(data))`,
/// `assert(json_decode(msg))`, then `msg.type`. A failed assert (or
/// indexing a number/boolean/null) is an error in the config thread, which
/// ends the connection: `Err`.
fn decode(inflated: &[u8], keep_config: bool) -> Result<Decoded, String> {
    let first = inflated.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first != Some(b'{') {
        serde_json::from_slice::<IgnoredAny>(inflated).map_err(|e| e.to_string())?;
        return match first {
            // A Lua array or string has no `type` field: skipped.
            Some(b'[') | Some(b'"') => Ok(Decoded::Ignored),
            // cjson/simdjson null, numbers and booleans cannot be indexed.
            _ => Err("attempt to index a non-table value (msg)".into()),
        };
    }
    if keep_config {
        let mut v: Map<String, Value> =
            serde_json::from_slice(inflated).map_err(|e| e.to_string())?;
        if v.get("type").and_then(Value::as_str) != Some("reconfigure") {
            return Ok(Decoded::Ignored);
        }
        let table = v.remove("config_table");
        Ok(Decoded::Reconfigure(Box::new(Msg {
            config_hash: v.remove("config_hash"),
            hashes: v.remove("hashes"),
            table: table.as_ref().map(summarize).unwrap_or_default(),
            config_table: table,
        })))
    } else {
        let m: LightMsg = serde_json::from_slice(inflated).map_err(|e| e.to_string())?;
        if m.typ.as_ref().and_then(Value::as_str) != Some("reconfigure") {
            return Ok(Decoded::Ignored);
        }
        Ok(Decoded::Reconfigure(Box::new(Msg {
            config_hash: m.config_hash,
            hashes: m.hashes,
            table: m.config_table.unwrap_or_default(),
            config_table: None,
        })))
    }
}

/// What config_helper.lua `update` returned.
enum Outcome {
    /// `declarative.load_into_cache_with_events` ran; the node holds this.
    Loaded(String),
    /// `current_hash == config_hash`: nothing to do (still `ok`).
    Same(String),
    /// `nil, err, err_t`.
    Failed { err: String, err_t: Value },
}

/// config_helper.lua `format_exception` + `format_error`: the `err_t` of an
/// exception raised inside `update`.
fn exception(msg: &str, config_hash: &str) -> (String, Value) {
    (
        msg.to_string(),
        json!({
            "name": ERR_RELOAD,
            "source": "kong.clustering.config_helper.update",
            "message": "an exception was raised while updating the configuration",
            "exception": msg,
            "traceback": msg,
            "config_hash": config_hash,
        }),
    )
}

// ---------------------------------------------------------------------------
// The data plane
// ---------------------------------------------------------------------------

/// Everything a session needs, kept for reconnects.
struct Prepared {
    tls: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: String,
    host: String,
    path: String,
    basic_info: Arc<[u8]>,
    text_basic_info: bool,
    max_payload: usize,
    timeout: Duration,
    ping_interval: Duration,
    ping_wait: Duration,
    error_reporting: bool,
    hash_fn: Option<HashFn>,
    reconnect: Option<(Duration, Duration)>,
}

/// The identical basic_info of many nodes is stored once.
fn intern(bytes: Vec<u8>) -> Arc<[u8]> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Arc<[u8]>>>> = OnceLock::new();
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    let key = h.finish();
    let mut cache = lock(CACHE.get_or_init(|| Mutex::new(HashMap::new())));
    match cache.get(&key) {
        Some(a) if **a == *bytes => a.clone(),
        _ => {
            let a: Arc<[u8]> = bytes.into();
            cache.insert(key, a.clone());
            a
        }
    }
}

/// The per-connection things the three loops share (data_plane.lua
/// `communicate` locals: the semaphore, `next_data`, `ping_immediately`,
/// `config_err_t`).
struct SessionIo {
    writer: tokio::sync::Mutex<Writer<WriteHalf<Tls>>>,
    fatal: Arc<AtomicBool>,
    next_data: Mutex<Option<Vec<u8>>>,
    config_semaphore: Notify,
    ping_immediately: AtomicBool,
    config_err_t: Mutex<Option<Value>>,
}

/// A connected fake data plane.
pub struct DataPlane {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DataPlane {
    /// utils.lua `connect_cp` (TLS with client certificate and SNI, then
    /// `GET /v1/outlet?node_id=…&node_hostname=…&node_version=…`
    /// upgrade), then data_plane.lua `communicate` L240-256 (send
    /// basic_info), then its three threads on a spawned task: read, write
    /// (pings every `ping_interval` with the current hash) and config
    /// (apply reconfigure frames).
    ///
    /// Kong retries a failed connect after 5-10 s; this returns the error.
    pub async fn connect(opts: DpOptions) -> Result<DataPlane, DpError> {
        let prepared = Arc::new(Prepared {
            tls: client_config(&opts)?,
            addr: opts.addr,
            server_name: opts.server_name.clone(),
            host: opts.cluster_control_plane.clone(),
            path: outlet_path(&opts),
            basic_info: intern(basic_info_payload(&opts)),
            text_basic_info: opts.text_basic_info,
            max_payload: opts.max_payload,
            timeout: opts.timeout,
            ping_interval: opts.ping_interval,
            ping_wait: opts.ping_wait(),
            error_reporting: opts.error_reporting,
            hash_fn: opts.hash_fn,
            reconnect: opts.reconnect,
        });
        let shared = Arc::new(Shared {
            node_id: opts.node_id.clone(),
            record_events: opts.record_events,
            keep_config: opts.keep_config,
            observer: opts.observer.clone(),
            state: Mutex::new(State::default()),
            session: Mutex::new(None),
            connected: AtomicBool::new(false),
            received: AtomicUsize::new(0),
            applied: AtomicUsize::new(0),
            pings_sent: AtomicUsize::new(0),
            pongs: AtomicUsize::new(0),
            connects: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        drop(opts);
        let (reader, session) = establish(&prepared).await?;
        shared.connects.fetch_add(1, Ordering::SeqCst);
        shared.connected.store(true, Ordering::SeqCst);
        *lock(&shared.session) = Some(session.clone());
        shared.event(DpEvent::Connected);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(shared.clone(), prepared, reader, session, rx));
        Ok(DataPlane {
            shared,
            shutdown: tx,
            task,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The hash the node holds, as its pings carry it (the empty-config
    /// hash before any config).
    pub fn current_hash(&self) -> String {
        self.shared.ping_hash()
    }

    /// The last config_table loaded (None before, or with `keep_config`
    /// off).
    pub fn config(&self) -> Option<Value> {
        lock(&self.shared.state).config.clone()
    }

    /// The `hashes` object of the last config loaded, with the missing
    /// fields filled with the empty-config hash (config_helper.lua
    /// `fill_empty_hashes`).
    pub fn hashes(&self) -> Option<Value> {
        lock(&self.shared.state).hashes.clone()
    }

    /// Size in bytes of the last config loaded, as decompressed JSON.
    pub fn config_size(&self) -> usize {
        lock(&self.shared.state).config_size
    }

    /// Reconfigure messages decoded and handed to `update()` (counted once
    /// `update()` is done, so `applied()` is final for them). Frames
    /// superseded before decoding are not counted (see `Superseded`).
    pub fn received(&self) -> usize {
        self.shared.received.load(Ordering::SeqCst)
    }

    /// Configs actually loaded (not the ones skipped for an equal hash, nor
    /// the ones that failed).
    pub fn applied(&self) -> usize {
        self.shared.applied.load(Ordering::SeqCst)
    }

    pub fn pings_sent(&self) -> usize {
        self.shared.pings_sent.load(Ordering::SeqCst)
    }

    pub fn pongs_received(&self) -> usize {
        self.shared.pongs.load(Ordering::SeqCst)
    }

    /// Connections made (1 + reconnects).
    pub fn connects(&self) -> usize {
        self.shared.connects.load(Ordering::SeqCst)
    }

    /// Every event so far (empty with `record_events` off).
    pub fn events(&self) -> Vec<DpEvent> {
        lock(&self.shared.state).events.clone()
    }

    /// Waits until `pred(self)` holds or `timeout` passes; returns whether
    /// it held.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&DataPlane) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(self) {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            // Counters change without a notification too; poll as well.
            let step = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(step, notified).await;
        }
    }

    /// Sends a ping with the current hash now, as the write thread does
    /// (data_plane.lua `send_ping`).
    pub async fn ping_now(&self) -> Result<(), DpError> {
        let session = lock(&self.shared.session).clone();
        match session {
            None => Err(DpError::Closed("not connected".into())),
            Some(s) => send_ping(&self.shared, &s).await.map_err(DpError::Closed),
        }
    }

    /// Whether the connection is open.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Closes as Kong does when it stops: an empty close frame, then the
    /// socket. Waits for the task to end.
    pub async fn close(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// utils.lua `connect_cp` then data_plane.lua `communicate` L233-256:
/// connect, upgrade, send basic_info (binary: `c:send_binary(...)`).
async fn establish(p: &Prepared) -> Result<(Reader<ReadHalf<Tls>>, Arc<SessionIo>), DpError> {
    let mut s = tls_connect_with(p.tls.clone(), p.addr, &p.server_name, p.timeout).await?;
    let mut rng = Rng::new();
    let rest = upgrade(&mut s, &p.host, &p.path, p.timeout, &mut rng).await?;
    let (r, w) = tokio::io::split(s);
    let fatal = Arc::new(AtomicBool::new(false));
    // utils.lua WS_OPTS: max_payload_len = cluster_max_payload, for receive
    // and send alike (client.lua `new`: max_recv_len/max_send_len default
    // to it).
    let reader = Reader {
        io: r,
        buf: rest,
        max_payload: p.max_payload,
        timeout: p.timeout,
    };
    let mut writer = Writer {
        io: w,
        max_payload: p.max_payload,
        timeout: p.timeout,
        rng,
        closed: false,
        fatal: fatal.clone(),
    };
    let op = if p.text_basic_info {
        OP_TEXT
    } else {
        OP_BINARY
    };
    if let Err(e) = writer.send_frame(op, &p.basic_info).await {
        // data_plane.lua L245-254: log, `c:close()`, retry later.
        writer.close().await;
        return Err(DpError::Io(format!(
            "unable to send basic information to control plane: {e}"
        )));
    }
    let session = Arc::new(SessionIo {
        writer: tokio::sync::Mutex::new(writer),
        fatal,
        next_data: Mutex::new(None),
        config_semaphore: Notify::new(),
        ping_immediately: AtomicBool::new(false),
        config_err_t: Mutex::new(None),
    });
    Ok((reader, session))
}

/// The connection's life, and Kong's reconnects when asked for
/// (data_plane.lua L437-441: `ngx.timer.at(reconnection_delay, …)`).
async fn run(
    shared: Arc<Shared>,
    p: Arc<Prepared>,
    mut reader: Reader<ReadHalf<Tls>>,
    mut session: Arc<SessionIo>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rng = Rng::new();
    loop {
        let reason = communicate(&shared, &p, &mut reader, &session, &mut shutdown).await;
        *lock(&shared.session) = None;
        shared.connected.store(false, Ordering::SeqCst);
        shared.event(DpEvent::Disconnected { reason });
        let Some((lo, hi)) = p.reconnect else { return };
        loop {
            // data_plane.lua L209: reconnection_delay = math.random(5, 10)
            let delay = rng.between(lo, hi);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut shutdown) => return,
            }
            match establish(&p).await {
                Ok((r, s)) => {
                    reader = r;
                    session = s;
                    shared.connects.fetch_add(1, Ordering::SeqCst);
                    shared.connected.store(true, Ordering::SeqCst);
                    *lock(&shared.session) = Some(session.clone());
                    shared.event(DpEvent::Connected);
                    break;
                }
                Err(e) => shared.event(DpEvent::Error(format!(
                    "connection to control plane broken: {e}"
                ))),
            }
        }
    }
}

/// Resolves when `close()` was called or the `DataPlane` was dropped.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// data_plane.lua `_M:communicate` L258-435 after basic_info: the config,
/// write and read threads; when any ends, the others are killed and the
/// connection is closed (`c:close()`). Returns what Kong logs.
async fn communicate(
    shared: &Shared,
    p: &Prepared,
    reader: &mut Reader<ReadHalf<Tls>>,
    s: &Arc<SessionIo>,
    shutdown: &mut watch::Receiver<bool>,
) -> String {
    let reason = tokio::select! {
        r = read_thread(shared, p, reader, s) => r,
        r = write_thread(shared, p, s) => r,
        r = config_thread(shared, p, s) => r,
        _ = stopped(shutdown) => "data plane closed".to_string(),
    };
    // L412-414: kill the threads, `c:close()`: a close frame unless the
    // connection is fatal, then the socket.
    s.writer.lock().await.close().await;
    reason
}

/// data_plane.lua L356-408 (`read_thread`).
async fn read_thread(
    shared: &Shared,
    p: &Prepared,
    reader: &mut Reader<ReadHalf<Tls>>,
    s: &SessionIo,
) -> String {
    let mut last_seen = Instant::now();
    loop {
        let frame = match reader.recv_frame().await {
            // L361-373: a timeout is fine unless nothing came for PING_WAIT.
            Err(RecvError::Timeout) => {
                if last_seen.elapsed() > p.ping_wait {
                    return format!(
                        "did not receive pong frame from control plane within {} seconds",
                        p.ping_wait.as_secs_f64()
                    );
                }
                continue;
            }
            Err(RecvError::Fatal(e)) => {
                s.fatal.store(true, Ordering::SeqCst);
                shared.event(DpEvent::Error(e.clone()));
                return format!("error while receiving frame from control plane: {e}");
            }
            Ok(f) => f,
        };
        if frame.opcode == OP_CLOSE {
            let reason = String::from_utf8_lossy(&frame.payload).into_owned();
            shared.event(DpEvent::Close {
                code: frame.close_code,
                reason,
            });
            // recv_frame returns a close frame's status code as its third
            // value, `err`, so L361 takes it for an error: a close with a
            // code ends the connection as "error while receiving frame from
            // control plane: <code>"; an empty close frame reaches L377-380
            // and ends it quietly. Either way Kong then sends its own
            // (empty) close frame.
            return match frame.close_code {
                Some(code) => format!("error while receiving frame from control plane: {code}"),
                None => "received close frame from control plane".to_string(),
            };
        }
        if !frame.fin {
            // recv_frame returns "again" as `err` for a frame without FIN:
            // Kong's data plane cannot take fragmented messages.
            shared.event(DpEvent::Error("fragmented frame from control plane".into()));
            return "error while receiving frame from control plane: again".into();
        }
        last_seen = Instant::now();
        match frame.opcode {
            OP_BINARY => {
                // L384-394: hand the frame to the config thread; a newer
                // frame replaces one not yet taken; the semaphore count
                // never exceeds 1.
                let old = lock(&s.next_data).replace(frame.payload);
                if let Some(old) = old {
                    shared.event(DpEvent::Superseded { bytes: old.len() });
                }
                s.config_semaphore.notify_one();
            }
            OP_PONG => {
                // L396-399: logged, nothing else.
                shared.pongs.fetch_add(1, Ordering::SeqCst);
                shared.event(DpEvent::Pong {
                    payload: frame.payload,
                });
            }
            op => {
                // L401-404: "received unknown (text|ping|continuation)
                // frame from control plane", ignored. No pong to a ping.
                let typ = match op {
                    OP_TEXT => "text",
                    OP_PING => "ping",
                    OP_CONTINUATION => "continuation",
                    _ => "unknown",
                };
                shared.event(DpEvent::Unknown {
                    typ,
                    bytes: frame.payload.len(),
                });
            }
        }
    }
}

/// data_plane.lua L333-354 (`write_thread`): every second, ping if a config
/// was just applied or the countdown ran out, then send a pending error
/// report. The tick is 1 s as in Kong, or the ping interval if shorter.
async fn write_thread(shared: &Shared, p: &Prepared, s: &SessionIo) -> String {
    let tick = p.ping_interval.min(Duration::from_secs(1));
    let mut counter = Duration::ZERO; // "count down to ping"
    loop {
        if s.ping_immediately.swap(false, Ordering::SeqCst) || counter.is_zero() {
            counter = p.ping_interval;
            // send_ping only logs a failure; the connection is fatal from
            // then on and Kong's read thread fails on its next receive
            // ("fatal error already happened"). The fake ends it now.
            if let Err(e) = send_ping(shared, s).await {
                return format!("error while receiving frame from control plane: {e}");
            }
        }
        let pending = lock(&s.config_err_t).take();
        if let Some(err_t) = pending {
            send_error(shared, s, err_t).await;
        }
        counter = counter.saturating_sub(tick);
        tokio::time::sleep(tick).await;
    }
}

/// data_plane.lua `send_ping` L140-163: ping with the current hash (the
/// empty-config hash when none).
async fn send_ping(shared: &Shared, s: &SessionIo) -> Result<(), String> {
    let hash = shared.ping_hash();
    let res = s
        .writer
        .lock()
        .await
        .send_frame(OP_PING, hash.as_bytes())
        .await;
    match res {
        Ok(()) => {
            shared.pings_sent.fetch_add(1, Ordering::SeqCst);
            shared.event(DpEvent::PingSent { hash });
            Ok(())
        }
        Err(e) => {
            let msg = format!("unable to send ping frame to control plane: {e}");
            shared.event(DpEvent::Error(msg));
            Err(e)
        }
    }
}

/// data_plane.lua `send_error` L169-197: `{type = "error", error = err_t}`
/// as a binary frame, uncompressed; a failure is only logged.
async fn send_error(shared: &Shared, s: &SessionIo, err_t: Value) {
    let payload = cjson_encode(&json!({ "type": "error", "error": err_t }));
    let res = s.writer.lock().await.send_frame(OP_BINARY, &payload).await;
    match res {
        Ok(()) => shared.event(DpEvent::ErrorReportSent(err_t)),
        Err(e) => shared.event(DpEvent::Error(format!(
            "failed to send error report to control plane: {e}"
        ))),
    }
}

/// data_plane.lua L281-331 (`config_thread`): wait for a frame, decode it,
/// `config_helper.update`; on success ping at once, on failure report the
/// error (konnect_mode). A frame that does not inflate or parse ends the
/// connection (the `assert`s of L299 and L301 raise in the thread).
async fn config_thread(shared: &Shared, p: &Prepared, s: &SessionIo) -> String {
    loop {
        s.config_semaphore.notified().await;
        let Some(data) = lock(&s.next_data).take() else {
            continue;
        };
        let bytes = data.len();
        let inflated = match inflate_gzip(&data) {
            Ok(v) => v,
            Err(e) => {
                shared.event(DpEvent::Error(format!("inflate_gzip: {e}")));
                return format!("config thread: assertion failed: {e}");
            }
        };
        drop(data);
        let msg = match decode(&inflated, shared.keep_config) {
            Ok(Decoded::Reconfigure(m)) => m,
            Ok(Decoded::Ignored) => continue,
            Err(e) => {
                shared.event(DpEvent::Error(format!("json_decode: {e}")));
                return format!("config thread: assertion failed: {e}");
            }
        };
        let outcome = update(shared, p, *msg, &inflated, bytes);
        match outcome {
            Outcome::Loaded(hash) => {
                shared.applied.fetch_add(1, Ordering::SeqCst);
                shared.received.fetch_add(1, Ordering::SeqCst);
                s.ping_immediately.store(true, Ordering::SeqCst);
                shared.event(DpEvent::Applied { hash });
            }
            Outcome::Same(hash) => {
                // config_helper `update` returns true here too, so Kong
                // pings at once all the same (L315-316).
                shared.received.fetch_add(1, Ordering::SeqCst);
                s.ping_immediately.store(true, Ordering::SeqCst);
                shared.event(DpEvent::Unchanged { hash });
            }
            Outcome::Failed { err, err_t } => {
                shared.received.fetch_add(1, Ordering::SeqCst);
                // L318-323: keep err_t for the write thread (konnect_mode).
                if p.error_reporting {
                    *lock(&s.config_err_t) = Some(err_t);
                }
                shared.event(DpEvent::Error(format!(
                    "unable to update running config: {err}"
                )));
            }
        }
    }
}

/// config_helper.lua `update` (L296-358) with what it calls:
/// `parse_table` (declarative/init.lua L216-239) and `load_into_cache`
/// (declarative/import.lua L432-492).
///
/// The fake has no schema: of `parse_table`'s checks it does only the
/// top-level ones of the declarative schema (`_format_version` required,
/// one of "1.1", "2.1", "3.0"; `_transform` a boolean).
fn update(shared: &Shared, p: &Prepared, msg: Msg, inflated: &[u8], bytes: usize) -> Outcome {
    let Msg {
        config_hash,
        hashes,
        table,
        config_table,
    } = msg;
    let shown_hash = config_hash
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    // L301: assert(type(config_table) == "table") — raised inside xpcall,
    // so an exception err_t and the connection stays.
    if !matches!(table.kind, TableKind::Object | TableKind::Array) {
        shared.event(DpEvent::Reconfigure {
            hash: shown_hash.clone(),
            bytes,
        });
        let (err, err_t) = exception("assertion failed!", &shown_hash);
        return Outcome::Failed { err, err_t };
    }

    // L303-310: no config_hash → Kong calculates it (and the hashes).
    let (config_hash, mut hashes) = match config_hash {
        Some(h) => (h, hashes),
        None => match p.hash_fn {
            Some(f) => {
                let full = match config_table.clone() {
                    Some(t) => t,
                    None => serde_json::from_slice::<Map<String, Value>>(inflated)
                        .ok()
                        .and_then(|mut m| m.remove("config_table"))
                        .unwrap_or(Value::Null),
                };
                let (h, hs) = f(&full);
                (Value::String(h), Some(hs))
            }
            None => {
                shared.event(DpEvent::Reconfigure {
                    hash: String::new(),
                    bytes,
                });
                let (err, err_t) = exception(
                    "reconfigure message has no config_hash and the fake data plane has no hash_fn",
                    DECLARATIVE_EMPTY_CONFIG_HASH,
                );
                return Outcome::Failed { err, err_t };
            }
        },
    };
    // A JSON null or a non-string is truthy in Lua, goes on as the hash and
    // fails later (it cannot be stored); the fake refuses it here.
    let Some(config_hash) = config_hash.as_str().map(str::to_string) else {
        shared.event(DpEvent::Reconfigure {
            hash: String::new(),
            bytes,
        });
        let (err, err_t) = exception(
            &format!("config_hash is not a string: {config_hash}"),
            DECLARATIVE_EMPTY_CONFIG_HASH,
        );
        return Outcome::Failed { err, err_t };
    };
    shared.event(DpEvent::Reconfigure {
        hash: config_hash.clone(),
        bytes,
    });

    // L312-314 `fill_empty_hashes`: each missing field gets the empty hash;
    // indexing a non-table (incl. JSON null) raises.
    if let Some(h) = hashes.as_mut() {
        match h {
            Value::Object(m) => {
                for f in [
                    "config",
                    "routes",
                    "services",
                    "plugins",
                    "upstreams",
                    "targets",
                ] {
                    m.entry(f.to_string())
                        .or_insert_with(|| Value::String(DECLARATIVE_EMPTY_CONFIG_HASH.into()));
                }
            }
            _ => {
                let (err, err_t) = exception("attempt to index field 'hashes'", &config_hash);
                return Outcome::Failed { err, err_t };
            }
        }
    }

    // L316-321: the same hash as the one held → nothing to do.
    let current = lock(&shared.state).hash.clone();
    if current.as_deref() == Some(config_hash.as_str()) {
        return Outcome::Same(config_hash);
    }

    // L323-333: parse_table; on failure a CONFIG_PARSE err_t.
    if let Some(problem) = schema_problem(&table) {
        let err = format!(
            "bad config received from control plane declarative config is invalid: {problem}"
        );
        let err_t = json!({
            "name": ERR_CONFIG_PARSE,
            "source": "kong.db.declarative.parse_table",
            "message": format!("declarative config is invalid: {problem}"),
            "fields": problem,
            "flattened_errors": [],
            "config_hash": config_hash,
        });
        return Outcome::Failed { err, err_t };
    }

    // L335-339: parse_table returns the given hash as new_hash, so this is
    // the same test again.
    // L345 → import.lua `load_into_cache` L441-443: an empty hash, or a
    // config with no entities but workspaces, is stored as the empty-config
    // hash.
    let stored = if config_hash.is_empty() || !table.has_entities {
        DECLARATIVE_EMPTY_CONFIG_HASH.to_string()
    } else {
        config_hash
    };
    {
        let mut st = lock(&shared.state);
        st.hash = Some(stored.clone());
        st.hashes = hashes;
        st.config_size = inflated.len();
        st.config = if shared.keep_config {
            config_table
        } else {
            None
        };
    }
    Outcome::Loaded(stored)
}

/// The top-level checks of the declarative schema
/// (kong/db/schema/others/declarative_config.lua L255-256).
fn schema_problem(t: &TableSummary) -> Option<Value> {
    if t.kind != TableKind::Object {
        return Some(json!({ "@entity": ["expected a record"] }));
    }
    match &t.format_version {
        None | Some(Value::Null) => {
            return Some(json!({ "_format_version": "required field missing" }));
        }
        Some(Value::String(v)) if ["1.1", "2.1", "3.0"].contains(&v.as_str()) => {}
        Some(Value::String(_)) => {
            return Some(json!({ "_format_version": "expected one of: 1.1, 2.1, 3.0" }));
        }
        Some(_) => return Some(json!({ "_format_version": "expected a string" })),
    }
    match &t.transform {
        None | Some(Value::Bool(_)) => None,
        Some(_) => Some(json!({ "_transform": "expected a boolean" })),
    }
}

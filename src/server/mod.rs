//! HTTP/1.1 + JSON on a Unix domain socket (README, "The daemon"): routing, the socket's
//! life cycle, body limits, metrics, graceful shutdown.
//!
//! The only module that knows HTTP. Konnect's Control Planes API as its
//! specs have it, plus our extensions at paths the specs do not use. One
//! file per resource (`groups`, `memberships`, `details`, `config`,
//! `snapshot`, `history`, `nodes`, `certificates`, `admin` for teams,
//! tokens, grants and the audit log), each with its request and answer
//! types; `http` holds what they share, `error` builds every error and
//! `auth` checks every request's identity and rights. Handlers read
//! published views and call the engine's commands; they know nothing of
//! how merging works.

mod admin;
mod auth;
mod backup;
mod certificates;
mod config;
mod core_entities;
mod details;
mod error;
mod groups;
mod history;
mod http;
mod listen;
mod memberships;
mod nodes;
pub mod pages;
mod ratelimit;
mod routes;
mod snapshot;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, UnixListener};

use tokio::sync::watch;

pub use auth::{Peer, route_of};
pub use error::ApiError;
pub use listen::{Timeouts, Transport};
pub use routes::{Need, ROUTES, Route};

use crate::engine::Engine;

/// Daemon settings that concern HTTP.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub socket: PathBuf,
    pub max_body_bytes: usize,
    /// Requests served at once across the whole API (snapshot reads, which
    /// may long-poll, excepted); more wait their turn instead of exhausting memory.
    pub max_in_flight: usize,
    /// Longest `?wait=` a long-poll may ask for.
    pub max_wait: Duration,
    /// Connections open at once; past it new ones wait in the socket's
    /// backlog until one closes, instead of exhausting file descriptors.
    pub max_connections: usize,
    /// Header read, body read and idle keep-alive timeouts, so no client can
    /// hold a connection by never finishing a request.
    pub timeouts: Timeouts,
    /// `--http`: also serve the Runtime Manager page on this loopback TCP
    /// address (port 0 picks a free one). Only `/ui/…` is served there.
    pub http: Option<std::net::SocketAddr>,
    /// `--cluster-listen`: each group's `control_plane_endpoint` names the
    /// cluster endpoint instead of this socket.
    pub cluster: Option<ClusterEndpoint>,
    /// `--api-listen`.
    pub api: Option<ApiListen>,
}

/// `--api-listen`: the whole API and the page on the network.
#[derive(Clone, Debug)]
pub struct ApiListen {
    pub addr: std::net::SocketAddr,
    /// The certificate chain and key (PEM); `None` only on a loopback address.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Requests per second for each caller.
    pub rate_limit: u32,
}

/// Where data planes reach the cluster endpoint: `<label>.DOMAIN:PORT`.
#[derive(Clone, Debug)]
pub struct ClusterEndpoint {
    pub domain: String,
    pub port: u16,
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub opts: Arc<ServeOptions>,
    /// Flips to true on shutdown so long-polls return at once.
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("socket {path}: {detail}")]
    Socket { path: PathBuf, detail: String },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("--http {addr}: {detail}")]
    Http {
        addr: std::net::SocketAddr,
        detail: String,
    },
    #[error("--api-listen {addr}: {detail}")]
    Api {
        addr: std::net::SocketAddr,
        detail: String,
    },
}

/// Binds `--api-listen` and makes its TLS acceptor. Plain HTTP only on a
/// loopback address: tokens must not cross a network in the clear.
async fn bind_api(
    api: &ApiListen,
) -> Result<(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>), ServeError> {
    let fail = |detail: String| ServeError::Api {
        addr: api.addr,
        detail,
    };
    let tls = match &api.tls {
        None if !api.addr.ip().is_loopback() => {
            return Err(fail(
                "plain HTTP is served only on a loopback address: give --api-cert and --api-cert-key".into(),
            ));
        }
        None => None,
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("--api-cert: {e}")))?;
            if certs.is_empty() {
                return Err(fail("--api-cert: no certificate in the PEM file".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| fail(format!("--api-cert-key: {e}")))?;
            let mut config =
                rustls::ServerConfig::builder_with_provider(crate::cluster::provider())
                    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                    .map_err(|e| fail(e.to_string()))?
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .map_err(|e| fail(format!("--api-cert-key: {e}")))?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        }
    };
    let tcp = tokio::net::TcpListener::bind(api.addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok((tcp, tls))
}

/// The router: every route of [`routes::ROUTES`], the page, and the layers
/// every request goes through.
pub fn router(state: AppState) -> Router {
    // Everything but the snapshot counts against the in-flight limit: a
    // long-poll only waits, and thousands of sidecars waiting must not lock
    // writers and readers out. One limit for the API and the page (clones
    // share its permits).
    let limit = tower::limit::GlobalConcurrencyLimitLayer::new(state.opts.max_in_flight);
    let (limited, open) = routes::add_routes(Router::new(), Router::new());
    open.merge(limited.layer(limit.clone()))
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        // Identity and rights before anything else, the fallbacks included.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::enforce,
        ))
        // The page checks the same rights itself (a session cookie over
        // TCP, the peer on the socket) and answers in HTML.
        .merge(pages::router(state.clone(), limit))
        .layer(axum::middleware::from_fn(pages::guard_tcp))
        .layer(axum::Extension(pages::PageState::new()))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(axum::middleware::map_response(version_header))
        .layer(axum::middleware::from_fn(error::problem_details))
        .with_state(state)
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    // Both are cheap clones (no allocation): this runs on every request.
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    crate::metrics::http_request(
        method.as_str(),
        route,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// Binds the socket: a stale socket from a crashed run is removed; a live one
/// (another daemon) or a path that is not a socket is refused.
pub async fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let fail = |detail: String| ServeError::Socket {
        path: path.to_path_buf(),
        detail,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(fail(
                    "another process is serving on this socket; stop it or choose another --socket"
                        .into(),
                ));
            }
            std::fs::remove_file(path).map_err(|e| {
                fail(format!(
                    "can't remove the stale socket left by a crashed run: {e}"
                ))
            })?;
            tracing::info!(socket = %path.display(), "removed a stale socket from a previous run");
        }
        Ok(_) => {
            return Err(fail(
                "the path exists and is not a socket; refusing to replace it".into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("can't create its directory: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("can't bind: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| fail(format!("can't set mode 0660: {e}")))?;
    Ok(listener)
}

/// Binds `--http`: loopback addresses only, since the port is open to every
/// user of this machine and not to others (no TLS).
pub async fn bind_http(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    let fail = |detail: String| ServeError::Http { addr, detail };
    if !addr.ip().is_loopback() {
        return Err(fail(
            "the page is served on loopback addresses only (127.0.0.1 or [::1]); \
             put a TLS proxy in front of it to reach it from elsewhere"
                .into(),
        ));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| fail(format!("can't bind: {e}")))
}

/// Serves until SIGINT or SIGTERM, lets in-flight requests finish, then
/// removes the socket file. With `--http`, the page is also served on that
/// loopback port, by the same accept loop and router.
pub async fn serve(engine: Engine, opts: ServeOptions) -> Result<(), ServeError> {
    serve_with(engine, opts, |_| async {}).await
}

/// [`serve`], with `beside` (the cluster endpoint) running until the same
/// shutdown, finished before the store is closed.
pub async fn serve_with<F, Fut>(
    engine: Engine,
    opts: ServeOptions,
    beside: F,
) -> Result<(), ServeError>
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // The handlers are installed before the socket exists: a SIGTERM that
    // arrives as soon as a client could see the daemon is a clean stop, not
    // the default action (death, store left open).
    let stop_signal = shutdown_signal();
    // Both bound before anything is served: a bad --http fails the start.
    let tcp = match opts.http {
        Some(addr) => Some(bind_http(addr).await?),
        None => None,
    };
    let api = match &opts.api {
        Some(a) => Some((bind_api(a).await?, a.rate_limit)),
        None => None,
    };
    let listener = listen::LimitedListener::new(bind(&opts.socket).await?, opts.max_connections);
    let (stop_tx, stop_rx) = watch::channel(false);
    let beside = beside(stop_rx.clone());
    let socket = opts.socket.clone();
    let timeouts = opts.timeouts;
    let max_connections = opts.max_connections;
    let engine_for_audit = engine.clone();
    let state = AppState {
        engine,
        opts: Arc::new(opts),
        shutdown: stop_rx.clone(),
    };
    let app = router(state);
    let unix_app = app.clone().layer(axum::middleware::from_fn_with_state(
        listener.waiting(),
        close_when_waited_for,
    ));
    tracing::info!(socket = %socket.display(), "serving");
    let api_app = app.clone();
    let api_stop = stop_rx.clone();
    let unix = listen::run(
        listener,
        unix_app,
        timeouts,
        listen::Role::Plain,
        async move {
            stop_signal.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        },
    );
    let http = async move {
        let Some(tcp) = tcp else { return };
        let tcp = axum::serve::ListenerExt::tap_io(tcp, |s| {
            let _ = s.set_nodelay(true);
        });
        if let Ok(addr) = axum::serve::Listener::local_addr(&tcp) {
            tracing::info!("serving the Runtime Manager page on http://{addr}/ui/");
        }
        let tcp = listen::LimitedListener::new(tcp, max_connections);
        let tcp_app = app.layer(axum::middleware::from_fn_with_state(
            tcp.waiting(),
            close_when_waited_for,
        ));
        let mut stop = stop_rx;
        listen::run(tcp, tcp_app, timeouts, listen::Role::Plain, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    };
    let api = async move {
        let Some(((tcp, tls), rate)) = api else {
            return;
        };
        if let Ok(addr) = tcp.local_addr() {
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!("serving the API and the page on {scheme}://{addr}/");
        }
        let tcp = axum::serve::ListenerExt::tap_io(tcp, |s| {
            let _ = s.set_nodelay(true);
        });
        let tcp = listen::LimitedListener::new(tcp, max_connections);
        let mut app = api_app
            .layer(axum::middleware::from_fn_with_state(
                ratelimit::RateLimiter::new(rate),
                ratelimit::limit,
            ))
            .layer(axum::middleware::from_fn_with_state(
                tcp.waiting(),
                close_when_waited_for,
            ));
        if tls.is_some() {
            app = app.layer(axum::middleware::from_fn(ratelimit::secure_cookies));
        }
        let mut stop = api_stop;
        listen::run(tcp, app, timeouts, listen::Role::Api(tls), async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    };
    tokio::join!(unix, http, api, beside);
    // Refusals' audit entries wait for a batch: write them, and close the
    // store, before leaving.
    engine_for_audit.close().await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Every answer says which daemon version served it (`X-Rgmerge-Version`),
/// so a team's CI can tell after an upgrade.
async fn version_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "x-rgmerge-version",
        axum::http::HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    resp
}

/// While a connection waits to be served, every answer says `Connection:
/// close`: keep-alive connections then serve one more request each and make
/// room, instead of idling on their permits while others starve.
pub async fn close_when_waited_for(
    State(waiting): State<Arc<AtomicBool>>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    if waiting.load(Ordering::Relaxed) {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Resolves on SIGTERM or SIGINT. Both handlers are installed when this is
/// called, not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(term) => {}
            () = wait(int) => {}
        }
    }
}

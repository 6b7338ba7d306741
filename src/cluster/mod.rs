//! The cluster endpoint: a Kong hybrid-mode control plane (issue 30). Kong
//! data planes connect over mTLS and WebSocket (`/v1/outlet`), say who they
//! are (`basic_info`), ping with the hash they run, and are sent each new
//! served snapshot of their group as Kong's gzip'd `reconfigure` frame.
//!
//! Files by job, after Kong/koko's `internal/server/kong/ws`: `listener`
//! (TCP, TLS, the upgrade), `authenticator` (client certificates),
//! `manager` (the nodes of each group and what wakes them), `node` (one
//! connection), `payload` (a snapshot encoded once per version and per
//! compatibility variant), `hash` (Kong's config hash), `compat` (what each
//! Kong version lacks), `wire` (frames and messages).
//!
//! It reads published views and snapshots through the engine, as the socket
//! server does, and knows nothing of merging, storage or HTTP routing.

pub mod authenticator;
pub mod compat;
pub mod hash;
pub mod listener;
pub mod manager;
pub mod node;
pub mod payload;
pub mod preflight;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::engine::Engine;

/// The TLS provider: ring. Deprecated in rustls only for lacking
/// post-quantum key exchange, which Kong's data planes do not offer either;
/// aws-lc-rs would need cmake on every machine.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The Kong version the cluster endpoint serves (the daemon's rules are
/// Kong 3.10's).
pub const KONG_VERSION: compat::KongVersion = compat::KongVersion {
    major: 3,
    minor: 10,
    patch: 0,
};

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `serve --cluster-*`.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub listen: SocketAddr,
    /// The server certificate chain (PEM), for `*.DOMAIN`.
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Group `G` is reached at `<label of G>.DOMAIN`.
    pub domain: String,
    pub limits: listener::Limits,
    /// The Kong version this control plane speaks for (data planes newer
    /// than it, or of another major, are held back).
    pub kong_version: compat::KongVersion,
}

impl ClusterOptions {
    /// Kong's own limits for the endpoint, with rgmerge's defaults.
    pub const DEFAULT_LIMITS: listener::Limits = listener::Limits {
        handshake_timeout: Duration::from_secs(10),
        max_connections: 20_000,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--cluster-cert: {0}")]
    Cert(String),
    #[error("--cluster-cert-key: {0}")]
    Key(String),
    #[error("--cluster-listen {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },
}

/// A bound cluster endpoint, not yet serving.
pub struct Cluster {
    listener: listener::Listener,
    manager: Arc<manager::Manager>,
}

impl Cluster {
    /// Loads the certificate and binds. Call it once the engine has restored
    /// every group's served snapshot: nothing less is ever sent.
    pub async fn bind(engine: Engine, opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&opts.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ClusterError::Cert(e.to_string()))?;
        if certs.is_empty() {
            return Err(ClusterError::Cert("no certificate in the PEM file".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&opts.key_pem)
            .map_err(|e| ClusterError::Key(e.to_string()))?;
        let provider = provider();
        let verifier = Arc::new(authenticator::AnyClientCert::new(&provider));
        let tls = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClusterError::Cert(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| ClusterError::Key(e.to_string()))?;
        let tcp = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| ClusterError::Listen {
                addr: opts.listen,
                detail: e.to_string(),
            })?;
        let manager = manager::Manager::new(engine.clone());
        let shared = Arc::new(node::Shared {
            engine,
            manager: Arc::clone(&manager),
            provider,
            cp_version: opts.kong_version,
        });
        Ok(Cluster {
            listener: listener::Listener {
                tcp,
                tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
                domain: opts.domain,
                limits: opts.limits,
                shared,
            },
            manager,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.tcp.local_addr()
    }

    /// Serves until `stop` turns true; connections are closed with it.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let manager = tokio::spawn(Arc::clone(&self.manager).run(stop.clone()));
        self.listener.run(stop).await;
        let _ = manager.await;
        // Give the nodes a moment to send their close frames and record it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.manager.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

//! The cluster endpoint's listener (koko's `server`): TCP, TLS (rustls), the
//! HTTP request that asks for the upgrade, the group its server name names,
//! admission, and the WebSocket upgrade. Everything before the upgrade runs
//! under one time limit, and connections beyond a limit of their own are
//! closed at once, so neither slow nor idle clients can starve the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use uuid::Uuid;

use super::authenticator::{self, Denied};
use super::node::{self, Admitted, Shared};
use super::wire::MAX_INCOMING_FRAME;
use crate::registry::{AuditEntry, GroupView, cluster_label, now};

/// The most bytes of an upgrade request's head.
const MAX_HEAD: usize = 16 * 1024;

/// The listener's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// TLS handshake and upgrade request, together.
    pub handshake_timeout: Duration,
    /// Connections open at once (each idle data plane holds one).
    pub max_connections: usize,
}

pub struct Listener {
    pub(super) tcp: TcpListener,
    pub(super) tls: TlsAcceptor,
    pub(super) domain: String,
    pub(super) limits: Limits,
    pub(super) shared: Arc<Shared>,
}

impl Listener {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let this = Arc::new(self);
        let mut stopping = stop.clone();
        loop {
            let accepted = tokio::select! {
                a = this.tcp.accept() => a,
                () = super::stopped(&mut stopping) => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cluster endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                crate::metrics::cluster_refused("connection_limit");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let this = Arc::clone(&this);
            let stop = stop.clone();
            tokio::spawn(async move {
                this.connection(tcp, peer, stop).await;
                drop(permit);
            });
        }
    }

    async fn connection(&self, tcp: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
        let upgraded =
            tokio::time::timeout(self.limits.handshake_timeout, self.upgrade(tcp, peer)).await;
        let (ws, who) = match upgraded {
            Ok(Ok(Some(up))) => up,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "cluster endpoint: connection failed");
                crate::metrics::cluster_refused("protocol");
                return;
            }
            Err(_) => {
                crate::metrics::cluster_refused("handshake_timeout");
                return;
            }
        };
        node::run(ws, who, Arc::clone(&self.shared), stop).await;
    }

    /// TLS, the request head, admission and the 101; `None` when the request
    /// was answered (refused) instead.
    async fn upgrade(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<Option<(WebSocketStream<TlsStream<TcpStream>>, Admitted)>> {
        let mut tls = self.tls.accept(tcp).await?;
        let (head, rest) = read_head(&mut tls).await?;
        let request = match Request::parse(&head) {
            Ok(r) => r,
            Err(why) => {
                respond(&mut tls, 400, &why).await?;
                return Ok(None);
            }
        };
        let (_, conn) = tls.get_ref();
        let server_name = conn.server_name().map(str::to_string);
        let chain: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default();
        let route = request.path.split('?').next().unwrap_or("");
        match (request.method.as_str(), route) {
            ("GET", "/v1/outlet") => {}
            // wRPC (3.0–3.1): answering 404 makes a data plane fall back to v1.
            (_, "/v1/wrpc") => {
                respond(&mut tls, 404, "wRPC is not served: use /v1/outlet").await?;
                return Ok(None);
            }
            // Cluster RPC (off by default in 3.10).
            (_, "/v2/outlet") => {
                respond(
                    &mut tls,
                    404,
                    "cluster RPC is not served: set cluster_rpc = off",
                )
                .await?;
                return Ok(None);
            }
            (_, "/v1/outlet") => {
                respond(&mut tls, 405, "use GET").await?;
                return Ok(None);
            }
            _ => {
                respond(&mut tls, 404, "not found").await?;
                return Ok(None);
            }
        }
        let admitted = self.admit(&request, server_name.as_deref(), chain, peer);
        let who = match admitted {
            Ok(who) => who,
            Err((group, denied)) => {
                self.audit(&request, group, &denied).await;
                crate::metrics::cluster_refused(match denied.status {
                    401 => "no_certificate",
                    403 => "certificate",
                    _ => "request",
                });
                respond(&mut tls, denied.status, &denied.reason).await?;
                return Ok(None);
            }
        };
        let Some(key) = request.header("sec-websocket-key") else {
            respond(
                &mut tls,
                400,
                "not a WebSocket upgrade: no Sec-WebSocket-Key",
            )
            .await?;
            return Ok(None);
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        tls.write_all(response.as_bytes()).await?;
        tls.flush().await?;
        // Small buffers: a data plane sends pings (and one basic_info), and
        // each config goes out eagerly as the one frame it is. tungstenite's
        // 128 KiB defaults would be most of an idle connection's memory.
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INCOMING_FRAME))
            .max_frame_size(Some(MAX_INCOMING_FRAME))
            .read_buffer_size(1024)
            .write_buffer_size(0);
        let ws = WebSocketStream::from_partially_read(tls, rest, Role::Server, Some(config)).await;
        Ok(Some((ws, who)))
    }

    /// The group the server name names, and whether the certificate admits
    /// the data plane to it.
    fn admit(
        &self,
        request: &Request,
        server_name: Option<&str>,
        chain: Vec<CertificateDer<'static>>,
        peer: SocketAddr,
    ) -> Result<Admitted, (Option<Uuid>, Denied)> {
        let deny = |group, status, reason: String| Err((group, Denied { status, reason }));
        let Some(server_name) = server_name else {
            return deny(
                None,
                404,
                format!(
                    "no server name (SNI): set cluster_server_name to <label>.{}",
                    self.domain
                ),
            );
        };
        let view = match self.group_of(server_name) {
            Some(v) => v,
            None => {
                return deny(
                    None,
                    404,
                    format!("server name '{server_name}' names no control plane"),
                );
            }
        };
        let group = Some(view.meta.id);
        // The certificate first: a caller the group does not admit learns
        // nothing more about it (the audit entry names it for operators).
        if let Err(d) = authenticator::admit(
            &view,
            &chain,
            &self.shared.provider,
            crate::registry::now_ms() / 1000,
        ) {
            return Err((group, d));
        }
        if view.composite().is_none() && view.standard().is_some_and(|s| !s.composites.is_empty()) {
            return deny(
                group,
                403,
                crate::registry::member_refusal(&view.meta.name).to_string(),
            );
        }
        let query = request.path.split_once('?').map_or("", |(_, q)| q);
        let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        // Kong's control plane refuses an outlet request without these.
        let (Some(node_id), Some(hostname), Some(version)) = (
            param("node_id"),
            param("node_hostname"),
            param("node_version"),
        ) else {
            return deny(
                group,
                400,
                "node_id, node_hostname and node_version are required".into(),
            );
        };
        if node_id.len() > 255 || hostname.len() > 255 || version.len() > 64 {
            return deny(
                group,
                400,
                "node_id, node_hostname or node_version is too long".into(),
            );
        }
        Ok(Admitted {
            group: view.meta.id,
            node_id,
            hostname,
            version,
            ip: peer.ip().to_string(),
            chain,
        })
    }

    /// The group `<label>.DOMAIN` names.
    fn group_of(&self, server_name: &str) -> Option<Arc<GroupView>> {
        let name = server_name.to_ascii_lowercase();
        let label = name.strip_suffix(&format!(".{}", self.domain.to_ascii_lowercase()))?;
        self.shared
            .engine
            .views()
            .into_iter()
            .find(|v| cluster_label(v.meta.id) == label)
    }

    async fn audit(&self, request: &Request, group: Option<Uuid>, denied: &Denied) {
        let entry = AuditEntry {
            seq: 0,
            time: now(),
            teams: Vec::new(),
            credential: "client_certificate".into(),
            uid: None,
            gid: None,
            token_id: None,
            method: request.method.clone(),
            path: request.path.split('?').next().unwrap_or("").to_string(),
            group,
            status: denied.status,
            result: match denied.status {
                401 => "unauthorized",
                403 => "forbidden",
                _ => "refused",
            }
            .into(),
            reason: Some(denied.reason.clone()),
        };
        self.shared.engine.audit(entry, false).await;
    }
}

/// The request line and headers the upgrade needs.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn parse(head: &[u8]) -> Result<Request, String> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err("incomplete request".into()),
            Err(e) => return Err(format!("bad request: {e}")),
        }
        Ok(Request {
            method: req.method.unwrap_or("").to_string(),
            path: req.path.unwrap_or("").to_string(),
            headers: req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads up to the blank line after the headers; returns the head and any
/// bytes after it (the start of the WebSocket stream).
async fn read_head(tls: &mut TlsStream<TcpStream>) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before a request",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            respond(tls, 431, "request head too large").await?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
}

async fn respond(
    tls: &mut TlsStream<TcpStream>,
    status: u16,
    message: &str,
) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let body = serde_json::json!({ "message": message }).to_string();
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body.as_bytes()).await?;
    tls.shutdown().await
}

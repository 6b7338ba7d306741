//! One data plane's connection, from its `basic_info` to its close (koko's
//! `node`; Kong's `control_plane.lua` `handle_cp_websocket`): record it,
//! answer its pings, and send it each new served snapshot it can load.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use super::authenticator;
use super::compat::{self, KongVersion};
use super::hash::EMPTY_HASH;
use super::manager::{Manager, Signal};
use super::payload;
use super::wire::BasicInfo;
use crate::engine::Engine;
use crate::registry::{
    AffectedResource, Compatibility, CompatibilityIssue, HybridInfo, NodeReport,
};

/// Kong's `PING_WAIT` (`kong/constants.lua`: 1.5 × the 30 s ping interval):
/// a data plane silent this long is gone.
pub const PING_WAIT: Duration = Duration::from_secs(45);
/// How long to wait for `basic_info` after the upgrade.
pub const BASIC_INFO_WAIT: Duration = Duration::from_secs(10);
/// A data plane pings as soon as it has sent `basic_info` (its ping loop
/// starts with a ping); its hash tells whether it needs the config at all.
/// Past this wait it is sent the config anyway.
pub const FIRST_PING_WAIT: Duration = Duration::from_secs(2);

/// Who connected, as the listener admitted it.
pub struct Admitted {
    pub group: Uuid,
    pub node_id: String,
    pub hostname: String,
    pub version: String,
    pub ip: String,
    pub chain: Vec<CertificateDer<'static>>,
}

/// What every node shares.
pub struct Shared {
    pub engine: Engine,
    pub manager: Arc<Manager>,
    pub provider: Arc<CryptoProvider>,
    /// The Kong version this control plane speaks for.
    pub cp_version: KongVersion,
}

struct Session<S> {
    ws: WebSocketStream<S>,
    who: Admitted,
    shared: Arc<Shared>,
    info: Arc<HybridInfo>,
    max_payload: usize,
    kong_version: Option<KongVersion>,
    /// The hash the data plane last pinged.
    hash: String,
    /// The served version last considered for it (sent, already held, or held back).
    considered: Option<u64>,
    compatibility: Compatibility,
}

/// Runs one connection after the upgrade until it closes.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    who: Admitted,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let group = who.group;
    let mut ws = ws;
    let info = match first_frame(&mut ws).await {
        Ok(info) => info,
        Err(why) => {
            tracing::info!(node = %who.node_id, %why, "data plane refused");
            close(&mut ws, CloseCode::Policy, &why).await;
            return;
        }
    };
    crate::metrics::cluster_connection(1);
    let signal = shared.manager.join(group, &who.node_id);
    let max_payload = info.max_payload();
    let hybrid = Arc::new(HybridInfo {
        labels: info.labels,
        process_conf: shared.manager.share_conf(info.process_conf),
        plugins: shared.manager.share_plugins(info.plugins),
        connected: true,
    });
    let mut session = Session {
        kong_version: KongVersion::parse(&who.version),
        ws,
        who,
        shared: Arc::clone(&shared),
        info: hybrid,
        max_payload,
        hash: EMPTY_HASH.to_string(),
        considered: None,
        compatibility: Compatibility::default(),
    };
    let why = session.serve(signal, stop).await;
    tracing::info!(node = %session.who.node_id, %why, "data plane disconnected");
    // Disconnected, unless the data plane already holds a newer connection.
    if shared.manager.leave(group, &session.who.node_id) {
        session.info = Arc::new(HybridInfo {
            connected: false,
            ..(*session.info).clone()
        });
        let _ = session.record().await;
    }
    crate::metrics::cluster_connection(-1);
}

/// Reads `basic_info`: the data plane's first frame, binary (Kong 3.10) or text.
async fn first_frame<S>(ws: &mut WebSocketStream<S>) -> Result<BasicInfo, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = tokio::time::timeout(BASIC_INFO_WAIT, ws.next())
        .await
        .map_err(|_| "no basic_info within 10 s".to_string())?;
    let bytes = match frame {
        Some(Ok(Message::Binary(b))) => b,
        Some(Ok(Message::Text(t))) => bytes::Bytes::copy_from_slice(t.as_bytes()),
        Some(Ok(other)) => {
            return Err(format!("expected basic_info, got a {} frame", kind(&other)));
        }
        Some(Err(e)) => return Err(format!("reading basic_info: {e}")),
        None => return Err("closed before basic_info".into()),
    };
    BasicInfo::parse(&bytes).map_err(|e| e.to_string())
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The connection's loop; returns why it ended.
    async fn serve(
        &mut self,
        mut signal: watch::Receiver<Signal>,
        mut stop: watch::Receiver<bool>,
    ) -> String {
        if let Err(why) = self.record().await {
            close(&mut self.ws, CloseCode::Policy, &why).await;
            return why;
        }
        let first_ping = tokio::time::sleep(FIRST_PING_WAIT);
        tokio::pin!(first_ping);
        // The certificate it was admitted with expires while it is connected:
        // the connection ends then, as a new one would be refused.
        let expires = authenticator::not_after(&self.who.chain).map(|t| {
            // Valid through its notAfter second: closed the second after.
            let left = t.saturating_sub(crate::registry::now_ms() / 1000) + 1;
            tokio::time::Instant::now() + Duration::from_secs(left.min(10 * 365 * 24 * 3600))
        });
        let expiry = tokio::time::sleep_until(expires.unwrap_or_else(|| {
            tokio::time::Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600)
        }));
        tokio::pin!(expiry);
        let mut waiting_first_ping = true;
        let mut last_ping = tokio::time::Instant::now();
        loop {
            let deadline = last_ping + PING_WAIT;
            tokio::select! {
                frame = self.ws.next() => {
                    match frame {
                        Some(Ok(Message::Ping(data))) => {
                            last_ping = tokio::time::Instant::now();
                            self.hash = ping_hash(&data);
                            // tungstenite queued the pong: send it now.
                            if let Err(e) = self.ws.flush().await {
                                return format!("sending pong: {e}");
                            }
                            if let Err(why) = self.record().await {
                                close(&mut self.ws, CloseCode::Policy, &why).await;
                                return why;
                            }
                            if waiting_first_ping {
                                waiting_first_ping = false;
                                if let Err(why) = self.push().await { return why; }
                            }
                        }
                        Some(Ok(Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => return "closed by the data plane".into(),
                        // Kong's control plane takes only pings on /v1/outlet.
                        Some(Ok(other)) => {
                            let why = format!("invalid websocket frame received from data plane: {}", kind(&other));
                            close(&mut self.ws, CloseCode::Policy, &why).await;
                            return why;
                        }
                        Some(Err(e)) => {
                            let why = format!("reading: {e}");
                            close(&mut self.ws, CloseCode::Size, &why).await;
                            return why;
                        }
                    }
                }
                () = &mut first_ping, if waiting_first_ping => {
                    waiting_first_ping = false;
                    if let Err(why) = self.push().await { return why; }
                }
                r = signal.changed() => {
                    if r.is_err() { return "shutting down".into() }
                    let now = *signal.borrow_and_update();
                    if now.closed {
                        let why = "the control plane was deleted or became a member of a composite".to_string();
                        close(&mut self.ws, CloseCode::Policy, &why).await;
                        return why;
                    }
                    if let Err(why) = self.still_admitted() {
                        close(&mut self.ws, CloseCode::Policy, &why).await;
                        return why;
                    }
                    if !waiting_first_ping && let Err(why) = self.push().await { return why; }
                }
                () = &mut expiry, if expires.is_some() => {
                    let why = "the client certificate expired".to_string();
                    close(&mut self.ws, CloseCode::Policy, &why).await;
                    return why;
                }
                () = tokio::time::sleep_until(deadline) => {
                    let why = format!("no ping for {} s", PING_WAIT.as_secs());
                    close(&mut self.ws, CloseCode::Away, &why).await;
                    return why;
                }
                () = super::stopped(&mut stop) => {
                    close(&mut self.ws, CloseCode::Restart, "control plane shutting down").await;
                    return "control plane shutting down".into();
                }
            }
        }
    }

    /// A certificate removed from the group (or expired) ends the connection.
    fn still_admitted(&self) -> Result<(), String> {
        let view = self
            .shared
            .engine
            .view(self.who.group)
            .ok_or("the control plane was deleted")?;
        authenticator::admit(
            &view,
            &self.who.chain,
            &self.shared.provider,
            crate::registry::now_ms() / 1000,
        )
        .map_err(|d| d.reason)
    }

    /// Sends the served snapshot if the data plane can load it and lacks it.
    async fn push(&mut self) -> Result<(), String> {
        let Some(view) = self.shared.engine.view(self.who.group) else {
            return Err("the control plane was deleted".into());
        };
        let published = Arc::clone(&view.snapshot);
        if self.considered == Some(published.version) {
            return Ok(());
        }
        let mut issues = Vec::new();
        match self.kong_version {
            None => issues.push(issue(
                "KONG_VERSION_INCOMPATIBLE",
                format!(
                    "data plane version '{}' is not a Kong version",
                    self.who.version
                ),
                "run a Kong Gateway 3.x data plane".into(),
                Vec::new(),
            )),
            Some(v) => {
                if let Err(i) = compat::check_version(self.shared.cp_version, v) {
                    issues.push(convert(i));
                }
            }
        }
        let payload = if issues.is_empty() {
            payload::payload(&published, self.kong_version)
                .await
                .map_err(|e| e.to_string())?
        } else {
            payload::payload(&published, None)
                .await
                .map_err(|e| e.to_string())?
        };
        let configured: Vec<&str> = payload.plugins.iter().map(|(n, _)| n.as_str()).collect();
        let dp_plugins: Vec<compat::DpPlugin> = self
            .info
            .plugins
            .iter()
            .map(|(name, version)| compat::DpPlugin {
                name: name.clone(),
                version: (!version.is_empty()).then(|| version.clone()),
            })
            .collect();
        let cp = self.shared.cp_version;
        issues.extend(
            compat::check_plugins(&configured, &dp_plugins, |name| {
                compat::bundled_plugin_version(name, cp)
            })
            .into_iter()
            .map(convert),
        );
        if payload.frame.len() > self.max_payload {
            issues.push(issue(
                "PAYLOAD_TOO_LARGE",
                format!(
                    "the config is {} bytes compressed, over this data plane's cluster_max_payload of {}",
                    payload.frame.len(),
                    self.max_payload
                ),
                "raise cluster_max_payload on the data plane, or split the composite".into(),
                Vec::new(),
            ));
        }
        self.considered = Some(published.version);
        let held_back = !issues.is_empty();
        self.compatibility = if held_back {
            Compatibility {
                state: compat::STATE_INCOMPATIBLE.into(),
                issues,
            }
        } else if !payload.removed.is_empty() {
            // Konnect reports a config sent with fields removed as
            // incompatible too, with warnings: the node runs less than asked.
            Compatibility {
                state: compat::STATE_INCOMPATIBLE.into(),
                issues: vec![issue_with_severity(
                    "FIELDS_REMOVED",
                    compat::SEVERITY_WARNING,
                    format!(
                        "fields this data plane's version ({}) does not know were removed: {}",
                        self.who.version,
                        payload.removed.join(", ")
                    ),
                    "upgrade the data plane to use them".into(),
                    Vec::new(),
                )],
            }
        } else {
            Compatibility::default()
        };
        if held_back {
            crate::metrics::cluster_held_back();
            tracing::info!(node = %self.who.node_id, version = published.version, "config held back from data plane");
        } else if payload.hash != self.hash {
            self.ws
                .send(Message::Binary(payload.frame.clone()))
                .await
                .map_err(|e| format!("sending config: {e}"))?;
            crate::metrics::cluster_config_sent(payload.frame.len());
        }
        self.record().await
    }

    /// Puts what the node reports into its record (the same table sidecar
    /// heartbeats go to).
    async fn record(&self) -> Result<(), String> {
        let report = NodeReport {
            id: Some(self.who.node_id.clone()),
            hostname: self.who.hostname.clone(),
            ip: self.who.ip.clone(),
            version: self.who.version.clone(),
            config_hash: self.hash.clone(),
            node_type: None,
            compatibility: Some(self.compatibility.clone()),
            hybrid: Some(Arc::clone(&self.info)),
        };
        self.shared
            .engine
            .heartbeat(self.who.group, report)
            .await
            .map(|_| ())
            .map_err(|r| r.to_string())
    }
}

/// A ping's payload is the hash the data plane runs; anything else counts
/// as no config (Kong's control plane does the same with a malformed one).
fn ping_hash(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) => s.to_string(),
        _ => EMPTY_HASH.to_string(),
    }
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "raw",
    }
}

async fn close<S>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A close reason is at most 123 bytes.
    let reason: String = reason.chars().take(120).collect();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        ws.close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })),
    )
    .await;
}

fn issue(
    code: &str,
    description: String,
    resolution: String,
    affected: Vec<AffectedResource>,
) -> CompatibilityIssue {
    issue_with_severity(code, "error", description, resolution, affected)
}

fn issue_with_severity(
    code: &str,
    severity: &str,
    description: String,
    resolution: String,
    affected: Vec<AffectedResource>,
) -> CompatibilityIssue {
    CompatibilityIssue {
        code: Some(code.into()),
        severity: Some(severity.into()),
        description: Some(description),
        resolution: Some(resolution),
        affected_resources: affected,
        documentation_url: None,
    }
}

/// The compat table's issue as Konnect's `NodeCompatibilityIssue`.
fn convert(i: compat::CompatIssue) -> CompatibilityIssue {
    CompatibilityIssue {
        code: Some(i.code),
        severity: Some(i.severity),
        description: Some(i.description),
        resolution: Some(i.resolution),
        affected_resources: i
            .affected_resources
            .into_iter()
            .map(|r| AffectedResource {
                id: Some(r.id),
                resource_type: Some(r.r#type),
                parent_code: r.parent_code,
                details: r.details,
            })
            .collect(),
        documentation_url: i.documentation_url,
    }
}

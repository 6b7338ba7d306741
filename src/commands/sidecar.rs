//! `rgmerge sidecar`: runs beside a Kong data plane. It long-polls its group's
//! snapshot, writes each new one atomically to a file Kong can load
//! (`declarative_config`), optionally POSTs it to a Kong admin `/config`, and
//! heartbeats with the hash it actually applied, so the daemon's sync status
//! is the truth. It rides out daemon restarts by retrying with backoff.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The group (control plane) to follow: its id or name.
    pub group: String,
    /// Where to write the snapshot (Kong's `declarative_config`).
    pub out: PathBuf,
    /// Also POST each snapshot to this Kong admin API (e.g. http://127.0.0.1:8001).
    pub kong_admin: Option<String>,
    /// This node's id [default: the hostname].
    pub node_id: Option<String>,
    /// Hostname reported in heartbeats [default: this machine's].
    pub hostname: Option<String>,
    /// Seconds between heartbeats, and the long-poll length.
    pub interval: u64,
    /// A bearer token of a team with the `node` role on the group (else the
    /// daemon knows the sidecar by its Unix uid). Never logged.
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("daemon: {0}")]
    Daemon(String),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kong admin: {0}")]
    Kong(String),
}

struct Sidecar {
    args: SidecarOptions,
    daemon: reqwest::Client,
    kong: reqwest::Client,
    node_id: String,
    hostname: String,
    group_id: Option<String>,
    applied: Option<String>,
}

pub fn run(args: SidecarOptions) -> Result<(), SidecarError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SidecarError::Daemon(e.to_string()))?;
    runtime.block_on(async move {
        let hostname = args.hostname.clone().unwrap_or_else(machine_hostname);
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &args.token {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| SidecarError::Daemon("the token is not printable ASCII".into()))?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let daemon = reqwest::Client::builder()
            .unix_socket(args.socket.clone())
            .default_headers(headers)
            .build()
            .map_err(|e| SidecarError::Daemon(e.to_string()))?;
        let mut s = Sidecar {
            node_id: args.node_id.clone().unwrap_or_else(|| hostname.clone()),
            hostname,
            daemon,
            kong: reqwest::Client::new(),
            group_id: None,
            applied: existing_hash(&args.out),
            args,
        };
        s.run().await
    })
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A snapshot file left by an earlier run: its hash is what this node runs.
fn existing_hash(out: &Path) -> Option<String> {
    std::fs::read_to_string(hash_file(out))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn hash_file(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".hash");
    PathBuf::from(p)
}

/// Writes `bytes` so Kong never reads a half-written file: temp file in the
/// same directory, fsync, rename over the target.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Sidecar {
    async fn run(&mut self) -> Result<(), SidecarError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.step().await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(SidecarError::Write { path, source }) => {
                    return Err(SidecarError::Write { path, source });
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "sidecar step failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://localhost{path}")
    }

    async fn resolve_group(&mut self) -> Result<String, SidecarError> {
        if let Some(id) = &self.group_id {
            return Ok(id.clone());
        }
        let id = if uuid::Uuid::parse_str(&self.args.group).is_ok() {
            self.args.group.clone()
        } else {
            let query =
                serde_urlencoded::to_string([("filter[name][eq]", self.args.group.as_str())])
                    .unwrap_or_default();
            let url = self.url(&format!("/v2/control-planes?{query}"));
            let v: serde_json::Value = self.get_json(&url).await?;
            v["data"][0]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    SidecarError::Daemon(format!(
                        "no control plane named '{}' that this identity may view (a `node` token can't list groups: pass the group's id)",
                        self.args.group
                    ))
                })?
        };
        self.group_id = Some(id.clone());
        Ok(id)
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, SidecarError> {
        let resp = self
            .daemon
            .get(url)
            .send()
            .await
            .map_err(|e| SidecarError::Daemon(e.to_string()))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| SidecarError::Daemon(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| SidecarError::Daemon(e.to_string()))
    }

    /// One heartbeat and one long-poll; applies a new snapshot if one came.
    async fn step(&mut self) -> Result<(), SidecarError> {
        let id = self.resolve_group().await?;
        self.heartbeat(&id).await?;
        let mut req = self.daemon.get(self.url(&format!(
            "/v2/control-planes/{id}/snapshot?wait={}",
            self.args.interval
        )));
        if let Some(h) = &self.applied {
            req = req.header("if-none-match", format!("\"{h}\""));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SidecarError::Daemon(e.to_string()))?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(()),
            StatusCode::OK => {
                let hash = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim_matches('"').to_string())
                    .ok_or_else(|| SidecarError::Daemon("snapshot without an ETag".into()))?;
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| SidecarError::Daemon(e.to_string()))?;
                self.apply(&hash, &body).await?;
                self.heartbeat(&id).await
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                Err(SidecarError::Daemon(format!(
                    "snapshot request answered {status}: {text}"
                )))
            }
            StatusCode::NOT_FOUND => {
                self.group_id = None;
                Err(SidecarError::Daemon(format!(
                    "control plane '{}' not found",
                    self.args.group
                )))
            }
            other => Err(SidecarError::Daemon(format!(
                "snapshot request answered {other}"
            ))),
        }
    }

    async fn apply(&mut self, hash: &str, body: &[u8]) -> Result<(), SidecarError> {
        let out = self.args.out.clone();
        write_atomically(&out, body).map_err(|source| SidecarError::Write {
            path: out.clone(),
            source,
        })?;
        if let Some(admin) = &self.args.kong_admin {
            let url = format!("{}/config", admin.trim_end_matches('/'));
            let resp = self
                .kong
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .map_err(|e| SidecarError::Kong(e.to_string()))?;
            if !resp.status().is_success() {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                return Err(SidecarError::Kong(format!(
                    "{url} answered {status}: {}",
                    text.chars().take(500).collect::<String>()
                )));
            }
        }
        let hf = hash_file(&out);
        write_atomically(&hf, hash.as_bytes())
            .map_err(|source| SidecarError::Write { path: hf, source })?;
        tracing::info!(hash, file = %out.display(), "applied snapshot");
        self.applied = Some(hash.to_string());
        Ok(())
    }

    async fn heartbeat(&self, id: &str) -> Result<(), SidecarError> {
        let body = serde_json::json!({
            "id": self.node_id,
            "hostname": self.hostname,
            "version": concat!("rgmerge-sidecar/", env!("CARGO_PKG_VERSION")),
            "config_hash": self.applied.clone().unwrap_or_default(),
        });
        let resp = self
            .daemon
            .post(self.url(&format!("/v2/control-planes/{id}/nodes")))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| SidecarError::Daemon(e.to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            Err(SidecarError::Daemon(format!(
                "heartbeat answered {status}: {text}"
            )))
        }
    }
}

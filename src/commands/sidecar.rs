//! `rgmerge sidecar`: runs beside a Kong data plane. It long-polls its group's
//! snapshot and heartbeats with the hash it actually applied, so the daemon's
//! sync status is the truth. It rides out daemon restarts by retrying with
//! backoff.
//!
//! Without a Kong admin URL it writes each snapshot atomically to the file
//! Kong loads (`declarative_config`). With one, Kong decides first: the
//! snapshot is POSTed to `/config`, and only what Kong accepted is written to
//! the file, so a Kong restarted from it never loads a refused config. A
//! refusal keeps the last accepted file, and Kong's flattened errors go to
//! the daemon in the heartbeat as the node's compatibility status. The
//! heartbeat reports Kong's own version, read from the admin API.
//!
//! Given several daemons' sockets (daemons sharing one PostgreSQL store), it
//! uses the first that answers and moves to the next when one stops
//! answering. The file never goes backwards: a snapshot older than the one
//! applied (a daemon that lags behind) is not written, and the sidecar moves on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// The daemons' sockets, in order of preference (at least one).
    pub sockets: Vec<PathBuf>,
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
    /// Longest wait for Kong's admin API to answer, in seconds.
    pub kong_timeout: u64,
    /// A bearer token of a team with the `node` role on the group (else the
    /// daemon knows the sidecar by its Unix uid). Never logged.
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("daemon: {0}")]
    Daemon(String),
    /// The daemon did not answer (or answered that it can't serve): try the next.
    #[error("daemon {socket} does not answer: {detail}")]
    Unreachable { socket: String, detail: String },
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
    /// One client per socket; `current` is the one in use.
    daemons: Vec<reqwest::Client>,
    current: usize,
    kong: reqwest::Client,
    node_id: String,
    hostname: String,
    group_id: Option<String>,
    applied: Option<String>,
    /// The version of the applied snapshot: never written backwards.
    applied_version: Option<u64>,
    /// The last snapshot Kong refused, and why: not retried until a newer one
    /// comes, and reported in heartbeats.
    refused: Option<Refused>,
    /// Kong's version as its admin API reports it.
    kong_version: Option<String>,
}

struct Refused {
    hash: String,
    /// Konnect's `NodeCompatibilityIssue`s, one per flattened Kong error.
    issues: Vec<serde_json::Value>,
}

/// Most issues a heartbeat carries (the daemon refuses more).
const MAX_ISSUES: usize = 100;

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
        if args.sockets.is_empty() {
            return Err(SidecarError::Daemon("no --socket given".into()));
        }
        let mut daemons = Vec::new();
        for socket in &args.sockets {
            daemons.push(
                reqwest::Client::builder()
                    .unix_socket(socket.clone())
                    .default_headers(headers.clone())
                    // A daemon that stops answering mid-poll is given up on.
                    .timeout(Duration::from_secs(args.interval.max(1) + 10))
                    .build()
                    .map_err(|e| SidecarError::Daemon(e.to_string()))?,
            );
        }
        let mut s = Sidecar {
            node_id: args.node_id.clone().unwrap_or_else(|| hostname.clone()),
            hostname,
            daemons,
            current: 0,
            kong: reqwest::Client::builder()
                .timeout(Duration::from_secs(args.kong_timeout.max(1)))
                .build()
                .map_err(|e| SidecarError::Kong(e.to_string()))?,
            group_id: None,
            applied: existing_hash(&args.out),
            applied_version: existing_version(&args.out),
            refused: None,
            kong_version: None,
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

/// `OUT.version`: the applied snapshot's version, so a restarted sidecar
/// never writes an older one either.
fn version_file(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".version");
    PathBuf::from(p)
}

fn existing_version(out: &Path) -> Option<u64> {
    std::fs::read_to_string(version_file(out))
        .ok()
        .and_then(|s| s.trim().parse().ok())
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
        // Daemons tried in a row without one answering.
        let mut failed = 0;
        loop {
            match self.step().await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    failed = 0;
                }
                Err(SidecarError::Write { path, source }) => {
                    return Err(SidecarError::Write { path, source });
                }
                Err(e @ SidecarError::Unreachable { .. }) if self.daemons.len() > 1 => {
                    failed += 1;
                    self.current = (self.current + 1) % self.daemons.len();
                    tracing::warn!(error = %e, next = %self.args.sockets[self.current].display(), "failing over to the next daemon");
                    if failed >= self.daemons.len() {
                        // None answers: wait before the next round.
                        failed = 0;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
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

    fn daemon(&self) -> &reqwest::Client {
        &self.daemons[self.current]
    }

    /// A request that got no answer: the daemon is down (or hung).
    fn unreachable(&self, e: impl std::fmt::Display) -> SidecarError {
        SidecarError::Unreachable {
            socket: self.args.sockets[self.current].display().to_string(),
            detail: e.to_string(),
        }
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
            .daemon()
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
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
        let mut req = self.daemon().get(self.url(&format!(
            "/v2/control-planes/{id}/snapshot?wait={}",
            self.args.interval
        )));
        // A refused snapshot counts as known: wait for a newer one.
        let known: Vec<String> = self
            .applied
            .iter()
            .chain(self.refused.as_ref().map(|r| &r.hash))
            .map(|h| format!("\"{h}\""))
            .collect();
        if !known.is_empty() {
            req = req.header("if-none-match", known.join(", "));
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(()),
            StatusCode::OK => {
                let version = resp
                    .headers()
                    .get("x-snapshot-version")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if let (Some(v), Some(applied)) = (version, self.applied_version)
                    && v < applied
                {
                    // This daemon lags behind what the data plane runs.
                    return Err(self.unreachable(format!(
                        "it serves version {v}, older than the applied {applied}"
                    )));
                }
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
                self.apply(&hash, version, &body).await?;
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
            other if other.is_server_error() => {
                Err(self.unreachable(format!("snapshot request answered {other}")))
            }
            other => Err(SidecarError::Daemon(format!(
                "snapshot request answered {other}"
            ))),
        }
    }

    async fn apply(
        &mut self,
        hash: &str,
        version: Option<u64>,
        body: &[u8],
    ) -> Result<(), SidecarError> {
        if let Some(admin) = self.args.kong_admin.clone() {
            let url = format!("{}/config?flatten_errors=1", admin.trim_end_matches('/'));
            let resp = self
                .kong
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .map_err(|e| SidecarError::Kong(format!("{url}: {e}")))?;
            let status = resp.status();
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                if status.is_server_error() {
                    // Kong could not judge it: try again, keep the last file.
                    return Err(SidecarError::Kong(format!(
                        "{url} answered {status}: {}",
                        text.chars().take(500).collect::<String>()
                    )));
                }
                let issues = kong_issues(status, &text);
                tracing::warn!(hash, %status, issues = issues.len(), "Kong refused the snapshot; keeping the last accepted config");
                self.refused = Some(Refused {
                    hash: hash.to_string(),
                    issues,
                });
                return Ok(());
            }
        }
        self.write(hash, version, body)?;
        self.refused = None;
        Ok(())
    }

    /// Writes what Kong runs (or, without an admin URL, will load) and its hash.
    fn write(&mut self, hash: &str, version: Option<u64>, body: &[u8]) -> Result<(), SidecarError> {
        let out = self.args.out.clone();
        write_atomically(&out, body).map_err(|source| SidecarError::Write {
            path: out.clone(),
            source,
        })?;
        let hf = hash_file(&out);
        write_atomically(&hf, hash.as_bytes())
            .map_err(|source| SidecarError::Write { path: hf, source })?;
        if let Some(v) = version {
            let vf = version_file(&out);
            write_atomically(&vf, v.to_string().as_bytes())
                .map_err(|source| SidecarError::Write { path: vf, source })?;
            self.applied_version = Some(v);
        }
        tracing::info!(hash, version, file = %out.display(), "applied snapshot");
        self.applied = Some(hash.to_string());
        Ok(())
    }

    /// Kong's version from its admin API (`GET /`), once it answers.
    async fn kong_version(&mut self) -> Option<String> {
        if self.kong_version.is_none()
            && let Some(admin) = &self.args.kong_admin
        {
            let url = format!("{}/", admin.trim_end_matches('/'));
            if let Ok(resp) = self.kong.get(&url).send().await
                && resp.status().is_success()
                && let Ok(bytes) = resp.bytes().await
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                self.kong_version = v["version"].as_str().map(str::to_string);
            }
        }
        self.kong_version.clone()
    }

    async fn heartbeat(&mut self, id: &str) -> Result<(), SidecarError> {
        let version = self
            .kong_version()
            .await
            .unwrap_or_else(|| concat!("rgmerge-sidecar/", env!("CARGO_PKG_VERSION")).to_string());
        let mut body = serde_json::json!({
            "id": self.node_id,
            "hostname": self.hostname,
            "version": version,
            "config_hash": self.applied.clone().unwrap_or_default(),
        });
        if let (Some(r), Some(o)) = (&self.refused, body.as_object_mut()) {
            o.insert(
                "compatibility_status".into(),
                serde_json::json!({
                    "state": "COMPATIBILITY_STATE_INCOMPATIBLE",
                    "issues": r.issues,
                }),
            );
        }
        let resp = self
            .daemon()
            .post(self.url(&format!("/v2/control-planes/{id}/nodes")))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            Ok(())
        } else if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            // The daemon serves snapshots but can't record heartbeats now
            // (its store is unreachable): keep following the snapshot.
            let text = resp.text().await.unwrap_or_default();
            tracing::warn!(detail = %text.chars().take(300).collect::<String>(), "heartbeat not recorded");
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

/// Kong's refusal of a declarative config as Konnect's compatibility issues:
/// one per entity error of Kong's `flattened_errors` (`?flatten_errors=1`),
/// else one carrying Kong's message.
fn kong_issues(status: StatusCode, text: &str) -> Vec<serde_json::Value> {
    let clip = |s: &str| s.chars().take(500).collect::<String>();
    let parsed: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let mut issues = Vec::new();
    for e in parsed["flattened_errors"].as_array().into_iter().flatten() {
        let details: Vec<String> = e["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let field = d["field"].as_str().unwrap_or("");
                let message = d["message"].as_str().unwrap_or("invalid");
                clip(&if field.is_empty() {
                    message.to_string()
                } else {
                    format!("{field}: {message}")
                })
            })
            .collect();
        let entity_type = e["entity_type"].as_str().unwrap_or("entity");
        let entity = e["entity_name"]
            .as_str()
            .or(e["entity_id"].as_str())
            .unwrap_or("");
        issues.push(serde_json::json!({
            "code": "KONG_REFUSED_CONFIG",
            "severity": "error",
            "description": clip(&format!("Kong refused {entity_type} '{entity}': {}", details.join("; "))),
            "resolution": "fix the member config that holds this entity; the data plane keeps its last accepted config",
            "affected_resources": [{
                "id": e["entity_id"].as_str().or(e["entity_name"].as_str()).unwrap_or(""),
                "type": entity_type,
                "details": details,
            }],
        }));
        if issues.len() == MAX_ISSUES {
            break;
        }
    }
    if issues.is_empty() {
        let message = parsed["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| clip(text));
        issues.push(serde_json::json!({
            "code": "KONG_REFUSED_CONFIG",
            "severity": "error",
            "description": clip(&format!("Kong answered {status}: {message}")),
            "resolution": "fix the member configs; the data plane keeps its last accepted config",
        }));
    }
    issues
}

//! Starts the real `rgmerge` binary on a temporary socket and talks HTTP to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The limit a test puts on anything that could hang (a request, a start-up,
/// a wait for some state). It guards against hangs only: far above what any
/// step takes on a loaded machine, so it never fails a healthy run. Tests
/// assert outcomes, never how fast they came (issue 15).
pub const HANG_GUARD: Duration = Duration::from_secs(120);

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub data: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// RLIMIT_FSIZE for the daemon: writes past it fail as on a full disk.
    pub file_size_limit: Option<u64>,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let socket = dir.path().join("rg.sock");
        let mut d = Daemon {
            dir,
            socket,
            data,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            file_size_limit: None,
        };
        d.spawn();
        d
    }

    /// Starts the daemon process (again) on the same data directory.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rgmerge"));
        if let Some(limit) = self.file_size_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--socket")
            .arg(&self.socket)
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rgmerge serve");
        self.child = Some(child);
        // A hang guard only (see HANG_GUARD).
        let deadline = Instant::now() + HANG_GUARD;
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("daemon exited early with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not open its socket: {}", self.log());
    }

    /// The extra `serve` flags of the next `spawn` (replacing the ones given to `start`).
    pub fn extra_args(&mut self, args: &[&str]) {
        self.extra = args.iter().map(|s| s.to_string()).collect();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        c.wait().expect("wait")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer …` on every request when set.
    bearer: Option<String>,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        let http = reqwest::Client::builder()
            .unix_socket(socket.to_path_buf())
            .build()
            .expect("client");
        Client { http, bearer: None }
    }

    /// A client that authenticates with a bearer token.
    pub fn with_token(socket: &Path, token: &str) -> Client {
        let mut c = Client::new(socket);
        c.bearer = Some(token.to_string());
        c
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.try_send(method, path, headers, body)
            .await
            .expect("request")
    }

    /// Like `send`, but a dropped connection is an `Err`, not a panic.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("http://localhost{path}"));
        if let Some(t) = &self.bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None).await
    }

    pub async fn post_json(&self, path: &str, v: &Value) -> Resp {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(v.to_string().into_bytes()),
        )
        .await
    }

    pub async fn patch_json(&self, path: &str, v: &Value) -> Resp {
        self.send(
            "PATCH",
            path,
            &[("content-type", "application/json")],
            Some(v.to_string().into_bytes()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, &[], None).await
    }

    pub async fn put_config(&self, id: &str, yaml: &str) -> Resp {
        self.send(
            "PUT",
            &format!("/v2/control-planes/{id}/config"),
            &[("content-type", "application/yaml")],
            Some(yaml.as_bytes().to_vec()),
        )
        .await
    }

    pub async fn create(&self, name: &str, cluster_type: &str) -> String {
        let r = self
            .post_json(
                "/v2/control-planes",
                &json!({"name": name, "cluster_type": cluster_type}),
            )
            .await
            .expect(201);
        r.json()["id"].as_str().expect("id").to_string()
    }

    pub async fn standard(&self, name: &str) -> String {
        self.create(name, "CLUSTER_TYPE_CONTROL_PLANE").await
    }

    pub async fn composite(&self, name: &str) -> String {
        self.create(name, "CLUSTER_TYPE_CONTROL_PLANE_GROUP").await
    }

    pub async fn add(&self, composite: &str, members: &[&str]) -> Resp {
        let body = json!({"members": members.iter().map(|m| json!({"id": m})).collect::<Vec<_>>()});
        self.post_json(
            &format!("/v2/control-planes/{composite}/group-memberships/add"),
            &body,
        )
        .await
    }

    pub async fn remove(&self, composite: &str, members: &[&str]) -> Resp {
        let body = json!({"members": members.iter().map(|m| json!({"id": m})).collect::<Vec<_>>()});
        self.post_json(
            &format!("/v2/control-planes/{composite}/group-memberships/remove"),
            &body,
        )
        .await
    }

    pub async fn status(&self, composite: &str) -> Value {
        self.get(&format!("/v2/control-planes/{composite}/group-status"))
            .await
            .expect(200)
            .json()
    }

    pub async fn snapshot(&self, id: &str) -> Resp {
        self.get(&format!("/v2/control-planes/{id}/snapshot"))
            .await
            .expect(200)
    }

    /// The current snapshot's hash (its ETag without quotes).
    pub async fn etag(&self, id: &str) -> String {
        self.snapshot(id)
            .await
            .header("etag")
            .expect("etag")
            .trim_matches('"')
            .to_string()
    }

    pub async fn heartbeat(&self, group: &str, node: &str, hash: &str) -> Resp {
        self.post_json(
            &format!("/v2/control-planes/{group}/nodes"),
            &json!({"id": node, "hostname": node, "config_hash": hash}),
        )
        .await
    }
}

/// Whether `rgmerge serve` takes `flag`. The read-timeout flags
/// (`--header-read-timeout-secs`, `--body-read-timeout-secs`,
/// `--idle-timeout-secs`) come with a CLI change of their own; until a binary
/// has them, tests that want short timeouts run against the defaults instead.
pub fn serve_accepts(flag: &str) -> bool {
    static HELP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HELP.get_or_init(|| {
        Command::new(env!("CARGO_BIN_EXE_rgmerge"))
            .args(["serve", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
    .contains(flag)
}

pub fn service(name: &str, host: &str) -> String {
    format!(
        "_format_version: \"3.0\"\nservices:\n- name: {name}\n  host: {host}\n  routes:\n  - name: {name}-route\n    paths: [/{name}]\n"
    )
}

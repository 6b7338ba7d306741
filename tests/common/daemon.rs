//! The real `rgmerge` binary: `Daemon::builder()…start()` runs `rgmerge
//! serve` on a temporary directory (its data in `data/`, its socket
//! `rg.sock`, its stderr in `daemon.log`); `Sidecar::builder()…spawn()`
//! runs `rgmerge sidecar`; `rgmerge(args)` runs any other command.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use super::client::{Client, Transport};
use super::wait::wait_for_sync;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rgmerge")
}

/// Runs `rgmerge ARGS` to its end.
pub fn rgmerge<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run rgmerge")
}

/// Runs `rgmerge ARGS`, asserts it succeeded; its stderr.
#[track_caller]
pub fn rgmerge_ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    let o = rgmerge(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "rgmerge failed ({}): {err}", o.status);
    err
}

/// Runs `rgmerge ARGS`, asserts its exit code (showing its stderr).
#[track_caller]
pub fn rgmerge_exit<S: AsRef<OsStr>>(args: &[S], code: i32) -> Output {
    let o = rgmerge(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "rgmerge: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Whether `rgmerge serve` takes `flag` (a test of a flag that a binary may
/// not have yet runs without it and says so).
pub fn serve_accepts(flag: &str) -> bool {
    static HELP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HELP.get_or_init(|| {
        Command::new(bin())
            .args(["serve", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
    .contains(flag)
}

/// The name the `.api()` listener's certificate is for.
pub const API_HOST: &str = "api.example.test";

/// A free TCP port on the loopback address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// How to start a daemon. Each option is a method; anything without one
/// is `.arg`/`.args`, the `serve` flags as the CLI spells them.
#[derive(Clone, Default)]
#[must_use]
pub struct DaemonBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    file_size_limit: Option<u64>,
    http: bool,
    api: bool,
    open_to_all: bool,
}

impl DaemonBuilder {
    /// One more `serve` argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// More `serve` arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// `--NAME VALUE`.
    pub fn flag(self, name: &str, value: impl ToString) -> Self {
        self.arg(name).arg(value.to_string())
    }

    /// Keeps the state in PostgreSQL at `url` (`PgServer::database`)
    /// instead of the embedded store.
    pub fn postgres(self, url: &str) -> Self {
        self.flag("--store", url)
    }

    /// Also serves the page on a free loopback port (`--http`):
    /// `Daemon::http_port`, `Daemon::http_client`.
    pub fn http(mut self) -> Self {
        self.http = true;
        self
    }

    /// Opens the cluster endpoint for Kong data planes (`--cluster-*`) on a
    /// free loopback port, with the certificates `rgmerge cluster-cert`
    /// wrote into `certs` for `domain`: `Daemon::cluster_addr`.
    pub fn cluster(self, certs: &Path, domain: &str) -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        self.flag("--cluster-listen", addr)
            .flag("--cluster-domain", domain)
            .arg("--cluster-cert")
            .arg(certs.join("cluster.crt"))
            .arg("--cluster-cert-key")
            .arg(certs.join("cluster.key"))
    }

    /// Also serves the API over HTTPS (`--api-listen`) on a free loopback
    /// port, with a certificate for [`API_HOST`] made at start:
    /// `Daemon::https_client`.
    pub fn api(mut self) -> Self {
        self.api = true;
        self
    }

    /// RLIMIT_FSIZE for the daemon: writes past it fail as on a full disk.
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }

    /// An environment variable of the daemon.
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// Lets every Unix user reach the socket (its directory 0711, the
    /// socket 0666), for tests that call as other users.
    pub fn open_to_all_users(mut self) -> Self {
        self.open_to_all = true;
        self
    }

    /// Starts the daemon and waits until its socket answers.
    pub fn start(mut self) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let http_port = self.http.then(free_port);
        let api = self.api.then(|| {
            let certs = dir.path().join("api-certs");
            let out = certs.to_str().expect("utf-8").to_string();
            rgmerge_ok(&["cluster-cert", "--domain", API_HOST, "--out", &out]);
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
            self.args.extend([
                "--api-listen".into(),
                addr.to_string().into(),
                "--api-cert".into(),
                certs.join("cluster.crt").into_os_string(),
                "--api-cert-key".into(),
                certs.join("cluster.key").into_os_string(),
            ]);
            let ca_pem = std::fs::read(certs.join("ca.crt")).expect("ca.crt");
            (addr, ca_pem)
        });
        let mut d = Daemon {
            data: dir.path().join("data"),
            socket: dir.path().join("rg.sock"),
            dir,
            http_port,
            api,
            child: None,
            spec: self,
        };
        d.spawn();
        d
    }
}

/// A running (or stopped) `rgmerge serve`; killed when dropped.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    /// `--data-dir`.
    pub data: PathBuf,
    /// `--socket`.
    pub socket: PathBuf,
    /// The `--http` port, with `.http()`.
    pub http_port: Option<u16>,
    /// The `--api-listen` address and the CA of its certificate, with `.api()`.
    pub api: Option<(std::net::SocketAddr, Vec<u8>)>,
    child: Option<Child>,
    spec: DaemonBuilder,
}

impl Daemon {
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// A daemon with every default.
    pub fn start() -> Daemon {
        Daemon::builder().start()
    }

    /// A client of the HTTPS API listener (`.api()`), without a token.
    pub fn https_client(&self) -> Client {
        let (addr, ca_pem) = self.api.clone().expect("started with .api()");
        Client::over(crate::common::Transport::Https {
            host: API_HOST.into(),
            addr,
            ca_pem,
        })
    }

    /// Where the cluster endpoint listens, with `.cluster()`.
    pub fn cluster_addr(&self) -> Option<std::net::SocketAddr> {
        let args = &self.spec.args;
        let at = args.iter().position(|a| a == "--cluster-listen")?;
        args.get(at + 1)?.to_str()?.parse().ok()
    }

    /// The temporary directory for a test's own files (removed with the daemon).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file in `dir()`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// A client of the socket with a bearer token.
    pub fn client_with_token(&self, token: &str) -> Client {
        self.client().with_bearer(token)
    }

    /// A client of the `--http` listener.
    pub fn http_client(&self) -> Client {
        Client::over(Transport::Http(self.http_url()))
    }

    /// `http://127.0.0.1:PORT` of the `--http` listener.
    pub fn http_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.http_port.expect("started with .http()")
        )
    }

    /// The daemon's stderr so far (every run of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// Asserts no thread of the daemon panicked.
    #[track_caller]
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(log.lines().all(|l| !l.contains("panicked")), "{log}");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        c.wait().expect("wait")
    }

    /// Starts it again on the same directory, after a `stop` or `kill9`;
    /// if it is still running, stops it first (SIGTERM) and asserts a clean exit.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.stop();
            assert!(status.success(), "stopped with {status}: {}", self.log());
        }
        self.spawn();
    }

    /// Replaces the `serve` arguments of the next `restart`.
    pub fn set_args<S: AsRef<OsStr>>(&mut self, args: &[S]) {
        self.spec.args = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    }

    /// Sets (or lifts) the file size limit of the next `restart`.
    pub fn set_file_size_limit(&mut self, bytes: Option<u64>) {
        self.spec.file_size_limit = bytes;
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("daemon.log"))
            .expect("log");
        let mut cmd = Command::new(bin());
        if let Some(limit) = self.spec.file_size_limit {
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
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--socket")
            .arg(&self.socket);
        if let Some(port) = self.http_port {
            cmd.arg("--http").arg(format!("127.0.0.1:{port}"));
        }
        let child = cmd
            .args(&self.spec.args)
            .env("RUST_LOG", "warn")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rgmerge serve");
        self.child = Some(child);
        let mut exited = None;
        wait_for_sync("the daemon to open its socket", || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                exited = Some(status);
                return true;
            }
            std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
        });
        if let Some(status) = exited {
            self.child = None;
            panic!("daemon exited early with {status}: {}", self.log());
        }
        if self.spec.open_to_all {
            use std::os::unix::fs::PermissionsExt;
            let mode = |m| std::fs::Permissions::from_mode(m);
            std::fs::set_permissions(self.dir.path(), mode(0o711)).expect("chmod");
            std::fs::set_permissions(&self.socket, mode(0o666)).expect("chmod");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// How to run `rgmerge sidecar`.
#[must_use]
pub struct SidecarBuilder {
    args: Vec<OsString>,
    log: Option<PathBuf>,
}

impl SidecarBuilder {
    /// One more `sidecar` argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// `--NAME VALUE`.
    pub fn flag(self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.arg(name).arg(value)
    }

    /// A daemon's socket to follow (repeat for fail-over, in order).
    pub fn socket(self, path: &Path) -> Self {
        self.flag("--socket", path)
    }

    /// Where it writes the snapshot it applied.
    pub fn out(self, path: &Path) -> Self {
        self.flag("--out", path)
    }

    /// Its stderr goes to `path` (else nowhere).
    pub fn log(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    pub fn spawn(self) -> Sidecar {
        let stderr = match &self.log {
            Some(p) => Stdio::from(std::fs::File::create(p).expect("sidecar log")),
            None => Stdio::null(),
        };
        Sidecar(
            Command::new(bin())
                .arg("sidecar")
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn rgmerge sidecar"),
        )
    }
}

/// A running `rgmerge sidecar`, killed when dropped.
pub struct Sidecar(pub Child);

impl Sidecar {
    /// `rgmerge sidecar --group GROUP --node-id NODE --interval 1`, to
    /// which the test adds sockets, `--out` and anything else.
    pub fn builder(group: &str, node: &str) -> SidecarBuilder {
        SidecarBuilder {
            args: Vec::new(),
            log: None,
        }
        .flag("--group", group)
        .flag("--node-id", node)
        .flag("--interval", "1")
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

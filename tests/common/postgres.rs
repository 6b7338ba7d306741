//! A real PostgreSQL server for a test: `initdb` in a temporary directory,
//! served on a Unix socket in it only (no TCP), stopped when dropped. Run
//! as the `postgres` user when the tests run as root (PostgreSQL refuses
//! root). Without PostgreSQL on the machine a test is skipped with a
//! printed reason, except under `CI=true`, where it fails
//! (`scripts/test.sh` installs Debian's `postgresql`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct PgServer {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run the server's tools as this user (`None`: as ourselves).
    user: Option<String>,
    running: bool,
    /// With [`PgServer::serve_tls`]: TCP on 127.0.0.1 at this port, TLS only.
    port: Option<u16>,
    /// The certificate and key files it presents then.
    tls: Option<(PathBuf, PathBuf)>,
}

/// The newest `/usr/lib/postgresql/N/bin` (Debian's layout), else the PATH's.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((v, bin)) = versions.pop() {
        return (v >= 15).then_some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    bin.join("initdb").exists().then_some(bin)
}

impl PgServer {
    /// A fresh server, or `None` (printed) when PostgreSQL is not installed.
    pub fn start() -> Option<PgServer> {
        let mut s = PgServer::init()?;
        s.start_server();
        Some(s)
    }

    /// A fresh cluster, initialized but not serving (see [`PgServer::serve_tls`]).
    pub fn init() -> Option<PgServer> {
        let Some(bin) = find_bin() else {
            let why = "PostgreSQL 15 or later is not installed (initdb not found); scripts/test.sh installs Debian's postgresql";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("rgm-pg")
            .tempdir()
            .expect("tempdir");
        let user = root.then(|| "postgres".to_string());
        if root {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown the server's directory to postgres");
        }
        let s = PgServer {
            dir,
            bin,
            user,
            running: false,
            port: None,
            tls: None,
        };
        let data = s.data();
        let out = s.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb: {}", show(&out));
        Some(s)
    }

    /// (Re)starts the server on TCP 127.0.0.1 (a free port) as well as its
    /// socket, with `ssl = on`, presenting `cert`/`key` (PEM), and refusing
    /// TCP in the clear (`pg_hba.conf`): a client that works used TLS.
    pub fn serve_tls(&mut self, tag: &str, cert: &str, key: &str) {
        if self.running {
            self.stop_server();
        }
        let data = self.data();
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n";
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        let (crt, k) = (
            data.join(format!("{tag}.crt")),
            data.join(format!("{tag}.key")),
        );
        std::fs::write(&crt, cert).expect("cert");
        std::fs::write(&k, key).expect("key");
        // PostgreSQL refuses a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        self.chown(&data);
        self.port.get_or_insert_with(super::daemon::free_port);
        self.tls = Some((crt, k));
        self.start_server();
    }

    /// The TCP port [`PgServer::serve_tls`] serves on (chosen on first ask).
    pub fn port(&mut self) -> u16 {
        *self.port.get_or_insert_with(super::daemon::free_port)
    }

    fn chown(&self, path: &Path) {
        if let Some(u) = &self.user {
            let st = Command::new("chown")
                .args(["-R", &format!("{u}:{u}")])
                .arg(path)
                .status()
                .expect("chown");
            assert!(st.success(), "chown to {u}");
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).output().expect("run a PostgreSQL tool")
    }

    /// Starts (or restarts) the server on the same data.
    pub fn start_server(&mut self) {
        let data = self.data();
        let mut opts = format!(
            "-k {} -c fsync=off -c max_connections=200",
            self.socket_dir().display()
        );
        match (&self.port, &self.tls) {
            (Some(port), Some((crt, k))) => opts.push_str(&format!(
                " -c listen_addresses=127.0.0.1 -c port={port} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                crt.display(),
                k.display()
            )),
            _ => opts.push_str(" -c listen_addresses=''"),
        }
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-o",
                &opts,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            show(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the server (fast: open sessions are ended).
    pub fn stop_server(&mut self) {
        let data = self.data();
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop: {}", show(&out));
        self.running = false;
    }

    /// Runs SQL as the superuser on `db`.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let dir = self.socket_dir().to_str().expect("utf-8").to_string();
        // The socket's name carries the port.
        let port = self.port.unwrap_or(5432).to_string();
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &dir,
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
        );
        assert!(out.status.success(), "psql {sql}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database; its URL.
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// The URL of database `name` over the socket.
    pub fn url(&self, name: &str) -> String {
        let dir = self.socket_dir().to_str().expect("utf-8");
        format!("postgres://postgres@{}/{name}", dir.replace('/', "%2F"))
    }
}

fn show(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let _ = self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap_or_default(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
    }
}

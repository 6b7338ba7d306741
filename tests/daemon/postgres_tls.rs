//! TLS to a real PostgreSQL (issue 27): a server with `ssl = on` on
//! 127.0.0.1, its certificate made here by a test CA, and TCP connections
//! without TLS refused by `pg_hba.conf`. The real `rgmerge serve` connects
//! with `sslmode=verify-full&sslrootcert=ca.pem` and works; a certificate
//! for another name is refused under `verify-full` (naming the mismatch) and
//! accepted under `verify-ca`; `require` works with no root.
//!
//! The server is started here rather than by `common/postgres.rs` (which
//! serves a Unix socket only): same layout, same skip rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::daemon::free_port;
use crate::common::{Daemon, service};

struct TlsServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<String>,
    port: u16,
    running: bool,
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

fn show(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A test CA and server certificates it signs.
struct Pki {
    ca: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = params.self_signed(&key).expect("ca");
        Pki {
            ca,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `name`: (cert PEM, key PEM).
    fn server(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

impl TlsServer {
    /// An initialized cluster with database `rg` (not yet serving TCP), or
    /// `None` (printed) without PostgreSQL; under `CI=true` that fails.
    fn init() -> Option<TlsServer> {
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
            .prefix("rgm-pgtls")
            .tempdir()
            .expect("tempdir");
        let s = TlsServer {
            dir,
            bin,
            user: root.then(|| "postgres".to_string()),
            port: free_port(),
            running: false,
        };
        s.chown(s.dir.path());
        let data = s.data();
        let out = s.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb: {}", show(&out));
        // TCP only over TLS: a connection in the clear is refused, so a
        // daemon that works is one that used TLS.
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n";
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        Some(s)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
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

    /// (Re)starts serving 127.0.0.1 with TLS, presenting `cert`/`key`.
    fn serve_with(&mut self, tag: &str, cert: &str, key: &str) {
        if self.running {
            self.stop();
        }
        let (crt, k) = (
            self.data().join(format!("{tag}.crt")),
            self.data().join(format!("{tag}.key")),
        );
        std::fs::write(&crt, cert).expect("cert");
        std::fs::write(&k, key).expect("key");
        self.chown(&crt);
        self.chown(&k);
        // PostgreSQL refuses a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let opts = format!(
            "-k {} -c listen_addresses=127.0.0.1 -c port={} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c fsync=off",
            self.dir.path().display(),
            self.port,
            crt.display(),
            k.display()
        );
        let log = self.dir.path().join("server.log");
        let data = self.data();
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

    fn stop(&mut self) {
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

    /// Runs SQL as the superuser over the Unix socket.
    fn psql(&self, db: &str, sql: &str) -> String {
        let dir = self.dir.path().to_str().expect("utf-8").to_string();
        let port = self.port.to_string();
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
}

impl Drop for TlsServer {
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

/// `rgmerge serve --store URL` expected to refuse to start: its stderr.
fn serve_refused(url: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("rg.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_rgmerge"))
        .args(["serve", "--store", url, "--socket"])
        .arg(&socket)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rgmerge serve");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!socket.exists(), "nothing was served");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A daemon on `url` serves: a group is created, configured and read back.
async fn works(url: &str, name: &str) -> Daemon {
    let d = Daemon::builder().postgres(url).start();
    let c = d.client();
    let h = c.get("/healthz").await.expect(200).json();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["store"]["kind"], "postgres", "{h}");
    let g = c.standard(name).await;
    c.put_config(&g, &service(name, &format!("{name}.internal")))
        .await
        .expect(200);
    let body = c.snapshot(&g).await.text();
    assert!(body.contains(&format!("{name}.internal")), "{body}");
    d
}

#[tokio::test]
async fn the_store_is_reached_over_verified_tls() {
    let Some(mut server) = TlsServer::init() else {
        return;
    };
    let pki = Pki::new("rgmerge test CA");
    let certs = tempfile::tempdir().expect("tempdir");
    let ca = certs.path().join("ca.pem");
    std::fs::write(&ca, pki.ca.pem()).expect("ca.pem");
    let ca_q = ca.to_str().expect("utf-8").replace('/', "%2F");
    let base = format!("postgres://postgres@localhost:{}/postgres", server.port);

    // A certificate for localhost, signed by the CA: verify-full works.
    let (cert, key) = pki.server("localhost");
    server.serve_with("localhost", &cert, &key);
    let full = format!("{base}?sslmode=verify-full&sslrootcert={ca_q}");
    let d = works(&full, "full").await;
    // Its sessions are encrypted (the server says so).
    let ssl = server.psql(
        "postgres",
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'rgmerge'",
    );
    assert_eq!(ssl, "t", "every rgmerge session uses TLS");
    drop(d);

    // localhost defaults to no TLS, as before: this server refuses that.
    let err = serve_refused(&base);
    assert!(
        err.contains("sslmode=disable, the default for a local host"),
        "{err}"
    );
    assert!(err.contains("no encryption"), "{err}");

    // A root that did not sign the server's certificate: refused.
    let stranger = tempfile::tempdir().expect("tempdir");
    let other_ca = stranger.path().join("other.pem");
    std::fs::write(&other_ca, Pki::new("another CA").ca.pem()).expect("other.pem");
    let err = serve_refused(&format!(
        "{base}?sslmode=verify-ca&sslrootcert={}",
        other_ca.to_str().expect("utf-8")
    ));
    assert!(err.contains("sslmode=verify-ca"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // A certificate for another name, by the same CA.
    let (cert, key) = pki.server("db.other.test");
    server.serve_with("other", &cert, &key);
    let err = serve_refused(&full);
    eprintln!("verify-full against a certificate for another name: {err}");
    assert!(err.contains("sslmode=verify-full"), "{err}");
    assert!(
        err.contains(&format!("sslrootcert={}", ca.display())),
        "{err}"
    );
    assert!(
        err.contains("not valid for name \"localhost\"") && err.contains("db.other.test"),
        "the mismatch is named: {err}"
    );
    // verify-ca checks the chain only: accepted (same state as before).
    let d = works(
        &format!("{base}?sslmode=verify-ca&sslrootcert={ca_q}"),
        "ca",
    )
    .await;
    drop(d);
    // require without a root: encrypted, unverified, works.
    let d = works(&format!("{base}?sslmode=require"), "req").await;
    let groups = server.psql("postgres", "SELECT count(*) FROM groups");
    assert_eq!(
        groups, "4",
        "one database throughout: the default group and one per daemon above"
    );
    drop(d);
}

#[test]
fn a_bad_ssl_parameter_is_refused_naming_it() {
    let err = serve_refused("postgres://u@db.example.com/x?sslmode=verify");
    assert!(err.contains("sslmode=verify: not a mode"), "{err}");
    // The network default verifies, and needs a root to verify against.
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("rg.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_rgmerge"))
        .args([
            "serve",
            "--store",
            "postgres://u@db.example.com/x",
            "--socket",
        ])
        .arg(&socket)
        .env("HOME", home.path())
        .output()
        .expect("run rgmerge serve");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sslmode=verify-full, the default for a host on the network: it verifies")
            && err.contains("sslrootcert=PATH"),
        "{err}"
    );
    let err = serve_refused(
        "postgres://u@db.example.com/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    assert!(
        err.contains("sslrootcert=/nonexistent/ca.pem: can't read it"),
        "{err}"
    );
}

//! TLS to a real PostgreSQL (issue 27): a server with `ssl = on` on
//! 127.0.0.1, its certificate made here by a test CA, and TCP connections
//! without TLS refused by `pg_hba.conf`. The real `rgmerge serve` connects
//! with `sslmode=verify-full&sslrootcert=ca.pem` and works; a certificate
//! for another name is refused under `verify-full` (naming the mismatch) and
//! accepted under `verify-ca`; `require` works with no root.
//!
//! The server is `common/postgres.rs`'s, serving TLS on TCP
//! (`PgServer::serve_tls`).

use std::process::{Command, Output};

use crate::common::postgres::PgServer;
use crate::common::{Daemon, service};

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
    let Some(mut server) = PgServer::init() else {
        return;
    };
    let pki = Pki::new("rgmerge test CA");
    let certs = tempfile::tempdir().expect("tempdir");
    let ca = certs.path().join("ca.pem");
    std::fs::write(&ca, pki.ca.pem()).expect("ca.pem");
    let ca_q = ca.to_str().expect("utf-8").replace('/', "%2F");
    let base = format!("postgres://postgres@localhost:{}/postgres", server.port());

    // A certificate for localhost, signed by the CA: verify-full works.
    let (cert, key) = pki.server("localhost");
    server.serve_tls("localhost", &cert, &key);
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
    server.serve_tls("other", &cert, &key);
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

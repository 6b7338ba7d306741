//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` URL parameters,
//! over rustls with ring.
//!
//! tokio-postgres knows neither `verify-ca`/`verify-full` nor
//! `sslrootcert`, so both are read here and taken out of the URL before it
//! parses the rest. Unlike libpq, a host on the network defaults to
//! `verify-full`: configs, token hashes and certificates cross that
//! connection, so it is encrypted and its server authenticated unless the
//! URL says otherwise. A local one (a Unix socket directory, `localhost`,
//! `127.0.0.1`, `::1`) stays in the clear by default, as before.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    /// libpq tries without TLS first; tokio-postgres cannot, so this is
    /// `prefer` (TLS if the server offers it, else in the clear; unverified).
    Allow,
    Prefer,
    /// Encrypted; the server is verified only when a root is given
    /// (then as `verify-ca`, like libpq).
    Require,
    /// Encrypted; the certificate chains to `sslrootcert`, any host name.
    VerifyCa,
    /// Encrypted; the certificate chains to `sslrootcert` and names the host.
    VerifyFull,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => {
                return Err(format!(
                    "sslmode={s}: not a mode; use disable, allow, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings a URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub mode: Mode,
    /// Whether `sslmode` was in the URL (else the default for its hosts).
    pub explicit: bool,
    /// `sslrootcert`, as given.
    pub root: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of `url`'s query: the URL
/// tokio-postgres is to parse, and the values (still to be defaulted by
/// [`settle`]). Other parameters are kept byte for byte.
pub fn split(url: &str) -> Result<(String, Option<Mode>, Option<PathBuf>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None, None));
    };
    let mut kept = Vec::new();
    let (mut mode, mut root) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k).map_err(|e| format!("the URL parameter {k}: {e}"))?;
        if key != "sslmode" && key != "sslrootcert" {
            kept.push(pair);
            continue;
        }
        let value = percent_decode(v).map_err(|e| format!("{key}={v}: {e}"))?;
        match key.as_str() {
            "sslmode" => mode = Some(Mode::parse(&value)?),
            "sslrootcert" => {
                if value.is_empty() {
                    return Err(
                        "sslrootcert=: empty; give the path of a PEM file of CA certificates"
                            .into(),
                    );
                }
                root = Some(PathBuf::from(value));
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, mode, root))
}

/// A URL component with its `%XX` escapes decoded, as libpq reads a URL
/// (`+` stays `+`: this is not a form).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_string())
}

/// Whether every host of `config` is this machine: a Unix socket
/// directory or a loopback name or address.
pub fn is_local(config: &tokio_postgres::Config) -> bool {
    let host_local = |h: &Host| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    config.get_hosts().iter().all(host_local)
        && config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
}

/// The settings for `config`'s hosts: what the URL gave, else
/// `verify-full` for a host on the network and `disable` for a local one.
pub fn settle(mode: Option<Mode>, root: Option<PathBuf>, local: bool) -> Params {
    Params {
        mode: mode.unwrap_or(if local {
            Mode::Disable
        } else {
            Mode::VerifyFull
        }),
        explicit: mode.is_some(),
        root,
    }
}

/// libpq's default `sslrootcert`: `~/.postgresql/root.crt`.
fn default_root() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".postgresql/root.crt");
    p.is_file().then_some(p)
}

/// The CA certificates in the PEM file `path`.
fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| format!("sslrootcert={shown}: can't read it: {e}"))?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| format!("sslrootcert={shown}: certificate {}: {e}", i + 1))?;
        roots.add(cert).map_err(|e| {
            format!(
                "sslrootcert={shown}: certificate {} is not usable as a root: {e}",
                i + 1
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert={shown}: no PEM certificate in it (expected \"-----BEGIN CERTIFICATE-----\")"
        ));
    }
    Ok(roots)
}

/// The TLS provider: ring, as the cluster endpoint's (deprecated in rustls
/// only for lacking post-quantum key exchange; aws-lc-rs needs cmake).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How tokio-postgres is to connect and the rustls connector it uses.
pub struct Connector {
    pub ssl_mode: SslMode,
    pub make: MakeRustlsConnect,
    /// What the connection checks, for messages ("sslmode=verify-full,
    /// sslrootcert=ca.pem").
    pub describe: String,
}

/// The connector `p` asks for. A verifying mode without a root (neither
/// `sslrootcert` nor `~/.postgresql/root.crt`) is refused here, before any
/// connection, rather than connecting unverified.
pub fn connector(p: &Params) -> Result<Connector, String> {
    let provider = provider();
    let root = p.root.clone().or_else(default_root);
    let how = match (p.explicit, p.mode) {
        (true, m) => format!("sslmode={}", m.as_str()),
        (false, Mode::VerifyFull) => {
            "sslmode=verify-full, the default for a host on the network".to_string()
        }
        (false, m) => format!("sslmode={}, the default for a local host", m.as_str()),
    };
    let (ssl_mode, verifier, describe): (SslMode, Arc<dyn ServerCertVerifier>, String) = match (
        p.mode, root,
    ) {
        (Mode::Disable, _) => (SslMode::Disable, Arc::new(Unverified::new(&provider)), how),
        (Mode::Allow | Mode::Prefer, _) => {
            (SslMode::Prefer, Arc::new(Unverified::new(&provider)), how)
        }
        (Mode::Require, None) => (SslMode::Require, Arc::new(Unverified::new(&provider)), how),
        (Mode::VerifyCa | Mode::Require, Some(root)) => {
            let roots = load_roots(&root)?;
            (
                SslMode::Require,
                Arc::new(ChainOnly {
                    roots: Arc::new(roots),
                    provider: Arc::clone(&provider),
                }),
                format!("{how}, sslrootcert={}", root.display()),
            )
        }
        (Mode::VerifyFull, Some(root)) => {
            let roots = load_roots(&root)?;
            let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| format!("sslrootcert={}: {e}", root.display()))?;
            (
                SslMode::Require,
                v,
                format!("{how}, sslrootcert={}", root.display()),
            )
        }
        (Mode::VerifyCa | Mode::VerifyFull, None) => {
            return Err(format!(
                "{how}: it verifies the server's certificate and needs the CA that signed it: add sslrootcert=PATH (a PEM file; /etc/ssl/certs/ca-certificates.crt for a public CA), or sslmode=require to encrypt without verifying (~/.postgresql/root.crt, libpq's default, does not exist)"
            ));
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Connector {
        ssl_mode,
        make: MakeRustlsConnect::new(config),
        describe,
    })
}

/// `sslmode=require` (no root) and `prefer`: the connection is encrypted but
/// whoever answers is accepted, as in libpq. The handshake's signatures are
/// still checked, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct Unverified {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl Unverified {
    fn new(provider: &CryptoProvider) -> Unverified {
        Unverified {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: webpki checks the chain to the roots (signatures, validity,
/// usage) exactly as for `verify-full`, and only the host-name check is
/// skipped — for servers reached by a name their certificate doesn't carry.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, Params) {
        let (rest, mode, root) = split(url).expect("splits");
        let config: tokio_postgres::Config = rest.parse().expect("tokio-postgres parses the rest");
        (rest, settle(mode, root, is_local(&config)))
    }

    #[test]
    fn ssl_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, p) = parsed(
            "postgres://u:pw@db.example.com:5433/rg?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        );
        assert_eq!(
            rest,
            "postgres://u:pw@db.example.com:5433/rg?application_name=x&connect_timeout=5"
        );
        assert_eq!(p.mode, Mode::VerifyCa);
        assert!(p.explicit);
        assert_eq!(p.root.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (rest, p) = parsed("postgres://u@h/db?sslrootcert=ca.pem");
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(p.root.as_deref(), Some(Path::new("ca.pem")));
        // Percent-decoded as libpq does; `+` is a plus, not a space.
        let (_, p) = parsed("postgres://u@h/db?ssl%6dode=require&sslrootcert=%2Fetc%2Fc+a%20x.pem");
        assert_eq!(p.mode, Mode::Require);
        assert_eq!(p.root.as_deref(), Some(Path::new("/etc/c+a x.pem")));
    }

    #[test]
    fn every_libpq_mode_is_read() {
        for (s, m) in [
            ("disable", Mode::Disable),
            ("allow", Mode::Allow),
            ("prefer", Mode::Prefer),
            ("require", Mode::Require),
            ("verify-ca", Mode::VerifyCa),
            ("verify-full", Mode::VerifyFull),
        ] {
            let (_, p) = parsed(&format!("postgres://u@db.example.com/x?sslmode={s}"));
            assert_eq!(p.mode, m);
            assert_eq!(m.as_str(), s);
        }
    }

    #[test]
    fn a_host_on_the_network_defaults_to_verify_full_and_a_local_one_to_disable() {
        for url in [
            "postgres://u@db.example.com/x",
            "postgres://u@10.0.0.5:5432/x",
            "postgres://u@localhost,db.example.com/x",
            "postgres:///x?host=db.example.com",
        ] {
            let (_, p) = parsed(url);
            assert_eq!(p.mode, Mode::VerifyFull, "{url}");
            assert!(!p.explicit);
        }
        for url in [
            "postgres://u@localhost/x",
            "postgres://u@127.0.0.1:5433/x",
            "postgres://u@[::1]/x",
            "postgres://u@%2Frun%2Fpostgresql/x",
            "postgres:///x?host=/tmp",
        ] {
            let (_, p) = parsed(url);
            assert_eq!(p.mode, Mode::Disable, "{url}");
        }
        // Explicit wins either way.
        let (_, p) = parsed("postgres://u@db.example.com/x?sslmode=disable");
        assert_eq!(p.mode, Mode::Disable);
        let (_, p) = parsed("postgres://u@localhost/x?sslmode=verify-full");
        assert_eq!(p.mode, Mode::VerifyFull);
    }

    #[test]
    fn bad_values_name_the_parameter_and_the_reason() {
        let e = split("postgres://u@h/x?sslmode=verify").expect_err("refused");
        assert!(e.starts_with("sslmode=verify: not a mode"), "{e}");
        let e = split("postgres://u@h/x?sslrootcert=").expect_err("refused");
        assert!(e.starts_with("sslrootcert=: empty"), "{e}");
        let e = split("postgres://u@h/x?sslrootcert=%2").expect_err("refused");
        assert_eq!(e, "sslrootcert=%2: a '%' not followed by two hex digits");
        let p = settle(
            Some(Mode::VerifyFull),
            Some(PathBuf::from("/nonexistent/ca.pem")),
            false,
        );
        let e = connector(&p).err().expect("refused");
        assert!(
            e.starts_with("sslrootcert=/nonexistent/ca.pem: can't read it"),
            "{e}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").expect("write");
        let e = connector(&settle(Some(Mode::VerifyCa), Some(junk), false))
            .err()
            .expect("refused");
        assert!(e.contains("no PEM certificate in it"), "{e}");
    }

    #[test]
    fn a_verifying_mode_without_a_root_is_refused_before_connecting() {
        let p = Params {
            mode: Mode::VerifyFull,
            explicit: false,
            root: None,
        };
        // Only where libpq's default root file is absent (as on a clean machine).
        if default_root().is_none() {
            let e = connector(&p).err().expect("refused");
            assert!(
                e.starts_with(
                    "sslmode=verify-full, the default for a host on the network: it verifies"
                ),
                "{e}"
            );
            assert!(e.contains("sslrootcert=PATH"), "{e}");
        }
        // Modes that don't verify need no root.
        for mode in [Mode::Disable, Mode::Allow, Mode::Prefer, Mode::Require] {
            let c = connector(&Params {
                mode,
                explicit: true,
                root: None,
            });
            assert!(c.is_ok(), "{mode:?}");
        }
    }

    #[test]
    fn a_root_file_is_read_and_require_with_a_root_verifies_the_chain() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).expect("ca");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).expect("write");
        let c =
            connector(&settle(Some(Mode::Require), Some(path.clone()), false)).expect("connector");
        assert_eq!(c.ssl_mode, SslMode::Require);
        assert!(c.describe.contains("sslrootcert="), "{}", c.describe);
        let c = connector(&settle(Some(Mode::VerifyFull), Some(path), false)).expect("connector");
        assert_eq!(
            c.describe,
            format!(
                "sslmode=verify-full, sslrootcert={}",
                dir.path().join("ca.pem").display()
            )
        );
    }
}

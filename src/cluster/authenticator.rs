//! Who may connect: the data plane's client certificate against its group's
//! `auth_type` and `dp-client-certificates` (Konnect's rules; koko's
//! `authenticator`).
//!
//! TLS asks every client for a certificate but decides nothing beyond the
//! handshake's own signature: which group a connection is for is known only
//! from its server name, so the decision is made after the handshake and
//! before the WebSocket upgrade, where a refusal can be answered with an HTTP
//! status and audited.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime, pem::PemObject};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::registry::{AuthType, GroupView};

/// Asks for a client certificate and checks only that the client holds its
/// key (the handshake signature). Konnect's documented pinned certificate is
/// a self-signed `CA:TRUE` leaf that webpki refuses, so chain checks are ours.
#[derive(Debug)]
pub struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    pub fn new(provider: &CryptoProvider) -> AnyClientCert {
        AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Optional at the TLS layer so that a client without one is answered
    /// with a 401 it can read (and audited), not a bare alert.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

/// Why a data plane was not admitted; `status` is the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    pub reason: String,
}

impl Denied {
    fn new(status: u16, reason: impl Into<String>) -> Denied {
        Denied {
            status,
            reason: reason.into(),
        }
    }
}

/// Whether the certificate chain a data plane presented admits it to `view`'s
/// group at `now` (Unix seconds).
pub fn admit(
    view: &GroupView,
    chain: &[CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
    now: u64,
) -> Result<(), Denied> {
    let Some(leaf) = chain.first() else {
        return Err(Denied::new(401, "a client certificate is required"));
    };
    let registered: Vec<CertificateDer<'static>> = view
        .certificates()
        .iter()
        .filter_map(|c| CertificateDer::from_pem_slice(c.cert.as_bytes()).ok())
        .collect();
    // Refusals name no group: the caller is not yet known to be its.
    if registered.is_empty() {
        return Err(Denied::new(
            403,
            "this control plane has no dp-client-certificates: register one first",
        ));
    }
    match view.meta.auth_type {
        AuthType::PinnedClientCerts => {
            if !registered.iter().any(|r| r.as_ref() == leaf.as_ref()) {
                return Err(Denied::new(
                    403,
                    format!(
                        "client certificate {} is not pinned on this control plane",
                        fingerprint(leaf)
                    ),
                ));
            }
            within_validity(leaf, now)
        }
        AuthType::PkiClientCerts => {
            let mut roots = rustls::RootCertStore::empty();
            for r in &registered {
                // A certificate that is not a usable trust anchor is skipped:
                // it admits nobody.
                let _ = roots.add(r.clone());
            }
            if roots.is_empty() {
                return Err(Denied::new(
                    403,
                    "this control plane has no usable CA certificate",
                ));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(provider),
            )
            .build()
            .map_err(|e| Denied::new(403, format!("CA certificates: {e}")))?;
            verifier
                .verify_client_cert(leaf, &chain[1..], UnixTime::since_unix_epoch(
                    std::time::Duration::from_secs(now),
                ))
                .map_err(|e| {
                    Denied::new(
                        403,
                        format!(
                            "client certificate {} does not chain to a CA certificate of this control plane: {e}",
                            fingerprint(leaf)
                        ),
                    )
                })?;
            Ok(())
        }
    }
}

/// A pinned certificate is still checked for its validity period.
fn within_validity(leaf: &CertificateDer<'_>, now: u64) -> Result<(), Denied> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| Denied::new(403, format!("client certificate does not parse: {e}")))?;
    let v = cert.validity();
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    if now < v.not_before.timestamp() {
        return Err(Denied::new(
            403,
            format!(
                "client certificate {} is not valid before {}",
                fingerprint(leaf),
                v.not_before
            ),
        ));
    }
    if now > v.not_after.timestamp() {
        return Err(Denied::new(
            403,
            format!(
                "client certificate {} expired at {}",
                fingerprint(leaf),
                v.not_after
            ),
        ));
    }
    Ok(())
}

/// When the presented certificate stops being valid (Unix seconds): a
/// connection admitted with it is closed then.
pub fn not_after(chain: &[CertificateDer<'_>]) -> Option<u64> {
    let leaf = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    u64::try_from(cert.validity().not_after.timestamp()).ok()
}

/// The first 16 hex digits of a certificate's blake3: enough to find it in
/// an audit entry, never its contents.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let h = blake3::hash(cert.as_ref()).to_hex();
    format!("blake3:{}", &h[..16])
}

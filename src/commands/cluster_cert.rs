//! `rgmerge cluster-cert`: certificates for the cluster endpoint, the job of
//! `kong hybrid gen_cert`: a CA, a server certificate for `*.DOMAIN` signed
//! by it, and, if asked, a self-signed data-plane certificate to pin.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// The files written, in order.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "cluster.crt";
pub const SERVER_KEY: &str = "cluster.key";
pub const DP_CERT: &str = "dp.crt";
pub const DP_KEY: &str = "dp.key";

/// Writes the CA and the server certificate for `*.domain` (and `domain`)
/// into `out` (created; existing files are not overwritten), and with
/// `dp_cn` a self-signed client certificate for a data plane, as Konnect's
/// docs make one for pinning. Keys are written with mode 0600.
pub fn write(domain: &str, out: &Path, dp_cn: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let domain = domain.trim().trim_start_matches("*.").to_ascii_lowercase();
    if domain.is_empty()
        || !domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        return Err(format!("--domain '{domain}' is not a DNS name"));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let err = |e: rcgen::Error| e.to_string();

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("rgmerge cluster CA for {domain}"),
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let server_key = KeyPair::generate().map_err(err)?;
    let mut server =
        CertificateParams::new(vec![format!("*.{domain}"), domain.clone()]).map_err(err)?;
    server
        .distinguished_name
        .push(DnType::CommonName, format!("*.{domain}"));
    server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = rcgen::date_time_ymd(2024, 1, 1);
    server.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let server_cert = server.signed_by(&server_key, &issuer).map_err(err)?;

    let mut files = vec![
        (CA_CERT, ca_cert.pem(), false),
        (CA_KEY, ca_key.serialize_pem(), true),
        // The chain, so a data plane that trusts only the CA can verify it.
        (
            SERVER_CERT,
            format!("{}{}", server_cert.pem(), ca_cert.pem()),
            false,
        ),
        (SERVER_KEY, server_key.serialize_pem(), true),
    ];
    if let Some(cn) = dp_cn {
        // Konnect's documented pinned certificate: self-signed, EC P-384.
        let dp_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(err)?;
        let mut dp = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        dp.distinguished_name.push(DnType::CommonName, cn);
        dp.not_before = rcgen::date_time_ymd(2024, 1, 1);
        dp.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let dp_cert = dp.self_signed(&dp_key).map_err(err)?;
        files.push((DP_CERT, dp_cert.pem(), false));
        files.push((DP_KEY, dp_key.serialize_pem(), true));
    }
    let mut written = Vec::new();
    for (name, text, secret) in files {
        let path = out.join(name);
        write_new(&path, text.as_bytes(), secret)?;
        written.push(path);
    }
    Ok(written)
}

fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_a_wildcard_server_certificate_it_signed() {
        let dir = tempfile::tempdir().unwrap();
        let files = write("cp.example.test", dir.path(), Some("kong-dp")).unwrap();
        assert_eq!(files.len(), 6);
        let pem = std::fs::read(dir.path().join(SERVER_CERT)).unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = p.parse_x509().unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        assert!(format!("{:?}", sans.value).contains("*.cp.example.test"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SERVER_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Never overwrites.
        assert!(
            write("cp.example.test", dir.path(), None)
                .unwrap_err()
                .contains("exists")
        );
        assert!(write("not a domain", dir.path(), None).is_err());
    }
}

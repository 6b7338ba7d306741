//! Data plane client certificates pinned to a group (Konnect's "DP client
//! certificates"): a data plane presenting one may connect. Allowed on a
//! composite too — its one write besides connecting nodes, as in Konnect.
//! Each is checked on upload (PEM holding X.509 certificates only) and lives
//! in the group's record, so it is as durable as the group and goes with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tx::Undo;
use super::{Refusal, Result, Tx, now_ms};

/// Most certificates one group may pin.
pub const MAX_CERTIFICATES: usize = 1000;
/// Longest PEM text accepted, in bytes.
pub const MAX_CERT_BYTES: usize = 64 * 1024;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpCertificate {
    pub id: Uuid,
    /// The PEM text as uploaded.
    pub cert: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// A group's pinned certificates, by id.
pub type Certificates = Arc<BTreeMap<Uuid, DpCertificate>>;

/// A certificate to pin, or to put in place of one.
#[derive(Clone, Debug, Default)]
pub struct NewCertificate {
    pub cert: String,
    pub title: Option<String>,
}

/// Refuses anything but PEM text whose every block is an X.509 certificate.
pub fn check_pem(pem: &str) -> Result<()> {
    let refuse = |why: String| Err(Refusal::invalid(why).on("cert"));
    if pem.len() > MAX_CERT_BYTES {
        return refuse(format!(
            "the certificate is {} bytes, more than the {MAX_CERT_BYTES} allowed",
            pem.len()
        ));
    }
    let mut rest = pem.trim().as_bytes();
    if rest.is_empty() {
        return refuse("`cert` is empty: a PEM-encoded X.509 certificate is expected".into());
    }
    let mut blocks = 0;
    while !rest.is_empty() {
        let (after, block) = match x509_parser::pem::parse_x509_pem(rest) {
            Ok(parsed) => parsed,
            Err(e) => {
                return refuse(format!(
                    "`cert` is not a PEM-encoded X.509 certificate: {e}"
                ));
            }
        };
        if block.label != "CERTIFICATE" {
            return refuse(format!(
                "`cert` holds a PEM block labelled '{}': only CERTIFICATE blocks are accepted (never a private key)",
                block.label.chars().take(64).collect::<String>()
            ));
        }
        if let Err(e) = block.parse_x509() {
            return refuse(format!(
                "`cert` holds a CERTIFICATE block that is not a valid X.509 certificate: {e}"
            ));
        }
        blocks += 1;
        rest = trim_start(after);
    }
    if blocks == 0 {
        return refuse("`cert` holds no certificate".into());
    }
    Ok(())
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn check_title(title: Option<&str>) -> Result<()> {
    if let Some(t) = title
        && (t.chars().count() > MAX_TITLE || t.chars().any(char::is_control))
    {
        return Err(Refusal::invalid(format!(
            "`title` must be at most {MAX_TITLE} printable characters"
        ))
        .on("title"));
    }
    Ok(())
}

impl Tx<'_> {
    /// Pins a certificate to group `gid` (a standard group or a composite).
    pub fn add_certificate(&mut self, gid: Uuid, new: NewCertificate) -> Result<DpCertificate> {
        check_pem(&new.cert)?;
        check_title(new.title.as_deref())?;
        let g = self.reg.group(gid)?;
        if g.certificates.len() >= MAX_CERTIFICATES {
            return Err(Refusal::invalid(format!(
                "control plane '{}' already pins {MAX_CERTIFICATES} certificates, the most it may",
                g.meta.name
            ))
            .on("cert"));
        }
        if g.certificates
            .values()
            .any(|c| same_pem(&c.cert, &new.cert))
        {
            return Err(Refusal::invalid(format!(
                "this certificate is already pinned to control plane '{}'",
                g.meta.name
            ))
            .on("cert"));
        }
        let now = now_ms();
        let cert = DpCertificate {
            id: Uuid::new_v4(),
            cert: new.cert,
            title: new.title,
            created_ms: now,
            updated_ms: now,
        };
        self.change_certificates(gid, |all| {
            all.insert(cert.id, cert.clone());
        })?;
        Ok(cert)
    }

    /// Puts `new` in place of certificate `cid` of group `gid`.
    pub fn update_certificate(
        &mut self,
        gid: Uuid,
        cid: Uuid,
        new: NewCertificate,
    ) -> Result<DpCertificate> {
        check_pem(&new.cert)?;
        check_title(new.title.as_deref())?;
        let g = self.reg.group(gid)?;
        let Some(old) = g.certificates.get(&cid) else {
            return Err(not_found(cid, &g.meta.name));
        };
        if g.certificates
            .values()
            .any(|c| c.id != cid && same_pem(&c.cert, &new.cert))
        {
            return Err(Refusal::invalid(format!(
                "this certificate is already pinned to control plane '{}'",
                g.meta.name
            ))
            .on("cert"));
        }
        let cert = DpCertificate {
            id: cid,
            cert: new.cert,
            title: new.title,
            created_ms: old.created_ms,
            updated_ms: now_ms(),
        };
        self.change_certificates(gid, |all| {
            all.insert(cid, cert.clone());
        })?;
        Ok(cert)
    }

    /// Unpins certificate `cid` of group `gid`.
    pub fn delete_certificate(&mut self, gid: Uuid, cid: Uuid) -> Result<()> {
        let g = self.reg.group(gid)?;
        if !g.certificates.contains_key(&cid) {
            return Err(not_found(cid, &g.meta.name));
        }
        self.change_certificates(gid, |all| {
            all.remove(&cid);
        })
    }

    fn change_certificates(
        &mut self,
        gid: Uuid,
        change: impl FnOnce(&mut BTreeMap<Uuid, DpCertificate>),
    ) -> Result<()> {
        let before = self.reg.group(gid)?.certificates.clone();
        self.undo.push(Undo::Certificates(gid, before));
        change(Arc::make_mut(&mut self.group_mut(gid)?.certificates));
        self.touch(gid);
        Ok(())
    }
}

fn not_found(cid: Uuid, group: &str) -> Refusal {
    Refusal::not_found(format!(
        "no certificate with id {cid} is pinned to control plane '{group}'"
    ))
}

/// The same certificate, whatever the line endings and surrounding space.
fn same_pem(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String { s.split_whitespace().collect() };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_is_checked() {
        assert!(check_pem("").is_err());
        assert!(check_pem("not a certificate").is_err());
        assert!(
            check_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
        assert!(
            check_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
        let e = check_pem("x").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("cert"));
        let a = rcgen::generate_simple_self_signed(vec!["dp-1.example.com".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["dp-2.example.com".into()]).unwrap();
        assert_eq!(check_pem(&a.cert.pem()), Ok(()));
        let chain = format!("{}\r\n{}", a.cert.pem(), b.cert.pem());
        assert_eq!(check_pem(&chain), Ok(()));
        let with_key = format!("{}{}", a.cert.pem(), a.signing_key.serialize_pem());
        assert!(check_pem(&with_key).is_err());
        assert!(same_pem(&a.cert.pem(), &a.cert.pem().replace('\n', "\r\n")));
    }
}

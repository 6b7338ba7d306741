//! String formats Kong's schemas check (`kong/db/schema/typedefs.lua`):
//! hosts, SNIs, IPs and CIDRs, paths, URLs, names, tags, header names,
//! `host:port` targets, PEM certificates and keys, JWKs.
//!
//! Each check returns `Err(reason)` with the reason in words; the caller
//! adds the field and the path. Hand-written scanners, no allocation on
//! the success path; the one regex engine is for a route's `~` path, which
//! Kong compiles with PCRE2 (`pcre::check`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// What a host-like string is, as Kong's `normalize_ip` tells it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HostKind {
    Name,
    Ipv4,
    Ipv6,
}

/// A host with an optional `:port` (`[v6]:port` for IPv6), as Kong's
/// `utils.normalize_ip` reads it.
pub fn host_port(s: &str) -> Result<(HostKind, Option<u32>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("an IPv6 address opened with `[` must close with `]`".into());
        };
        let (ip, after) = (&rest[..end], &rest[end + 1..]);
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err("not a valid IPv6 address".into());
        }
        let port = match after {
            "" => None,
            p => Some(port_suffix(p)?),
        };
        return Ok((HostKind::Ipv6, port));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((HostKind::Ipv6, None));
    }
    let (name, port) = match s.rsplit_once(':') {
        Some((n, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (n, Some(port_number(p)?))
        }
        Some(_) => return Err("not a valid hostname or IP address".into()),
        None => (s, None),
    };
    if is_ipv4_shaped(name) {
        return if name.parse::<Ipv4Addr>().is_ok() {
            Ok((HostKind::Ipv4, port))
        } else {
            Err("not a valid IPv4 address".into())
        };
    }
    hostname(name)?;
    Ok((HostKind::Name, port))
}

fn port_suffix(p: &str) -> Result<u32, String> {
    match p.strip_prefix(':') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => port_number(d),
        _ => Err("not a valid host:port".into()),
    }
}

fn port_number(d: &str) -> Result<u32, String> {
    match d.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(n),
        _ => Err("invalid port number (0–65535)".into()),
    }
}

fn is_ipv4_shaped(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.contains('.')
}

/// Kong's hostname check: letters, digits, `-`, `.`, `_`; no label ends with
/// `-`; no empty label except a trailing dot.
pub fn hostname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err("not a valid hostname (letters, digits, `-`, `.`, `_`)".into());
    }
    let labels = s.split('.').count();
    for (i, label) in s.split('.').enumerate() {
        if (label.is_empty() && i + 1 != labels) || label.ends_with('-') {
            return Err("not a valid hostname (an empty label, or one ending in `-`)".into());
        }
    }
    Ok(())
}

/// `typedefs.host`: a hostname or an IP, without a port.
pub fn host(s: &str) -> Result<(), String> {
    match host_port(s)? {
        (_, Some(_)) => Err("must not have a port".into()),
        _ => Ok(()),
    }
}

/// `typedefs.host_with_optional_port`: a hostname or an IP, a port allowed.
pub fn host_with_optional_port(s: &str) -> Result<(), String> {
    host_port(s).map(drop)
}

/// `typedefs.sni` (`validate_sni`): a name, not an IP, without a port.
pub fn sni(s: &str) -> Result<(), String> {
    match host_port(s) {
        Err(_) => Err(format!("invalid value: {s}")),
        Ok((HostKind::Name, None)) => Ok(()),
        Ok((HostKind::Name, Some(_))) => Err("must not have a port".into()),
        Ok(_) => Err("must not be an IP".into()),
    }
}

/// `typedefs.cookie_name` (`validate_http_token`): an RFC 2616 token —
/// no control, space, non-ASCII or separator byte.
pub fn cookie_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("no token provided".into());
    }
    let bad = |b: u8| !(0x21..0x7f).contains(&b) || b"()<>@,;:\\\"/?={}[]".contains(&b);
    if s.bytes().any(bad) {
        return Err(
            "contains one or more invalid characters. ASCII control characters \
                    (0-31;127), space, tab and the characters ()<>@,;:\\\"/?={}[] are not \
                    allowed."
                .into(),
        );
    }
    Ok(())
}

/// `typedefs.wildcard_host` (SNI names): one `*` at most, leftmost or
/// rightmost; a name, not an IP; no port.
pub fn wildcard_host(s: &str) -> Result<(), String> {
    let stars = s.matches('*').count();
    if stars > 1 {
        return Err("only one wildcard must be specified".into());
    }
    if stars == 1 && !(s.starts_with('*') || s.ends_with('*')) {
        return Err("wildcard must be leftmost or rightmost character".into());
    }
    let probe = s.replacen('*', "wildcard", 1);
    match host_port(&probe)? {
        (_, Some(_)) => Err("must not have a port".into()),
        (HostKind::Name, None) => Ok(()),
        _ => Err("must not be an IP".into()),
    }
}

/// A route's `hosts` element: one wildcard at most, as the leftmost or
/// rightmost label; a port is allowed.
pub fn route_host(s: &str) -> Result<(), String> {
    let stars = s.matches('*').count();
    if stars > 1 {
        return Err("invalid wildcard: must have at most one wildcard".into());
    }
    if stars == 1 && !(s.starts_with("*.") || s.ends_with(".*")) {
        return Err("invalid wildcard: must be placed at leftmost or rightmost label".into());
    }
    let probe = s.replacen('*', "abc", 1);
    host_port(&probe).map(|_| ())
}

/// `typedefs.ip`.
pub fn ip(s: &str) -> Result<(), String> {
    if s.parse::<Ipv4Addr>().is_ok() || s.parse::<Ipv6Addr>().is_ok() {
        Ok(())
    } else {
        Err("not an IP address".into())
    }
}

/// `typedefs.ip_or_cidr`: an IPv4 or IPv6 address, optionally `/prefix`.
pub fn ip_or_cidr(s: &str) -> Result<(), String> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let max = if addr.parse::<Ipv4Addr>().is_ok() {
        32
    } else if addr.parse::<Ipv6Addr>().is_ok() {
        128
    } else {
        return Err("invalid ip or cidr range".into());
    };
    match bits {
        None => Ok(()),
        Some(b) => match b.parse::<u32>() {
            Ok(n) if n <= max && !b.starts_with('+') => Ok(()),
            _ => Err(format!(
                "invalid cidr range: the prefix length must be 0–{max}"
            )),
        },
    }
}

/// `typedefs.cidr_v4` (IPv4 with an optional prefix length).
pub fn cidr_v4(s: &str) -> Result<(), String> {
    let addr = s.split('/').next().unwrap_or("");
    if addr.parse::<Ipv4Addr>().is_err() {
        return Err("invalid cidr range: not an IPv4 address".into());
    }
    ip_or_cidr(s)
}

fn percent_ok(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(
                    "invalid url-encoded value: `%` must be followed by two hex digits".into(),
                );
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// A service's `path` (`typedefs.path`): starts with `/`, no empty
/// segment, RFC 3986 characters only, well percent-encoded.
pub fn service_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("should start with: /".into());
    }
    if s.contains("//") {
        return Err("must not have empty segments".into());
    }
    if let Some(c) = s.chars().find(|&c| !is_path_char(c)) {
        return Err(format!(
            "invalid path: characters outside of the reserved list of RFC 3986 found ({})",
            c.escape_debug()
        ));
    }
    percent_ok(s)
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-~/%:@!$&'()*+,;=".contains(c)
}

/// A route's `paths` element (`typedefs.router_path`): `/…`, a prefix in
/// normalized form, or `~/…`, a regex (the regex itself is only compiled by
/// Kong); no empty segment; well-formed percent-escapes.
pub fn route_path(s: &str) -> Result<(), String> {
    let regex = s.starts_with("~/");
    if !s.starts_with('/') && !regex {
        return Err("should start with: / (fixed path) or ~/ (regex path)".into());
    }
    if s.contains("//") {
        return Err("must not have empty segments".into());
    }
    // Kong checks the escapes only of paths made of RFC 3986 characters.
    if s.chars().all(is_path_char) {
        percent_ok(s)?;
    }
    if regex {
        // Kong dry-runs the regex with PCRE2 (`ngx.re.find("", re, "aj")`).
        let re = &s[1..];
        return super::pcre::check(re)
            .map_err(|e| format!("invalid regex: '{re}' (PCRE returned: {e})"));
    }
    for seg in s.split('/') {
        if seg == "." || seg == ".." {
            return Err("non-normalized path: `.` and `..` segments are not allowed".into());
        }
    }
    // Kong's normal form decodes every escape but those of reserved
    // characters (and `%`), which it writes in upper case.
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        let Some(h) = s.get(i + 1..i + 3) else { break };
        let Ok(v) = u8::from_str_radix(h, 16) else {
            i += 1;
            continue;
        };
        let c = v as char;
        let keep = v == b'%' || (c.is_ascii() && ":/?#[]@!$&'()*+,;=".contains(c));
        if !keep {
            return Err(format!(
                "non-normalized path: `%{h}` must be written decoded (Kong compares paths in normalized form)"
            ));
        }
        if h.bytes().any(|x| x.is_ascii_lowercase()) {
            return Err(format!(
                "non-normalized path: write `%{h}` in upper case (`%{}`)",
                h.to_ascii_uppercase()
            ));
        }
        i += 3;
    }
    Ok(())
}

/// `typedefs.url`: a scheme and a host (`socket.url`'s reading).
pub fn url(s: &str) -> Result<Url<'_>, String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("missing scheme in url (`http://host/...`)".into());
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err("missing scheme in url".into());
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return Err("missing host in url".into());
    }
    let path_end = rest[end..].find(['?', '#']).map_or(rest.len(), |i| end + i);
    Ok(Url {
        scheme,
        host_port,
        path: &rest[end..path_end],
    })
}

/// The parts of a URL a service's `url` shorthand fills in.
#[derive(Debug)]
pub struct Url<'a> {
    pub scheme: &'a str,
    pub host_port: &'a str,
    pub path: &'a str,
}

/// `typedefs.utf8_name` (service, route, plugin `instance_name`, key and
/// key-set names): ASCII letters, digits, `.`, `-`, `_`, `~`, or non-ASCII.
/// Control characters are left to the name check (README: Finding codes, `duplicate_name`), which
/// reports them on its own.
pub fn utf8_name(s: &str) -> Result<(), String> {
    if s.chars().all(|c| {
        !c.is_ascii()
            || c.is_ascii_control()
            || c.is_ascii_alphanumeric()
            || matches!(c, '.' | '-' | '_' | '~')
    }) {
        Ok(())
    } else {
        Err("the only accepted ascii characters are alphanumerics or ., -, _, and ~".into())
    }
}

/// `typedefs.tag`: printable ASCII except `,` and `/`, or non-ASCII.
pub fn tag(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("a tag must not be empty".into());
    }
    if s.chars()
        .all(|c| !c.is_ascii() || ((' '..='~').contains(&c) && c != ',' && c != '/'))
    {
        Ok(())
    } else {
        Err(
            "invalid tag: expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
                .into(),
        )
    }
}

/// `typedefs.header_name`: letters, digits, `-` and `_`.
pub fn header_name(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err("bad header name: only letters, digits, `-` and `_` are allowed".into())
    }
}

/// An HTTP method as routes take it: upper-case letters only.
pub fn http_method(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("invalid value: methods are upper-case letters only (`GET`)".into())
    }
}

/// A target's `target`: a hostname or IP with an optional port.
pub fn target(s: &str) -> Result<(), String> {
    host_port(s)
        .map(|_| ())
        .map_err(|e| format!("not a valid hostname or ip address with an optional port: {e}"))
}

/// A vault's `name` and `prefix` shapes: lower-case letters, digits, `-` and `_`.
pub fn vault_prefix(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err("must be lower-case letters, digits, `-` or `_`".into())
    }
}

/// `{vault://…}`: checked only when resolved, by Kong; fields that may hold
/// one skip their format check.
pub fn is_vault_ref(s: &str) -> bool {
    s.starts_with("{vault://") && s.ends_with('}')
}

/// `typedefs.certificate`: a PEM certificate that parses.
pub fn certificate(s: &str) -> Result<CertInfo, String> {
    use x509_parser::prelude::*;
    let (_, pem) = x509_parser::pem::parse_x509_pem(s.as_bytes()).map_err(|_| {
        "invalid certificate: not a PEM block (`-----BEGIN CERTIFICATE-----`)".to_string()
    })?;
    if pem.label != "CERTIFICATE" && pem.label != "TRUSTED CERTIFICATE" {
        return Err(format!(
            "invalid certificate: a PEM `{}` block, not a CERTIFICATE",
            pem.label
        ));
    }
    let (_, cert) = X509Certificate::from_der(&pem.contents)
        .map_err(|e| format!("invalid certificate: the X.509 structure does not parse ({e})"))?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let key_kind = cert.public_key().algorithm.algorithm.to_id_string();
    let public = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => Some(strip_zeros(k.modulus).to_vec()),
        Ok(x509_parser::public_key::PublicKey::EC(p)) => Some(p.data().to_vec()),
        _ => None,
    };
    Ok(CertInfo {
        is_ca,
        key_kind,
        public,
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&x| x == 0).count();
    &b[n..]
}

/// One DER TLV at the start of `der`: (tag, content, rest).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *der.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((tag, der.get(head..end)?, der.get(end..)?))
}

/// What a private key says of its public half: the RSA modulus, or the EC
/// public point when the key carries it. `None` when it cannot tell.
fn private_key_public(label: &str, der: &[u8]) -> Option<Vec<u8>> {
    let (tag, body, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    match label {
        "RSA PRIVATE KEY" => rsa_modulus(body),
        "EC PRIVATE KEY" => ec_point(body),
        "PRIVATE KEY" => {
            // PKCS#8: version, algorithm, OCTET STRING with the inner key.
            let (_, _, rest) = tlv(body)?;
            let (alg_tag, alg, rest) = tlv(rest)?;
            let (key_tag, inner, _) = tlv(rest)?;
            if alg_tag != 0x30 || key_tag != 0x04 {
                return None;
            }
            let (_, oid, _) = tlv(alg)?;
            let (inner_tag, inner_body, _) = tlv(inner)?;
            if inner_tag != 0x30 {
                return None;
            }
            match oid {
                // 1.2.840.113549.1.1.1 rsaEncryption
                [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] => rsa_modulus(inner_body),
                // 1.2.840.10045.2.1 id-ecPublicKey
                [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => ec_point(inner_body),
                _ => None,
            }
        }
        _ => None,
    }
}

/// RSAPrivateKey: version, modulus, …
fn rsa_modulus(body: &[u8]) -> Option<Vec<u8>> {
    let (_, _, rest) = tlv(body)?;
    let (tag, n, _) = tlv(rest)?;
    (tag == 0x02).then(|| strip_zeros(n).to_vec())
}

/// ECPrivateKey: version, privateKey, [0] parameters, [1] publicKey.
fn ec_point(body: &[u8]) -> Option<Vec<u8>> {
    let mut rest = body;
    while !rest.is_empty() {
        let (tag, content, next) = tlv(rest)?;
        if tag == 0xa1 {
            let (bit_tag, bits, _) = tlv(content)?;
            // A BIT STRING: its first byte counts unused bits.
            return (bit_tag == 0x03).then(|| bits.get(1..).unwrap_or_default().to_vec());
        }
        rest = next;
    }
    None
}

/// Whether a certificate's public key and a PEM private key are halves of
/// one pair. `None` when that cannot be told (an encrypted key, another
/// algorithm, an EC key without its public point).
pub fn key_matches(cert: &CertInfo, key_pem: &str) -> Option<bool> {
    let public = cert.public.as_ref()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(key_pem.as_bytes()).ok()?;
    let from_key = private_key_public(&pem.label, &pem.contents)?;
    Some(&from_key == public)
}

/// What the checks of other fields need to know about a certificate.
#[derive(Debug)]
pub struct CertInfo {
    pub is_ca: bool,
    /// The OID of its public key's algorithm (RSA, EC, Ed25519, …).
    pub key_kind: String,
    /// Its RSA modulus or EC point, to compare with a private key.
    pub public: Option<Vec<u8>>,
}

/// `typedefs.key`: a PEM private or public key whose DER is well formed.
pub fn key(s: &str) -> Result<(), String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(s.as_bytes())
        .map_err(|_| "invalid key: not a PEM block (`-----BEGIN PRIVATE KEY-----`)".to_string())?;
    let label = pem.label.as_str();
    let known = [
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PUBLIC KEY",
        "RSA PUBLIC KEY",
    ];
    if !known.contains(&label) {
        return Err(format!("invalid key: a PEM `{label}` block is not a key"));
    }
    der_sequence(&pem.contents).map_err(|e| format!("invalid key: {e}"))
}

/// A DER value that is one SEQUENCE spanning the whole input, with every
/// element inside it well formed.
fn der_sequence(der: &[u8]) -> Result<(), String> {
    if der.first() != Some(&0x30) {
        return Err("the key's DER is not a SEQUENCE".into());
    }
    let end = der_tlv(der, 0, 0)?;
    if end != der.len() {
        return Err("trailing bytes after the key's DER".into());
    }
    Ok(())
}

/// Walks one TLV at `at`, returns where it ends.
fn der_tlv(der: &[u8], at: usize, depth: usize) -> Result<usize, String> {
    let bad = || "the key's DER is malformed".to_string();
    if depth > 16 {
        return Err(bad());
    }
    let tag = *der.get(at).ok_or_else(bad)?;
    let first = *der.get(at + 1).ok_or_else(bad)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return Err(bad());
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *der.get(at + 2 + i).ok_or_else(bad)? as usize;
        }
        (len, 2 + n)
    };
    let start = at + head;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= der.len())
        .ok_or_else(bad)?;
    if tag & 0x20 != 0 {
        let mut i = start;
        while i < end {
            i = der_tlv(der, i, depth + 1)?;
        }
        if i != end {
            return Err(bad());
        }
    }
    Ok(end)
}

/// `keys.jwk`: a JSON object with `kty` and `kid` (Kong parses it as a JWK).
pub fn jwk(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("invalid JWK: not JSON ({e})"))?;
    let serde_json::Value::Object(o) = v else {
        return Err("invalid JWK: must be a JSON object".into());
    };
    if !o.get("kty").is_some_and(serde_json::Value::is_string) {
        return Err("invalid JWK: needs a `kty` string".into());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(host("example.com").is_ok());
        assert!(host("10.0.0.1").is_ok());
        assert!(host("::1").is_ok());
        assert!(host("example.com:80").is_err());
        assert!(host("exa mple").is_err());
        assert!(host("bad-.com").is_err());
        assert!(host("300.1.1.1").is_err());
        assert!(target("example.com:8080").is_ok());
        assert!(target("[::1]:80").is_ok());
        assert!(target("example.com:70000").is_err());
        assert!(route_host("*.example.com").is_ok());
        assert!(route_host("example.*").is_ok());
        assert!(route_host("ex*ample.com").is_err());
        assert!(wildcard_host("*.example.com").is_ok());
        assert!(wildcard_host("10.0.0.1").is_err());
    }

    #[test]
    fn paths() {
        assert!(route_path("/orders").is_ok());
        assert!(route_path("~/orders/\\d+$").is_ok());
        assert!(route_path("~orders").is_err());
        assert!(route_path("/%20").is_err());
        assert!(route_path("/%25").is_ok());
        assert!(route_path("orders").is_err());
        assert!(route_path("/a//b").is_err());
        assert!(route_path("/a/../b").is_err());
        assert!(route_path("/a%2").is_err());
        assert!(route_path("/a%41").is_err());
        assert!(route_path("/a%2f").is_err());
        assert!(route_path("/a%2F").is_ok());
        assert!(service_path("/").is_ok());
        assert!(service_path("/a b").is_err());
    }

    #[test]
    fn cidrs_and_names() {
        assert!(ip_or_cidr("10.0.0.0/8").is_ok());
        assert!(ip_or_cidr("::/0").is_ok());
        assert!(ip_or_cidr("10.0.0.0/33").is_err());
        assert!(utf8_name("orders-v1.2_x~").is_ok());
        assert!(utf8_name("my service").is_err());
        assert!(tag("k8s-name:httpbin").is_ok());
        assert!(tag("a,b").is_err());
        assert!(tag("a/b").is_err());
    }

    #[test]
    fn snis_cookies_and_optional_ports() {
        assert_eq!(sni("api.example.com"), Ok(()));
        assert_eq!(sni("10.0.0.1"), Err("must not be an IP".into()));
        assert_eq!(
            sni("api.example.com:443"),
            Err("must not have a port".into())
        );
        assert!(sni("a b").is_err());
        assert_eq!(cookie_name("session_id-1!#$%&'*+.^`|~"), Ok(()));
        for bad in [
            "",
            "a b",
            "a\tb",
            "a=b",
            "a;b",
            "[a]",
            "caf\u{e9}",
            "a\u{7f}",
        ] {
            assert!(cookie_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(host_with_optional_port("api.example.com:8443"), Ok(()));
        assert_eq!(host_with_optional_port("[::1]:80"), Ok(()));
        assert!(host_with_optional_port("api example").is_err());
    }
}

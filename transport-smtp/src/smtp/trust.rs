//! Which server certificates an account trusts, and how a refused certificate is described.
//!
//! The TLS handshake itself (see [`super::tls`]) only proves that the server holds the key of
//! the certificate it presented; this module then decides whether that certificate is trusted:
//! verified against the system's store plus the bundled web roots plus `ca_file`, pinned by
//! `tls_fingerprint`, or not checked at all (`accept_invalid_certs`). Deciding after the
//! handshake, in one place, lets STARTTLS and implicit TLS share the policy, and keeps the
//! presented certificate at hand to describe it when refused.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, RootCertStore};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

/// A SHA-256 certificate fingerprint, written `sha256:AB:CD:...`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parses `sha256:AB:CD:...`; the prefix, the colons and the case are optional, so a value
    /// copied from `openssl x509 -fingerprint -sha256` works too.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let text = text.trim();
        let hex = match text.split_once(':') {
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("sha256") => rest,
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("sha256 fingerprint=") => rest,
            _ => text,
        };
        let hex: String = hex.chars().filter(|c| *c != ':' && *c != ' ').collect();
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An account's certificate policy.
pub enum Trust {
    /// Verify the chain and the host name against the system's trust store, the bundled web
    /// roots and the certificates from `ca_file`.
    Verify {
        /// Certificates from `ca_file`.
        extra: Vec<CertificateDer<'static>>,
        /// Built on first use: reading the system store costs a few milliseconds that a
        /// plain or pinned account never needs to spend.
        verifier: OnceLock<Arc<WebPkiServerVerifier>>,
    },
    /// Trust exactly the certificate with this fingerprint, whatever its issuer, names or
    /// dates: the operator vouched for these very bytes.
    Pin(Fingerprint),
    /// Trust any certificate (`accept_invalid_certs = true`).
    AcceptAny,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::Verify { extra, .. } => write!(f, "Verify({} extra)", extra.len()),
            Trust::Pin(pin) => write!(f, "Pin({pin})"),
            Trust::AcceptAny => f.write_str("AcceptAny"),
        }
    }
}

/// Why a presented certificate was refused.
#[derive(Debug, Clone)]
pub struct CertProblem {
    /// Completes "the server's certificate ...": e.g. "is not signed by any authority ...".
    pub reason: String,
    /// The certificate was refused because it does not match `tls_fingerprint`.
    pub pin_mismatch: bool,
    /// The server's own (leaf) certificate, when it presented one.
    pub certificate: Option<CertificateDer<'static>>,
    /// Advice specific to this refusal, replacing the general one.
    pub hint: Option<String>,
}

impl Trust {
    /// The default policy, plus the certificates of `ca_file` when given.
    pub fn verify(extra: Vec<CertificateDer<'static>>) -> Trust {
        Trust::Verify {
            extra,
            verifier: OnceLock::new(),
        }
    }

    /// Decides whether `chain` (leaf first), presented by `host`, is trusted.
    pub fn check(&self, chain: &[CertificateDer<'_>], host: &str) -> Result<(), CertProblem> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(CertProblem {
                reason: "is missing: the server presented no certificate".into(),
                pin_mismatch: false,
                certificate: None,
                hint: None,
            });
        };
        let refuse = |reason: String, pin_mismatch: bool| CertProblem {
            reason,
            pin_mismatch,
            certificate: Some(leaf.clone().into_owned()),
            hint: None,
        };
        match self {
            Trust::AcceptAny => Ok(()),
            Trust::Pin(pin) => {
                let presented = Fingerprint::of(leaf);
                if presented == *pin {
                    Ok(())
                } else {
                    Err(refuse(
                        format!("does not match tls_fingerprint (expected {pin}, the server presented {presented})"),
                        true,
                    ))
                }
            }
            Trust::Verify { extra, verifier } => {
                let name = ServerName::try_from(host.to_string()).map_err(|_| {
                    refuse(
                        format!("cannot be checked: '{host}' is not a valid host name"),
                        false,
                    )
                })?;
                let verifier = verifier.get_or_init(|| build_verifier(extra));
                let now = UnixTime::now();
                let Err(error) = verifier.verify_server_cert(leaf, intermediates, &name, &[], now)
                else {
                    return Ok(());
                };
                // The server presents exactly a certificate from `ca_file`: the operator
                // vouched for these bytes, so what a chain check would add (the issuer, and
                // that a CA certificate is not used as a server's, which a typical
                // `openssl req -x509` certificate is: CA:TRUE) is moot. Its dates and names
                // still count.
                if extra.iter().any(|cert| cert.as_ref() == leaf.as_ref()) {
                    return check_exact(leaf, &name, now).map_err(|e| CertProblem {
                        hint: Some(exact_hint(&e, host)),
                        ..refuse(explain(&e, host), false)
                    });
                }
                Err(refuse(explain(&error, host), false))
            }
        }
    }

    /// Whether certificates from `ca_file` are trusted (in addition to the system's).
    pub fn has_ca_file(&self) -> bool {
        matches!(self, Trust::Verify { extra, .. } if !extra.is_empty())
    }
}

/// The checks that remain for a server certificate found verbatim in `ca_file`: its
/// validity dates, its purpose (when it restricts it) and the name the account connects to.
fn check_exact(
    leaf: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now_secs < validity.not_before.timestamp() {
        return Err(CertificateError::NotValidYet.into());
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(CertificateError::Expired.into());
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if !eku.value.any && !eku.value.server_auth {
            return Err(CertificateError::InvalidPurpose.into());
        }
    }
    let parsed = ParsedCertificate::try_from(leaf)?;
    rustls::client::verify_server_name(&parsed, name)
}

/// What to do when the very certificate in `ca_file` fails the remaining checks.
fn exact_hint(error: &rustls::Error, host: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("ca_file holds exactly this certificate, but it does not name '{host}': set `host` to one of the names listed below, or reissue the certificate with '{host}' as a subject alternative name (or pin it with the tls_fingerprint line below, which ignores names)"),
        _ => "ca_file holds exactly this certificate, but the certificate itself is not usable (see above): reissue the server's certificate and update ca_file, or pin it with the tls_fingerprint line below, which ignores dates and names".to_string(),
    }
}

fn build_verifier(extra: &[CertificateDer<'static>]) -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    // The system store first (a certificate the operator added there is trusted, as on a
    // desktop), then the bundled web roots for machines with an empty or missing store.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // `ca_file` was validated by `open`; a certificate that still fails here is skipped.
    roots.add_parsable_certificates(extra.iter().cloned());
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), super::tls::crypto_provider())
        .build()
        .expect("the bundled web roots make the root store non-empty")
}

fn explain(error: &rustls::Error, host: &str) -> String {
    let rustls::Error::InvalidCertificate(error) = error else {
        return format!("could not be verified ({error})");
    };
    match error {
        CertificateError::UnknownIssuer => "is not signed by any authority this computer trusts (it is self-signed or issued by a private CA)".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("is not valid for the name '{host}' the account connects to")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "is not valid yet (check this computer's clock)".into()
        }
        CertificateError::Revoked => "has been revoked".into(),
        CertificateError::BadSignature => "has an invalid signature".into(),
        CertificateError::BadEncoding => "could not be parsed".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "is not meant for a server (its extended key usage forbids it)".into()
        }
        CertificateError::Other(other) if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)) => {
            "is marked as a certificate authority (basic constraints CA:TRUE, as `openssl req -x509` makes by default), and an authority's certificate is not accepted as a server's own unless ca_file holds exactly this certificate".into()
        }
        other => format!("was refused ({other:?})"),
    }
}

/// Reads `ca_file`: one or more PEM certificates (a CA bundle, or the server's own
/// self-signed certificate), or a single DER certificate.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("it is not valid PEM: {e}"))?;
    let certs = if certs.is_empty() {
        if x509_parser::parse_x509_certificate(&bytes).is_err() {
            return Err("it contains no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks or one DER certificate)".into());
        }
        vec![CertificateDer::from(bytes)]
    } else {
        certs
    };
    for cert in &certs {
        // Validate now, so `postflight check` reports a bad file instead of a later send.
        RootCertStore::empty().add(cert.clone()).map_err(|e| {
            format!("it holds a certificate that cannot be trusted as an authority: {e}")
        })?;
    }
    Ok(certs)
}

/// Describes a certificate for the operator: subject, issuer, validity, names and SHA-256
/// fingerprint, followed by the exact line that pins it.
pub fn describe(der: &[u8]) -> String {
    let fingerprint = Fingerprint::of(der);
    let mut out = String::new();
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
            out.push_str(&format!("  subject:  {}\n", cert.subject()));
            out.push_str(&format!(
                "  issuer:   {}{}\n",
                cert.issuer(),
                if self_signed { " (self-signed)" } else { "" }
            ));
            let validity = cert.validity();
            let state = if !cert.validity().is_valid() {
                if validity.not_after.timestamp() < x509_parser::time::ASN1Time::now().timestamp() {
                    " (expired)"
                } else {
                    " (not yet valid)"
                }
            } else {
                ""
            };
            out.push_str(&format!(
                "  valid:    {} to {}{state}\n",
                time_text(validity.not_before),
                time_text(validity.not_after)
            ));
            let names = names(&cert);
            if !names.is_empty() {
                out.push_str(&format!("  names:    {}\n", names.join(", ")));
            }
        }
        Err(e) => out.push_str(&format!("  (the certificate could not be parsed: {e})\n")),
    }
    out.push_str(&format!(
        "  sha256:   {}\n",
        &fingerprint.to_string()["sha256:".len()..]
    ));
    out.push_str(&format!(
        "to trust exactly this certificate, add to the account:\n  tls_fingerprint = \"{fingerprint}\""
    ));
    out
}

fn time_text(time: x509_parser::time::ASN1Time) -> String {
    time.to_rfc2822().unwrap_or_else(|_| time.to_string())
}

fn names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip)
                    .ok()
                    .map(|b| Ipv4Addr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|b| Ipv6Addr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["mail.test".to_string(), "127.0.0.1".to_string()])
            .unwrap()
    }

    #[test]
    fn fingerprints_parse_in_common_spellings() {
        let fp = Fingerprint([0xab; 32]);
        let text = fp.to_string();
        assert!(text.starts_with("sha256:AB:AB:"));
        assert_eq!(Fingerprint::parse(&text), Some(fp));
        assert_eq!(Fingerprint::parse(&text.to_lowercase()), Some(fp));
        assert_eq!(Fingerprint::parse(&"ab".repeat(32)), Some(fp));
        assert_eq!(Fingerprint::parse("sha256:AB:CD"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
    }

    #[test]
    fn self_signed_is_refused_by_default_and_trusted_by_pin_or_ca() {
        let key = self_signed();
        let der = key.cert.der().clone();
        let chain = [der.clone()];

        let problem = Trust::verify(Vec::new())
            .check(&chain, "mail.test")
            .unwrap_err();
        assert!(problem.reason.contains("self-signed"), "{}", problem.reason);
        assert!(!problem.pin_mismatch);

        Trust::Pin(Fingerprint::of(&der))
            .check(&chain, "anything")
            .unwrap();
        let wrong = Trust::Pin(Fingerprint([0; 32]))
            .check(&chain, "mail.test")
            .unwrap_err();
        assert!(wrong.pin_mismatch);

        let ca = Trust::verify(vec![der.clone()]);
        ca.check(&chain, "mail.test").unwrap();
        ca.check(&chain, "127.0.0.1").unwrap();
        let name = ca.check(&chain, "other.test").unwrap_err();
        assert!(name.reason.contains("other.test"), "{}", name.reason);

        Trust::AcceptAny.check(&chain, "other.test").unwrap();
        assert!(Trust::AcceptAny.check(&[], "x").is_err());
    }

    /// What `openssl req -x509` makes with OpenSSL 3: a self-signed certificate marked CA:TRUE.
    fn self_signed_ca(names: &[&str], dates: Option<(i32, i32)>) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        if let Some((from, to)) = dates {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_ca_flagged_self_signed_certificate_in_ca_file_is_trusted() {
        let der = self_signed_ca(&["127.0.0.1", "mail.test"], None);
        let chain = [der.clone()];

        // Not in ca_file: refused, in plain words (not `Other(OtherError(...))`).
        let problem = Trust::verify(Vec::new())
            .check(&chain, "mail.test")
            .unwrap_err();
        assert!(
            problem.reason.contains("certificate authority")
                && problem.reason.contains("CA:TRUE")
                && !problem.reason.contains("OtherError"),
            "{}",
            problem.reason
        );
        let other = self_signed();
        let problem = Trust::verify(vec![other.cert.der().clone()])
            .check(&chain, "mail.test")
            .unwrap_err();
        assert!(problem.reason.contains("CA:TRUE"), "{}", problem.reason);

        // Exactly this certificate in ca_file: trusted for the names it lists.
        let trust = Trust::verify(vec![other.cert.der().clone(), der.clone()]);
        trust.check(&chain, "127.0.0.1").unwrap();
        trust.check(&chain, "mail.test").unwrap();
        let problem = trust.check(&chain, "other.test").unwrap_err();
        assert!(problem.reason.contains("other.test"), "{}", problem.reason);
        assert!(
            problem.hint.as_deref().unwrap().contains("does not name"),
            "{problem:?}"
        );
    }

    #[test]
    fn a_certificate_in_ca_file_still_needs_valid_dates() {
        let expired = self_signed_ca(&["mail.test"], Some((2000, 2001)));
        let problem = Trust::verify(vec![expired.clone()])
            .check(&[expired], "mail.test")
            .unwrap_err();
        assert!(problem.reason.contains("expired"), "{}", problem.reason);
        assert!(problem.hint.is_some());

        let future = self_signed_ca(&["mail.test"], Some((2999, 3000)));
        let problem = Trust::verify(vec![future.clone()])
            .check(&[future], "mail.test")
            .unwrap_err();
        assert!(
            problem.reason.contains("not valid yet"),
            "{}",
            problem.reason
        );
    }

    #[test]
    fn description_has_the_pin_line() {
        let key = self_signed();
        let der = key.cert.der();
        let text = describe(der);
        assert!(text.contains("subject:"), "{text}");
        assert!(text.contains("(self-signed)"), "{text}");
        assert!(text.contains("mail.test, 127.0.0.1"), "{text}");
        let line = format!("tls_fingerprint = \"{}\"", Fingerprint::of(der));
        assert!(text.ends_with(&line), "{text}");
    }

    #[test]
    fn ca_files_in_pem_and_der() {
        let key = self_signed();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, key.cert.pem()).unwrap();
        assert_eq!(load_ca_file(&pem).unwrap().len(), 1);
        let der = dir.path().join("ca.der");
        std::fs::write(&der, key.cert.der()).unwrap();
        assert_eq!(load_ca_file(&der).unwrap().len(), 1);
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "hello").unwrap();
        assert!(load_ca_file(&junk).unwrap_err().contains("no certificate"));
        assert!(load_ca_file(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot read"));
    }
}

//! Turns every way an SMTP attempt can fail into a classified [`DeliveryError`]: what
//! happened, the server's reply quoted, whether a retry can help (DESIGN section 7: SMTP 5xx
//! permanent; 4xx, connection, DNS, TLS and timeouts transient) and what the operator should do.
//!
//! Nothing here performs I/O, and no message is built from the password: server replies
//! during login are additionally scrubbed of it in case a server echoes what it was sent.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use lettre::Address;
use postflight_core::{DeliveryError, ErrorKind};

use super::config::{Security, SmtpConfig};
use super::starttls::PlainFailure;
use super::trust::{self, CertProblem};

/// The step of an SMTP attempt that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Resolving the host name.
    Resolve,
    /// Opening the TCP connection.
    Connect,
    /// The implicit-TLS handshake.
    TlsHandshake,
    /// Reading the greeting and the EHLO exchange.
    Greeting,
    /// The STARTTLS command and handshake.
    Starttls,
    /// AUTH.
    Auth,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// The DATA command.
    Data,
    /// Sending the message and waiting for the server to accept it.
    Message,
    /// RSET after refused recipients.
    Reset,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolve => "looking up the server's address",
            Stage::Connect => "connecting",
            Stage::TlsHandshake => "the TLS handshake",
            Stage::Greeting => "waiting for the server's greeting",
            Stage::Starttls => "STARTTLS",
            Stage::Auth => "login (AUTH)",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "sending the message",
            Stage::Reset => "RSET",
        })
    }
}

/// An SMTP reply taken from a lettre error: `535 5.7.8 Authentication failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The code and text as the server sent them (lines joined).
    pub text: String,
}

impl Reply {
    /// The reply carried by a lettre error, when the server sent one.
    pub fn of(error: &lettre::transport::smtp::Error) -> Option<Reply> {
        let code = error.status()?;
        let message = error.source().map(|s| s.to_string()).unwrap_or_default();
        let text = if message.is_empty() {
            code.to_string()
        } else {
            format!("{code} {message}")
        };
        Some(Reply {
            code: code.into(),
            text,
        })
    }

    /// 4xx: the server asks to try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    fn is_rate_limit(&self) -> bool {
        let text = self.text.to_ascii_lowercase();
        self.is_transient()
            && (text.contains("rate")
                || text.contains("too many")
                || text.contains("try again later"))
    }
}

/// A classified error, transient or permanent as the reply code says.
fn from_reply(kind: ErrorKind, reply: &Reply, message: String) -> DeliveryError {
    DeliveryError::new(kind, !reply.is_transient(), message).with_reply(reply.text.clone())
}

fn current_mode(config: &SmtpConfig) -> String {
    format!(
        "this account uses port {} with security = \"{}\"",
        config.port,
        config.security.name()
    )
}

fn mode_hint(config: &SmtpConfig) -> String {
    format!(
        "STARTTLS is usually port 587 (security = \"starttls\") and implicit TLS port 465 (security = \"tls\"); {}",
        current_mode(config)
    )
}

/// The host name could not be resolved.
pub fn dns(config: &SmtpConfig, error: &io::Error) -> DeliveryError {
    DeliveryError::transient(
        ErrorKind::Dns,
        format!("cannot find the address of '{}': {error}", config.host),
    )
    .with_hint("check the spelling of `host` and this computer's network and DNS settings; the notification stays queued and is retried")
}

/// The name resolved to no usable address.
pub fn no_address(config: &SmtpConfig) -> DeliveryError {
    DeliveryError::transient(
        ErrorKind::Dns,
        format!("'{}' resolved to no address", config.host),
    )
    .with_hint("check the spelling of `host`")
}

/// No TCP connection could be opened.
pub fn connect(config: &SmtpConfig, error: &io::Error) -> DeliveryError {
    let hint = match error.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "nothing accepts connections on {}: check that the mail server runs, that a firewall does not reject the connection, and that `port` is right ({})",
            config.target(),
            mode_hint(config)
        ),
        _ => "check this computer's network connection and any firewall between it and the server; the notification stays queued and is retried".to_string(),
    };
    DeliveryError::transient(
        ErrorKind::Connect,
        format!("cannot connect to {}: {error}", config.target()),
    )
    .with_hint(hint)
}

/// `send_timeout` ran out during `stage`.
pub fn timeout(config: &SmtpConfig, stage: Stage) -> DeliveryError {
    let limit = format!("{:.1} s", config.timeout.as_secs_f64());
    let (message, hint) = match stage {
        Stage::Resolve | Stage::Connect => (
            format!("no connection to {} within send_timeout ({limit}) while {stage}", config.target()),
            "the server is unreachable or a firewall silently drops the connection; check host and port".to_string(),
        ),
        Stage::Greeting if config.security != Security::Tls => (
            format!("{} accepted the connection but sent no SMTP greeting within send_timeout ({limit})", config.target()),
            format!("if this port expects TLS from the first byte (usually 465), set security = \"tls\"; {}", current_mode(config)),
        ),
        Stage::TlsHandshake => (
            format!("the TLS handshake with {} did not finish within send_timeout ({limit})", config.target()),
            format!("if the port speaks plain SMTP first (usually 587 or 25), set security = \"starttls\"; {}", current_mode(config)),
        ),
        _ => (
            format!("the server {} did not answer within send_timeout ({limit}) during {stage}", config.target()),
            "the server is slow or stuck; the notification stays queued and is retried (raise `send_timeout` if the server is just slow)".to_string(),
        ),
    };
    DeliveryError::transient(ErrorKind::Timeout, message).with_hint(hint)
}

/// The server does not offer STARTTLS although `security = "starttls"`.
pub fn starttls_missing(config: &SmtpConfig) -> DeliveryError {
    DeliveryError::transient(
        ErrorKind::StarttlsUnavailable,
        format!("{} does not offer STARTTLS, and this account requires it (security = \"starttls\"); nothing was sent", config.target()),
    )
    .with_hint(format!(
        "postflight never falls back to an unencrypted connection. If the server uses implicit TLS (usually port 465), set security = \"tls\"; if it is a trusted local relay without encryption, set security = \"none\". {}",
        "If the server normally offers STARTTLS, something on the network path may be removing it."
    ))
}

/// The server sent more after its `220` reply to STARTTLS, before the TLS handshake
/// (RFC 3207 section 6 forbids it): those bytes would be taken for replies that came over
/// TLS, which is how an attacker on the path injects a fake "accepted".
pub fn starttls_injection(config: &SmtpConfig, extra: &[u8]) -> DeliveryError {
    DeliveryError::transient(
        ErrorKind::Tls,
        format!(
            "{} sent {} unexpected byte(s) right after agreeing to STARTTLS, before the TLS handshake; postflight stopped there and nothing was sent",
            config.target(),
            extra.len()
        ),
    )
    .with_hint(
        "nothing may follow the server's 220 reply to STARTTLS until TLS is established (RFC 3207): either the server is broken, or something on the network path is injecting commands into the connection. The notification stays queued and is retried; if it keeps happening, try from another network or ask the server's administrator. Implicit TLS (security = \"tls\", usually port 465) has no plaintext step to tamper with",
    )
    .with_details(format!(
        "the data received before the handshake: \"{}\"",
        super::starttls::quote(extra)
    ))
}

/// A reply read before TLS (greeting, EHLO, STARTTLS) that refuses.
pub fn reply(config: &SmtpConfig, stage: Stage, reply: &Reply) -> DeliveryError {
    reply_error(config, stage, reply)
}

/// The plaintext exchange before STARTTLS failed without a reply.
pub fn plain(config: &SmtpConfig, stage: Stage, failure: &PlainFailure) -> DeliveryError {
    let target = config.target();
    match failure {
        PlainFailure::Closed => {
            let hint = if stage == Stage::Greeting {
                format!(
                    "the server hung up before talking SMTP; {}",
                    mode_hint(config)
                )
            } else {
                "the notification stays queued and is retried".to_string()
            };
            DeliveryError::transient(
                ErrorKind::Protocol,
                format!("{target} closed the connection during {stage}"),
            )
            .with_hint(hint)
        }
        PlainFailure::NotSmtp(detail) => DeliveryError::transient(
            ErrorKind::Protocol,
            format!("{target} sent a reply that is not SMTP during {stage} ({detail})"),
        )
        .with_hint(format!("is this an SMTP server? {}", mode_hint(config))),
        PlainFailure::Broken(error) => DeliveryError::transient(
            ErrorKind::Connect,
            format!("the connection to {target} broke during {stage} ({error})"),
        )
        .with_hint("the notification stays queued and is retried"),
    }
}

/// A certificate was not trusted; `details` describes it and gives the pinning line.
pub fn certificate(config: &SmtpConfig, problem: &CertProblem) -> DeliveryError {
    let mut error = DeliveryError::transient(
        ErrorKind::Certificate,
        format!(
            "the certificate of {} {}; nothing was sent",
            config.target(),
            problem.reason
        ),
    );
    error = if problem.pin_mismatch {
        error.with_hint("the server now presents a different certificate than the one pinned by tls_fingerprint. If the server's certificate was renewed on purpose, replace tls_fingerprint with the line below; if not, someone may be intercepting the connection")
    } else if let Some(hint) = &problem.hint {
        error.with_hint(hint.clone())
    } else if config.trust.has_ca_file() {
        error.with_hint("ca_file is set, but it holds neither this certificate nor the authority that issued it: point ca_file at exactly the certificate described below (or at its issuing CA), or pin exactly this certificate with the tls_fingerprint line below")
    } else {
        error.with_hint("if this is your own server's certificate (self-signed or from a private CA), trust it with `ca_file = \"/path/to/its-certificate.pem\"` or pin exactly this certificate with the tls_fingerprint line below; `accept_invalid_certs = true` would also get through but disables the check entirely")
    };
    if let Some(cert) = &problem.certificate {
        error = error.with_details(format!(
            "certificate presented by {}:\n{}",
            config.target(),
            trust::describe(cert)
        ));
    }
    error
}

/// The TLS handshake (implicit or after STARTTLS) failed for a reason other than trust.
pub fn tls_handshake(config: &SmtpConfig, error: &(dyn StdError + 'static)) -> DeliveryError {
    let detail = innermost(error);
    let (what, hint) = match find::<rustls::Error>(error) {
        Some(rustls::Error::InvalidMessage(_)) if config.security == Security::Tls => (
            "the server did not answer with TLS".to_string(),
            format!("it probably speaks plain SMTP on this port: use security = \"starttls\" (usually port 587); {}", current_mode(config)),
        ),
        Some(rustls::Error::InvalidMessage(_)) if config.security == Security::StartTls => (
            "the server did not start TLS after agreeing to STARTTLS".to_string(),
            "something other than TLS arrived after the server's 220 reply: the server is broken or something on the network path interferes with the connection; the notification stays queued and is retried".to_string(),
        ),
        Some(rustls::Error::AlertReceived(alert)) => (
            format!("the server ended the TLS handshake ({alert:?})"),
            "the server may only support old TLS versions (postflight requires TLS 1.2 or newer) or want a client certificate; ask its administrator".to_string(),
        ),
        Some(rustls::Error::PeerIncompatible(_)) => (
            "the server's TLS settings are incompatible".to_string(),
            "the server may only support TLS 1.0/1.1 or weak ciphers (postflight requires TLS 1.2 or newer); ask its administrator".to_string(),
        ),
        _ => (
            "the TLS handshake failed".to_string(),
            mode_hint(config),
        ),
    };
    DeliveryError::transient(
        ErrorKind::Tls,
        format!("{what} with {} ({detail})", config.target()),
    )
    .with_hint(hint)
}

/// The server offers no AUTH mechanism postflight can use.
pub fn no_auth_mechanism(config: &SmtpConfig) -> DeliveryError {
    let hint = if config.security == Security::None {
        "many servers offer login only on an encrypted connection: use security = \"starttls\" or \"tls\"; or remove username/password if the server needs no login"
    } else {
        "remove username and password if the server needs no login; otherwise the server must offer AUTH PLAIN or LOGIN"
    };
    DeliveryError::permanent(
        ErrorKind::Auth,
        format!("{} offers no login method postflight supports (AUTH PLAIN or LOGIN) on this connection", config.target()),
    )
    .with_hint(hint)
}

/// The server refused the login.
pub fn auth_rejected(config: &SmtpConfig, reply: &Reply) -> DeliveryError {
    let username = config
        .login
        .as_ref()
        .map(|l| l.username.as_str())
        .unwrap_or_default();
    let reply = Reply {
        code: reply.code,
        text: scrub(config, &reply.text),
    };
    if reply.code == 538 || reply.code == 523 {
        return from_reply(
            ErrorKind::InsecureAuth,
            &reply,
            format!("{} requires encryption before login", config.target()),
        )
        .with_hint("use security = \"starttls\" or security = \"tls\"");
    }
    let who = config.provider.map(|p| p.title()).unwrap_or("the server");
    let mut error = from_reply(
        ErrorKind::Auth,
        &reply,
        format!("{who} rejected the login for '{username}'"),
    );
    let hint = match config.provider {
        Some(provider) => provider.auth_hint(),
        None => "check `username` and the password (and what password_env / password_file / password_command provides); many providers refuse the account password from mail programs and require an app-specific password".to_string(),
    };
    if reply.is_transient() {
        error = error.with_hint(format!("the server reported a temporary problem; the notification stays queued. If it persists: {hint}"));
    } else {
        error = error.with_hint(hint);
    }
    error
}

/// Every recipient was refused, so nothing was sent. (When only some are refused the
/// message goes to the others and the refused ones are listed in the receipt.)
pub fn recipients_rejected(config: &SmtpConfig, rejected: &[(Address, Reply)]) -> DeliveryError {
    let addresses: Vec<String> = rejected.iter().map(|(a, _)| a.to_string()).collect();
    let replies: Vec<String> = rejected
        .iter()
        .map(|(a, r)| format!("<{a}>: {}", r.text))
        .collect();
    let permanent = rejected.iter().all(|(_, r)| !r.is_transient());
    let message = format!(
        "{} refused every recipient: {}; nothing was sent",
        config.target(),
        addresses.join(", ")
    );
    let hint = if rejected
        .iter()
        .any(|(_, r)| r.text.to_ascii_lowercase().contains("relay"))
    {
        "the server does not relay for this account: log in (username/password) or send through the server responsible for these recipients"
    } else if permanent {
        "check the spelling of these addresses in `to` (or --to); remove or correct them"
    } else {
        "the server refused these recipients for now; the notification stays queued and is retried"
    };
    DeliveryError::new(ErrorKind::RecipientRejected, permanent, message)
        .with_reply(replies.join("\n"))
        .with_hint(hint)
}

/// Some recipients were refused only for now (4xx: greylisting, a full mailbox, a busy
/// server). Nothing was sent, so that no recipient silently misses the message: the whole
/// message is retried later. `refused` are the recipients refused for good in the same
/// attempt, named for completeness.
pub fn recipients_deferred(
    config: &SmtpConfig,
    deferred: &[(Address, Reply)],
    refused: &[(Address, Reply)],
) -> DeliveryError {
    let names = |list: &[(Address, Reply)]| {
        list.iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut message = format!(
        "{} refused {} for now (try again later)",
        config.target(),
        names(deferred)
    );
    if !refused.is_empty() {
        message.push_str(&format!(" and {} for good", names(refused)));
    }
    message.push_str("; nothing was sent, so that no recipient misses the message");
    let replies: Vec<String> = deferred
        .iter()
        .chain(refused)
        .map(|(a, r)| format!("<{a}>: {}", r.text))
        .collect();
    DeliveryError::transient(ErrorKind::RecipientRejected, message)
        .with_reply(replies.join("\n"))
        .with_hint("the server asks to try these recipients again later (greylisting, a full mailbox or a busy server); the notification stays queued and the whole message is retried for every recipient")
}

/// An error from lettre during `stage` (a reply, or a broken connection).
pub fn smtp(
    config: &SmtpConfig,
    stage: Stage,
    error: &lettre::transport::smtp::Error,
) -> DeliveryError {
    match Reply::of(error) {
        Some(reply) => reply_error(config, stage, &reply),
        None => transport_error(config, stage, error),
    }
}

fn reply_error(config: &SmtpConfig, stage: Stage, reply: &Reply) -> DeliveryError {
    let target = config.target();
    if reply.code == 421 {
        return from_reply(
            ErrorKind::Server,
            reply,
            format!("{target} closed the connection during {stage} (service not available)"),
        )
        .with_hint(
            "the server is busy or shutting down; the notification stays queued and is retried",
        );
    }
    if reply.is_rate_limit() {
        return from_reply(
            ErrorKind::RateLimited,
            reply,
            format!("{target} asks to slow down ({stage})"),
        )
        .with_hint("the notification stays queued and is retried later");
    }
    match stage {
        Stage::Auth => auth_rejected(config, reply),
        Stage::MailFrom if reply.code == 530 || reply.text.contains("5.7.0") && reply.text.to_ascii_lowercase().contains("auth") => {
            from_reply(ErrorKind::Auth, reply, format!("{target} requires a login before it accepts mail"))
                .with_hint("set `username` and the password (password_env, password_file, password_command or password) for this account")
        }
        Stage::MailFrom => from_reply(ErrorKind::SenderRejected, reply, format!("{target} refused the sender address"))
            .with_hint("use a `from` address that belongs to the account you log in with (many providers only accept their own or verified addresses)"),
        Stage::RcptTo => from_reply(ErrorKind::RecipientRejected, reply, format!("{target} refused a recipient")),
        Stage::Data | Stage::Message => {
            let hint = if reply.is_transient() {
                "the server could not take the message now; it stays queued and is retried"
            } else {
                "the server refused the message itself (size, content or policy); its reply says why"
            };
            from_reply(ErrorKind::MessageRejected, reply, format!("{target} refused the message")).with_hint(hint)
        }
        Stage::Greeting => from_reply(ErrorKind::Server, reply, format!("{target} refused the session (greeting or EHLO)"))
            .with_hint("the server refuses this client; if it complains about the EHLO name, set `hello_name` to this machine's fully qualified name"),
        Stage::Starttls => from_reply(ErrorKind::Tls, reply, format!("{target} refused to start TLS"))
            .with_hint("the server advertises STARTTLS but cannot start it now; ask its administrator, or try security = \"tls\" on port 465"),
        _ => from_reply(ErrorKind::Server, reply, format!("{target} refused {stage}")),
    }
}

fn transport_error(
    config: &SmtpConfig,
    stage: Stage,
    error: &lettre::transport::smtp::Error,
) -> DeliveryError {
    let target = config.target();
    if stage == Stage::Starttls && find::<rustls::Error>(error).is_some() {
        return tls_handshake(config, error);
    }
    if error.is_timeout() {
        return timeout(config, stage);
    }
    if error.is_response() {
        let detail = innermost(error);
        let (message, hint) = if detail.contains("incomplete response") {
            (
                format!("{target} closed the connection during {stage}"),
                if stage == Stage::Greeting {
                    format!(
                        "the server hung up before talking SMTP; {}",
                        mode_hint(config)
                    )
                } else {
                    "the notification stays queued and is retried".to_string()
                },
            )
        } else {
            (
                format!("{target} sent a reply that is not SMTP during {stage} ({detail})"),
                format!("is this an SMTP server? {}", mode_hint(config)),
            )
        };
        return DeliveryError::transient(ErrorKind::Protocol, message).with_hint(hint);
    }
    if error.is_client() {
        return DeliveryError::permanent(
            ErrorKind::Other,
            format!(
                "cannot continue with {target} during {stage}: {}",
                innermost(error)
            ),
        );
    }
    DeliveryError::transient(
        ErrorKind::Connect,
        format!(
            "the connection to {target} broke during {stage} ({})",
            innermost(error)
        ),
    )
    .with_hint("the notification stays queued and is retried")
}

/// The message's own addresses or encoding need an extension the server lacks.
pub fn unsupported(config: &SmtpConfig, what: &str) -> DeliveryError {
    DeliveryError::permanent(
        ErrorKind::MessageRejected,
        format!("{} cannot take this message: {what}", config.target()),
    )
}

/// Removes the password (and its base64 forms, as AUTH sends it) from a server's reply.
fn scrub(config: &SmtpConfig, text: &str) -> String {
    let Some(login) = &config.login else {
        return text.to_string();
    };
    let password = login.password.expose();
    if password.is_empty() {
        return text.to_string();
    }
    let plain = format!("\0{}\0{password}", login.username);
    let mut out = text.to_string();
    for secret in [
        password.to_string(),
        base64(password.as_bytes()),
        base64(plain.as_bytes()),
    ] {
        if !secret.is_empty() {
            out = out.replace(&secret, "***");
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The first error of type `E` in a source chain.
fn find<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        // tokio-rustls wraps the rustls error in an io::Error whose `source()` skips it.
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(found) = inner.downcast_ref::<E>() {
                    return Some(found);
                }
            }
        }
        current = e.source();
    }
    None
}

/// The most specific message in a source chain.
fn innermost(error: &(dyn StdError + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Whether a network failure before the message content means the connection was dead
/// before this attempt (a reused connection the server had closed), so a fresh one may retry.
pub fn is_stale_connection(error: &lettre::transport::smtp::Error) -> bool {
    match error.status() {
        Some(code) => u16::from(code) == 421,
        None => !error.is_timeout() && !error.is_client(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::config;
    use postflight_core::plugin::OpenRequest;
    use serde_json::json;

    fn config(settings: serde_json::Value) -> SmtpConfig {
        config::parse(&OpenRequest {
            transport: "smtp".into(),
            account: "main".into(),
            send_timeout_ms: 3000,
            settings: settings.as_object().unwrap().clone(),
        })
        .unwrap()
        .0
    }

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            text: format!("{code} {text}"),
        }
    }

    #[test]
    fn replies_are_classified_by_stage_and_code() {
        let c = config(json!({"host": "mail.example.com"}));
        let check = |stage, code, text, kind, permanent| {
            let e = reply_error(&c, stage, &reply(code, text));
            assert_eq!(
                (e.kind, e.permanent),
                (kind, permanent),
                "{stage} {code}: {e:?}"
            );
            assert!(e.reply.as_deref().unwrap().starts_with(&code.to_string()));
            assert!(
                e.hint.is_some()
                    || kind == ErrorKind::RecipientRejected
                    || kind == ErrorKind::Server,
                "{e:?}"
            );
        };
        check(
            Stage::Auth,
            535,
            "5.7.8 bad credentials",
            ErrorKind::Auth,
            true,
        );
        check(
            Stage::Auth,
            454,
            "4.7.0 temporary failure",
            ErrorKind::Auth,
            false,
        );
        check(
            Stage::Auth,
            538,
            "5.7.11 Encryption required",
            ErrorKind::InsecureAuth,
            true,
        );
        check(
            Stage::MailFrom,
            530,
            "5.7.0 Authentication required",
            ErrorKind::Auth,
            true,
        );
        check(
            Stage::MailFrom,
            553,
            "5.7.1 Sender address rejected",
            ErrorKind::SenderRejected,
            true,
        );
        check(
            Stage::RcptTo,
            550,
            "5.1.1 User unknown",
            ErrorKind::RecipientRejected,
            true,
        );
        check(
            Stage::Message,
            552,
            "5.3.4 Message too big",
            ErrorKind::MessageRejected,
            true,
        );
        check(
            Stage::Message,
            451,
            "4.3.0 Local error",
            ErrorKind::MessageRejected,
            false,
        );
        check(
            Stage::MailFrom,
            421,
            "4.7.0 closing",
            ErrorKind::Server,
            false,
        );
        check(
            Stage::MailFrom,
            450,
            "4.7.1 Too many messages, slow down",
            ErrorKind::RateLimited,
            false,
        );
        check(
            Stage::Greeting,
            554,
            "5.7.1 go away",
            ErrorKind::Server,
            true,
        );
    }

    #[test]
    fn auth_failures_give_provider_advice() {
        let gmail = config(
            json!({"provider": "gmail", "host": "127.0.0.1", "username": "me@gmail.com", "password": "abcdabcdabcdabcd"}),
        );
        let e = auth_rejected(
            &gmail,
            &reply(535, "5.7.8 Username and Password not accepted"),
        );
        assert!(
            e.message.contains("Gmail") && e.message.contains("me@gmail.com"),
            "{}",
            e.message
        );
        let hint = e.hint.unwrap();
        assert!(
            hint.contains("App Password") && hint.contains("@gmail.com"),
            "{hint}"
        );

        let by_host = config(
            json!({"host": "smtp.mail.me.com", "username": "me@icloud.com", "password": "x"}),
        );
        let hint = auth_rejected(&by_host, &reply(535, "no")).hint.unwrap();
        assert!(hint.contains("App-Specific"), "{hint}");

        let plain = config(json!({"host": "mail.example.com", "username": "me", "password": "x"}));
        assert!(auth_rejected(&plain, &reply(535, "no"))
            .hint
            .unwrap()
            .contains("app-specific"));
    }

    #[test]
    fn a_server_echoing_the_password_is_scrubbed() {
        let c = config(json!({"host": "h", "username": "user", "password": "s3cret-value"}));
        let echoed = format!(
            "535 bad {} and {}",
            "s3cret-value",
            base64(b"\0user\0s3cret-value")
        );
        let e = auth_rejected(
            &c,
            &Reply {
                code: 535,
                text: echoed,
            },
        );
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        assert!(!json.contains(&base64(b"\0user\0s3cret-value")), "{json}");
    }

    #[test]
    fn recipients_are_named() {
        let c = config(json!({"host": "mail.example.com"}));
        let bob: Address = "bob@example.com".parse().unwrap();
        let e = recipients_rejected(&c, &[(bob, reply(550, "5.1.1 no such user"))]);
        assert_eq!(e.kind, ErrorKind::RecipientRejected);
        assert!(e.permanent);
        assert!(
            e.message.contains("bob@example.com") && e.message.contains("every recipient"),
            "{}",
            e.message
        );
        assert!(e
            .reply
            .unwrap()
            .contains("<bob@example.com>: 550 5.1.1 no such user"));
    }

    #[test]
    fn network_failures_are_transient() {
        let c = config(json!({"host": "mail.example.com"}));
        let e = dns(&c, &io::Error::other("Name or service not known"));
        assert_eq!((e.kind, e.permanent), (ErrorKind::Dns, false));
        assert!(e.message.contains("mail.example.com"));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = connect(&c, &refused);
        assert_eq!((e.kind, e.permanent), (ErrorKind::Connect, false));
        assert!(e.hint.unwrap().contains("port 587"));
    }

    #[test]
    fn timeouts_suggest_the_likely_mode_mismatch() {
        let c = config(json!({"host": "mail.example.com", "port": 465, "security": "starttls"}));
        let e = timeout(&c, Stage::Greeting);
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(!e.permanent);
        assert!(e.hint.unwrap().contains("security = \"tls\""));
    }
}

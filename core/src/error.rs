//! Classified delivery errors: the same idea as lettre's `is_transient()`/`is_permanent()`,
//! carried across the plugin boundary as JSON (plugin ABI v1 "error" object).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, in terms an operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The account's settings are wrong (missing or invalid value).
    Config,
    /// The server's name could not be resolved.
    Dns,
    /// The TCP connection failed (refused, unreachable).
    Connect,
    /// The attempt took longer than `send_timeout`.
    Timeout,
    /// The TLS handshake failed for a reason other than the certificate.
    Tls,
    /// The server's certificate was not trusted (or did not match the pin).
    Certificate,
    /// STARTTLS was required but the server does not offer it.
    StarttlsUnavailable,
    /// The account would authenticate over an unencrypted connection.
    InsecureAuth,
    /// The server or API refused the credentials.
    Auth,
    /// The credentials are valid but lack permission to send.
    Permission,
    /// The sender address or domain was refused (unverified identity, relay denied).
    SenderRejected,
    /// One or more recipients were refused.
    RecipientRejected,
    /// The message itself was refused (size, content, validation).
    MessageRejected,
    /// The server or API asked us to slow down.
    RateLimited,
    /// The server had a problem (SMTP 4xx/5xx not covered above, HTTP 5xx).
    Server,
    /// The server answered something we did not understand.
    Protocol,
    /// The plugin itself misbehaved (panic, malformed JSON, hang).
    Plugin,
    /// A local program (sendmail) failed.
    Command,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The snake_case name used in JSON and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Certificate => "certificate",
            ErrorKind::StarttlsUnavailable => "starttls_unavailable",
            ErrorKind::InsecureAuth => "insecure_auth",
            ErrorKind::Auth => "auth",
            ErrorKind::Permission => "permission",
            ErrorKind::SenderRejected => "sender_rejected",
            ErrorKind::RecipientRejected => "recipient_rejected",
            ErrorKind::MessageRejected => "message_rejected",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Server => "server",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Command => "command",
            ErrorKind::Other => "other",
        }
    }
}

/// A delivery failure, classified (plugin ABI v1 "error" object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryError {
    /// The category.
    pub kind: ErrorKind,
    /// `true` when retrying the same message cannot help (bad password, rejected recipient).
    pub permanent: bool,
    /// One sentence saying what happened.
    pub message: String,
    /// The server's own reply, quoted (e.g. `535 5.7.8 Username and Password not accepted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// What the operator should do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Extra lines worth printing (e.g. the certificate a TLS server presented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// For rate limiting: how long the server asked us to wait, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl DeliveryError {
    /// A new error with no reply, hint or details.
    pub fn new(kind: ErrorKind, permanent: bool, message: impl Into<String>) -> Self {
        DeliveryError {
            kind,
            permanent,
            message: message.into(),
            reply: None,
            hint: None,
            details: None,
            retry_after_secs: None,
        }
    }

    /// A permanent error.
    pub fn permanent(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, true, message)
    }

    /// A transient error (worth retrying later).
    pub fn transient(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, false, message)
    }

    /// Adds the operator's next step.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds the server's reply.
    pub fn with_reply(mut self, reply: impl Into<String>) -> Self {
        self.reply = Some(reply.into());
        self
    }

    /// Adds detail lines.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// `true` when a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        !self.permanent
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(reply) = &self.reply {
            write!(f, " (server said: {reply})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeliveryError {}

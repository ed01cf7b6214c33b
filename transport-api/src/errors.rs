//! Turning a provider's refusal (an HTTP error status and its documented error body) into a
//! classified [`DeliveryError`].
//!
//! The rules every provider shares: bad or revoked key, missing permission, unverified sender
//! -> permanent with a hint naming the setting to fix; 429 -> transient, carrying
//! `Retry-After`; 5xx -> transient; other 4xx -> permanent. The provider's own message is
//! quoted, cleaned of control characters, cut to a bounded length and scrubbed of the key.

use postflight_core::secret::{redact, Secret};
use postflight_core::{DeliveryError, ErrorKind};

use crate::http::Reply;

/// Longest provider message we quote, in characters.
const MAX_QUOTE_CHARS: usize = 300;

/// What a provider said when it refused a request.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// `HTTP 403 Forbidden`.
    pub status_line: String,
    /// The HTTP status.
    pub status: u16,
    /// The provider's error code or name (`invalid_api_key`, `MessageRejected`, `406`).
    pub code: Option<String>,
    /// The provider's message, quoted safely.
    pub message: Option<String>,
    /// Seconds the provider asked us to wait.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal from `reply`, with `code` and `message` already extracted from the
    /// provider's documented error shape (both are cleaned and bounded here). When the body
    /// did not have that shape, a short clean excerpt of it stands in for the message.
    pub fn new(
        reply: &Reply,
        code: Option<String>,
        message: Option<String>,
        key: &Secret,
    ) -> Refusal {
        let redirect = reply
            .status
            .is_redirection()
            .then(|| reply.header("location"))
            .flatten()
            .map(|to| format!("redirected to {to}"));
        let message = message
            .map(|m| quote(&m, key))
            .filter(|m| !m.is_empty())
            .or_else(|| redirect.map(|r| quote(&r, key)))
            .or_else(|| excerpt(&reply.body, key));
        Refusal {
            status_line: reply.status_line(),
            status: reply.status.as_u16(),
            code: code.map(|c| quote(&c, key)).filter(|c| !c.is_empty()),
            message,
            retry_after: reply.retry_after(),
        }
    }

    /// The reply as the operator sees it: `HTTP 401 Unauthorized: [code] message`.
    pub fn reply_text(&self) -> String {
        let mut text = self.status_line.clone();
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => text.push_str(&format!(": [{code}] {message}")),
            (None, Some(message)) => text.push_str(&format!(": {message}")),
            (Some(code), None) => text.push_str(&format!(": [{code}]")),
            (None, None) => {}
        }
        text
    }

    /// The message, lower-cased, for matching documented phrases.
    pub fn message_lower(&self) -> String {
        self.message.as_deref().unwrap_or_default().to_lowercase()
    }

    /// The class the HTTP status alone implies, used when the provider's code says nothing
    /// more specific.
    pub fn class_by_status(&self) -> (ErrorKind, bool) {
        match self.status {
            300..=399 => (ErrorKind::Config, true),
            401 => (ErrorKind::Auth, true),
            403 => (ErrorKind::Permission, true),
            404 => (ErrorKind::Config, true),
            408 => (ErrorKind::Timeout, false),
            429 => (ErrorKind::RateLimited, false),
            400..=499 => (ErrorKind::MessageRejected, true),
            500..=599 => (ErrorKind::Server, false),
            _ => (ErrorKind::Protocol, false),
        }
    }
}

/// Builds the error for a refusal classified as `kind`.
pub fn refused(
    provider: &str,
    refusal: &Refusal,
    kind: ErrorKind,
    permanent: bool,
    hint: Option<String>,
) -> DeliveryError {
    let what = match kind {
        ErrorKind::Auth => format!("{provider} refused the API credentials"),
        ErrorKind::Permission => format!("{provider} does not allow this account to send"),
        ErrorKind::SenderRejected => format!("{provider} refused the sender address"),
        ErrorKind::RecipientRejected => format!("{provider} refused a recipient"),
        ErrorKind::RateLimited => format!("{provider} asked us to slow down"),
        ErrorKind::Server => format!("{provider} had a server error"),
        ErrorKind::Timeout => format!("{provider} timed out handling the request"),
        ErrorKind::Config => format!("{provider} did not recognise the request's target"),
        ErrorKind::Protocol => format!("{provider} answered with an unexpected status"),
        _ => format!("{provider} refused the message"),
    };
    let mut error = DeliveryError::new(kind, permanent, what).with_reply(refusal.reply_text());
    if let Some(hint) = hint {
        error = error.with_hint(hint);
    } else if kind == ErrorKind::Config {
        error = error.with_hint(
            "check `base_url` if you set one: it must be the provider's API root (https://...)",
        );
    } else if !permanent {
        error = error.with_hint("the notification stays queued and is retried later");
    }
    error.retry_after_secs = refusal.retry_after;
    error
}

/// A reply we could not make sense of (a success without the documented fields, say).
pub fn unexpected(provider: &str, reply: &Reply, what: &str, key: &Secret) -> DeliveryError {
    let mut text = reply.status_line();
    if let Some(excerpt) = excerpt(&reply.body, key) {
        text.push_str(": ");
        text.push_str(&excerpt);
    }
    DeliveryError::transient(
        ErrorKind::Protocol,
        format!("{provider} answered something unexpected: {what}"),
    )
    .with_reply(text)
    .with_hint("check `base_url` if you set one; otherwise the provider may have changed its API")
}

/// Cleans provider text for quoting: control characters become spaces, runs of whitespace
/// collapse, the key is scrubbed, and the result is cut to [`MAX_QUOTE_CHARS`].
pub fn quote(text: &str, key: &Secret) -> String {
    let text = redact(text, std::slice::from_ref(key));
    let mut out = String::new();
    let mut count = 0;
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= MAX_QUOTE_CHARS {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// A short excerpt of a body that is text (HTML tags and all), for bodies that are not the
/// provider's documented JSON; binary bodies give nothing.
fn excerpt(body: &[u8], key: &Secret) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let quoted = quote(text, key);
    (!quoted.is_empty()).then_some(quoted)
}

/// A JSON value as text when it is a string or number (providers mix the two for codes).
pub fn text_of(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn quotes_are_clean_bounded_and_scrubbed() {
        let key = Secret::new("key-123456");
        assert_eq!(
            quote("bad\r\nkey\tkey-123456  here", &key),
            "bad key ******** here"
        );
        let long = "x".repeat(1000);
        let q = quote(&long, &key);
        assert_eq!(q.chars().count(), MAX_QUOTE_CHARS + 1);
        assert!(q.ends_with('…'));
    }

    #[test]
    fn refusal_falls_back_to_an_excerpt_of_non_json_bodies() {
        let key = Secret::new("secret-key");
        let r = Refusal::new(&reply(401, "Forbidden\n"), None, None, &key);
        assert_eq!(r.reply_text(), "HTTP 401 Unauthorized: Forbidden");
        assert_eq!(r.class_by_status(), (ErrorKind::Auth, true));
        let r = Refusal::new(
            &reply(422, "{}"),
            Some("300".into()),
            Some("Invalid 'To' address".into()),
            &key,
        );
        assert_eq!(
            r.reply_text(),
            "HTTP 422 Unprocessable Entity: [300] Invalid 'To' address"
        );
        let r = Refusal::new(&reply(500, ""), None, None, &key);
        assert_eq!(r.reply_text(), "HTTP 500 Internal Server Error");
        assert_eq!(r.class_by_status(), (ErrorKind::Server, false));
    }

    #[test]
    fn transient_refusals_say_they_stay_queued() {
        let key = Secret::new("secret-key");
        let r = Refusal::new(&reply(503, ""), None, None, &key);
        let e = refused("Mailgun", &r, ErrorKind::Server, false, None);
        assert!(!e.permanent);
        assert!(e.hint.unwrap().contains("queued"));
    }
}

//! postflight plugin "webhook": the transport `webhook` POSTs each notification, as the JSON
//! email object of the plugin ABI, to a URL. Chat tools and automation services that accept
//! incoming webhooks can take notifications this way.
//!
//! Settings: `url` (required, `http://` or `https://`) and `token` (optional secret, sent as
//! `Authorization: Bearer TOKEN`; like every secret it may be given as `token_env`,
//! `token_file` or `token_command`, which postflight resolves before the plugin sees it). One
//! attempt is bounded by the account's `send_timeout`.
//!
//! This crate is also the worked example of PLUGINS.md: everything here is what a third party
//! writes, and nothing in it is special to postflight's own repository.

use std::time::Duration;

use postflight_core::plugin::abi::ABI_VERSION;
use postflight_core::plugin::{
    Connection, Manifest, OpenRequest, Opened, Plugin, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};

/// How much of a response body is read for the receipt or an error message.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// How much of a response body is quoted in an error.
const MAX_QUOTED_CHARS: usize = 300;

/// The plugin: its manifest and `open`.
pub struct WebhookPlugin;

/// The `webhook` transport's manifest entry: the settings schema postflight checks accounts
/// against (`postflight check`) and prints (`postflight plugins --json`).
fn webhook_spec() -> TransportSpec {
    TransportSpec {
        name: "webhook".into(),
        description: "POSTs each notification as JSON to a URL".into(),
        settings: vec![
            SettingSpec::new(
                "url",
                SettingType::String,
                "the http:// or https:// address that receives the POST",
            )
            .required(),
            SettingSpec::new(
                "token",
                SettingType::String,
                "sent as `Authorization: Bearer TOKEN` (or give token_env / token_file / token_command)",
            )
            .secret(),
        ],
    }
}

impl Plugin for WebhookPlugin {
    fn manifest() -> Manifest {
        Manifest {
            name: "webhook".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            description: "hands notifications to an HTTP endpoint (example plugin)".into(),
            transports: vec![webhook_spec()],
        }
    }

    /// Checks the settings and builds the HTTP agent; connects to nothing yet, because
    /// `postflight check` opens every account to validate it.
    fn open(request: OpenRequest) -> Result<Opened, DeliveryError> {
        if request.transport != "webhook" {
            return Err(config_error(format!(
                "the webhook plugin has no transport '{}'",
                request.transport
            )));
        }
        let url = request
            .settings
            .get("url")
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                config_error("the webhook transport needs `url`")
                    .with_hint("add `url = \"https://hooks.example.com/...\"` to the account")
            })?;
        let uri: ureq::http::Uri = url.parse().map_err(|e| {
            config_error(format!("`url` is not a valid URL ({e}): {url}"))
                .with_hint("write the whole address, e.g. https://hooks.example.com/notify")
        })?;
        let plain_http = match uri.scheme_str() {
            Some("https") => false,
            Some("http") => true,
            _ => {
                return Err(config_error(format!(
                    "`url` must start with http:// or https://: {url}"
                )))
            }
        };
        let host = uri.host().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err(config_error(format!("`url` names no host: {url}")));
        }
        let token = match request.settings.get("token") {
            None => None,
            Some(serde_json::Value::String(t)) if !t.is_empty() => Some(t.clone()),
            Some(_) => {
                return Err(config_error("`token` must be a non-empty string")
                    .with_hint("remove it, or set it (or token_env / token_file / token_command)"))
            }
        };
        let mut warnings = Vec::new();
        let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
        if plain_http && token.is_some() && !loopback {
            warnings.push(format!(
                "the webhook token is sent unencrypted to {host} (the url is http://); use https://"
            ));
        }
        let timeout = Duration::from_millis(request.send_timeout_ms.max(1));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are classified below, and a POST is never silently turned into a GET
            // by following a redirect.
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("postflight-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Opened {
            connection: Box::new(Webhook {
                agent,
                url: url.to_string(),
                token,
            }),
            warnings,
        })
    }
}

postflight_core::export_plugin!(WebhookPlugin);

/// An opened `webhook` account. The agent keeps the connection alive between sends, so an
/// outbox flush reuses it.
struct Webhook {
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
}

impl Connection for Webhook {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let body = serde_json::to_vec(email).map_err(|e| {
            DeliveryError::permanent(ErrorKind::MessageRejected, format!("cannot encode: {e}"))
        })?;
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            // Stable across retries, so a receiver can drop duplicates (delivery is
            // at-least-once).
            .header("Idempotency-Key", &email.idempotency_key);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.send(&body[..]).map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // A body that cannot be read does not change what the status says.
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .unwrap_or_default();
        let reply = quote(status, &text);
        if status.is_success() {
            return Ok(Receipt {
                message_id: email.message_id.clone(),
                server_id: response_id(&text),
                reply: Some(reply),
                location: None,
                refused: Vec::new(),
            });
        }
        Err(status_error(status.as_u16(), reply, retry_after, location))
    }
}

fn config_error(message: impl Into<String>) -> DeliveryError {
    DeliveryError::permanent(ErrorKind::Config, message)
}

/// `HTTP 202 Accepted: {"id": ...}`, the body cut short.
fn quote(status: ureq::http::StatusCode, body: &str) -> String {
    let mut line = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = body.trim();
    if !body.is_empty() {
        let cut: String = body.chars().take(MAX_QUOTED_CHARS).collect();
        line.push_str(": ");
        line.push_str(&cut);
        if cut.len() < body.len() {
            line.push_str("...");
        }
    }
    line
}

/// The receiver's id for the message, when it answers JSON with an `id`.
fn response_id(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    match value.get("id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Classifies a non-2xx answer the way postflight's outbox needs it: transient ones are
/// retried, permanent ones go to `failed/`.
fn status_error(
    status: u16,
    reply: String,
    retry_after: Option<u64>,
    location: Option<String>,
) -> DeliveryError {
    let (kind, permanent, message, hint) = match status {
        300..=399 => (
            ErrorKind::Config,
            true,
            format!(
                "the webhook URL redirects{}",
                location.map(|l| format!(" to {l}")).unwrap_or_default()
            ),
            "point `url` at the final address (a POST is not followed through redirects)",
        ),
        401 | 403 => (
            ErrorKind::Auth,
            true,
            "the webhook refused the request's credentials".to_string(),
            "check `token` (sent as a Bearer token)",
        ),
        404 | 410 => (
            ErrorKind::Config,
            true,
            "there is no webhook at this URL".to_string(),
            "check `url`; the hook may have been deleted",
        ),
        408 => (
            ErrorKind::Timeout,
            false,
            "the webhook timed out reading the request".to_string(),
            "it will be retried",
        ),
        429 => (
            ErrorKind::RateLimited,
            false,
            "the webhook asked to slow down".to_string(),
            "it will be retried later",
        ),
        400..=499 => (
            ErrorKind::MessageRejected,
            true,
            "the webhook refused the notification".to_string(),
            "the receiver's reply above says why",
        ),
        _ => (
            ErrorKind::Server,
            false,
            format!("the webhook failed with HTTP {status}"),
            "a server-side problem; it will be retried",
        ),
    };
    let mut error = DeliveryError::new(kind, permanent, message)
        .with_reply(reply)
        .with_hint(hint);
    error.retry_after_secs = retry_after;
    error
}

/// Classifies a failure before any HTTP status arrived.
fn transport_error(error: ureq::Error) -> DeliveryError {
    let (kind, hint) = match &error {
        ureq::Error::Timeout(_) => (
            ErrorKind::Timeout,
            "the receiver is slow or unreachable; raise `send_timeout` if it is just slow",
        ),
        ureq::Error::HostNotFound => (ErrorKind::Dns, "check the host name in `url`"),
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed => (
            ErrorKind::Connect,
            "check that the receiver is up and reachable from this machine",
        ),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
            if error
                .to_string()
                .to_ascii_lowercase()
                .contains("certificate")
            {
                (
                    ErrorKind::Certificate,
                    "the receiver's certificate is not trusted for this host name",
                )
            } else {
                (ErrorKind::Tls, "the TLS handshake with the receiver failed")
            }
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            return config_error(format!("cannot build the request: {error}"))
                .with_hint("check `url`");
        }
        _ => (
            ErrorKind::Protocol,
            "the receiver did not answer like an HTTP server",
        ),
    };
    DeliveryError::transient(kind, format!("cannot deliver to the webhook: {error}"))
        .with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_for_the_outbox() {
        for (status, kind, permanent) in [
            (301, ErrorKind::Config, true),
            (401, ErrorKind::Auth, true),
            (404, ErrorKind::Config, true),
            (408, ErrorKind::Timeout, false),
            (422, ErrorKind::MessageRejected, true),
            (429, ErrorKind::RateLimited, false),
            (500, ErrorKind::Server, false),
            (503, ErrorKind::Server, false),
        ] {
            let error = status_error(status, "HTTP".into(), Some(3), None);
            assert_eq!((error.kind, error.permanent), (kind, permanent), "{status}");
            assert_eq!(error.retry_after_secs, Some(3));
        }
    }

    #[test]
    fn response_ids_are_read_from_json_bodies() {
        assert_eq!(response_id(r#"{"id":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(response_id(r#"{"id":7}"#).as_deref(), Some("7"));
        assert_eq!(response_id("ok"), None);
    }
}

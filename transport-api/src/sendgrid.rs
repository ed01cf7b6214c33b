//! The `sendgrid` transport: Twilio SendGrid's v3 Mail Send API.
//!
//! Documented endpoint (Twilio SendGrid API reference, "Mail Send", operation `SendMail`):
//! `POST https://api.sendgrid.com/v3/mail/send` (EU regional subusers:
//! `https://api.eu.sendgrid.com`), `Authorization: Bearer <API key>`,
//! `Content-Type: application/json`. Fields sent:
//!
//! - `personalizations[0].to[]`: `{email, name?}` for every recipient (one envelope, so every
//!   recipient sees the others, like one SMTP message with several `To`);
//! - `from`: `{email, name?}`;
//! - `subject` (minLength 1);
//! - `content[0]`: `{type: "text/plain", value}` (minLength 1);
//! - `headers`: `Message-ID` and `Auto-Submitted`. The API refuses `x-sg-id`, `x-sg-eid`,
//!   `received`, `dkim-signature`, `Content-Type`, `Content-Transfer-Encoding`, `To`, `From`,
//!   `Subject`, `Reply-To`, `CC`, `BCC` here, and wants non-ASCII values encoded by the caller.
//!
//! Success is `202 Accepted` with an empty body; the message id is the `X-Message-Id`
//! response header. Errors are `{"errors": [{"message", "field", "help"}]}`: 401 for a bad or
//! revoked key, 403 for a key without the Mail Send scope or a `from` that is not a verified
//! Sender Identity, 413 too large, 429 rate limited (`X-RateLimit-Reset`), 5xx. SendGrid has
//! no idempotency key for Mail Send.

use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};
use serde_json::{json, Value};

use crate::address::{encode_header_value, Mailbox};
use crate::errors::{refused, text_of, Refusal};
use crate::http::{Http, Reply};
use crate::message::{HeaderPolicy, Outgoing};
use crate::settings::{BaseUrl, Settings};

const NAME: &str = "sendgrid";
const PROVIDER: &str = "SendGrid";
const DEFAULT_BASE_URL: &str = "https://api.sendgrid.com";
const HEADERS: HeaderPolicy = HeaderPolicy {
    message_id: true,
    reserved: &["x-sg-id", "x-sg-eid", "received", "dkim-signature"],
};

/// The manifest entry.
pub fn spec() -> TransportSpec {
    TransportSpec {
        name: NAME.into(),
        description: "Twilio SendGrid v3 Mail Send API (POST /v3/mail/send)".into(),
        settings: vec![
            SettingSpec::new(
                "api_key",
                SettingType::String,
                "SendGrid API key with the Mail Send permission (Settings > API Keys)",
            )
            .required()
            .secret(),
            SettingSpec::new(
                "base_url",
                SettingType::String,
                "API root: https://api.eu.sendgrid.com for EU regional subusers, or a test server",
            )
            .default_value(DEFAULT_BASE_URL),
            crate::settings::allow_insecure_http_spec(),
        ],
    }
}

/// Validates settings; touches no network.
pub fn open(request: &OpenRequest) -> Result<Opened, DeliveryError> {
    let settings = Settings::new(NAME, &request.settings);
    let api_key = settings.api_key(
        "create an API key with Mail Send access in SendGrid (Settings > API Keys) and give it as `api_key_env = \"SENDGRID_API_KEY\"` (or api_key_file / api_key_command)",
    )?;
    let base = settings.base_url(DEFAULT_BASE_URL)?;
    let warnings = base.plaintext_warning(NAME).into_iter().collect();
    Ok(Opened {
        connection: Box::new(SendGrid {
            api_key,
            base,
            http: Http::new(request.send_timeout_ms),
        }),
        warnings,
    })
}

#[derive(Debug)]
struct SendGrid {
    api_key: Secret,
    base: BaseUrl,
    http: Http,
}

/// The Mail Send request body.
fn body(email: &Email) -> Result<Value, DeliveryError> {
    let out = Outgoing::new(email, HEADERS)?;
    let address = |m: &Mailbox| match &m.name {
        Some(name) => json!({"email": m.email.to_string(), "name": name}),
        None => json!({"email": m.email.to_string()}),
    };
    let headers: serde_json::Map<String, Value> = out
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(encode_header_value(value))))
        .collect();
    Ok(json!({
        "personalizations": [{"to": out.to.iter().map(address).collect::<Vec<_>>()}],
        "from": address(&out.from),
        "subject": out.subject,
        "content": [{"type": "text/plain", "value": out.text}],
        "headers": headers,
    }))
}

impl Connection for SendGrid {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let body = body(email)?;
        let url = self.base.join(&["v3", "mail", "send"]);
        let key = self.api_key.expose().to_string();
        let reply = self.http.send(PROVIDER, |client| {
            client.post(url).bearer_auth(key).json(&body)
        })?;
        if reply.status.is_success() {
            return Ok(Receipt {
                message_id: email.message_id.clone(),
                server_id: reply.header("x-message-id").map(str::to_string),
                reply: Some(reply.status_line()),
                location: None,
                refused: Vec::new(),
            });
        }
        Err(classify(&reply, &self.api_key))
    }
}

/// Maps a SendGrid error reply to a delivery error.
fn classify(reply: &Reply, key: &Secret) -> DeliveryError {
    let json = reply.json();
    let first = json
        .as_ref()
        .and_then(|j| j.get("errors"))
        .and_then(Value::as_array)
        .and_then(|errors| errors.first());
    let message = first.and_then(|e| text_of(e.get("message")));
    let field = first.and_then(|e| text_of(e.get("field")));
    let mut refusal = Refusal::new(reply, field, message, key);
    if refusal.retry_after.is_none() && reply.status.as_u16() == 429 {
        // SendGrid documents X-RateLimit-Reset (a Unix time) rather than Retry-After.
        refusal.retry_after = reply
            .header("x-ratelimit-reset")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|reset| reset.saturating_sub(unix_now()).min(24 * 60 * 60));
    }
    let text = refusal.message_lower();
    let (kind, permanent, hint) = match refusal.status {
        401 => (
            ErrorKind::Auth,
            true,
            "the API key is wrong, revoked or deleted: create a new one in SendGrid (Settings > API Keys) and update `api_key`",
        ),
        403 if text.contains("sender identity") || text.contains("from address") => (
            ErrorKind::SenderRejected,
            true,
            "the account's `from` address is not a verified Sender Identity: verify it (or authenticate its domain) in SendGrid under Settings > Sender Authentication",
        ),
        403 => (
            ErrorKind::Permission,
            true,
            "the API key lacks the Mail Send permission: give `api_key` a key with Mail Send access (Settings > API Keys)",
        ),
        413 => (
            ErrorKind::MessageRejected,
            true,
            "the message is larger than SendGrid accepts; shorten the body template",
        ),
        _ => {
            let (kind, permanent) = refusal.class_by_status();
            let hint = match kind {
                ErrorKind::Config => "check `base_url`: it should be the API root such as https://api.sendgrid.com",
                ErrorKind::MessageRejected => "SendGrid's message above names the field it refused",
                _ => "",
            };
            (kind, permanent, hint)
        }
    };
    let hint = (!hint.is_empty()).then(|| hint.to_string());
    refused(PROVIDER, &refusal, kind, permanent, hint)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::email;

    #[test]
    fn body_follows_the_documented_shape() {
        let mut email = email();
        email.subject = "Sauvegarde échouée ✗".into();
        let body = body(&email).unwrap();
        assert_eq!(
            body,
            json!({
                "personalizations": [{"to": [
                    {"email": "ops@example.com"},
                    {"email": "bob@example.org", "name": "Bob"}
                ]}],
                "from": {"email": "backups@example.com", "name": "Backups"},
                "subject": "Sauvegarde échouée ✗",
                "content": [{"type": "text/plain", "value": "it broke\n"}],
                "headers": {
                    "Message-ID": "<abc.postflight@host.example>",
                    "Auto-Submitted": "auto-generated"
                }
            })
        );
    }

    #[test]
    fn classifies_documented_errors() {
        use crate::http::tests::reply;
        let key = Secret::new("SG.secret-key");
        let errors =
            |m: &str| format!(r#"{{"errors":[{{"message":"{m}","field":null,"help":null}}]}}"#);
        let cases = [
            (
                401,
                errors("The provided authorization grant is invalid, expired, or revoked"),
                ErrorKind::Auth,
                true,
            ),
            (
                403,
                errors("The from address does not match a verified Sender Identity."),
                ErrorKind::SenderRejected,
                true,
            ),
            (403, errors("access forbidden"), ErrorKind::Permission, true),
            (
                400,
                errors("Does not contain a valid address."),
                ErrorKind::MessageRejected,
                true,
            ),
            (
                413,
                errors("content too large"),
                ErrorKind::MessageRejected,
                true,
            ),
            (
                429,
                errors("too many requests"),
                ErrorKind::RateLimited,
                false,
            ),
            (
                500,
                errors("internal server error"),
                ErrorKind::Server,
                false,
            ),
            (503, String::new(), ErrorKind::Server, false),
        ];
        for (status, body, kind, permanent) in cases {
            let e = classify(&reply(status, &[], &body), &key);
            assert_eq!((e.kind, e.permanent), (kind, permanent), "{status} {body}");
            assert!(e.reply.unwrap().starts_with(&format!("HTTP {status}")));
        }
        let reset = (unix_now() + 30).to_string();
        let e = classify(
            &reply(429, &[("x-ratelimit-reset", &reset)], &errors("x")),
            &key,
        );
        assert!(matches!(e.retry_after_secs, Some(29..=30)), "{e:?}");
    }
}

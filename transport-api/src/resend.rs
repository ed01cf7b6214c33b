//! The `resend` transport: Resend's "Send Email" API.
//!
//! Documented endpoint (Resend API reference, "Send Email"): `POST https://api.resend.com/emails`
//! with `Authorization: Bearer <API key>`, `Content-Type: application/json` and
//! `Idempotency-Key` (1-256 characters; Resend answers a repeat within 24 hours with the first
//! response instead of sending again). We send the email's idempotency key, which stays the
//! same on every retry of one outbox item. Fields sent:
//!
//! - `from`: `Name <addr>`; `to`: array of recipients (max 50);
//! - `subject`, `text`;
//! - `headers`: `{"Message-ID": ..., "Auto-Submitted": ...}`.
//!
//! Success is `200` with `{"id": "..."}`. Errors are `{"statusCode", "message", "name"}`:
//! `missing_api_key`/`restricted_api_key` 401, `invalid_api_key` 403, `validation_error`
//! 400/403/422 (403 for an unverified domain or the testing-only sender), `invalid_from_address`
//! and `missing_required_field` 422, `invalid_idempotency_key` 400,
//! `invalid_idempotent_request` and `concurrent_idempotent_requests` 409,
//! `rate_limit_exceeded`/`daily_quota_exceeded`/`monthly_quota_exceeded` 429 (with
//! `retry-after`), `security_error` 451, `application_error`/`internal_server_error` 500.

use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};
use serde_json::{json, Value};

use crate::errors::{refused, text_of, unexpected, Refusal};
use crate::http::{Http, Reply};
use crate::message::{HeaderPolicy, Outgoing};
use crate::settings::{BaseUrl, Settings};

const NAME: &str = "resend";
const PROVIDER: &str = "Resend";
const DEFAULT_BASE_URL: &str = "https://api.resend.com";
const HEADERS: HeaderPolicy = HeaderPolicy {
    message_id: true,
    reserved: &[],
};
/// Resend's documented limit on idempotency keys.
const MAX_IDEMPOTENCY_KEY: usize = 256;

/// The manifest entry.
pub fn spec() -> TransportSpec {
    TransportSpec {
        name: NAME.into(),
        description: "Resend Email API (POST /emails, with Idempotency-Key)".into(),
        settings: vec![
            SettingSpec::new(
                "api_key",
                SettingType::String,
                "Resend API key with sending access (API Keys page)",
            )
            .required()
            .secret(),
            SettingSpec::new(
                "base_url",
                SettingType::String,
                "API root (a proxy or a test server)",
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
        "create an API key with Sending access on Resend's API Keys page and give it as `api_key_env = \"RESEND_API_KEY\"` (or api_key_file / api_key_command)",
    )?;
    let base = settings.base_url(DEFAULT_BASE_URL)?;
    let warnings = base.plaintext_warning(NAME).into_iter().collect();
    Ok(Opened {
        connection: Box::new(Resend {
            api_key,
            base,
            http: Http::new(request.send_timeout_ms),
        }),
        warnings,
    })
}

#[derive(Debug)]
struct Resend {
    api_key: Secret,
    base: BaseUrl,
    http: Http,
}

/// The request body.
fn body(email: &Email) -> Result<Value, DeliveryError> {
    let out = Outgoing::new(email, HEADERS)?;
    let to: Vec<String> = out.to.iter().map(|m| m.to_string()).collect();
    let headers: serde_json::Map<String, Value> = out
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    Ok(json!({
        "from": out.from.to_string(),
        "to": to,
        "subject": out.subject,
        "text": out.text,
        "headers": headers,
    }))
}

/// The key to send, if the email has a usable one (1-256 visible ASCII characters).
fn idempotency_key(email: &Email) -> Option<&str> {
    let key = email.idempotency_key.as_str();
    (!key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY
        && key.bytes().all(|b| b.is_ascii_graphic()))
    .then_some(key)
}

impl Connection for Resend {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let body = body(email)?;
        let url = self.base.join(&["emails"]);
        let key = self.api_key.expose().to_string();
        let idempotency = idempotency_key(email).map(str::to_string);
        let reply = self.http.send(PROVIDER, |client| {
            let request = client.post(url).bearer_auth(key).json(&body);
            match idempotency {
                Some(k) => request.header("Idempotency-Key", k),
                None => request,
            }
        })?;
        if !reply.status.is_success() {
            return Err(classify(&reply, &self.api_key));
        }
        let id = reply.json().and_then(|j| text_of(j.get("id")));
        let Some(id) = id else {
            return Err(unexpected(
                PROVIDER,
                &reply,
                "a success without the email `id`",
                &self.api_key,
            ));
        };
        Ok(Receipt {
            message_id: email.message_id.clone(),
            server_id: Some(id),
            reply: Some(reply.status_line()),
            location: None,
            refused: Vec::new(),
        })
    }
}

/// Maps a Resend error reply (`{"statusCode", "message", "name"}`) to a delivery error.
fn classify(reply: &Reply, key: &Secret) -> DeliveryError {
    let json = reply.json();
    let name = json.as_ref().and_then(|j| text_of(j.get("name")));
    let message = json.as_ref().and_then(|j| text_of(j.get("message")));
    let refusal = Refusal::new(reply, name.clone(), message, key);
    let text = refusal.message_lower();
    let (kind, permanent, hint): (ErrorKind, bool, &str) =
        match (name.as_deref().unwrap_or_default(), refusal.status) {
            ("restricted_api_key", _) => (
                ErrorKind::Permission,
                true,
                "the API key may not send emails: create one with Sending access for `api_key`",
            ),
            ("missing_api_key" | "invalid_api_key", _) | (_, 401) => (
                ErrorKind::Auth,
                true,
                "Resend refused `api_key`: check it on the API Keys page (it may have been deleted) and update the account",
            ),
            ("validation_error", 403) if text.contains("domain") || text.contains("testing emails") || text.contains("own email") => (
                ErrorKind::SenderRejected,
                true,
                "the domain of the account's `from` is not verified in Resend: add and verify it on the Domains page (until then Resend only sends test emails to your own address)",
            ),
            ("invalid_from_address", _) => (
                ErrorKind::SenderRejected,
                true,
                "Resend refused `from`: write it as `user@example.com` or `Name <user@example.com>` with a verified domain",
            ),
            ("concurrent_idempotent_requests", _) => (
                ErrorKind::RateLimited,
                false,
                "an earlier attempt with the same idempotency key is still in progress; the notification stays queued",
            ),
            ("invalid_idempotent_request" | "invalid_idempotency_key", _) => (
                ErrorKind::Plugin,
                true,
                "Resend saw the same idempotency key with different content; this is a bug in postflight, please report it",
            ),
            ("daily_quota_exceeded" | "monthly_quota_exceeded", _) => (
                ErrorKind::RateLimited,
                false,
                "the Resend sending quota is used up; the notification stays queued (raise the plan's quota to send sooner)",
            ),
            ("application_error" | "internal_server_error", _) => (ErrorKind::Server, false, ""),
            _ => {
                let (kind, permanent) = refusal.class_by_status();
                (kind, permanent, "")
            }
        };
    let hint = (!hint.is_empty()).then(|| hint.to_string());
    refused(PROVIDER, &refusal, kind, permanent, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::email;

    #[test]
    fn body_follows_the_documented_shape() {
        assert_eq!(
            body(&email()).unwrap(),
            json!({
                "from": "Backups <backups@example.com>",
                "to": ["ops@example.com", "Bob <bob@example.org>"],
                "subject": "host: Daily Backup: Failed",
                "text": "it broke\n",
                "headers": {
                    "Message-ID": "<abc.postflight@host.example>",
                    "Auto-Submitted": "auto-generated"
                }
            })
        );
    }

    #[test]
    fn idempotency_key_is_sent_only_when_resend_would_accept_it() {
        let mut email = email();
        assert_eq!(idempotency_key(&email), Some("abc"));
        email.idempotency_key = String::new();
        assert_eq!(idempotency_key(&email), None);
        email.idempotency_key = "x".repeat(257);
        assert_eq!(idempotency_key(&email), None);
        email.idempotency_key = "a b".into();
        assert_eq!(idempotency_key(&email), None);
    }

    #[test]
    fn classifies_documented_errors() {
        use crate::http::tests::reply;
        let key = Secret::new("re_secret");
        let body = |status: u16, name: &str, message: &str| {
            format!(r#"{{"statusCode":{status},"message":"{message}","name":"{name}"}}"#)
        };
        let cases = [
            (
                401,
                "missing_api_key",
                "Missing API key",
                ErrorKind::Auth,
                true,
            ),
            (
                401,
                "restricted_api_key",
                "This API key is restricted to only send emails.",
                ErrorKind::Permission,
                true,
            ),
            (
                403,
                "invalid_api_key",
                "API key is invalid",
                ErrorKind::Auth,
                true,
            ),
            (
                401,
                "validation_error",
                "API key is invalid",
                ErrorKind::Auth,
                true,
            ),
            (
                403,
                "validation_error",
                "The example.org domain is not verified. Please, add and verify your domain",
                ErrorKind::SenderRejected,
                true,
            ),
            (
                403,
                "validation_error",
                "You can only send testing emails to your own email address",
                ErrorKind::SenderRejected,
                true,
            ),
            (
                422,
                "invalid_from_address",
                "Invalid `from` field.",
                ErrorKind::SenderRejected,
                true,
            ),
            (
                422,
                "missing_required_field",
                "Missing `to` field.",
                ErrorKind::MessageRejected,
                true,
            ),
            (
                409,
                "concurrent_idempotent_requests",
                "in progress",
                ErrorKind::RateLimited,
                false,
            ),
            (
                409,
                "invalid_idempotent_request",
                "different payload",
                ErrorKind::Plugin,
                true,
            ),
            (
                429,
                "rate_limit_exceeded",
                "Too many requests.",
                ErrorKind::RateLimited,
                false,
            ),
            (
                429,
                "daily_quota_exceeded",
                "quota",
                ErrorKind::RateLimited,
                false,
            ),
            (
                451,
                "security_error",
                "security issue",
                ErrorKind::MessageRejected,
                true,
            ),
            (
                500,
                "application_error",
                "An unexpected error occurred.",
                ErrorKind::Server,
                false,
            ),
        ];
        for (status, name, message, kind, permanent) in cases {
            let e = classify(&reply(status, &[], &body(status, name, message)), &key);
            assert_eq!((e.kind, e.permanent), (kind, permanent), "{status} {name}");
            assert!(e.reply.unwrap().contains(name));
        }
    }
}

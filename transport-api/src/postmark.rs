//! The `postmark` transport: Postmark's Email API, "Send a single email".
//!
//! Documented endpoint (Postmark API reference, Email API): `POST https://api.postmarkapp.com/email`
//! with `Accept: application/json`, `Content-Type: application/json` and the server's API
//! token in `X-Postmark-Server-Token`. Fields sent:
//!
//! - `From`: `Name <addr>`; `To`: every recipient, comma-joined (display names quoted so a
//!   comma in a name cannot split the list; Postmark allows 50);
//! - `Subject`, `TextBody`;
//! - `Headers`: `[{"Name": "Message-ID", ...}, {"Name": "Auto-Submitted", ...}]`;
//! - `MessageStream`: the `message_stream` setting (`outbound`, the default transactional
//!   stream, unless the operator made another).
//!
//! Success is `200` with `{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}`;
//! `MessageID` is the message id. Errors are `{"ErrorCode": n, "Message": "..."}`: HTTP 401
//! for a missing or wrong token (code 10), 422 for a refused request (300 invalid request,
//! 400 sender signature not found, 401 sender signature not confirmed, 405 not allowed to
//! send, 406 inactive recipient, 412 account pending, 413 account may not send, 1235 unknown
//! message stream), 429 rate limited, 500/503 server trouble. No idempotency key.

use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};
use reqwest::header::{HeaderValue, ACCEPT};
use serde_json::{json, Value};

use crate::errors::{refused, text_of, unexpected, Refusal};
use crate::http::{Http, Reply};
use crate::message::{HeaderPolicy, Outgoing};
use crate::settings::{BaseUrl, Settings};

const NAME: &str = "postmark";
const PROVIDER: &str = "Postmark";
const DEFAULT_BASE_URL: &str = "https://api.postmarkapp.com";
const DEFAULT_STREAM: &str = "outbound";
const TOKEN_HEADER: &str = "X-Postmark-Server-Token";
const HEADERS: HeaderPolicy = HeaderPolicy {
    message_id: true,
    reserved: &[],
};

/// The manifest entry.
pub fn spec() -> TransportSpec {
    TransportSpec {
        name: NAME.into(),
        description: "Postmark Email API (POST /email)".into(),
        settings: vec![
            SettingSpec::new(
                "api_key",
                SettingType::String,
                "the Server API token of a Postmark server (Server > API Tokens)",
            )
            .required()
            .secret(),
            SettingSpec::new(
                "message_stream",
                SettingType::String,
                "the message stream to send through (transactional streams only)",
            )
            .default_value(DEFAULT_STREAM),
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
        "copy the Server API token from Postmark (your server > API Tokens) and give it as `api_key_env = \"POSTMARK_SERVER_TOKEN\"` (or api_key_file / api_key_command)",
    )?;
    let stream = settings
        .string("message_stream")?
        .unwrap_or_else(|| DEFAULT_STREAM.into());
    let base = settings.base_url(DEFAULT_BASE_URL)?;
    let warnings = base.plaintext_warning(NAME).into_iter().collect();
    Ok(Opened {
        connection: Box::new(Postmark {
            api_key,
            stream,
            base,
            http: Http::new(request.send_timeout_ms),
        }),
        warnings,
    })
}

#[derive(Debug)]
struct Postmark {
    api_key: Secret,
    stream: String,
    base: BaseUrl,
    http: Http,
}

/// The request body.
fn body(email: &Email, stream: &str) -> Result<Value, DeliveryError> {
    let out = Outgoing::new(email, HEADERS)?;
    let to: Vec<String> = out.to.iter().map(|m| m.to_string()).collect();
    let headers: Vec<Value> = out
        .headers
        .iter()
        .map(|(name, value)| json!({"Name": name, "Value": value}))
        .collect();
    Ok(json!({
        "From": out.from.to_string(),
        "To": to.join(", "),
        "Subject": out.subject,
        "TextBody": out.text,
        "Headers": headers,
        "MessageStream": stream,
    }))
}

impl Connection for Postmark {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let body = body(email, &self.stream)?;
        let url = self.base.join(&["email"]);
        let mut token = HeaderValue::from_str(self.api_key.expose()).expect("checked at open");
        token.set_sensitive(true);
        let reply = self.http.send(PROVIDER, |client| {
            client
                .post(url)
                .header(ACCEPT, "application/json")
                .header(TOKEN_HEADER, token)
                .json(&body)
        })?;
        let json = reply.json();
        let code = json
            .as_ref()
            .and_then(|j| j.get("ErrorCode"))
            .and_then(Value::as_i64);
        if reply.status.is_success() && code.unwrap_or(0) == 0 {
            let id = json.as_ref().and_then(|j| text_of(j.get("MessageID")));
            let Some(id) = id else {
                return Err(unexpected(
                    PROVIDER,
                    &reply,
                    "a success without `MessageID`",
                    &self.api_key,
                ));
            };
            return Ok(Receipt {
                message_id: email.message_id.clone(),
                server_id: Some(id),
                reply: Some(reply.status_line()),
                location: None,
                refused: Vec::new(),
            });
        }
        Err(classify(&reply, json.as_ref(), &self.api_key, &self.stream))
    }
}

/// Maps a Postmark error reply (`{"ErrorCode", "Message"}`) to a delivery error.
fn classify(reply: &Reply, json: Option<&Value>, key: &Secret, stream: &str) -> DeliveryError {
    let code = json
        .and_then(|j| j.get("ErrorCode"))
        .and_then(Value::as_i64);
    let message = json.and_then(|j| text_of(j.get("Message")));
    let refusal = Refusal::new(reply, code.map(|c| c.to_string()), message, key);
    let (kind, permanent, hint): (ErrorKind, bool, String) = match (refusal.status, code) {
        (401, _) | (_, Some(10)) => (
            ErrorKind::Auth,
            true,
            "Postmark refused `api_key`: use the Server API token (your server > API Tokens), not the Account token".into(),
        ),
        (_, Some(400 | 401)) => (
            ErrorKind::SenderRejected,
            true,
            "the account's `from` address is not a confirmed Sender Signature: add and confirm it (or verify its domain) under Sender Signatures in Postmark".into(),
        ),
        (_, Some(405 | 412 | 413)) => (
            ErrorKind::Permission,
            true,
            "the Postmark account may not send right now (pending approval, out of credits or restricted): see the account's status in Postmark".into(),
        ),
        (_, Some(406)) => (
            ErrorKind::RecipientRejected,
            true,
            "a recipient is inactive (it bounced or marked mail as spam); reactivate it under Suppressions in Postmark or change `to`".into(),
        ),
        (_, Some(1235)) => (
            ErrorKind::Config,
            true,
            format!("Postmark has no message stream \"{stream}\" on this server: set `message_stream` to an existing transactional stream (the default is \"outbound\")"),
        ),
        (_, Some(100)) => (
            ErrorKind::Server,
            false,
            "Postmark is under maintenance; the notification stays queued".into(),
        ),
        (_, Some(429)) | (429, _) => (ErrorKind::RateLimited, false, String::new()),
        _ => {
            let (kind, permanent) = refusal.class_by_status();
            let kind = if refusal.status == 200 {
                ErrorKind::MessageRejected
            } else {
                kind
            };
            (kind, permanent || refusal.status == 200, String::new())
        }
    };
    let hint = (!hint.is_empty()).then_some(hint);
    refused(PROVIDER, &refusal, kind, permanent, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::email;

    #[test]
    fn body_follows_the_documented_shape() {
        let mut email = email();
        email.to.push("\"Doe, John\" <j@example.net>".into());
        assert_eq!(
            body(&email, "outbound").unwrap(),
            json!({
                "From": "Backups <backups@example.com>",
                "To": "ops@example.com, Bob <bob@example.org>, \"Doe, John\" <j@example.net>",
                "Subject": "host: Daily Backup: Failed",
                "TextBody": "it broke\n",
                "Headers": [
                    {"Name": "Message-ID", "Value": "<abc.postflight@host.example>"},
                    {"Name": "Auto-Submitted", "Value": "auto-generated"}
                ],
                "MessageStream": "outbound"
            })
        );
    }

    #[test]
    fn classifies_documented_errors() {
        use crate::http::tests::reply;
        let key = Secret::new("server-token");
        let body = |code: i64| format!(r#"{{"ErrorCode":{code},"Message":"documented message"}}"#);
        let cases = [
            (401, body(10), ErrorKind::Auth, true),
            (422, body(300), ErrorKind::MessageRejected, true),
            (422, body(400), ErrorKind::SenderRejected, true),
            (422, body(401), ErrorKind::SenderRejected, true),
            (422, body(405), ErrorKind::Permission, true),
            (422, body(406), ErrorKind::RecipientRejected, true),
            (422, body(412), ErrorKind::Permission, true),
            (422, body(1235), ErrorKind::Config, true),
            (429, body(429), ErrorKind::RateLimited, false),
            (
                500,
                "Internal Server Error".to_string(),
                ErrorKind::Server,
                false,
            ),
            (503, body(100), ErrorKind::Server, false),
        ];
        for (status, text, kind, permanent) in cases {
            let r = reply(status, &[], &text);
            let e = classify(&r, r.json().as_ref(), &key, "outbound");
            assert_eq!((e.kind, e.permanent), (kind, permanent), "{status} {text}");
        }
    }
}

//! The `mailgun` transport: Mailgun's Messages API.
//!
//! Documented endpoint (Mailgun API reference, "Messages", "Send an email"):
//! `POST /v3/{domain_name}/messages` on `https://api.mailgun.net` (US) or
//! `https://api.eu.mailgun.net` (EU; a domain lives in one region and its key only works
//! there). HTTP basic auth with user `api` and the private API key (or a domain sending key).
//! The body is `multipart/form-data` with the fields:
//!
//! - `from` (required): `Name <addr>`;
//! - `to` (required): one field per recipient (the API also takes a comma-separated list;
//!   separate fields keep a comma inside a display name harmless);
//! - `subject` (required), `text` (one of text/html/amp-html/template is required);
//! - `h:Message-ID`, `h:Auto-Submitted`: the `h:` prefix adds a custom MIME header.
//!
//! Success is `200` with `{"id": "<...>", "message": "Queued. Thank you."}`; `id` is the
//! message id. Errors are `{"message": "..."}` (400 validation, 403 not allowed to send,
//! 404 unknown domain, 413 too large, 429 rate limited, 5xx); 401 answers a bad key with a
//! plain-text `Forbidden`. Mailgun has no idempotency key for sending.

use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};
use reqwest::multipart::Form;

use crate::errors::{refused, text_of, unexpected, Refusal};
use crate::http::{Http, Reply};
use crate::message::{HeaderPolicy, Outgoing};
use crate::settings::{config_error, BaseUrl, Settings};

const NAME: &str = "mailgun";
const PROVIDER: &str = "Mailgun";
const HEADERS: HeaderPolicy = HeaderPolicy {
    message_id: true,
    reserved: &[],
};

/// The API host of each region Mailgun documents.
const REGIONS: &[(&str, &str)] = &[
    ("us", "https://api.mailgun.net"),
    ("eu", "https://api.eu.mailgun.net"),
];

/// The manifest entry.
pub fn spec() -> TransportSpec {
    TransportSpec {
        name: NAME.into(),
        description: "Mailgun Messages API (POST /v3/{domain}/messages)".into(),
        settings: vec![
            SettingSpec::new(
                "api_key",
                SettingType::String,
                "Mailgun private API key or a sending key of `domain` (API Security page)",
            )
            .required()
            .secret(),
            SettingSpec::new(
                "domain",
                SettingType::String,
                "the sending domain as set up in Mailgun, e.g. mg.example.com",
            )
            .required(),
            SettingSpec::new(
                "region",
                SettingType::String,
                "us (api.mailgun.net) or eu (api.eu.mailgun.net): where the domain was created",
            )
            .default_value("us"),
            SettingSpec::new(
                "base_url",
                SettingType::String,
                "API root, overriding `region` (a proxy or a test server)",
            ),
            crate::settings::allow_insecure_http_spec(),
        ],
    }
}

/// Validates settings; touches no network.
pub fn open(request: &OpenRequest) -> Result<Opened, DeliveryError> {
    let settings = Settings::new(NAME, &request.settings);
    let api_key = settings.api_key(
        "copy the private API key (or a sending key for the domain) from Mailgun's API Security page and give it as `api_key_env = \"MAILGUN_API_KEY\"` (or api_key_file / api_key_command)",
    )?;
    let domain = settings.required(
        "domain",
        "add `domain = \"mg.example.com\"`: the sending domain exactly as listed under Sending > Domains in Mailgun",
    )?;
    if domain.contains(['/', '@', ' ']) || domain.starts_with('.') || domain.ends_with('.') {
        return Err(config_error(
            NAME,
            format!("`domain` = \"{domain}\" is not a domain name"),
            "set `domain` to the bare sending domain, e.g. \"mg.example.com\" (no address, no URL)",
        ));
    }
    let region = settings
        .string("region")?
        .unwrap_or_else(|| "us".into())
        .to_ascii_lowercase();
    let Some((_, region_url)) = REGIONS.iter().find(|(name, _)| *name == region) else {
        let names = REGIONS.iter().map(|(n, _)| *n);
        let suggestion = postflight_core::suggest::closest(&region, names)
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        return Err(config_error(
            NAME,
            format!("unknown `region` = \"{region}\"{suggestion}"),
            "set `region` to \"us\" or \"eu\", matching where the domain was created in Mailgun",
        ));
    };
    let base = settings.base_url(region_url)?;
    let warnings = base.plaintext_warning(NAME).into_iter().collect();
    Ok(Opened {
        connection: Box::new(Mailgun {
            api_key,
            domain,
            base,
            http: Http::new(request.send_timeout_ms),
        }),
        warnings,
    })
}

#[derive(Debug)]
struct Mailgun {
    api_key: Secret,
    domain: String,
    base: BaseUrl,
    http: Http,
}

/// The form fields, in order.
fn fields(email: &Email) -> Result<Vec<(String, String)>, DeliveryError> {
    let out = Outgoing::new(email, HEADERS)?;
    let mut fields = vec![("from".to_string(), out.from.to_string())];
    fields.extend(out.to.iter().map(|to| ("to".to_string(), to.to_string())));
    fields.push(("subject".into(), out.subject.to_string()));
    fields.push(("text".into(), out.text.to_string()));
    fields.extend(
        out.headers
            .iter()
            .map(|(name, value)| (format!("h:{name}"), value.to_string())),
    );
    Ok(fields)
}

impl Connection for Mailgun {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let fields = fields(email)?;
        let url = self.base.join(&["v3", &self.domain, "messages"]);
        let key = self.api_key.expose().to_string();
        let reply = self.http.send(PROVIDER, |client| {
            let form = fields
                .into_iter()
                .fold(Form::new(), |form, (name, value)| form.text(name, value));
            client
                .post(url)
                .basic_auth("api", Some(key))
                .multipart(form)
        })?;
        if !reply.status.is_success() {
            return Err(classify(&reply, &self.api_key, &self.domain));
        }
        let json = reply.json();
        let id = json.as_ref().and_then(|j| text_of(j.get("id")));
        let Some(id) = id else {
            return Err(unexpected(
                PROVIDER,
                &reply,
                "a success without the message `id`",
                &self.api_key,
            ));
        };
        let message = json.as_ref().and_then(|j| text_of(j.get("message")));
        Ok(Receipt {
            message_id: email.message_id.clone(),
            server_id: Some(id),
            reply: Some(match message {
                Some(m) => format!(
                    "{}: {}",
                    reply.status_line(),
                    crate::errors::quote(&m, &self.api_key)
                ),
                None => reply.status_line(),
            }),
            location: None,
            refused: Vec::new(),
        })
    }
}

/// Maps a Mailgun error reply to a delivery error.
fn classify(reply: &Reply, key: &Secret, domain: &str) -> DeliveryError {
    let message = reply.json().and_then(|j| text_of(j.get("message")));
    let refusal = Refusal::new(reply, None, message, key);
    let text = refusal.message_lower();
    let (kind, permanent, hint) = match refusal.status {
        401 => (
            ErrorKind::Auth,
            true,
            "Mailgun refused `api_key`: check the key on the API Security page; a key only works in its own region, so an EU domain also needs `region = \"eu\"`".to_string(),
        ),
        403 if text.contains("authorized recipient") || text.contains("sandbox") => (
            ErrorKind::RecipientRejected,
            true,
            "this is a sandbox domain: add every recipient as an Authorized Recipient in Mailgun, or use a verified `domain`".to_string(),
        ),
        403 if text.contains("not allowed to send") || text.contains("unverified") || text.contains("not verified") => (
            ErrorKind::SenderRejected,
            true,
            format!("Mailgun will not send for `domain` = \"{domain}\" yet: finish its DNS verification under Sending > Domains, and make `from` use that domain"),
        ),
        403 => (
            ErrorKind::Permission,
            true,
            format!("the key may not send for \"{domain}\": use the account's private key or a sending key created for this `domain`"),
        ),
        404 => (
            ErrorKind::Config,
            true,
            format!("Mailgun does not know `domain` = \"{domain}\" in this region: check the spelling and set `region` to where the domain was created (\"us\" or \"eu\")"),
        ),
        _ => {
            let (kind, permanent) = refusal.class_by_status();
            (kind, permanent, String::new())
        }
    };
    let hint = (!hint.is_empty()).then_some(hint);
    refused(PROVIDER, &refusal, kind, permanent, hint)
}

/// For tests: the region table.
#[cfg(test)]
fn region_url(region: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(n, _)| *n == region)
        .map(|(_, url)| *url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::email;

    #[test]
    fn fields_follow_the_documented_form() {
        let mut email = email();
        email.to.push("\"Doe, John\" <j@example.net>".into());
        let fields = fields(&email).unwrap();
        let f = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            fields,
            vec![
                f("from", "Backups <backups@example.com>"),
                f("to", "ops@example.com"),
                f("to", "Bob <bob@example.org>"),
                f("to", "\"Doe, John\" <j@example.net>"),
                f("subject", "host: Daily Backup: Failed"),
                f("text", "it broke\n"),
                f("h:Message-ID", "<abc.postflight@host.example>"),
                f("h:Auto-Submitted", "auto-generated"),
            ]
        );
    }

    #[test]
    fn regions_are_the_documented_hosts() {
        assert_eq!(region_url("us"), Some("https://api.mailgun.net"));
        assert_eq!(region_url("eu"), Some("https://api.eu.mailgun.net"));
        assert_eq!(region_url("asia"), None);
    }

    #[test]
    fn classifies_documented_errors() {
        use crate::http::tests::reply;
        let key = Secret::new("key-secret");
        let cases = [
            (401, "Forbidden", ErrorKind::Auth, true),
            (
                403,
                r#"{"message":"Domain mg.example.com is not allowed to send: unverified"}"#,
                ErrorKind::SenderRejected,
                true,
            ),
            (
                403,
                r#"{"message":"Sandbox subdomains are for test purposes only. Please add your own domain or add the address to authorized recipients in Account Settings."}"#,
                ErrorKind::RecipientRejected,
                true,
            ),
            (
                404,
                r#"{"message":"Domain not found: mg.example.com"}"#,
                ErrorKind::Config,
                true,
            ),
            (
                400,
                r#"{"message":"'from' parameter is missing"}"#,
                ErrorKind::MessageRejected,
                true,
            ),
            (
                429,
                r#"{"message":"Too many requests"}"#,
                ErrorKind::RateLimited,
                false,
            ),
            (500, "<html>oops</html>", ErrorKind::Server, false),
        ];
        for (status, body, kind, permanent) in cases {
            let e = classify(&reply(status, &[], body), &key, "mg.example.com");
            assert_eq!((e.kind, e.permanent), (kind, permanent), "{status} {body}");
        }
    }
}

//! The `ses` transport: Amazon SES API v2, `SendEmail`.
//!
//! Documented endpoint (Amazon SES API v2 Reference, "SendEmail"):
//! `POST /v2/email/outbound-emails` on `https://email.{region}.amazonaws.com`,
//! `Content-Type: application/json`, signed with AWS Signature Version 4 (signing name `ses`;
//! done by the aws-sigv4 crate, see [`crate::sigv4`]). Fields sent:
//!
//! - `FromEmailAddress`: `Name <addr>`, a non-ASCII name as an RFC 2047 encoded-word (SES
//!   requires that);
//! - `Destination.ToAddresses`: every recipient, encoded the same way;
//! - `Content.Simple.Subject` and `Content.Simple.Body.Text`: `{"Data", "Charset": "UTF-8"}`;
//! - `Content.Simple.Headers`: `[{"Name": "Auto-Submitted", "Value": ...}]` (values printable
//!   ASCII). No `Message-ID`: SES documents that it replaces any Message-ID with its own.
//!
//! Success is `200` with `{"MessageId": "..."}`. Errors are REST-JSON: the type in the
//! `x-amzn-ErrorType` header (or `__type`/`code` in the body) and `{"message": "..."}`:
//! `MessageRejected`, `MailFromDomainNotVerifiedException`, `AccountSuspendedException`,
//! `SendingPausedException`, `BadRequestException`, `NotFoundException` (400/404),
//! `LimitExceededException`, `TooManyRequestsException` (429); the common AWS errors
//! `UnrecognizedClientException`, `InvalidSignatureException`, `ExpiredTokenException`,
//! `AccessDeniedException` (403), `InternalFailure`/`ServiceUnavailable` (5xx). SendEmail has
//! no idempotency token.
//!
//! Credentials come from `access_key_id`/`secret_access_key`/`session_token`, else from the
//! standard `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` environment
//! variables; the region from `region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`.

use std::time::SystemTime;

use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};

use crate::address::{self, encode_header_value};
use crate::errors::{refused, text_of, unexpected, Refusal};
use crate::http::{Http, Reply};
use crate::message::{HeaderPolicy, Outgoing};
use crate::settings::{config_error, BaseUrl, Settings};
use crate::sigv4::{sign_request, AwsCredentials, Request};

const NAME: &str = "ses";
const PROVIDER: &str = "Amazon SES";
/// The SigV4 signing name of SES (v1 and v2 alike).
const SIGNING_NAME: &str = "ses";
/// Region used for signing when only `base_url` is given (a test server or a proxy).
const FALLBACK_SIGNING_REGION: &str = "us-east-1";
const HEADERS: HeaderPolicy = HeaderPolicy {
    // SES overwrites Message-ID with its own value, so sending ours would only mislead.
    message_id: false,
    reserved: &["message-id", "return-path"],
};

/// Regions with an SES API v2 endpoint (AWS General Reference, "Amazon SES endpoints and
/// quotas"). A region AWS adds later can be reached through `base_url` until this list knows it.
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// The manifest entry.
pub fn spec() -> TransportSpec {
    TransportSpec {
        name: NAME.into(),
        description: "Amazon SES API v2 SendEmail (POST /v2/email/outbound-emails, SigV4)".into(),
        settings: vec![
            SettingSpec::new(
                "region",
                SettingType::String,
                "AWS region of the SES account, e.g. eu-west-1 (else $AWS_REGION; required unless base_url is set)",
            ),
            SettingSpec::new(
                "access_key_id",
                SettingType::String,
                "AWS access key id of an IAM identity allowed ses:SendEmail (else $AWS_ACCESS_KEY_ID)",
            ),
            SettingSpec::new(
                "secret_access_key",
                SettingType::String,
                "the secret access key of `access_key_id` (else $AWS_SECRET_ACCESS_KEY)",
            )
            .secret(),
            SettingSpec::new(
                "session_token",
                SettingType::String,
                "session token of temporary credentials (else $AWS_SESSION_TOKEN)",
            )
            .secret(),
            SettingSpec::new(
                "base_url",
                SettingType::String,
                "API root instead of https://email.<region>.amazonaws.com (a VPC endpoint, a test server)",
            ),
            crate::settings::allow_insecure_http_spec(),
        ],
    }
}

/// Validates settings; touches no network. Reads the standard AWS environment variables as
/// the fallback for credentials and region.
pub fn open(request: &OpenRequest) -> Result<Opened, DeliveryError> {
    open_with_env(request, &|name| std::env::var(name).ok())
}

/// [`open`] with the environment given (tests use a fake one).
fn open_with_env(
    request: &OpenRequest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Opened, DeliveryError> {
    let settings = Settings::new(NAME, &request.settings);
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let configured_base = settings.string("base_url")?;
    let region = match settings.string("region")? {
        Some(region) => Some(region),
        None => env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
    };
    let (base, region) = match (configured_base, region) {
        (Some(_), region) => {
            let region = match region {
                Some(r) => check_region(&r, false)?,
                None => FALLBACK_SIGNING_REGION.to_string(),
            };
            (settings.base_url("")?, region)
        }
        (None, Some(region)) => {
            let region = check_region(&region, true)?;
            let url = format!("https://email.{region}.amazonaws.com");
            (BaseUrl::parse(NAME, &url)?, region)
        }
        (None, None) => {
            return Err(config_error(
                NAME,
                "no AWS region is set",
                "add `region = \"us-east-1\"` (the region of your SES account) to the account, or export AWS_REGION where postflight runs",
            ))
        }
    };
    let credentials = credentials(&settings, &env)?;
    let warnings = base.plaintext_warning(NAME).into_iter().collect();
    Ok(Opened {
        connection: Box::new(Ses {
            credentials,
            region,
            base,
            http: Http::new(request.send_timeout_ms),
        }),
        warnings,
    })
}

/// Checks a region name; `known_only` also requires SES to be documented there (when we build
/// the endpoint from it; with `base_url` any well-formed region can sign).
fn check_region(region: &str, known_only: bool) -> Result<String, DeliveryError> {
    let region = region.trim().to_ascii_lowercase();
    let well_formed = region.split('-').count() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.ends_with(|c: char| c.is_ascii_digit());
    if REGIONS.contains(&region.as_str()) || (!known_only && well_formed) {
        return Ok(region);
    }
    let suggestion = postflight_core::suggest::closest(&region, REGIONS.iter().copied())
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default();
    Err(config_error(
        NAME,
        format!("unknown `region` = \"{region}\"{suggestion}"),
        format!(
            "set `region` to an AWS region where SES is available: {}; for a region not listed, set `base_url = \"https://email.REGION.amazonaws.com\"` too",
            REGIONS.join(", ")
        ),
    ))
}

/// Credentials from the settings, else from the standard AWS environment variables.
fn credentials(
    settings: &Settings<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AwsCredentials, DeliveryError> {
    let key_id = settings.string("access_key_id")?;
    let secret = settings.secret("secret_access_key")?;
    let token = settings.secret("session_token")?;
    match (key_id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => {
            check_key_id(&access_key_id)?;
            Ok(AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token: token,
            })
        }
        (Some(_), None) => Err(config_error(
            NAME,
            "`access_key_id` is set but `secret_access_key` is not",
            "add `secret_access_key_env = \"...\"` (or _file / _command) with the key's secret",
        )),
        (None, Some(_)) => Err(config_error(
            NAME,
            "`secret_access_key` is set but `access_key_id` is not",
            "add `access_key_id = \"AKIA...\"` for the secret",
        )),
        (None, None) => {
            match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(access_key_id), Some(secret)) => {
                    check_key_id(&access_key_id)?;
                    Ok(AwsCredentials {
                        access_key_id,
                        secret_access_key: Secret::new(secret),
                        // A token from the settings goes with settings' keys only.
                        session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
                    })
                }
                _ => Err(config_error(
                    NAME,
                    "no AWS credentials are configured",
                    "set `access_key_id` and `secret_access_key_env` (or _file / _command) in the account, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY where postflight runs",
                )),
            }
        }
    }
}

fn check_key_id(id: &str) -> Result<(), DeliveryError> {
    if id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(config_error(
            NAME,
            "`access_key_id` is not an AWS access key id",
            "copy the access key id (letters and digits, like AKIAIOSFODNN7EXAMPLE) from IAM; the secret goes in `secret_access_key`",
        ))
    }
}

#[derive(Debug)]
struct Ses {
    credentials: AwsCredentials,
    region: String,
    base: BaseUrl,
    http: Http,
}

/// The SendEmail request body.
fn body(email: &Email) -> Result<Value, DeliveryError> {
    let out = Outgoing::new(email, HEADERS)?;
    let to: Vec<String> = out.to.iter().map(address::to_ascii_header).collect();
    let headers: Vec<Value> = out
        .headers
        .iter()
        .map(|(name, value)| json!({"Name": name, "Value": encode_header_value(value)}))
        .collect();
    let mut simple = json!({
        "Subject": {"Data": out.subject, "Charset": "UTF-8"},
        "Body": {"Text": {"Data": out.text, "Charset": "UTF-8"}},
    });
    if !headers.is_empty() {
        simple["Headers"] = Value::Array(headers);
    }
    Ok(json!({
        "FromEmailAddress": address::to_ascii_header(&out.from),
        "Destination": {"ToAddresses": to},
        "Content": {"Simple": simple},
    }))
}

impl Connection for Ses {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let sender = address::parse(&email.from, "sender")?.email.to_string();
        let body = serde_json::to_vec(&body(email)?).expect("a JSON value always serializes");
        let url = self.base.join(&["v2", "email", "outbound-emails"]);
        let signed = sign_request(
            Request {
                method: "POST",
                url: url.as_str(),
                headers: &[("content-type", "application/json")],
                body: &body,
            },
            &self.credentials,
            &self.region,
            SIGNING_NAME,
            SystemTime::now(),
        )?;
        let reply = self.http.send(PROVIDER, |client| {
            let mut request = client
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(body);
            for (name, value) in signed {
                request = request.header(name, value);
            }
            request
        })?;
        let key = &self.credentials.secret_access_key;
        if !reply.status.is_success() {
            return Err(classify(
                &reply,
                key,
                &self.credentials.access_key_id,
                &sender,
            ));
        }
        let id = reply.json().and_then(|j| text_of(j.get("MessageId")));
        let Some(id) = id else {
            return Err(unexpected(
                PROVIDER,
                &reply,
                "a success without `MessageId`",
                key,
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

/// The AWS error type: `x-amzn-ErrorType` (`MessageRejected:http://...`), else `__type` or
/// `code` in the body (`com.amazonaws...#MessageRejected`).
fn error_type(reply: &Reply, json: Option<&Value>) -> Option<String> {
    let raw = reply
        .header("x-amzn-errortype")
        .map(str::to_string)
        .or_else(|| {
            let json = json?;
            text_of(json.get("__type"))
                .or_else(|| text_of(json.get("code")))
                .or_else(|| text_of(json.get("Code")))
        })?;
    let raw = raw.split(':').next().unwrap_or_default();
    let name = raw.rsplit('#').next().unwrap_or_default().trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Maps an SES error reply to a delivery error.
fn classify(reply: &Reply, key: &Secret, access_key_id: &str, sender: &str) -> DeliveryError {
    let json = reply.json();
    let kind_name = error_type(reply, json.as_ref());
    let message = json
        .as_ref()
        .and_then(|j| text_of(j.get("message")).or_else(|| text_of(j.get("Message"))));
    let refusal = Refusal::new(reply, kind_name.clone(), message, key);
    let text = refusal.message_lower();
    let credentials_hint = format!(
        "AWS did not accept the access key {access_key_id}: check `access_key_id` and `secret_access_key` (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), and that the key is active in IAM"
    );
    let (kind, permanent, hint): (ErrorKind, bool, String) = match kind_name.as_deref().unwrap_or_default() {
        "UnrecognizedClientException" | "InvalidClientTokenId" | "MissingAuthenticationToken"
        | "IncompleteSignature" => (ErrorKind::Auth, true, credentials_hint),
        "InvalidSignatureException" | "SignatureDoesNotMatch"
            if text.contains("expired") || text.contains("signature not yet current") =>
        {
            (
                ErrorKind::Auth,
                false,
                "AWS says the request's time is off: make sure this machine's clock is right (NTP)".into(),
            )
        }
        "InvalidSignatureException" | "SignatureDoesNotMatch" => (
            ErrorKind::Auth,
            true,
            "AWS did not accept the signature: check `secret_access_key` (or AWS_SECRET_ACCESS_KEY) belongs to `access_key_id`".into(),
        ),
        "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" => (
            ErrorKind::Auth,
            false,
            "the temporary credentials have expired: refresh `session_token` (or AWS_SESSION_TOKEN) and the keys that go with it".into(),
        ),
        "AccessDeniedException" | "AccessDenied" => (
            ErrorKind::Permission,
            true,
            format!("the IAM identity of {access_key_id} may not send: allow it `ses:SendEmail` (for the sender identity) in IAM"),
        ),
        "MailFromDomainNotVerifiedException" => (
            ErrorKind::SenderRejected,
            true,
            "SES cannot use the custom MAIL FROM domain of the sender's identity: fix its MX record or the identity's MAIL FROM settings in SES".into(),
        ),
        "MessageRejected" if text.contains("not verified") => {
            // The message lists the identities that failed; in the sandbox recipients must be
            // verified too, so it may name only recipients.
            let kind = if text.contains("identities failed") && !text.contains(&sender.to_lowercase()) {
                ErrorKind::RecipientRejected
            } else {
                ErrorKind::SenderRejected
            };
            (
                kind,
                true,
                "verify the account's `from` address or its domain in SES (Verified identities) in this `region`; while the SES account is in the sandbox every recipient must be verified too, or request production access".into(),
            )
        }
        "AccountSuspendedException" => (
            ErrorKind::Permission,
            true,
            "AWS has suspended sending for this SES account; see the SES console's reputation dashboard".into(),
        ),
        "SendingPausedException" => (
            ErrorKind::Permission,
            false,
            "sending is paused for this SES account or configuration set; the notification stays queued until it is resumed".into(),
        ),
        "TooManyRequestsException" | "ThrottlingException" | "Throttling"
        | "LimitExceededException" => (ErrorKind::RateLimited, false, String::new()),
        "NotFoundException" => (
            ErrorKind::Config,
            true,
            "SES did not find a resource the request named; check `base_url` and `region`".into(),
        ),
        "InternalFailure" | "ServiceUnavailable" | "InternalServerError" => {
            (ErrorKind::Server, false, String::new())
        }
        _ => {
            let (kind, permanent) = refusal.class_by_status();
            let hint = match kind {
                ErrorKind::Auth | ErrorKind::Permission => credentials_hint,
                _ => String::new(),
            };
            (kind, permanent, hint)
        }
    };
    let hint = (!hint.is_empty()).then_some(hint);
    refused(PROVIDER, &refusal, kind, permanent, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::email;
    use reqwest::header::{HeaderMap, HeaderValue};
    use reqwest::StatusCode;

    fn request(settings: Value) -> OpenRequest {
        OpenRequest {
            transport: NAME.into(),
            account: "t".into(),
            send_timeout_ms: 1000,
            settings: settings.as_object().unwrap().clone(),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn body_follows_the_documented_shape() {
        let mut email = email();
        email.from = "Jörg Müller <joerg@example.com>".into();
        email.subject = "Sauvegarde échouée".into();
        assert_eq!(
            body(&email).unwrap(),
            json!({
                "FromEmailAddress": "=?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <joerg@example.com>",
                "Destination": {"ToAddresses": ["ops@example.com", "Bob <bob@example.org>"]},
                "Content": {"Simple": {
                    "Subject": {"Data": "Sauvegarde échouée", "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": "it broke\n", "Charset": "UTF-8"}},
                    "Headers": [{"Name": "Auto-Submitted", "Value": "auto-generated"}]
                }}
            })
        );
    }

    #[test]
    fn region_and_credentials_fall_back_to_the_environment() {
        let env = |name: &str| match name {
            "AWS_REGION" => Some("eu-west-1".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
            "AWS_SESSION_TOKEN" => Some("envtoken".to_string()),
            _ => None,
        };
        assert!(open_with_env(&request(json!({})), &env).is_ok());
        let e = match open_with_env(&request(json!({})), &no_env) {
            Err(e) => e,
            Ok(_) => panic!("opened without a region"),
        };
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.hint.unwrap().contains("region"));
        let e = match open_with_env(&request(json!({"region": "us-east-1"})), &no_env) {
            Err(e) => e,
            Ok(_) => panic!("opened without credentials"),
        };
        assert!(e.message.contains("no AWS credentials"), "{e:?}");
        let env_creds = |s: &Map| credentials(&Settings::new(NAME, s), &env).unwrap();
        type Map = serde_json::Map<String, Value>;
        let from_env = env_creds(&Map::new());
        assert_eq!(from_env.access_key_id, "AKIDENV");
        assert_eq!(from_env.session_token.unwrap().expose(), "envtoken");
        let mut settings = Map::new();
        settings.insert("access_key_id".into(), json!("AKIDSET"));
        settings.insert("secret_access_key".into(), json!("setsecret"));
        let from_settings = env_creds(&settings);
        assert_eq!(from_settings.access_key_id, "AKIDSET");
        assert!(
            from_settings.session_token.is_none(),
            "env token must not pair with settings' keys"
        );
    }

    #[test]
    fn unknown_regions_are_config_errors_with_a_suggestion() {
        let e = check_region("us-east1", true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.permanent);
        assert!(
            e.message.contains("did you mean \"us-east-1\""),
            "{}",
            e.message
        );
        assert!(check_region("mars-north-1", true).is_err());
        assert_eq!(check_region("EU-West-3", true).unwrap(), "eu-west-3");
        // With base_url, a well-formed region not in the list is allowed for signing.
        assert_eq!(check_region("xx-new-9", false).unwrap(), "xx-new-9");
        assert!(check_region("virginia", false).is_err());
    }

    #[test]
    fn error_type_comes_from_the_header_or_the_body() {
        let reply = |header: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(h) = header {
                headers.insert("x-amzn-errortype", HeaderValue::from_str(h).unwrap());
            }
            Reply {
                status: StatusCode::BAD_REQUEST,
                headers,
                body: Vec::new(),
            }
        };
        assert_eq!(
            error_type(
                &reply(Some(
                    "MessageRejected:http://internal.amazon.com/coral/com.amazonaws.sesv2/"
                )),
                None
            )
            .as_deref(),
            Some("MessageRejected")
        );
        let json = json!({"__type": "com.amazonaws.sesv2#TooManyRequestsException"});
        assert_eq!(
            error_type(&reply(None), Some(&json)).as_deref(),
            Some("TooManyRequestsException")
        );
    }

    #[test]
    fn classifies_documented_errors() {
        use crate::http::tests::reply;
        let key = Secret::new("aws-secret");
        let err = |status: u16, kind: &str, message: &str| {
            let header = format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.sesv2/");
            let body = format!(r#"{{"message":"{message}"}}"#);
            classify(
                &reply(status, &[("x-amzn-errortype", &header)], &body),
                &key,
                "AKIDX",
                "backups@example.com",
            )
        };
        let cases = [
            (403, "UnrecognizedClientException", "The security token included in the request is invalid.", ErrorKind::Auth, true),
            (403, "InvalidSignatureException", "The request signature we calculated does not match", ErrorKind::Auth, true),
            (403, "InvalidSignatureException", "Signature expired: 20150830T123600Z is now earlier than", ErrorKind::Auth, false),
            (403, "ExpiredTokenException", "The security token included in the request is expired", ErrorKind::Auth, false),
            (403, "AccessDeniedException", "User: arn:aws:iam::1:user/x is not authorized to perform: ses:SendEmail", ErrorKind::Permission, true),
            (400, "MessageRejected", "Email address is not verified. The following identities failed the check in region US-EAST-1: backups@example.com", ErrorKind::SenderRejected, true),
            (400, "MessageRejected", "Email address is not verified. The following identities failed the check in region US-EAST-1: ops@example.org", ErrorKind::RecipientRejected, true),
            (400, "MessageRejected", "Illegal header", ErrorKind::MessageRejected, true),
            (400, "MailFromDomainNotVerifiedException", "MAIL FROM domain not verified", ErrorKind::SenderRejected, true),
            (400, "AccountSuspendedException", "suspended", ErrorKind::Permission, true),
            (400, "SendingPausedException", "paused", ErrorKind::Permission, false),
            (429, "TooManyRequestsException", "Too Many Requests", ErrorKind::RateLimited, false),
            (400, "LimitExceededException", "Daily message quota exceeded", ErrorKind::RateLimited, false),
            (400, "BadRequestException", "bad", ErrorKind::MessageRejected, true),
            (500, "InternalFailure", "unknown error", ErrorKind::Server, false),
        ];
        for (status, kind_name, message, kind, permanent) in cases {
            let e = err(status, kind_name, message);
            assert_eq!(
                (e.kind, e.permanent),
                (kind, permanent),
                "{kind_name}: {message}"
            );
            assert!(e.reply.unwrap().contains(kind_name));
        }
        // moto and older endpoints answer some errors without the header.
        let e = classify(
            &reply(
                400,
                &[],
                r#"{"__type":"MessageRejected","message":"Email address not verified backups@example.com"}"#,
            ),
            &key,
            "AKIDX",
            "backups@example.com",
        );
        assert_eq!(e.kind, ErrorKind::SenderRejected, "{e:?}");
    }
}

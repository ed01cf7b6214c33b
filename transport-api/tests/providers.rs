//! Every transport of the `api` plugin, loaded through the host's discovery and driven over
//! the ABI against local emulators that accept only documented requests
//! (test-support/api_server.py). One set of cases runs per provider; each provider adds how
//! its settings look and how its recorded request must look, field by field.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use postflight_core::{Email, ErrorKind};
use serde_json::{json, Value};
use support::*;

/// How one provider is configured and what its request must contain.
struct Provider {
    transport: &'static str,
    /// Settings for the emulator at `url`.
    settings: fn(url: &str) -> Value,
    /// The settings with a wrong credential.
    wrong_key: fn(Value) -> Value,
    /// The setting an auth error's hint must name.
    key_setting: &'static str,
    /// Checks the recorded request against the email, field by field.
    check_request: fn(request: &Value, email: &Email),
}

const SENDGRID: Provider = Provider {
    transport: "sendgrid",
    settings: |url| settings(&[("api_key", API_KEY), ("base_url", url)]),
    wrong_key: |s| with(s, "api_key", Some("SG.wrong-key-123")),
    key_setting: "api_key",
    check_request: |r, email| {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], "/v3/mail/send");
        assert_eq!(r["headers"]["authorization"], format!("Bearer {API_KEY}"));
        assert_eq!(r["headers"]["content-type"], "application/json");
        let body = &r["json"];
        let to: Vec<Value> = email.to.iter().map(|t| split_mailbox(t)).collect();
        assert_eq!(body["personalizations"], json!([{"to": to}]));
        assert_eq!(body["from"], split_mailbox(&email.from));
        assert_eq!(body["subject"], email.subject.as_str());
        assert_eq!(
            body["content"],
            json!([{"type": "text/plain", "value": email.text}])
        );
        assert_eq!(
            body["headers"],
            json!({"Message-ID": email.message_id, "Auto-Submitted": "auto-generated"})
        );
        assert_eq!(
            keys(body),
            ["content", "from", "headers", "personalizations", "subject"]
        );
    },
};

const MAILGUN: Provider = Provider {
    transport: "mailgun",
    settings: |url| {
        settings(&[
            ("api_key", API_KEY),
            ("domain", MAILGUN_DOMAIN),
            ("base_url", url),
        ])
    },
    wrong_key: |s| with(s, "api_key", Some("key-wrong-123")),
    key_setting: "api_key",
    check_request: |r, email| {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], format!("/v3/{MAILGUN_DOMAIN}/messages"));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{API_KEY}"));
        assert_eq!(r["headers"]["authorization"], format!("Basic {basic}"));
        assert!(r["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary="));
        let mut want = vec![json!(["from", email.from])];
        want.extend(email.to.iter().map(|t| json!(["to", t])));
        want.extend([
            json!(["subject", email.subject]),
            json!(["text", email.text]),
            json!(["h:Message-ID", email.message_id]),
            json!(["h:Auto-Submitted", "auto-generated"]),
        ]);
        assert_eq!(r["form"], Value::Array(want));
    },
};

const POSTMARK: Provider = Provider {
    transport: "postmark",
    settings: |url| settings(&[("api_key", API_KEY), ("base_url", url)]),
    wrong_key: |s| with(s, "api_key", Some("00000000-0000-0000-0000-000000000000")),
    key_setting: "api_key",
    check_request: |r, email| {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], "/email");
        assert_eq!(r["headers"]["x-postmark-server-token"], API_KEY);
        assert_eq!(r["headers"]["accept"], "application/json");
        assert_eq!(r["headers"]["content-type"], "application/json");
        assert_eq!(
            r["json"],
            json!({
                "From": email.from,
                "To": email.to.join(", "),
                "Subject": email.subject,
                "TextBody": email.text,
                "Headers": [
                    {"Name": "Message-ID", "Value": email.message_id},
                    {"Name": "Auto-Submitted", "Value": "auto-generated"}
                ],
                "MessageStream": "outbound"
            })
        );
    },
};

const RESEND: Provider = Provider {
    transport: "resend",
    settings: |url| settings(&[("api_key", API_KEY), ("base_url", url)]),
    wrong_key: |s| with(s, "api_key", Some("re_wrong_123")),
    key_setting: "api_key",
    check_request: |r, email| {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], "/emails");
        assert_eq!(r["headers"]["authorization"], format!("Bearer {API_KEY}"));
        assert_eq!(r["headers"]["content-type"], "application/json");
        assert_eq!(
            r["headers"]["idempotency-key"],
            email.idempotency_key.as_str()
        );
        assert_eq!(
            r["json"],
            json!({
                "from": email.from,
                "to": email.to,
                "subject": email.subject,
                "text": email.text,
                "headers": {"Message-ID": email.message_id, "Auto-Submitted": "auto-generated"}
            })
        );
    },
};

const SES: Provider = Provider {
    transport: "ses",
    settings: |url| {
        settings(&[
            ("region", "us-east-1"),
            ("access_key_id", AWS_KEY_ID),
            ("secret_access_key", AWS_SECRET),
            ("base_url", url),
        ])
    },
    wrong_key: |s| with(s, "secret_access_key", Some("not/the/right/secret")),
    key_setting: "secret_access_key",
    check_request: |r, email| {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], "/v2/email/outbound-emails");
        assert_eq!(r["headers"]["content-type"], "application/json");
        let auth = r["headers"]["authorization"].as_str().unwrap();
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/ses/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date,"),
            "{auth}"
        );
        assert_eq!(r["region"], "us-east-1");
        let ascii = |m: &str| ascii_mailbox(m);
        assert_eq!(
            r["json"],
            json!({
                "FromEmailAddress": ascii(&email.from),
                "Destination": {"ToAddresses": email.to.iter().map(|t| ascii(t)).collect::<Vec<_>>()},
                "Content": {"Simple": {
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": email.text, "Charset": "UTF-8"}},
                    "Headers": [{"Name": "Auto-Submitted", "Value": "auto-generated"}]
                }}
            })
        );
    },
};

/// `Name <addr>` as SendGrid's `{email, name}`.
fn split_mailbox(text: &str) -> Value {
    match text.rsplit_once(" <") {
        Some((name, rest)) => json!({"email": rest.trim_end_matches('>'), "name": name}),
        None => json!({"email": text}),
    }
}

/// `Name <addr>` with a non-ASCII name as one RFC 2047 word (the test names are short).
fn ascii_mailbox(text: &str) -> String {
    match text.rsplit_once(" <") {
        Some((name, rest)) if !name.is_ascii() => format!(
            "=?utf-8?b?{}?= <{rest}",
            base64::engine::general_purpose::STANDARD.encode(name)
        ),
        _ => text.to_string(),
    }
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

const FROM: &str = "Backups <backups@example.com>";

/// The generic cases, run for every provider by `provider_tests!`.
mod cases {
    use super::*;

    pub fn delivers_one_message(p: &Provider) {
        let server = Emulator::serve(&[]);
        let mut session = session(p.transport, &(p.settings)(&server.url()));
        let email = email(
            FROM,
            &["ops@example.org"],
            "db01: Daily Backup: Failed",
            "exit 1\n",
        );
        let receipt = session
            .send(&email)
            .unwrap_or_else(|e| panic!("{e:?}\n{}", server.log()));
        let request = server.only_request();
        (p.check_request)(&request, &email);
        assert_eq!(receipt.message_id, email.message_id);
        assert_eq!(
            receipt.server_id.as_deref(),
            request["message_id"].as_str(),
            "the receipt carries the provider's message id"
        );
        assert!(receipt.reply.unwrap().starts_with("HTTP 20"));
    }

    pub fn delivers_to_several_recipients_with_non_ascii_text(p: &Provider) {
        let server = Emulator::serve(&[]);
        let mut session = session(p.transport, &(p.settings)(&server.url()));
        let email = email(
            "Sauvegardes Jörg <backups@example.com>",
            &[
                "ops@example.org",
                "Zoë Ærø <zoe@example.net>",
                "Bob <bob@example.com>",
            ],
            "srv-01: Sauvegarde quotidienne: échouée ✗ — 失败",
            "Sortie:\nrsync: échec — 接続できません\n\tligne 3 ✓\n",
        );
        session
            .send(&email)
            .unwrap_or_else(|e| panic!("{e:?}\n{}", server.log()));
        (p.check_request)(&server.only_request(), &email);
    }

    pub fn reuses_one_connection_for_several_sends(p: &Provider) {
        let server = Emulator::serve(&[]);
        let mut session = session(p.transport, &(p.settings)(&server.url()));
        let first = email(FROM, &["a@example.org"], "one", "1");
        let second = email(FROM, &["b@example.org"], "two", "2");
        session.send(&first).unwrap();
        session.send(&second).unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        (p.check_request)(&requests[0], &first);
        (p.check_request)(&requests[1], &second);
    }

    pub fn wrong_key_is_permanent_auth_naming_the_setting(p: &Provider) {
        let server = Emulator::serve(&[]);
        let settings = (p.wrong_key)((p.settings)(&server.url()));
        let wrong: Vec<String> = settings
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "api_key" | "secret_access_key"))
            .map(|(_, v)| v.as_str().unwrap().to_string())
            .collect();
        let mut session = session(p.transport, &settings);
        let e = session
            .send(&email(FROM, &["a@example.org"], "s", "t"))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e:?}");
        assert!(e.permanent, "{e:?}");
        assert!(
            e.reply.as_deref().unwrap_or_default().contains("HTTP 40"),
            "{e:?}"
        );
        let hint = e.hint.clone().unwrap_or_default();
        assert!(
            hint.contains(p.key_setting),
            "hint should name `{}`: {hint}",
            p.key_setting
        );
        let mut secrets: Vec<&str> = wrong.iter().map(String::as_str).collect();
        secrets.extend([API_KEY, AWS_SECRET]);
        assert_no_secret(&e, &secrets);
        assert!(server.requests().is_empty());
    }

    pub fn unverified_sender_is_permanent_naming_from(p: &Provider) {
        let server = Emulator::serve(&[]);
        let mut settings = (p.settings)(&server.url());
        if p.transport == "mailgun" {
            // Mailgun checks the sending domain of the URL, not the From address.
            settings = with(settings, "domain", Some(MAILGUN_UNVERIFIED_DOMAIN));
        }
        let mut session = session(p.transport, &settings);
        let email = email(
            "Backups <backups@unverified.example.org>",
            &["a@example.org"],
            "s",
            "t",
        );
        let e = session.send(&email).unwrap_err();
        assert_eq!(e.kind, ErrorKind::SenderRejected, "{e:?}");
        assert!(e.permanent);
        let hint = e.hint.clone().unwrap_or_default();
        let names = if p.transport == "mailgun" {
            "`domain`"
        } else {
            "`from`"
        };
        assert!(hint.contains(names), "hint should name {names}: {hint}");
        assert!(
            e.reply.unwrap().contains("not"),
            "the provider's message is quoted"
        );
    }

    pub fn rate_limit_is_transient_with_retry_after_then_the_retry_succeeds(p: &Provider) {
        let server = Emulator::serve(&[]);
        server.script(json!([{"status": 429, "retry_after": "7"}]));
        let mut session = session(p.transport, &(p.settings)(&server.url()));
        let email = email(FROM, &["a@example.org"], "s", "t");
        let e = session.send(&email).unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited, "{e:?}");
        assert!(!e.permanent);
        assert_eq!(e.retry_after_secs, Some(7), "{e:?}");
        assert!(e.reply.unwrap().starts_with("HTTP 429"));
        // What the outbox does later: the same email again (same Message-ID and key).
        let receipt = session.send(&email).unwrap();
        let request = server.only_request();
        (p.check_request)(&request, &email);
        assert_eq!(receipt.server_id.as_deref(), request["message_id"].as_str());
        let all = server.all_requests();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0]["headers"]["idempotency-key"], all[1]["headers"]["idempotency-key"],
            "a retry repeats the idempotency key (when the API has one)"
        );
    }

    pub fn server_error_is_transient(p: &Provider) {
        let server = Emulator::serve(&[]);
        server.script(json!([{"status": 500}, {"status": 503}]));
        let mut session = session(p.transport, &(p.settings)(&server.url()));
        for _ in 0..2 {
            let e = session
                .send(&email(FROM, &["a@example.org"], "s", "t"))
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Server, "{e:?}");
            assert!(!e.permanent);
            assert!(e.hint.unwrap().contains("queued"));
        }
    }

    pub fn a_hanging_server_times_out_within_send_timeout(p: &Provider) {
        let server = Emulator::serve(&[]);
        server.script(json!([{"hang": 6}]));
        let (mut session, _) = open(p.transport, &(p.settings)(&server.url()), 800).unwrap();
        let started = Instant::now();
        let e = session
            .send(&email(FROM, &["a@example.org"], "s", "t"))
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
        assert!(!e.permanent);
        assert!(
            took >= Duration::from_millis(700),
            "gave up too early: {took:?}"
        );
        assert!(
            took < Duration::from_secs(4),
            "did not honour send_timeout: {took:?}"
        );
    }

    pub fn nothing_listening_is_a_transient_connect_error(p: &Provider) {
        // A port that was free a moment ago: bind, note it, drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let mut session = session(p.transport, &(p.settings)(&url));
        let e = session
            .send(&email(FROM, &["a@example.org"], "s", "t"))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Connect, "{e:?}");
        assert!(!e.permanent);
    }

    pub fn bad_base_url_is_a_config_error_at_open(p: &Provider) {
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://user:pw@api.example.com",
        ] {
            let settings = with((p.settings)("http://127.0.0.1:1"), "base_url", Some(bad));
            let e = open(p.transport, &settings, 1000).expect_err("open must fail");
            assert_eq!(e.kind, ErrorKind::Config, "{bad}: {e:?}");
            assert!(e.permanent);
            assert!(e.hint.unwrap().contains("base_url"), "{bad}");
        }
    }

    pub fn missing_key_is_a_config_error_at_open(p: &Provider) {
        let settings = with((p.settings)("http://127.0.0.1:1"), p.key_setting, None);
        let e = open(p.transport, &settings, 1000).expect_err("open must fail");
        assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
        assert!(e.permanent);
    }

    pub fn plain_http_elsewhere_is_refused_unless_allowed(p: &Provider) {
        let mut settings = (p.settings)("http://api.example.com");
        let error = open(p.transport, &settings, 1000).err().unwrap();
        assert_eq!(error.kind, ErrorKind::Config, "{error:?}");
        assert!(error.permanent);
        assert!(error.message.contains("unencrypted"), "{}", error.message);
        assert!(error.hint.unwrap().contains("allow_insecure_http"));

        settings["allow_insecure_http"] = json!(true);
        let (_, warnings) = open(p.transport, &settings, 1000).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("unencrypted"));
    }
}

macro_rules! provider_tests {
    ($module:ident, $provider:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn delivers_one_message() {
                cases::delivers_one_message(&$provider);
            }
            #[test]
            fn delivers_to_several_recipients_with_non_ascii_text() {
                cases::delivers_to_several_recipients_with_non_ascii_text(&$provider);
            }
            #[test]
            fn reuses_one_connection_for_several_sends() {
                cases::reuses_one_connection_for_several_sends(&$provider);
            }
            #[test]
            fn wrong_key_is_permanent_auth_naming_the_setting() {
                cases::wrong_key_is_permanent_auth_naming_the_setting(&$provider);
            }
            #[test]
            fn unverified_sender_is_permanent_naming_from() {
                cases::unverified_sender_is_permanent_naming_from(&$provider);
            }
            #[test]
            fn rate_limit_is_transient_with_retry_after_then_the_retry_succeeds() {
                cases::rate_limit_is_transient_with_retry_after_then_the_retry_succeeds(&$provider);
            }
            #[test]
            fn server_error_is_transient() {
                cases::server_error_is_transient(&$provider);
            }
            #[test]
            fn a_hanging_server_times_out_within_send_timeout() {
                cases::a_hanging_server_times_out_within_send_timeout(&$provider);
            }
            #[test]
            fn nothing_listening_is_a_transient_connect_error() {
                cases::nothing_listening_is_a_transient_connect_error(&$provider);
            }
            #[test]
            fn bad_base_url_is_a_config_error_at_open() {
                cases::bad_base_url_is_a_config_error_at_open(&$provider);
            }
            #[test]
            fn missing_key_is_a_config_error_at_open() {
                cases::missing_key_is_a_config_error_at_open(&$provider);
            }
            #[test]
            fn plain_http_elsewhere_is_refused_unless_allowed() {
                cases::plain_http_elsewhere_is_refused_unless_allowed(&$provider);
            }
        }
    };
}

provider_tests!(sendgrid, SENDGRID);
provider_tests!(mailgun, MAILGUN);
provider_tests!(postmark, POSTMARK);
provider_tests!(resend, RESEND);
provider_tests!(ses, SES);

// ---- provider-specific behaviour -------------------------------------------------------------

#[test]
fn manifest_lists_the_five_transports_and_their_settings() {
    let plugin = plugin("sendgrid");
    let spec = |name: &str| {
        plugin
            .manifest
            .transports
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no transport {name}"))
    };
    let names = |t: &str| {
        spec(t)
            .settings
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("sendgrid"),
        ["api_key", "base_url", "allow_insecure_http"]
    );
    assert_eq!(
        names("mailgun"),
        [
            "api_key",
            "domain",
            "region",
            "base_url",
            "allow_insecure_http"
        ]
    );
    assert_eq!(
        names("postmark"),
        [
            "api_key",
            "message_stream",
            "base_url",
            "allow_insecure_http"
        ]
    );
    assert_eq!(
        names("resend"),
        ["api_key", "base_url", "allow_insecure_http"]
    );
    assert_eq!(
        names("ses"),
        [
            "region",
            "access_key_id",
            "secret_access_key",
            "session_token",
            "base_url",
            "allow_insecure_http"
        ]
    );
    assert!(spec("mailgun").setting("domain").unwrap().required);
    assert_eq!(
        spec("mailgun").setting("region").unwrap().default,
        Some(json!("us"))
    );
    assert_eq!(
        spec("postmark").setting("message_stream").unwrap().default,
        Some(json!("outbound"))
    );
    assert!(!spec("ses").setting("region").unwrap().required);
}

#[test]
fn mailgun_needs_a_domain_and_a_known_region() {
    let base = settings(&[("api_key", API_KEY)]);
    let e = open("mailgun", &base, 1000).expect_err("open must fail");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("`domain`"), "{e:?}");
    let e = open(
        "mailgun",
        &with(
            with(base.clone(), "domain", Some(MAILGUN_DOMAIN)),
            "region",
            Some("europe"),
        ),
        1000,
    )
    .expect_err("open must fail");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("unknown `region`"), "{e:?}");
    assert!(e.hint.unwrap().contains("\"eu\""));
    let e = open(
        "mailgun",
        &with(base.clone(), "domain", Some("https://mg.example.com")),
        1000,
    )
    .expect_err("open must fail");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(open(
        "mailgun",
        &with(
            with(base, "domain", Some(MAILGUN_DOMAIN)),
            "region",
            Some("EU")
        ),
        1000
    )
    .is_ok());
}

#[test]
fn mailgun_unknown_domain_is_a_config_error_naming_domain_and_region() {
    let server = Emulator::serve(&[]);
    let settings = with(
        (MAILGUN.settings)(&server.url()),
        "domain",
        Some("other.example.com"),
    );
    let mut session = session("mailgun", &settings);
    let e = session
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
    assert!(e.permanent);
    let hint = e.hint.unwrap();
    assert!(
        hint.contains("`domain`") && hint.contains("`region`"),
        "{hint}"
    );
}

#[test]
fn postmark_sends_through_the_configured_message_stream() {
    let server = Emulator::serve(&[]);
    let settings = with(
        (POSTMARK.settings)(&server.url()),
        "message_stream",
        Some("alerts"),
    );
    session("postmark", &settings)
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap();
    assert_eq!(server.only_request()["json"]["MessageStream"], "alerts");

    let settings = with(
        (POSTMARK.settings)(&server.url()),
        "message_stream",
        Some("nope"),
    );
    let e = session("postmark", &settings)
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
    assert!(e.hint.unwrap().contains("`message_stream`"));
}

#[test]
fn postmark_quotes_display_names_so_commas_do_not_split_recipients() {
    let server = Emulator::serve(&[]);
    let email = email(
        FROM,
        &["\"Doe, John\" <john@example.org>", "ops@example.org"],
        "s",
        "t",
    );
    session("postmark", &(POSTMARK.settings)(&server.url()))
        .send(&email)
        .unwrap();
    assert_eq!(
        server.only_request()["json"]["To"],
        "\"Doe, John\" <john@example.org>, ops@example.org"
    );
}

#[test]
fn resend_repeats_the_idempotency_key_and_is_not_sent_twice() {
    let server = Emulator::serve(&[]);
    let email = email(FROM, &["a@example.org"], "s", "t");
    // Two processes retrying one outbox item: two sessions, the same email.
    let first = session("resend", &(RESEND.settings)(&server.url()))
        .send(&email)
        .unwrap();
    let second = session("resend", &(RESEND.settings)(&server.url()))
        .send(&email)
        .unwrap();
    assert_eq!(
        first.server_id, second.server_id,
        "Resend answers the repeat with the first id"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(
            r["headers"]["idempotency-key"],
            email.idempotency_key.as_str()
        );
    }
    assert_eq!(requests[1]["idempotent_replay"], true);
}

#[test]
fn ses_signs_the_session_token_of_temporary_credentials() {
    let server = Emulator::serve(&["--aws-session-token", "FwoGZXIvYXdzEXAMPLE"]);
    let settings = with(
        (SES.settings)(&server.url()),
        "session_token",
        Some("FwoGZXIvYXdzEXAMPLE"),
    );
    session("ses", &settings)
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap_or_else(|e| panic!("{e:?}\n{}", server.log()));
    let r = server.only_request();
    assert_eq!(r["headers"]["x-amz-security-token"], "FwoGZXIvYXdzEXAMPLE");
    assert!(r["headers"]["authorization"]
        .as_str()
        .unwrap()
        .contains("x-amz-security-token"));

    // Without the token the emulator (like AWS) refuses the request.
    let e = session("ses", &(SES.settings)(&server.url()))
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
}

#[test]
fn ses_unknown_access_key_is_permanent_auth() {
    let server = Emulator::serve(&[]);
    let settings = with(
        (SES.settings)(&server.url()),
        "access_key_id",
        Some("AKIDUNKNOWN"),
    );
    let e = session("ses", &settings)
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e:?}");
    assert!(e.permanent);
    assert!(e
        .reply
        .as_deref()
        .unwrap()
        .contains("UnrecognizedClientException"));
    assert!(e.hint.as_deref().unwrap().contains("`access_key_id`"));
    assert_no_secret_in(&e, AWS_SECRET);
}

fn assert_no_secret_in(e: &postflight_core::DeliveryError, secret: &str) {
    assert_no_secret(e, &[secret]);
}

#[test]
fn ses_needs_a_known_region_or_a_base_url() {
    let creds = settings(&[
        ("access_key_id", AWS_KEY_ID),
        ("secret_access_key", AWS_SECRET),
    ]);
    let e = open("ses", &with(creds.clone(), "region", Some("us-east")), 1000)
        .expect_err("open must fail");
    assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
    assert!(e.message.contains("unknown `region`"));
    assert!(e.hint.unwrap().contains("base_url"));
    assert!(open(
        "ses",
        &with(creds.clone(), "region", Some("eu-west-1")),
        1000
    )
    .is_ok());
    // A base_url alone is enough (signed for us-east-1).
    assert!(open(
        "ses",
        &with(creds.clone(), "base_url", Some("http://127.0.0.1:1")),
        1000
    )
    .is_ok());
    let e = open("ses", &with(creds, "access_key_id", None), 1000).expect_err("open must fail");
    assert_eq!(e.kind, ErrorKind::Config);
}

#[test]
fn a_redirect_is_a_permanent_config_error_naming_base_url() {
    let server = Emulator::serve(&[]);
    server.script(json!([{
        "status": 301,
        "body": "",
        "headers": {"Location": "https://api.sendgrid.com/v3/mail/send"}
    }]));
    let e = session("sendgrid", &(SENDGRID.settings)(&server.url()))
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
    assert!(e.permanent);
    assert!(e
        .reply
        .unwrap()
        .contains("redirected to https://api.sendgrid.com"));
    assert!(e.hint.unwrap().contains("`base_url`"));
}

#[test]
fn an_untrusted_certificate_is_a_certificate_error() {
    let server = Emulator::serve(&["--tls"]);
    let url = format!("https://127.0.0.1:{}", server.port);
    let e = session("resend", &(RESEND.settings)(&url))
        .send(&email(FROM, &["a@example.org"], "s", "t"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Certificate, "{e:?}");
    assert!(!e.permanent);
    assert!(server.requests().is_empty());
}

#[test]
fn unknown_transport_is_a_config_error() {
    let request = postflight_core::plugin::OpenRequest {
        transport: "sparkpost".into(),
        account: "x".into(),
        send_timeout_ms: 1000,
        settings: Default::default(),
    };
    let e = plugin("sendgrid")
        .open(&request)
        .expect_err("open must fail");
    assert_eq!(e.kind, ErrorKind::Config);
}

//! The emulators themselves: they must refuse what the providers' documentation does not
//! allow, or the provider tests would prove nothing. Each case sends one hand-made request
//! and expects the provider's documented error.

mod support;

use std::time::SystemTime;

use postflight_core::secret::Secret;
use postflight_transport_api::sigv4::{sign_request, AwsCredentials, Request};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use support::*;

struct Case {
    name: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Body,
    status: u16,
    /// A fragment the answer's body must contain.
    says: &'static str,
}

enum Body {
    Json(Value),
    Raw(&'static str, Vec<u8>),
    Form(Vec<(&'static str, &'static str)>),
}

fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {API_KEY}"))
}

fn post(url: &str, case: &Case) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut headers = HeaderMap::new();
        for (name, value) in &case.headers {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let request = client.post(format!("{url}{}", case.path)).headers(headers);
        let request = match &case.body {
            Body::Json(v) => request.json(v),
            Body::Raw(content_type, bytes) => request
                .header("content-type", *content_type)
                .body(bytes.clone()),
            Body::Form(fields) => {
                let form = fields
                    .iter()
                    .fold(reqwest::multipart::Form::new(), |f, (k, v)| f.text(*k, *v));
                request.multipart(form)
            }
        };
        let response = request.send().await.expect("the emulator answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

fn sendgrid_body() -> Value {
    json!({
        "personalizations": [{"to": [{"email": "a@example.org"}]}],
        "from": {"email": "backups@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "t"}]
    })
}

fn cases() -> Vec<Case> {
    let mut without_content = sendgrid_body();
    without_content.as_object_mut().unwrap().remove("content");
    let mut reserved_header = sendgrid_body();
    reserved_header["headers"] = json!({"From": "x@example.com"});
    let mut unicode_header = sendgrid_body();
    unicode_header["headers"] = json!({"X-Task": "Sauvegarde échouée"});
    let mailgun = format!("/v3/{MAILGUN_DOMAIN}/messages");
    let basic = |key: &str| {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"));
        ("authorization", format!("Basic {token}"))
    };
    let postmark_body = json!({"From": "backups@example.com", "To": "a@example.org", "Subject": "s", "TextBody": "t"});
    let resend_body = json!({"from": "backups@example.com", "to": ["a@example.org"], "subject": "s", "text": "t"});
    vec![
        Case {
            name: "sendgrid without a key",
            path: "/v3/mail/send".into(),
            headers: vec![],
            body: Body::Json(sendgrid_body()),
            status: 401,
            says: "\"errors\"",
        },
        Case {
            name: "sendgrid with a form body",
            path: "/v3/mail/send".into(),
            headers: vec![bearer()],
            body: Body::Raw("application/x-www-form-urlencoded", b"subject=s".to_vec()),
            status: 415,
            says: "application/json",
        },
        Case {
            name: "sendgrid without content",
            path: "/v3/mail/send".into(),
            headers: vec![bearer()],
            body: Body::Json(without_content),
            status: 400,
            says: "content",
        },
        Case {
            name: "sendgrid with a reserved header",
            path: "/v3/mail/send".into(),
            headers: vec![bearer()],
            body: Body::Json(reserved_header),
            status: 400,
            says: "reserved",
        },
        Case {
            name: "sendgrid with an unencoded header",
            path: "/v3/mail/send".into(),
            headers: vec![bearer()],
            body: Body::Json(unicode_header),
            status: 400,
            says: "ASCII",
        },
        Case {
            name: "mailgun with a wrong key",
            path: mailgun.clone(),
            headers: vec![basic("nope")],
            body: Body::Form(vec![
                ("from", "b@example.com"),
                ("to", "a@example.org"),
                ("subject", "s"),
                ("text", "t"),
            ]),
            status: 401,
            says: "Forbidden",
        },
        Case {
            name: "mailgun with a urlencoded body",
            path: mailgun.clone(),
            headers: vec![basic(API_KEY)],
            body: Body::Raw(
                "application/x-www-form-urlencoded",
                b"from=b%40example.com".to_vec(),
            ),
            status: 400,
            says: "message",
        },
        Case {
            name: "mailgun without text",
            path: mailgun.clone(),
            headers: vec![basic(API_KEY)],
            body: Body::Form(vec![
                ("from", "b@example.com"),
                ("to", "a@example.org"),
                ("subject", "s"),
            ]),
            status: 400,
            says: "text",
        },
        Case {
            name: "mailgun with an unknown field",
            path: mailgun,
            headers: vec![basic(API_KEY)],
            body: Body::Form(vec![
                ("from", "b@example.com"),
                ("to", "a@example.org"),
                ("subject", "s"),
                ("text", "t"),
                ("body", "x"),
            ]),
            status: 400,
            says: "unknown parameter",
        },
        Case {
            name: "postmark without Accept",
            path: "/email".into(),
            headers: vec![("x-postmark-server-token", API_KEY.into())],
            body: Body::Json(postmark_body.clone()),
            status: 406,
            says: "",
        },
        Case {
            name: "postmark with a lower-case field",
            path: "/email".into(),
            headers: vec![
                ("x-postmark-server-token", API_KEY.into()),
                ("accept", "application/json".into()),
            ],
            body: Body::Json(
                json!({"from": "b@example.com", "To": "a@example.org", "TextBody": "t"}),
            ),
            status: 422,
            says: "ErrorCode",
        },
        Case {
            name: "postmark with a comma inside an unquoted name",
            path: "/email".into(),
            headers: vec![
                ("x-postmark-server-token", API_KEY.into()),
                ("accept", "application/json".into()),
            ],
            body: Body::Json(
                json!({"From": "backups@example.com", "To": "Doe, John <j@example.org>", "Subject": "s", "TextBody": "t"}),
            ),
            status: 422,
            says: "Invalid 'To' address",
        },
        Case {
            name: "resend without a key",
            path: "/emails".into(),
            headers: vec![],
            body: Body::Json(resend_body.clone()),
            status: 401,
            says: "missing_api_key",
        },
        Case {
            name: "resend with a too long idempotency key",
            path: "/emails".into(),
            headers: vec![bearer(), ("idempotency-key", "k".repeat(257))],
            body: Body::Json(resend_body),
            status: 400,
            says: "invalid_idempotency_key",
        },
        Case {
            name: "resend without subject",
            path: "/emails".into(),
            headers: vec![bearer()],
            body: Body::Json(
                json!({"from": "backups@example.com", "to": ["a@example.org"], "text": "t"}),
            ),
            status: 422,
            says: "missing_required_field",
        },
        Case {
            name: "ses unsigned",
            path: "/v2/email/outbound-emails".into(),
            headers: vec![],
            body: Body::Json(json!({})),
            status: 403,
            says: "Credential",
        },
    ]
}

#[test]
fn emulators_refuse_undocumented_requests() {
    let server = Emulator::serve(&[]);
    for case in cases() {
        let (status, body) = post(&server.url(), &case);
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(body.contains(case.says), "{}: {body}", case.name);
    }
    assert!(server.requests().is_empty(), "nothing was accepted");
}

/// Signs an SES request with the emulator's test key, as the plugin does.
fn signed_ses(url: &str, body: &[u8], secret: &str) -> Vec<(&'static str, String)> {
    let credentials = AwsCredentials {
        access_key_id: AWS_KEY_ID.into(),
        secret_access_key: Secret::new(secret),
        session_token: None,
    };
    let full = format!("{url}/v2/email/outbound-emails");
    let signed = sign_request(
        Request {
            method: "POST",
            url: &full,
            headers: &[("content-type", "application/json")],
            body,
        },
        &credentials,
        "us-east-1",
        "ses",
        SystemTime::now(),
    )
    .unwrap();
    signed
        .into_iter()
        .map(|(name, value)| {
            let name: &'static str = match name.as_str() {
                "authorization" => "authorization",
                "x-amz-date" => "x-amz-date",
                other => panic!("unexpected signed header {other}"),
            };
            (name, value)
        })
        .collect()
}

#[test]
fn ses_emulator_checks_the_signature_and_the_fields() {
    let server = Emulator::serve(&[]);
    let good = json!({
        "FromEmailAddress": "backups@example.com",
        "Destination": {"ToAddresses": ["a@example.org"]},
        "Content": {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}}
    });
    let good_bytes = serde_json::to_vec(&good).unwrap();
    let url = server.url();
    let case = |name, body: Vec<u8>, signed_body: &[u8], secret, status, says| Case {
        name,
        path: "/v2/email/outbound-emails".into(),
        headers: signed_ses(&url, signed_body, secret),
        body: Body::Raw("application/json", body),
        status,
        says,
    };
    let mut non_ascii = good.clone();
    non_ascii["FromEmailAddress"] = json!("Jörg <backups@example.com>");
    let non_ascii = serde_json::to_vec(&non_ascii).unwrap();
    let tampered = serde_json::to_vec(&json!({"FromEmailAddress": "evil@example.com"})).unwrap();
    let cases = [
        case(
            "a body changed after signing",
            tampered,
            &good_bytes,
            AWS_SECRET,
            403,
            "does not match the signature",
        ),
        case(
            "a wrong secret",
            good_bytes.clone(),
            &good_bytes,
            "wrong",
            403,
            "signature",
        ),
        case(
            "a non-ASCII sender name",
            non_ascii.clone(),
            &non_ascii,
            AWS_SECRET,
            400,
            "RFC 2047",
        ),
        case(
            "the good request",
            good_bytes.clone(),
            &good_bytes,
            AWS_SECRET,
            200,
            "MessageId",
        ),
    ];
    for case in cases {
        let (got, text) = post(&url, &case);
        assert_eq!(got, case.status, "{}: {text}", case.name);
        assert!(text.contains(case.says), "{}: {text}", case.name);
    }
    assert_eq!(server.requests().len(), 1);
}

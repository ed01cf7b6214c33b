//! AWS Signature Version 4 request signing, done by the `aws-sigv4` crate (the signer the AWS
//! SDK for Rust uses); this module only adapts our request parts to it and its output back.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, ErrorKind};

/// An AWS access key pair and optional session token (temporary credentials).
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    /// The access key id (not secret: it names the key).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary (STS) credentials.
    pub session_token: Option<Secret>,
}

/// What to sign: one HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET`, ...
    pub method: &'a str,
    /// The full URL (its host is signed even when not in `headers`).
    pub url: &'a str,
    /// Headers that will be sent and must be signed (e.g. `content-type`).
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Signs `request` for `service` in `region` at `time`; returns the headers to add
/// (`authorization`, `x-amz-date`, and `x-amz-security-token` with a session token).
pub fn sign_request(
    request: Request<'_>,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, DeliveryError> {
    let failed = |e: &dyn std::fmt::Display| {
        DeliveryError::permanent(ErrorKind::Plugin, format!("cannot sign the request: {e}"))
            .with_hint("check `region` and the credentials' format; if they look right this is a bug in postflight")
    };
    let identity: Identity = Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_string(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "postflight",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The AWS SigV4 test suite's credentials and time (`get-vanilla` & co., as shipped in
    /// aws-sigv4's `aws-signing-test-suite/v4`): 2015-08-30T12:36:00Z.
    fn suite_credentials(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
    }

    fn check(method: &str, token: Option<&str>, signed: &str, signature: &str) {
        let request = Request {
            method,
            url: "https://example.amazonaws.com/",
            headers: &[],
            body: b"",
        };
        let headers = sign_request(
            request,
            &suite_credentials(token),
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&headers, "authorization"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature={signature}"
            )
        );
    }

    #[test]
    fn matches_the_aws_test_suite_get_vanilla() {
        check(
            "GET",
            None,
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
    }

    #[test]
    fn matches_the_aws_test_suite_post_vanilla() {
        check(
            "POST",
            None,
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        );
    }

    #[test]
    fn matches_the_aws_test_suite_get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        check(
            "GET",
            Some(token),
            "host;x-amz-date;x-amz-security-token",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        );
    }
}

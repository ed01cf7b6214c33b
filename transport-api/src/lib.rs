//! postflight plugin "api": email providers' HTTP APIs over reqwest.
//!
//! One module per provider ([`sendgrid`], [`mailgun`], [`postmark`], [`resend`], [`ses`]),
//! each naming the documented endpoint and fields it implements, on shared helpers:
//! [`settings`] (validation at `open`, which never touches the network), [`message`] and
//! [`address`] (what every API needs from an email), [`http`] (one runtime and client per
//! connection, one deadline per attempt) and [`errors`] (provider refusals to classified
//! errors). [`sigv4`] adapts SES requests to the aws-sigv4 signer.
//!
//! Invariant: no API key or AWS secret ever appears in an error, receipt, warning or `Debug`
//! output. Keys live in core's [`Secret`](postflight_core::secret::Secret), whose `Debug` is
//! redacted, and every quoted provider message is scrubbed of the key.

pub mod address;
pub mod errors;
pub mod http;
pub mod mailgun;
pub mod message;
pub mod postmark;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod settings;
pub mod sigv4;

use postflight_core::plugin::{Manifest, OpenRequest, Opened, Plugin};
use postflight_core::{DeliveryError, ErrorKind};

/// The plugin type exported through the ABI.
pub struct ApiPlugin;

impl Plugin for ApiPlugin {
    fn manifest() -> Manifest {
        Manifest {
            name: "api".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: postflight_core::plugin::abi::ABI_VERSION,
            description:
                "email providers' HTTP APIs: SendGrid, Mailgun, Postmark, Resend, Amazon SES".into(),
            transports: vec![
                sendgrid::spec(),
                mailgun::spec(),
                postmark::spec(),
                resend::spec(),
                ses::spec(),
            ],
        }
    }

    fn open(request: OpenRequest) -> Result<Opened, DeliveryError> {
        match request.transport.as_str() {
            "sendgrid" => sendgrid::open(&request),
            "mailgun" => mailgun::open(&request),
            "postmark" => postmark::open(&request),
            "resend" => resend::open(&request),
            "ses" => ses::open(&request),
            other => Err(DeliveryError::permanent(
                ErrorKind::Config,
                format!("the api plugin has no transport '{other}'"),
            )
            .with_hint("use one of sendgrid, mailgun, postmark, resend, ses")),
        }
    }
}

postflight_core::export_plugin!(ApiPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_every_transport_with_secret_keys() {
        let manifest = ApiPlugin::manifest();
        let names: Vec<&str> = manifest
            .transports
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["sendgrid", "mailgun", "postmark", "resend", "ses"]);
        for transport in &manifest.transports {
            for setting in &transport.settings {
                let must_be_secret = matches!(
                    setting.name.as_str(),
                    "api_key" | "secret_access_key" | "session_token"
                );
                assert_eq!(
                    setting.secret, must_be_secret,
                    "{}.{}",
                    transport.name, setting.name
                );
                assert!(
                    !setting.help.is_empty(),
                    "{}.{}",
                    transport.name,
                    setting.name
                );
            }
        }
    }
}

//! postflight plugin "smtp": the `smtp`, `sendmail` and `file` transports, built on lettre.
//!
//! Every transport turns the host's [`Email`](postflight_core::Email) into the same lettre
//! message ([`message`]), so the bytes on the wire, in sendmail's input and in an `.eml` file
//! are identical.
//!
//! - [`smtp`]: SMTP delivery (lettre's protocol client on our own sockets, TLS policy,
//!   failure diagnosis); [`presets`] holds the providers' rules.
//! - [`sendmail`]: pipes the message to a local command.
//! - [`file`]: writes `.eml` files.
//! - [`settings`]: typed reads of an account's settings.

pub mod file;
pub mod message;
pub mod presets;
pub mod sendmail;
pub mod settings;
pub mod smtp;

use postflight_core::plugin::{Manifest, OpenRequest, Opened, Plugin};
use postflight_core::{DeliveryError, ErrorKind};

/// The plugin type exported through the ABI.
pub struct SmtpPlugin;

impl Plugin for SmtpPlugin {
    fn manifest() -> Manifest {
        Manifest {
            name: "smtp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: postflight_core::plugin::abi::ABI_VERSION,
            description: "SMTP, sendmail and .eml-file delivery (lettre)".into(),
            transports: vec![smtp::spec(), sendmail::spec(), file::spec()],
        }
    }

    fn open(request: OpenRequest) -> Result<Opened, DeliveryError> {
        match request.transport.as_str() {
            "smtp" => smtp::open(&request),
            "sendmail" => sendmail::open(&request),
            "file" => file::open(&request),
            other => Err(DeliveryError::permanent(
                ErrorKind::Config,
                format!("the smtp plugin has no transport '{other}'"),
            )
            .with_hint("this plugin provides the transports smtp, sendmail and file")),
        }
    }
}

postflight_core::export_plugin!(SmtpPlugin);

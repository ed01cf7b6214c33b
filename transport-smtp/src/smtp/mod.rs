//! The `smtp` transport: its settings schema, `open` (validation only, no network) and the
//! connection that sends, reusing one SMTP session across `send` calls and reconnecting
//! transparently when the server closed it in between.
//!
//! - [`config`]: settings -> validated [`SmtpConfig`](config::SmtpConfig), warnings.
//! - [`session`]: one SMTP session (connect, TLS, AUTH, transactions).
//! - [`starttls`]: the plaintext exchange before the STARTTLS handshake.
//! - [`tls`] and [`trust`]: handshakes, and which certificates are trusted.
//! - [`diagnose`]: failures -> classified errors with hints.

pub mod config;
pub mod diagnose;
pub mod session;
pub mod starttls;
pub mod tls;
pub mod trust;

use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt, RefusedRecipient};
use tokio::runtime::Runtime;
use tokio::time::Instant;

pub use config::Security;
use config::SmtpConfig;
use session::Session;

use crate::message;

/// The manifest entry, with the full settings schema.
pub fn spec() -> TransportSpec {
    use SettingType::{Boolean, Integer, String};
    TransportSpec {
        name: "smtp".into(),
        description: "delivers through an SMTP server (STARTTLS, implicit TLS, AUTH PLAIN/LOGIN)"
            .into(),
        settings: vec![
            SettingSpec::new(
                "host",
                String,
                "SMTP server name or IP address (filled in by `provider`)",
            ),
            SettingSpec::new(
                "port",
                Integer,
                "server port; defaults to the provider's, else 587 for starttls, 465 for tls, 25 for none",
            ),
            SettingSpec::new(
                "security",
                String,
                "starttls (required, never downgraded), tls (implicit TLS, usually port 465) or none; defaults to the provider's, tls for port 465, else starttls",
            ),
            SettingSpec::new(
                "provider",
                String,
                "preset for gmail, icloud, yahoo, att or outlook: fills host, port and security and explains login failures",
            ),
            SettingSpec::new("username", String, "login name, usually the full email address"),
            SettingSpec::new(
                "password",
                String,
                "login password (for most providers an app password); better given as password_env, password_file or password_command",
            )
            .secret(),
            SettingSpec::new(
                "accept_invalid_certs",
                Boolean,
                "accept any server certificate (unsafe; prefer ca_file or tls_fingerprint)",
            )
            .default_value(false),
            SettingSpec::new(
                "ca_file",
                String,
                "PEM file with a certificate or CA to trust in addition to the system's",
            ),
            SettingSpec::new(
                "tls_fingerprint",
                String,
                "pin the server's certificate: \"sha256:AB:CD:...\" (postflight test prints it)",
            ),
            SettingSpec::new(
                "hello_name",
                String,
                "name sent with EHLO; defaults to this machine's host name",
            ),
            SettingSpec::new(
                "allow_insecure_auth",
                Boolean,
                "allow logging in over an unencrypted connection (security = \"none\")",
            )
            .default_value(false),
        ],
    }
}

/// Validates the account's settings without touching the network.
pub fn open(request: &OpenRequest) -> Result<Opened, DeliveryError> {
    let (config, warnings) = config::parse(request)?;
    Ok(Opened {
        connection: Box::new(SmtpConnection {
            config,
            runtime: None,
            session: None,
        }),
        warnings,
    })
}

/// An open `smtp` transport. The tokio runtime (current-thread, owned here so the plugin
/// never depends on the host's) and the SMTP session are created on the first `send`.
struct SmtpConnection {
    config: SmtpConfig,
    runtime: Option<Runtime>,
    session: Option<Session>,
}

impl SmtpConnection {
    fn runtime(runtime: &mut Option<Runtime>) -> Result<&Runtime, DeliveryError> {
        if runtime.is_none() {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| {
                    DeliveryError::transient(
                        ErrorKind::Plugin,
                        format!("cannot start the SMTP client's runtime: {e}"),
                    )
                })?;
            *runtime = Some(built);
        }
        Ok(runtime.as_ref().expect("set above"))
    }
}

impl Connection for SmtpConnection {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let message = message::build(email)?;
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let SmtpConnection {
            config,
            runtime,
            session,
        } = self;
        let runtime = Self::runtime(runtime)?;
        let response = runtime.block_on(async {
            let deadline = Instant::now() + config.timeout;
            loop {
                let reused = session.is_some();
                let mut current = match session.take() {
                    Some(s) => s,
                    None => Session::open(config, deadline).await?,
                };
                match current.deliver(config, &envelope, &bytes, deadline).await {
                    Ok(response) => {
                        *session = Some(current);
                        return Ok(response);
                    }
                    // The server closed the idle connection: open a fresh one and retry once
                    // (a fresh session is never `reused`, so this cannot loop).
                    Err(failed) if reused && failed.stale => continue,
                    Err(failed) => {
                        if failed.reusable {
                            *session = Some(current);
                        }
                        return Err(failed.error);
                    }
                }
            }
        })?;
        let (response, refused) = response;
        let reply = session::reply_text(&response);
        Ok(Receipt {
            message_id: email.message_id.clone(),
            server_id: session::queue_id(&reply),
            reply: Some(reply),
            location: None,
            refused: refused
                .into_iter()
                .map(|(address, reply)| RefusedRecipient {
                    address: address.to_string(),
                    reply: reply.text,
                })
                .collect(),
        })
    }
}

impl Drop for SmtpConnection {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if let Some(session) = self.session.take() {
                runtime.block_on(session.close());
            }
            // A DNS lookup abandoned at the deadline may still run on a blocking thread;
            // do not wait for it.
            runtime.shutdown_background();
        }
    }
}

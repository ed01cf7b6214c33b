//! Delivery through transport plugins: resolve the account, find its transport, resolve its
//! secrets just before use, open a session and send, each step bounded by the attempt's
//! timeout. Sessions are kept per account so a flush reuses one connection for many items.

use std::collections::HashMap;
use std::time::Duration;

use postflight_core::plugin::host::{Registry, Session};
use postflight_core::plugin::OpenRequest;
use postflight_core::secret::{self, Secret};
use postflight_core::settings::AccountSettings;
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};

use crate::app::Context;

/// The host stops waiting this long after the attempt's own timeout, so a plugin that bounds
/// itself by `send_timeout` gets to report its own, better classified, timeout error.
const HOST_MARGIN: Duration = Duration::from_secs(1);

struct OpenSession {
    session: Session,
    secrets: Vec<Secret>,
}

/// Sends emails, reusing one session per account.
pub struct Deliverer<'a> {
    ctx: &'a Context,
    registry: Option<Registry>,
    sessions: HashMap<String, OpenSession>,
    warned: std::collections::HashSet<String>,
}

impl<'a> Deliverer<'a> {
    /// A deliverer; plugins are discovered on first use.
    pub fn new(ctx: &'a Context) -> Self {
        Deliverer {
            ctx,
            registry: None,
            sessions: HashMap::new(),
            warned: Default::default(),
        }
    }

    /// The effective settings of an account, as a delivery error when it does not exist.
    pub fn account(&self, name: &str) -> Result<AccountSettings, DeliveryError> {
        self.ctx
            .config
            .account(name, &self.ctx.state_dir)
            .map_err(|e| {
                let mut error = DeliveryError::permanent(ErrorKind::Config, e.message.clone());
                error.hint = e.hint.clone();
                error
            })
    }

    /// One delivery attempt of `email` through `account`, bounded by `timeout`.
    pub async fn send(
        &mut self,
        account_name: &str,
        email: &Email,
        timeout: Duration,
    ) -> Result<Receipt, DeliveryError> {
        let open = match self.sessions.remove(account_name) {
            Some(open) => open,
            None => self.open(account_name, timeout).await?,
        };
        let OpenSession { session, secrets } = open;
        let (session, result) = session
            .send_timed(email.clone(), timeout + HOST_MARGIN)
            .await;
        match result {
            Ok(receipt) => {
                if let Some(session) = session {
                    self.sessions
                        .insert(account_name.to_string(), OpenSession { session, secrets });
                }
                Ok(receipt)
            }
            // After a failure the connection's state is unknown: drop it, open anew next time.
            Err(error) => Err(redact(error, &secrets)),
        }
    }

    async fn open(
        &mut self,
        account_name: &str,
        timeout: Duration,
    ) -> Result<OpenSession, DeliveryError> {
        let account = self.account(account_name)?;
        let registry = self.registry.get_or_insert_with(|| self.ctx.registry());
        let (plugin, spec) = registry.transport(&account.transport).map_err(|e| {
            DeliveryError::permanent(ErrorKind::Config, format!("account '{account_name}': {e}"))
                .with_hint("install the plugin that provides it (cargo xtask install), or fix `transport` in the account")
        })?;
        let resolved = secret::resolve(&account.settings, spec).map_err(|e| {
            let message = format!("account '{account_name}': {e}");
            if secret::SECRET_SUFFIXES.iter().any(|suffix| e.key.ends_with(suffix)) {
                // A secret's source is read again at every attempt, and it is often missing
                // only where this attempt runs (a timer or cron job without the variable): keep
                // the notification queued rather than fail it for good.
                DeliveryError::transient(ErrorKind::Config, message).with_hint(
                    "make the secret available where postflight runs (cron and systemd start with a minimal environment; `_file` works everywhere); the notification stays queued until then",
                )
            } else {
                DeliveryError::permanent(ErrorKind::Config, message).with_hint(format!(
                    "fix the account in {}",
                    self.ctx.config_path_for_messages()
                ))
            }
        })?;
        let request = OpenRequest {
            transport: account.transport.clone(),
            account: account_name.to_string(),
            send_timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            settings: resolved.settings.clone(),
        };
        let plugin = plugin.clone();
        let (session, warnings) = plugin
            .open_timed(request, timeout + HOST_MARGIN)
            .await
            .map_err(|e| redact(e, &resolved.secrets))?;
        if self.warned.insert(account_name.to_string()) {
            for warning in warnings {
                self.ctx.out.warn(format!(
                    "account '{account_name}': {}",
                    resolved.redact(&warning)
                ));
            }
        }
        Ok(OpenSession {
            session,
            secrets: resolved.secrets,
        })
    }
}

/// Scrubs secret values from every text field of an error, whatever the plugin put there.
fn redact(mut error: DeliveryError, secrets: &[Secret]) -> DeliveryError {
    let scrub = |text: &mut String| *text = secret::redact(text, secrets);
    scrub(&mut error.message);
    for field in [&mut error.reply, &mut error.hint, &mut error.details]
        .into_iter()
        .flatten()
    {
        scrub(field);
    }
    error
}

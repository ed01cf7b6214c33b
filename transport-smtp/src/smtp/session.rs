//! One SMTP session: connecting (our own socket with TCP_NODELAY), TLS, EHLO, AUTH, and the
//! mail transactions sent over it. lettre's low-level `AsyncSmtpConnection` speaks the
//! protocol; this module decides the order of steps, bounds each by the attempt's deadline and
//! classifies what goes wrong.

use std::future::Future;
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use postflight_core::DeliveryError;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::config::{Security, SmtpConfig};
use super::diagnose::{self, Reply, Stage};
use super::tls;

/// How long closing waits for the server's answer to QUIT. The message was accepted before,
/// so waiting gains nothing; QUIT is still sent so the server logs a clean end.
const QUIT_GRACE: Duration = Duration::from_millis(50);

/// An established, authenticated SMTP session.
pub struct Session {
    conn: AsyncSmtpConnection,
}

/// A failed transaction.
pub struct Failed {
    /// What to report.
    pub error: DeliveryError,
    /// The connection turned out to be dead before the server could have accepted anything
    /// (e.g. closed while idle): a fresh connection may retry this message at once.
    pub stale: bool,
    /// The session is still in a clean state and may send the next message.
    pub reusable: bool,
}

impl Failed {
    fn fatal(error: DeliveryError) -> Self {
        Failed {
            error,
            stale: false,
            reusable: false,
        }
    }
}

enum StepError {
    Timeout,
    Smtp(lettre::transport::smtp::Error),
}

/// Runs one protocol step, giving up at `deadline`.
async fn step<T>(
    deadline: Instant,
    future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, StepError> {
    match timeout_at(deadline, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StepError::Smtp(error)),
        Err(_) => Err(StepError::Timeout),
    }
}

fn classify(config: &SmtpConfig, stage: Stage, error: StepError) -> DeliveryError {
    match error {
        StepError::Timeout => diagnose::timeout(config, stage),
        StepError::Smtp(e) => diagnose::smtp(config, stage, &e),
    }
}

impl Session {
    /// Connects, secures and logs in, all before `deadline`.
    pub async fn open(config: &SmtpConfig, deadline: Instant) -> Result<Session, DeliveryError> {
        let tcp = connect_tcp(config, deadline).await?;
        let hello = &config.hello;
        let (mut conn, encrypted) = match config.security {
            Security::None => {
                let conn = step(
                    deadline,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), hello),
                )
                .await
                .map_err(|e| classify(config, Stage::Greeting, e))?;
                (conn, false)
            }
            Security::Tls => {
                let name = tls::server_name(&config.host).ok_or_else(|| invalid_name(config))?;
                let stream = match timeout_at(deadline, tls::handshake(tcp, name)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return Err(diagnose::tls_handshake(config, &e)),
                    Err(_) => return Err(diagnose::timeout(config, Stage::TlsHandshake)),
                };
                // Judge the certificate before a single SMTP byte crosses the connection.
                config
                    .trust
                    .check(&stream.peer_certificates(), &config.host)
                    .map_err(|problem| diagnose::certificate(config, &problem))?;
                let conn = step(
                    deadline,
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), hello),
                )
                .await
                .map_err(|e| classify(config, Stage::Greeting, e))?;
                (conn, true)
            }
            Security::StartTls => {
                let mut conn = step(
                    deadline,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), hello),
                )
                .await
                .map_err(|e| classify(config, Stage::Greeting, e))?;
                if !conn.server_info().supports_feature(Extension::StartTls) {
                    return Err(diagnose::starttls_missing(config));
                }
                let parameters = tls::starttls_parameters(&config.host)
                    .map_err(|e| diagnose::tls_handshake(config, &e))?;
                // lettre performs the handshake and repeats EHLO (nothing secret) before the
                // certificate is judged below; a failed upgrade leaves `conn` unusable, so it is
                // dropped without another command.
                step(deadline, conn.starttls(parameters, hello))
                    .await
                    .map_err(|e| classify(config, Stage::Starttls, e))?;
                let chain: Vec<_> = conn
                    .certificate_chain()
                    .unwrap_or_default()
                    .into_iter()
                    .map(rustls::pki_types::CertificateDer::from)
                    .collect();
                config
                    .trust
                    .check(&chain, &config.host)
                    .map_err(|problem| diagnose::certificate(config, &problem))?;
                (conn, true)
            }
        };
        if let Some(login) = &config.login {
            // `open` already refuses this configuration; checked again where it matters.
            if !encrypted && !config.allow_insecure_auth {
                return Err(super::config::insecure_auth_error(&config.account));
            }
            let mechanism = conn
                .server_info()
                .get_auth_mechanism(&[Mechanism::Plain, Mechanism::Login])
                .ok_or_else(|| diagnose::no_auth_mechanism(config))?;
            let credentials =
                Credentials::new(login.username.clone(), login.password.expose().to_string());
            step(deadline, conn.auth(&[mechanism], &credentials))
                .await
                .map_err(|e| classify(config, Stage::Auth, e))?;
        }
        Ok(Session { conn })
    }

    /// Sends one message. Every recipient is tried first. When the server refuses some of
    /// them, the message still goes to the others (a typo in one address must not keep a
    /// failed-backup alert from everyone else) and the refused ones come back with the
    /// response, for the host to report. When it refuses all of them, nothing is sent.
    pub async fn deliver(
        &mut self,
        config: &SmtpConfig,
        envelope: &Envelope,
        message: &[u8],
        deadline: Instant,
    ) -> Result<(Response, Vec<(Address, Reply)>), Failed> {
        let mut parameters = Vec::new();
        let non_ascii = envelope.to().iter().chain(envelope.from()).any(|a| {
            let text: &str = a.as_ref();
            !text.is_ascii()
        });
        if non_ascii {
            if !self
                .conn
                .server_info()
                .supports_feature(Extension::SmtpUtfEight)
            {
                return Err(Failed {
                    error: diagnose::unsupported(config, "an address has non-ASCII characters and the server does not support SMTPUTF8"),
                    stale: false,
                    reusable: true,
                });
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        // lettre encodes the message to 7-bit ASCII; should that ever change, declare it.
        if !message.is_ascii()
            && self
                .conn
                .server_info()
                .supports_feature(Extension::EightBitMime)
        {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }

        let before_content = |stage, error: StepError| {
            let stale = matches!(&error, StepError::Smtp(e) if diagnose::is_stale_connection(e));
            Failed {
                error: classify(config, stage, error),
                stale,
                reusable: false,
            }
        };
        step(
            deadline,
            self.conn
                .command(Mail::new(envelope.from().cloned(), parameters)),
        )
        .await
        .map_err(|e| before_content(Stage::MailFrom, e))?;

        let mut refused = Vec::new();
        for recipient in envelope.to() {
            match step(
                deadline,
                self.conn.command(Rcpt::new(recipient.clone(), vec![])),
            )
            .await
            {
                Ok(_) => {}
                Err(StepError::Smtp(e)) if Reply::of(&e).is_some_and(|r| r.code != 421) => {
                    refused.push((recipient.clone(), Reply::of(&e).expect("checked above")));
                }
                Err(e) => return Err(before_content(Stage::RcptTo, e)),
            }
        }
        if refused.len() == envelope.to().len() {
            let reusable = step(deadline, self.conn.command(Rset)).await.is_ok();
            return Err(Failed {
                error: diagnose::recipients_rejected(config, &refused),
                stale: false,
                reusable,
            });
        }

        step(deadline, self.conn.command(Data))
            .await
            .map_err(|e| before_content(Stage::Data, e))?;
        // From here on the server may have accepted the message even if we see an error, so a
        // failure is never retried on this call: the outbox retries later (at-least-once).
        // lettre ends the data with CRLF "." CRLF itself; the message's own final CRLF would
        // add an empty line to the body.
        let content = message.strip_suffix(b"\r\n").unwrap_or(message);
        let response = step(deadline, self.conn.message(content))
            .await
            .map_err(|e| Failed::fatal(classify(config, Stage::Message, e)))?;
        Ok((response, refused))
    }

    /// Ends the session: sends QUIT and waits only briefly for the answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(QUIT_GRACE, self.conn.command(Quit)).await;
    }
}

async fn connect_tcp(config: &SmtpConfig, deadline: Instant) -> Result<TcpStream, DeliveryError> {
    let addresses: Vec<_> = match timeout_at(
        deadline,
        tokio::net::lookup_host((config.host.as_str(), config.port)),
    )
    .await
    {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(e)) => return Err(diagnose::dns(config, &e)),
        Err(_) => return Err(diagnose::timeout(config, Stage::Resolve)),
    };
    let mut last_error = None;
    for address in &addresses {
        match timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                // lettre writes the body and the final "." separately; without NODELAY, Nagle
                // holds the second write until the server's delayed ACK (about 40 ms).
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => return Err(diagnose::timeout(config, Stage::Connect)),
        }
    }
    Err(match last_error {
        Some(e) => diagnose::connect(config, &e),
        None => diagnose::no_address(config),
    })
}

fn invalid_name(config: &SmtpConfig) -> DeliveryError {
    DeliveryError::permanent(
        postflight_core::ErrorKind::Config,
        format!(
            "'{}' is not a host name a TLS certificate can be checked against",
            config.host
        ),
    )
    .with_hint("use the server's DNS name or IP address in `host`")
}

/// The server's reply as one line: `250 2.0.0 Ok: queued as ABC123`.
pub fn reply_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" "))
        .trim_end()
        .to_string()
}

/// The queue id in a final reply, when the server names one (Postfix `queued as X`, Exim
/// `id=X`, aiosmtpd-style `queued as X`).
pub fn queue_id(reply: &str) -> Option<String> {
    let lower = reply.to_ascii_lowercase();
    let start = if let Some(i) = lower.find("queued as ") {
        i + "queued as ".len()
    } else if let Some(i) = lower.find("id=") {
        i + "id=".len()
    } else {
        return None;
    };
    let id: String = reply[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ')' | ']' | '>' | ','))
        .collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_are_found() {
        assert_eq!(
            queue_id("250 2.0.0 Ok: queued as 4Xy7Z"),
            Some("4Xy7Z".into())
        );
        assert_eq!(
            queue_id("250 OK id=1rABCD-000123-4x"),
            Some("1rABCD-000123-4x".into())
        );
        assert_eq!(queue_id("250 2.0.0 OK"), None);
    }
}

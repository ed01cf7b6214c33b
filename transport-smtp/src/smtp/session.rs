//! One SMTP session: connecting (our own socket with TCP_NODELAY), TLS, EHLO, AUTH, and the
//! mail transactions sent over it. lettre's low-level `AsyncSmtpConnection` speaks the
//! protocol; this module decides the order of steps, bounds each by the attempt's deadline and
//! classifies what goes wrong.

use std::future::Future;
use std::net::SocketAddr;
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
use super::{starttls, tls};

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

/// The TLS handshake on `tcp` (a timeout is reported as `stage`), then the certificate judged
/// by the account's trust policy before a single SMTP byte crosses the connection.
async fn secure(
    config: &SmtpConfig,
    tcp: TcpStream,
    deadline: Instant,
    stage: Stage,
) -> Result<tls::TlsTcpStream, DeliveryError> {
    let name = tls::server_name(&config.host).ok_or_else(|| invalid_name(config))?;
    let stream = match timeout_at(deadline, tls::handshake(tcp, name)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(diagnose::tls_handshake(config, &e)),
        Err(_) => return Err(diagnose::timeout(config, stage)),
    };
    config
        .trust
        .check(&stream.peer_certificates(), &config.host)
        .map_err(|problem| diagnose::certificate(config, &problem))?;
    Ok(stream)
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
                let stream = secure(config, tcp, deadline, Stage::TlsHandshake).await?;
                let conn = step(
                    deadline,
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), hello),
                )
                .await
                .map_err(|e| classify(config, Stage::Greeting, e))?;
                (conn, true)
            }
            Security::StartTls => {
                // Fail on an unusable host name before saying anything to the server.
                tls::server_name(&config.host).ok_or_else(|| invalid_name(config))?;
                // The plaintext part on our own socket, so that nothing read before the
                // handshake can be taken for a reply that came over TLS.
                let tcp = starttls::negotiate(config, tcp, deadline).await?;
                let stream = secure(config, tcp, deadline, Stage::Starttls).await?;
                // lettre reads a synthetic greeting, then sends EHLO again over TLS.
                let conn = step(
                    deadline,
                    AsyncSmtpConnection::connect_with_transport(
                        Box::new(tls::AfterStarttls::new(stream)),
                        hello,
                    ),
                )
                .await
                .map_err(|e| classify(config, Stage::Greeting, e))?;
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
    /// them for good (5xx), the message still goes to the others (a typo in one address must
    /// not keep a failed-backup alert from everyone else) and the refused ones come back with
    /// the response, for the host to report. When it refuses all of them, nothing is sent.
    /// When it refuses any only for now (4xx), nothing is sent either: a transient error, so
    /// the outbox retries the whole message later.
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

        // 5xx: refused for good; 4xx: refused for now (greylisting, a full mailbox).
        let mut refused = Vec::new();
        let mut deferred = Vec::new();
        for recipient in envelope.to() {
            match step(
                deadline,
                self.conn.command(Rcpt::new(recipient.clone(), vec![])),
            )
            .await
            {
                Ok(_) => {}
                Err(StepError::Smtp(e)) => match Reply::of(&e) {
                    // The server is closing the connection: the whole attempt failed.
                    Some(reply) if reply.code == 421 => {
                        return Err(before_content(Stage::RcptTo, StepError::Smtp(e)))
                    }
                    Some(reply) if reply.is_transient() => {
                        deferred.push((recipient.clone(), reply));
                    }
                    Some(reply) => refused.push((recipient.clone(), reply)),
                    None => return Err(before_content(Stage::RcptTo, StepError::Smtp(e))),
                },
                Err(e) => return Err(before_content(Stage::RcptTo, e)),
            }
        }
        // Sending now would leave the deferred recipients without the message for good (the
        // item leaves the outbox once the server accepted it), so nothing is sent and the
        // outbox retries the whole message later, for everyone.
        if !deferred.is_empty() {
            let reusable = step(deadline, self.conn.command(Rset)).await.is_ok();
            return Err(Failed {
                error: diagnose::recipients_deferred(config, &deferred, &refused),
                stale: false,
                reusable,
            });
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

/// The least time one address gets before the next one is tried (unless the attempt's
/// deadline comes first): enough for a real server across the world to answer a SYN.
const MIN_TIME_PER_ADDRESS: Duration = Duration::from_secs(3);

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
    match connect_any(&addresses, deadline, MIN_TIME_PER_ADDRESS).await {
        Ok(stream) => {
            // lettre writes the body and the final "." separately; without NODELAY, Nagle
            // holds the second write until the server's delayed ACK (about 40 ms).
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Err(ConnectFailure::NoAddress) => Err(diagnose::no_address(config)),
        Err(ConnectFailure::TimedOut) => Err(diagnose::timeout(config, Stage::Connect)),
        Err(ConnectFailure::Failed(e)) => Err(diagnose::connect(config, &e)),
    }
}

/// Why no address could be connected to (the last address's failure).
#[derive(Debug)]
enum ConnectFailure {
    NoAddress,
    TimedOut,
    Failed(std::io::Error),
}

/// Tries the addresses one after another, alternating between IPv6 and IPv4, each with a
/// fair share of the time left, so one unreachable address (a black-holed IPv6 route, a
/// dead MX host) cannot use up the whole attempt while the others are never tried.
async fn connect_any(
    addresses: &[SocketAddr],
    deadline: Instant,
    min_share: Duration,
) -> Result<TcpStream, ConnectFailure> {
    let ordered = interleave_families(addresses);
    let mut last = ConnectFailure::NoAddress;
    for (i, address) in ordered.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let until = address_deadline(now, deadline, ordered.len() - i, min_share);
        match timeout_at(until, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = ConnectFailure::Failed(e),
            Err(_) => last = ConnectFailure::TimedOut,
        }
    }
    Err(last)
}

/// When the attempt on one address gives up: an equal share of the time left among the
/// `left` addresses not yet tried (this one included), at least `min_share`, never past the
/// attempt's deadline; the last address gets all the time left.
fn address_deadline(now: Instant, deadline: Instant, left: usize, min_share: Duration) -> Instant {
    if left <= 1 {
        return deadline;
    }
    let remaining = deadline.saturating_duration_since(now);
    let share = remaining / u32::try_from(left).unwrap_or(u32::MAX);
    (now + share.max(min_share)).min(deadline)
}

/// The addresses in the resolver's order, but alternating between the families, starting
/// with the first one's (RFC 8305 section 4): a broken family costs one share, not several.
fn interleave_families(addresses: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addresses.first() else {
        return Vec::new();
    };
    let (mut preferred, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
        .iter()
        .partition(|a| a.is_ipv6() == first.is_ipv6());
    preferred.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(addresses.len());
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
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
    fn each_address_gets_a_fair_share_of_the_time_left() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let min = s(3);
        // Two addresses, 30 s: the first gives up after 15 s, the last gets the rest.
        assert_eq!(address_deadline(now, now + s(30), 2, min), now + s(15));
        assert_eq!(address_deadline(now, now + s(30), 1, min), now + s(30));
        assert_eq!(address_deadline(now, now + s(30), 3, min), now + s(10));
        // Many addresses: at least the minimum each, never past the deadline.
        assert_eq!(address_deadline(now, now + s(10), 8, min), now + s(3));
        assert_eq!(address_deadline(now, now + s(2), 2, min), now + s(2));
        assert_eq!(address_deadline(now, now, 2, min), now);
    }

    #[test]
    fn address_families_alternate() {
        let v6 = |n: u16| SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, n], 25));
        let v4 = |n: u8| SocketAddr::from(([192, 0, 2, n], 25));
        assert_eq!(
            interleave_families(&[v6(1), v6(2), v6(3), v4(1), v4(2)]),
            [v6(1), v4(1), v6(2), v4(2), v6(3)]
        );
        assert_eq!(
            interleave_families(&[v4(1), v6(1), v4(2)]),
            [v4(1), v6(1), v4(2)]
        );
        assert_eq!(interleave_families(&[v4(1), v4(2)]), [v4(1), v4(2)]);
        assert!(interleave_families(&[]).is_empty());
    }

    /// A listening socket whose accept queue is full drops further SYNs, as a black-holed
    /// route does: a connection attempt to it hangs. Returns it with the connections that
    /// fill it (to keep them open), or None where the system does not behave so.
    fn black_hole() -> Option<(std::net::TcpListener, Vec<std::net::TcpStream>)> {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind("127.0.0.1:0".parse().unwrap()).ok()?;
        let listener = socket.listen(0).ok()?.into_std().ok()?;
        let address = listener.local_addr().ok()?;
        let mut filling = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
                Ok(stream) => filling.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Some((listener, filling))
                }
                Err(_) => return None,
            }
        }
        None
    }

    #[test]
    fn an_unreachable_first_address_leaves_time_for_the_next() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let Some((hole, _filling)) = runtime.block_on(async { black_hole() }) else {
            eprintln!("skipped: cannot make a black-holed address on this system");
            return;
        };
        let good = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addresses = [hole.local_addr().unwrap(), good.local_addr().unwrap()];
        let started = std::time::Instant::now();
        let connected = runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(3);
            connect_any(&addresses, deadline, Duration::from_millis(100)).await
        });
        let stream = connected.expect("the second address connects");
        assert_eq!(stream.peer_addr().unwrap(), addresses[1]);
        // The first address had half the time (1.5 s), not all of it.
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_millis(2800), "{elapsed:?}");

        // Every address unreachable: a timeout, within the attempt's deadline.
        let started = std::time::Instant::now();
        let failed = runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_millis(600);
            connect_any(&addresses[..1], deadline, Duration::from_millis(100)).await
        });
        assert!(
            matches!(failed, Err(ConnectFailure::TimedOut)),
            "{failed:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(1500));
    }

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

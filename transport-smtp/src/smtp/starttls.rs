//! The plaintext part of STARTTLS (RFC 3207), done on our own socket: the greeting, EHLO,
//! STARTTLS and its `220` reply, and nothing more.
//!
//! lettre's own `starttls` upgrades the socket underneath its read buffer, so bytes that
//! followed the `220` reply in the same read (a man-in-the-middle's injected "replies") would
//! later be read as if they had come over TLS. Here every byte read before the handshake is
//! accounted for: after the STARTTLS reply the buffer must be empty (RFC 3207 section 6), or
//! the connection is refused before the handshake. The caller then performs the handshake on
//! the bare socket and hands the TLS stream to lettre, which sends EHLO again over TLS.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use lettre::transport::smtp::commands::Ehlo;
use postflight_core::DeliveryError;

use super::config::SmtpConfig;
use super::diagnose::{self, Reply, Stage};

/// The most a single plaintext reply may take (lettre's own limit for a response).
const MAX_REPLY_BYTES: usize = 100_000;

/// How much of unexpected pre-handshake data is quoted in the error's details.
const QUOTED_BYTES: usize = 200;

/// Why a plaintext reply could not be read.
#[derive(Debug)]
pub enum PlainFailure {
    /// The server closed the connection.
    Closed,
    /// Reading or writing failed.
    Broken(io::Error),
    /// What arrived is not an SMTP reply.
    NotSmtp(String),
}

impl From<io::Error> for PlainFailure {
    fn from(error: io::Error) -> Self {
        PlainFailure::Broken(error)
    }
}

/// A reply read before TLS: its code and its text lines (without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainReply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line.
    pub lines: Vec<String>,
}

impl PlainReply {
    /// As a [`Reply`]: `250 first line second line`.
    pub fn reply(&self) -> Reply {
        Reply {
            code: self.code,
            text: format!("{} {}", self.code, self.lines.join(" "))
                .trim_end()
                .to_string(),
        }
    }

    fn is_positive_completion(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether an EHLO reply lists the STARTTLS extension (the first line is the greeting).
    fn offers_starttls(&self) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case("STARTTLS"))
        })
    }
}

/// Reads SMTP replies line by line, keeping what was read beyond the current reply so that
/// nothing is lost or silently skipped.
pub struct PlainReader<S> {
    stream: S,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> PlainReader<S> {
    /// Wraps a freshly connected stream.
    pub fn new(stream: S) -> Self {
        PlainReader {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Sends a command (which ends in CRLF).
    pub async fn send(&mut self, command: &[u8]) -> Result<(), PlainFailure> {
        self.stream.write_all(command).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads one complete (possibly multi-line) reply.
    pub async fn read_reply(&mut self) -> Result<PlainReply, PlainFailure> {
        let mut code = None;
        let mut lines = Vec::new();
        let mut size = 0;
        loop {
            let line = self.read_line(MAX_REPLY_BYTES.saturating_sub(size)).await?;
            size += line.len() + 2;
            if size > MAX_REPLY_BYTES {
                return Err(too_long());
            }
            let (line_code, last, text) = parse_line(&line)?;
            if code.is_some_and(|c| c != line_code) {
                return Err(PlainFailure::NotSmtp(format!(
                    "a multi-line reply changed its code: {line:?}"
                )));
            }
            code = Some(line_code);
            lines.push(text.to_string());
            if last {
                return Ok(PlainReply {
                    code: line_code,
                    lines,
                });
            }
        }
    }

    /// The number of bytes received but not yet consumed by a reply.
    pub fn pending(&self) -> &[u8] {
        &self.buffer
    }

    /// The stream, for the TLS handshake. Only call it when [`Self::pending`] is empty.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// One line, without its line end (CRLF, or a bare LF from a sloppy server).
    async fn read_line(&mut self, limit: usize) -> Result<String, PlainFailure> {
        let mut searched = 0;
        loop {
            if let Some(end) = self.buffer[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + end;
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            searched = self.buffer.len();
            if searched > limit {
                return Err(too_long());
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(PlainFailure::Closed);
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

fn too_long() -> PlainFailure {
    PlainFailure::NotSmtp(format!("a reply longer than {MAX_REPLY_BYTES} bytes"))
}

/// `250-text` -> (250, false, "text"); `250 text` or `250` -> (250, true, "text").
fn parse_line(line: &str) -> Result<(u16, bool, &str), PlainFailure> {
    let not_smtp = || PlainFailure::NotSmtp(format!("{:?}", quote(line.as_bytes())));
    let bytes = line.as_bytes();
    if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) || bytes[0] == b'0' {
        return Err(not_smtp());
    }
    let code: u16 = line[..3].parse().map_err(|_| not_smtp())?;
    match bytes.get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(not_smtp()),
    }
}

/// Unexpected bytes, printable, at most [`QUOTED_BYTES`] of them.
pub fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTED_BYTES)];
    let mut text: String = shown.escape_ascii().to_string();
    if bytes.len() > shown.len() {
        text.push_str("...");
    }
    text
}

/// Reads the greeting, sends EHLO, checks that STARTTLS is offered, sends STARTTLS and reads
/// its `220`, all before `deadline`. Returns the stream, ready for the TLS handshake, with
/// nothing left unread: any byte received after the STARTTLS reply fails the attempt.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    config: &SmtpConfig,
    stream: S,
    deadline: Instant,
) -> Result<S, DeliveryError> {
    let mut plain = PlainReader::new(stream);

    let greeting = read(config, &mut plain, Stage::Greeting, deadline).await?;
    if !greeting.is_positive_completion() {
        return Err(diagnose::reply(config, Stage::Greeting, &greeting.reply()));
    }

    let ehlo = Ehlo::new(config.hello.clone()).to_string();
    write(
        config,
        &mut plain,
        ehlo.as_bytes(),
        Stage::Greeting,
        deadline,
    )
    .await?;
    let capabilities = read(config, &mut plain, Stage::Greeting, deadline).await?;
    if !capabilities.is_positive_completion() {
        return Err(diagnose::reply(
            config,
            Stage::Greeting,
            &capabilities.reply(),
        ));
    }
    if !capabilities.offers_starttls() {
        return Err(diagnose::starttls_missing(config));
    }

    write(
        config,
        &mut plain,
        b"STARTTLS\r\n",
        Stage::Starttls,
        deadline,
    )
    .await?;
    let ready = read(config, &mut plain, Stage::Starttls, deadline).await?;
    if ready.code != 220 {
        return Err(if ready.code >= 400 {
            diagnose::reply(config, Stage::Starttls, &ready.reply())
        } else {
            diagnose::plain(
                config,
                Stage::Starttls,
                &PlainFailure::NotSmtp(format!("{} instead of 220", ready.reply().text)),
            )
        });
    }
    if !plain.pending().is_empty() {
        return Err(diagnose::starttls_injection(config, plain.pending()));
    }
    Ok(plain.into_inner())
}

async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    config: &SmtpConfig,
    plain: &mut PlainReader<S>,
    stage: Stage,
    deadline: Instant,
) -> Result<PlainReply, DeliveryError> {
    match timeout_at(deadline, plain.read_reply()).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(failure)) => Err(diagnose::plain(config, stage, &failure)),
        Err(_) => Err(diagnose::timeout(config, stage)),
    }
}

async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    config: &SmtpConfig,
    plain: &mut PlainReader<S>,
    command: &[u8],
    stage: Stage,
    deadline: Instant,
) -> Result<(), DeliveryError> {
    match timeout_at(deadline, plain.send(command)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failure)) => Err(diagnose::plain(config, stage, &failure)),
        Err(_) => Err(diagnose::timeout(config, stage)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use postflight_core::plugin::OpenRequest;
    use postflight_core::ErrorKind;
    use serde_json::json;
    use tokio::io::{duplex, AsyncBufReadExt, BufReader, DuplexStream};

    use super::*;
    use crate::smtp::config;

    fn config() -> SmtpConfig {
        config::parse(&OpenRequest {
            transport: "smtp".into(),
            account: "main".into(),
            send_timeout_ms: 3000,
            settings: json!({"host": "mail.example.com", "hello_name": "client.test"})
                .as_object()
                .unwrap()
                .clone(),
        })
        .unwrap()
        .0
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A scripted server: for each step, the command it expects (None: none, just send) and
    /// the bytes it then writes, in one write.
    async fn serve(server: DuplexStream, script: Vec<(Option<&'static str>, &'static [u8])>) {
        let (read, mut write) = tokio::io::split(server);
        let mut read = BufReader::new(read);
        for (expect, answer) in script {
            if let Some(expect) = expect {
                let mut line = String::new();
                read.read_line(&mut line).await.unwrap();
                assert_eq!(line, expect);
            }
            write.write_all(answer).await.unwrap();
        }
        // Keep the connection open until the client is done.
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
    }

    fn run(script: Vec<(Option<&'static str>, &'static [u8])>) -> Result<(), DeliveryError> {
        block_on(async {
            let (client, server) = duplex(64 * 1024);
            let server = tokio::spawn(serve(server, script));
            let deadline = Instant::now() + Duration::from_secs(3);
            let result = negotiate(&config(), client, deadline).await.map(drop);
            server.abort();
            result
        })
    }

    const GREETING: &[u8] = b"220-mail.example.com ESMTP\r\n220 no UCE\r\n";
    const EHLO: &str = "EHLO client.test\r\n";
    const CAPABILITIES: &[u8] =
        b"250-mail.example.com hello\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n";

    #[test]
    fn a_clean_exchange_hands_back_the_stream() {
        run(vec![
            (None, GREETING),
            (Some(EHLO), CAPABILITIES),
            (Some("STARTTLS\r\n"), b"220 2.0.0 Ready to start TLS\r\n"),
        ])
        .unwrap();
    }

    #[test]
    fn bytes_after_the_starttls_reply_are_refused() {
        let err = run(vec![
            (None, GREETING),
            (Some(EHLO), CAPABILITIES),
            (
                Some("STARTTLS\r\n"),
                b"220 ready\r\n250-evil\r\n250 AUTH PLAIN\r\n235 ok\r\n",
            ),
        ])
        .unwrap_err();
        assert_eq!(
            (err.kind, err.permanent),
            (ErrorKind::Tls, false),
            "{err:?}"
        );
        assert!(err.message.contains("before the TLS handshake"), "{err:?}");
        assert!(
            err.hint.as_deref().unwrap().contains("injecting"),
            "{err:?}"
        );
        assert!(
            err.details.as_deref().unwrap().contains("250-evil"),
            "{err:?}"
        );
    }

    #[test]
    fn starttls_not_offered_is_diagnosed() {
        let err = run(vec![
            (None, b"220 mail.example.com\r\n"),
            (Some(EHLO), b"250-mail.example.com\r\n250 AUTH PLAIN\r\n"),
        ])
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::StarttlsUnavailable, "{err:?}");
    }

    #[test]
    fn refusals_and_garbage_are_classified() {
        let err = run(vec![(None, b"554 5.7.1 go away\r\n")]).unwrap_err();
        assert_eq!(
            (err.kind, err.permanent),
            (ErrorKind::Server, true),
            "{err:?}"
        );
        assert_eq!(err.reply.as_deref(), Some("554 5.7.1 go away"));

        let err = run(vec![
            (None, GREETING),
            (Some(EHLO), CAPABILITIES),
            (Some("STARTTLS\r\n"), b"454 4.7.0 TLS not available\r\n"),
        ])
        .unwrap_err();
        assert_eq!(
            (err.kind, err.permanent),
            (ErrorKind::Tls, false),
            "{err:?}"
        );

        let err = run(vec![(None, b"HTTP/1.1 400 Bad Request\r\n")]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Protocol, "{err:?}");
    }

    #[test]
    fn replies_are_parsed_across_reads() {
        block_on(async {
            let (client, mut server) = duplex(1024);
            let mut reader = PlainReader::new(client);
            server.write_all(b"250-first\r\n25").await.unwrap();
            let writer = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                server.write_all(b"0-second\n250 last\r\n").await.unwrap();
                server
            });
            let reply = reader.read_reply().await.unwrap();
            assert_eq!(reply.code, 250);
            assert_eq!(reply.lines, ["first", "second", "last"]);
            assert!(reader.pending().is_empty());
            drop(writer.await.unwrap());
            assert!(matches!(
                reader.read_reply().await,
                Err(PlainFailure::Closed)
            ));
        });
        assert!(matches!(parse_line("250-x").unwrap(), (250, false, "x")));
        assert!(matches!(parse_line("220").unwrap(), (220, true, "")));

        // A server that never ends its reply cannot make the client buffer without limit.
        block_on(async {
            let (client, mut server) = duplex(64 * 1024);
            let mut reader = PlainReader::new(client);
            let writer = tokio::spawn(async move {
                let line = format!("250-{}\r\n", "x".repeat(990));
                while server.write_all(line.as_bytes()).await.is_ok() {}
            });
            assert!(matches!(
                reader.read_reply().await,
                Err(PlainFailure::NotSmtp(text)) if text.contains("longer than")
            ));
            drop(reader);
            writer.await.unwrap();
        });
        assert!(parse_line("2x0 hi").is_err());
        assert!(parse_line("250x").is_err());
    }
}

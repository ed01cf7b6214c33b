//! The HTTP side every provider shares: a reqwest client on a current-thread tokio runtime
//! owned by the connection (the ABI's `send` is a blocking call), one deadline for the whole
//! attempt, bounded reading of replies, and the mapping of network failures to
//! [`DeliveryError`]s.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use postflight_core::{DeliveryError, ErrorKind};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, StatusCode};
use tokio::runtime::Runtime;

/// Replies are read up to this many bytes; the rest is never looked at.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// A provider's HTTP reply, its body cut at [`MAX_REPLY_BYTES`].
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (bounded).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `HTTP 429 Too Many Requests`.
    pub fn status_line(&self) -> String {
        match self.status.canonical_reason() {
            Some(reason) => format!("HTTP {} {reason}", self.status.as_u16()),
            None => format!("HTTP {}", self.status.as_u16()),
        }
    }

    /// How long the server asked us to wait (`Retry-After`, seconds or an HTTP date).
    pub fn retry_after(&self) -> Option<u64> {
        parse_retry_after(self.header(RETRY_AFTER.as_str())?, SystemTime::now())
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date (RFC 9110 section 10.2.3).
/// Capped at one day so a confused server cannot park a notification for a year.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<u64> {
    const MAX: u64 = 24 * 60 * 60;
    let value = value.trim();
    let secs = match value.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(now).map(|d| d.as_secs()).unwrap_or(0)
        }
    };
    Some(secs.min(MAX))
}

/// The HTTP client of one connection. The runtime and client are created on first use, so
/// `open` (which `postflight check` calls) stays cheap and offline.
#[derive(Debug)]
pub struct Http {
    timeout: Duration,
    inner: Option<(Runtime, Client)>,
}

impl Http {
    /// A client whose every attempt (connect, send, read the reply) ends after `timeout`.
    pub fn new(timeout_ms: u64) -> Http {
        let timeout_ms = if timeout_ms == 0 { 30_000 } else { timeout_ms };
        Http {
            timeout: Duration::from_millis(timeout_ms),
            inner: None,
        }
    }

    fn client(&mut self) -> Result<&(Runtime, Client), DeliveryError> {
        if self.inner.is_none() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    DeliveryError::transient(
                        ErrorKind::Plugin,
                        format!("cannot start the HTTP runtime: {e}"),
                    )
                })?;
            let client = Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.timeout)
                .user_agent(concat!("postflight/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| {
                    DeliveryError::transient(
                        ErrorKind::Tls,
                        format!("cannot set up the HTTPS client: {}", chain(&e)),
                    )
                    .with_hint("the system's TLS trust store could not be loaded")
                })?;
            self.inner = Some((runtime, client));
        }
        Ok(self.inner.as_ref().expect("just set"))
    }

    /// Builds a request with `build`, sends it and reads the reply (bounded). Network
    /// failures come back as classified errors naming `provider`; any HTTP status is `Ok`.
    pub fn send(
        &mut self,
        provider: &str,
        build: impl FnOnce(&Client) -> RequestBuilder,
    ) -> Result<Reply, DeliveryError> {
        let timeout = self.timeout;
        let (runtime, client) = self.client()?;
        let request = build(client);
        runtime.block_on(async move {
            let mut response = request
                .send()
                .await
                .map_err(|e| network_error(provider, e, timeout))?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let mut body = Vec::new();
            while body.len() < MAX_REPLY_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = MAX_REPLY_BYTES - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    Ok(None) => break,
                    // A success whose body never arrived is still unknown: retry it.
                    Err(e) => return Err(network_error(provider, e, timeout)),
                }
            }
            Ok(Reply {
                status,
                headers,
                body,
            })
        })
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        if let Some((runtime, client)) = self.inner.take() {
            drop(client);
            // Never wait for stragglers at `close`: the host may be closing from its own
            // async runtime, and nothing of ours is still needed.
            runtime.shutdown_background();
        }
    }
}

/// The error and its causes on one line.
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn network_error(provider: &str, error: reqwest::Error, timeout: Duration) -> DeliveryError {
    // The URL names no secret, but the message reads better without it.
    let error = error.without_url();
    let detail = chain(&error);
    let lower = detail.to_lowercase();
    if error.is_builder() {
        return DeliveryError::permanent(
            ErrorKind::Plugin,
            format!("cannot build the request to the {provider} API"),
        )
        .with_details(detail)
        .with_hint("a setting holds characters an HTTP request cannot carry; if the settings look right this is a bug in postflight");
    }
    if error.is_timeout() || lower.contains("timed out") {
        return DeliveryError::transient(
            ErrorKind::Timeout,
            format!(
                "{provider} did not answer within {} s",
                timeout.as_secs_f64()
            ),
        )
        .with_details(detail)
        .with_hint("the notification stays queued; raise `send_timeout` if the API is just slow");
    }
    if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
        || lower.contains("no address associated")
    {
        return DeliveryError::transient(
            ErrorKind::Dns,
            format!("cannot resolve the {provider} API host"),
        )
        .with_details(detail)
        .with_hint("check the network and DNS of this machine, and `base_url` if you set one");
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return DeliveryError::transient(
            ErrorKind::Certificate,
            format!("the {provider} API's TLS certificate was not trusted"),
        )
        .with_details(detail)
        .with_hint("a proxy may be intercepting HTTPS; make its CA trusted system-wide, or check `base_url`");
    }
    if lower.contains("tls") || lower.contains("handshake") {
        return DeliveryError::transient(
            ErrorKind::Tls,
            format!("the TLS handshake with the {provider} API failed"),
        )
        .with_details(detail);
    }
    if error.is_connect() {
        return DeliveryError::transient(
            ErrorKind::Connect,
            format!("cannot connect to the {provider} API"),
        )
        .with_details(detail)
        .with_hint(
            "the notification stays queued; check the network (and `base_url` if you set one)",
        );
    }
    DeliveryError::transient(
        ErrorKind::Connect,
        format!("the request to the {provider} API failed"),
    )
    .with_details(detail)
    .with_hint("the notification stays queued and is retried")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reply as a provider would send it, for classification tests.
    pub fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(7));
        assert_eq!(parse_retry_after(" 120 ", now), Some(120));
        assert_eq!(parse_retry_after("99999999", now), Some(86_400));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(30));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(0));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

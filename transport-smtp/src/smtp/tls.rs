//! TLS plumbing: the handshake on a socket we connected ourselves (from the first byte for
//! implicit TLS, after [`super::starttls::negotiate`] for STARTTLS) and the stream wrappers that
//! hand the TLS stream to lettre.
//!
//! The handshake accepts whatever certificate the server presents while still verifying the
//! handshake signatures, so the server has proven it holds that certificate's key. Whether the
//! certificate is *trusted* is decided right after the handshake by [`super::trust::Trust`],
//! before a single SMTP byte crosses the encrypted connection: one policy for both modes, and
//! the refused certificate stays available to describe to the operator.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The crypto provider (ring) every TLS operation here uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Accepts any certificate chain but verifies the handshake signatures; the chain is judged by
/// [`super::trust::Trust::check`] once the handshake is done.
#[derive(Debug)]
struct DeferredVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DeferredVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn implicit_tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = crypto_provider();
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(DeferredVerifier { provider }))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// The name the server's certificate is checked against (a DNS name or an IP address).
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_string()).ok()
}

/// Performs the TLS handshake on a connected socket: at once for implicit TLS
/// (`security = "tls"`), after the plaintext STARTTLS exchange otherwise.
pub async fn handshake(tcp: TcpStream, name: ServerName<'static>) -> io::Result<TlsTcpStream> {
    let connector = tokio_rustls::TlsConnector::from(implicit_tls_config());
    connector.connect(name, tcp).await.map(TlsTcpStream)
}

/// A TLS stream over a socket we connected, in the form lettre accepts
/// (`AsyncSmtpConnection::connect_with_transport`).
pub struct TlsTcpStream(tokio_rustls::client::TlsStream<TcpStream>);

impl TlsTcpStream {
    /// The certificates the server presented, leaf first.
    pub fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        self.0
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for TlsTcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TlsTcpStream")
            .field(&self.0.get_ref().0.peer_addr().ok())
            .finish()
    }
}

impl AsyncRead for TlsTcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcpStream {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// The TLS stream after STARTTLS, for lettre: lettre's client starts by reading a greeting,
/// but the server's real one came in plaintext before the upgrade, so this yields a synthetic
/// `220` line first and then passes everything through. lettre answers it with EHLO, which
/// RFC 3207 requires anew after the handshake.
#[derive(Debug)]
pub struct AfterStarttls {
    greeting_sent: usize,
    inner: TlsTcpStream,
}

impl AfterStarttls {
    /// The greeting lettre reads (never seen by the server).
    pub const GREETING: &'static [u8] = b"220 TLS established\r\n";

    /// Wraps a stream whose handshake (after STARTTLS) is complete.
    pub fn new(inner: TlsTcpStream) -> Self {
        AfterStarttls {
            greeting_sent: 0,
            inner,
        }
    }
}

impl AsyncRead for AfterStarttls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = &Self::GREETING[self.greeting_sent..];
        if !rest.is_empty() {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.greeting_sent += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AfterStarttls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for AfterStarttls {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

//! Test helpers: the built plugin loaded through the real host, aiosmtpd servers started per
//! test, and self-signed certificates made at test time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use postflight_core::plugin::host::{LoadedPlugin, Registry, SearchDir, Session};
use postflight_core::plugin::OpenRequest;
use postflight_core::{DeliveryError, Email, EmailParts};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const LIBRARY: &str = "libpostflight_transport_smtp.so";

/// The plugin, loaded once per test process exactly as postflight loads it.
pub fn plugin() -> &'static LoadedPlugin {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let deps = exe.parent().expect("deps directory");
        let built = [
            deps.parent().map(|d| d.join(LIBRARY)),
            Some(deps.join(LIBRARY)),
        ]
        .into_iter()
        .flatten()
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("{LIBRARY} not found next to {}", deps.display()));
        // A private directory: other plugins built into target/ must not interfere, and the
        // host insists on a directory only we can write to.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(&built, dir.path().join(LIBRARY)).expect("copy plugin");
        let registry = Registry::discover(
            vec![SearchDir {
                path: dir.path().to_path_buf(),
                origin: "test",
                postflight_names_only: true,
            }],
            &BTreeMap::new(),
        );
        // The library stays mapped (the host never unloads), so its file can go now.
        drop(dir);
        registry
    });
    match registry.transport("smtp") {
        Ok((plugin, _)) => plugin,
        Err(e) => panic!("plugin not loaded: {e}; rejected: {:?}", registry.rejected),
    }
}

/// Opens `transport` with `settings` and the given send timeout.
pub fn open_with_timeout(
    transport: &str,
    settings: Value,
    send_timeout_ms: u64,
) -> Result<(Session, Vec<String>), DeliveryError> {
    plugin().open(&OpenRequest {
        transport: transport.to_string(),
        account: "test".to_string(),
        send_timeout_ms,
        settings: settings.as_object().expect("settings object").clone(),
    })
}

/// Opens an `smtp` account; panics with the error if it does not open.
pub fn open_smtp(settings: Value) -> (Session, Vec<String>) {
    open_with_timeout("smtp", settings, 10_000).unwrap_or_else(|e| panic!("open failed: {e:?}"))
}

/// A notification from `sender@example.com`.
pub fn email(to: &[&str], subject: &str, text: &str) -> Email {
    Email::new(EmailParts {
        from: "Postflight <sender@example.com>".into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: subject.into(),
        text: text.into(),
    })
}

/// The Python interpreter with aiosmtpd installed.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("POSTFLIGHT_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let venv = root.join(".venv/bin/python");
    if !venv.exists() {
        panic!(
            "the SMTP integration tests need Python with aiosmtpd, expected at {} (or set POSTFLIGHT_TEST_PYTHON). Create it with:\n  python3 -m venv {root}/.venv && {root}/.venv/bin/pip install -r {root}/test-support/requirements.txt",
            venv.display(),
            root = root.display()
        );
    }
    venv
}

/// A running `test-support/smtp_server.py`, stopped when dropped.
pub struct Server {
    child: Child,
    // Closing it tells the server to exit even if this process dies without dropping us.
    _stdin: ChildStdin,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    record: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with these command-line flags (see the script's `--help`).
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = dir.path().join("received.jsonl");
        let stderr = dir.path().join("stderr.txt");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-support/smtp_server.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg("--stop-on-stdin-eof")
            .arg("--record")
            .arg(&record)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the test SMTP server did not start (first line {line:?}); its stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        let stdin = child.stdin.take().expect("stdin");
        Server {
            child,
            _stdin: stdin,
            port,
            record,
            stderr,
            _dir: dir,
        }
    }

    /// Every message the server accepted, in order.
    pub fn received(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.record) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).expect("record line"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The one message the server accepted (panics with the server's log otherwise).
    pub fn only_message(&self) -> Value {
        let mut all = self.received();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one message; server stderr:\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        all.remove(0)
    }

    /// Settings for an account pointing at this server, merged with `extra`.
    pub fn settings(&self, security: &str, extra: Value) -> Value {
        let mut settings = json!({"host": "127.0.0.1", "port": self.port, "security": security});
        for (k, v) in extra.as_object().expect("extra settings object") {
            settings[k] = v.clone();
        }
        settings
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, with its files.
pub struct Cert {
    /// The certificate (PEM file).
    pub cert: PathBuf,
    /// Its private key (PEM file).
    pub key: PathBuf,
    /// `sha256:AB:CD:...` of the certificate.
    pub fingerprint: String,
    _dir: tempfile::TempDir,
}

impl Cert {
    /// Makes a fresh certificate.
    pub fn self_signed() -> Cert {
        let generated = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .expect("generate certificate");
        Cert::write(generated)
    }

    /// Makes a fresh self-signed certificate marked as a CA (basic constraints CA:TRUE), as
    /// `openssl req -x509` does by default with OpenSSL 3.
    pub fn self_signed_ca() -> Cert {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("certificate parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let signing_key = rcgen::KeyPair::generate().expect("key pair");
        let cert = params.self_signed(&signing_key).expect("self-sign");
        Cert::write(rcgen::CertifiedKey { cert, signing_key })
    }

    fn write(generated: rcgen::CertifiedKey<rcgen::KeyPair>) -> Cert {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, generated.cert.pem()).expect("write cert");
        std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
        let digest = Sha256::digest(generated.cert.der());
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        Cert {
            cert,
            key,
            fingerprint: format!("sha256:{}", hex.join(":")),
            _dir: dir,
        }
    }

    /// Server flags for `mode` (starttls or tls) with this certificate.
    pub fn server_args<'a>(&'a self, mode: &'a str) -> Vec<&'a str> {
        vec![
            "--mode",
            mode,
            "--cert",
            self.cert.to_str().expect("utf-8 path"),
            "--key",
            self.key.to_str().expect("utf-8 path"),
        ]
    }

    /// `ca_file` pointing at this certificate.
    pub fn ca_file(&self) -> String {
        self.cert.display().to_string()
    }
}

/// The header values named `name` in a recorded message.
pub fn headers<'a>(message: &'a Value, name: &str) -> Vec<&'a str> {
    message["parsed"]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|h| h[1].as_str().expect("header value"))
        .collect()
}

/// A STARTTLS server with a man-in-the-middle in front of it: the plaintext part is the
/// attacker's, who appends `injected` to the server's `220` reply to STARTTLS; after the
/// handshake the real server answers honestly (and refuses every login with 535).
pub struct InjectingServer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    over_tls: mpsc::Receiver<Vec<String>>,
}

impl InjectingServer {
    /// Serves one connection with `cert`.
    pub fn start(cert: &Cert, injected: &'static [u8]) -> InjectingServer {
        let chain = vec![CertificateDer::from_pem_file(&cert.cert).expect("certificate PEM")];
        let key = PrivateKeyDer::from_pem_file(&cert.key).expect("key PEM");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (sender, over_tls) = mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let _ = serve_injected(&listener, Arc::new(config), injected, &mut seen);
            let _ = sender.send(seen);
        });
        InjectingServer { port, over_tls }
    }

    /// The commands the real server received over TLS, once the connection ended.
    pub fn commands_over_tls(&self) -> Vec<String> {
        self.over_tls
            .recv_timeout(Duration::from_secs(20))
            .expect("the injecting server finished")
    }
}

fn serve_injected(
    listener: &TcpListener,
    config: Arc<rustls::ServerConfig>,
    injected: &[u8],
    seen: &mut Vec<String>,
) -> std::io::Result<()> {
    let (mut tcp, _) = listener.accept()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.write_all(b"220 mitm.test ESMTP\r\n")?;
    plain_line(&mut tcp)?;
    tcp.write_all(b"250-mitm.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")?;
    plain_line(&mut tcp)?;
    // One write: the injected lines arrive together with the 220, as an attacker sends them.
    let mut reply = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
    reply.extend_from_slice(injected);
    tcp.write_all(&reply)?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    loop {
        let mut line = String::new();
        if tls.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        seen.push(line);
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-real.test\r\n250 AUTH PLAIN\r\n",
            "AUTH" => b"535 5.7.8 Authentication credentials invalid\r\n",
            "QUIT" => b"221 2.0.0 Bye\r\n",
            _ => b"503 5.5.1 Bad sequence of commands\r\n",
        };
        tls.get_mut().write_all(answer)?;
        tls.get_mut().flush()?;
        if verb == "QUIT" {
            return Ok(());
        }
    }
}

/// One line read byte by byte, so nothing after it (the TLS handshake) is consumed.
fn plain_line(tcp: &mut TcpStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        if tcp.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

//! Test helpers: the built plugin loaded through the real host, aiosmtpd servers started per
//! test, and self-signed certificates made at test time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use postflight_core::plugin::host::{LoadedPlugin, Registry, SearchDir, Session};
use postflight_core::plugin::OpenRequest;
use postflight_core::{DeliveryError, Email, EmailParts};
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

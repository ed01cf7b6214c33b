//! Test harness: the built plugin loaded through the host's own discovery, and the local
//! provider emulators (`test-support/api_server.py`) started per test.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use postflight_core::plugin::host::{LoadedPlugin, Registry, SearchDir, Session};
use postflight_core::plugin::OpenRequest;
use postflight_core::{DeliveryError, Email, EmailParts};
use serde_json::{json, Map, Value};

/// The key every emulated provider (but SES) accepts.
pub const API_KEY: &str = "pf-test-key-7c1d2a";
/// The AWS key pair the emulated SES accepts.
pub const AWS_KEY_ID: &str = "AKIDPOSTFLIGHTTEST";
pub const AWS_SECRET: &str = "postflight/test/secret+K3y";
/// The Mailgun domains the emulator knows.
pub const MAILGUN_DOMAIN: &str = "mg.example.com";
pub const MAILGUN_UNVERIFIED_DOMAIN: &str = "new.example.com";
/// The sender domain the emulated accounts have verified.
pub const VERIFIED_DOMAIN: &str = "example.com";

/// The workspace root (`transport-api/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// The Python that runs the emulators: `$POSTFLIGHT_TEST_PYTHON`, else the workspace's
/// `.venv/bin/python`. Missing Python fails the test (it is never skipped).
pub fn python() -> PathBuf {
    let path = match std::env::var_os("POSTFLIGHT_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/python"),
    };
    assert!(
        path.exists(),
        "the provider API tests need Python at {} (set POSTFLIGHT_TEST_PYTHON to another one).\n\
         Create it with:\n  python3 -m venv .venv && .venv/bin/pip install -r test-support/requirements.txt\n\
         (from the workspace root {})",
        path.display(),
        workspace_root().display()
    );
    path
}

/// The plugin registry, discovered once from a private copy of the freshly built cdylib
/// (target/debug is shared with other crates' plugins that may be rebuilding).
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let name = format!(
            "{}postflight_transport_api{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let exe = std::env::current_exe().expect("the test knows its own path");
        let deps = exe.parent().expect("tests live in target/<profile>/deps");
        // `cargo test` refreshes deps/ but only `cargo build` copies the library up to
        // target/<profile>/: take the newer of the two.
        let built = [Some(deps.join(&name)), deps.parent().map(|d| d.join(&name))]
            .into_iter()
            .flatten()
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .max_by_key(|(modified, _)| *modified)
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("{name} was not built next to {}", exe.display()));
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::copy(&built, dir.path().join(&name)).expect("copy the plugin");
        let dir = dir.keep();
        let registry = Registry::discover(
            vec![SearchDir {
                path: dir,
                origin: "test",
                postflight_names_only: true,
            }],
            &BTreeMap::new(),
        );
        assert!(
            registry.rejected.is_empty(),
            "the plugin was rejected: {:?}",
            registry.rejected
        );
        registry
    })
}

/// The loaded `api` plugin.
pub fn plugin(transport: &str) -> &'static LoadedPlugin {
    let (plugin, _) = registry()
        .transport(transport)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plugin.manifest.name, "api");
    plugin
}

/// Opens `transport` with `settings` through the ABI.
pub fn open(
    transport: &str,
    settings: &Value,
    send_timeout_ms: u64,
) -> Result<(Session, Vec<String>), DeliveryError> {
    let request = OpenRequest {
        transport: transport.into(),
        account: "test".into(),
        send_timeout_ms,
        settings: settings
            .as_object()
            .expect("settings are a JSON object")
            .clone(),
    };
    plugin(transport).open(&request)
}

/// Like [`open`] but the test fails if opening fails.
pub fn session(transport: &str, settings: &Value) -> Session {
    match open(transport, settings, 10_000) {
        Ok((session, warnings)) => {
            assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
            session
        }
        Err(e) => panic!("open {transport} failed: {e:?}"),
    }
}

/// An email as core builds it.
pub fn email(from: &str, to: &[&str], subject: &str, text: &str) -> Email {
    Email::new(EmailParts {
        from: from.into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: subject.into(),
        text: text.into(),
    })
}

/// A running emulator process; killed when dropped.
pub struct Emulator {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Emulator {
    /// `api_server.py serve` with the test accounts; extra arguments appended.
    pub fn serve(extra: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let record = dir.path().join("requests.jsonl");
        let control = dir.path().join("control.json");
        let mut args: Vec<String> = [
            "serve",
            "--record",
            record.to_str().unwrap(),
            "--control",
            control.to_str().unwrap(),
            "--api-key",
            API_KEY,
            "--verified-domain",
            VERIFIED_DOMAIN,
            "--mailgun-domain",
            MAILGUN_DOMAIN,
            "--mailgun-unverified-domain",
            MAILGUN_UNVERIFIED_DOMAIN,
            "--postmark-stream",
            "alerts",
            "--aws-access-key-id",
            AWS_KEY_ID,
            "--aws-secret-access-key",
            AWS_SECRET,
            "--lifetime",
            "300",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Emulator::start(dir, &args)
    }

    /// `api_server.py moto`: moto's SES emulator with `verify` identities verified.
    pub fn moto(verify: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut args = vec!["moto".to_string(), "--lifetime".into(), "300".into()];
        for identity in verify {
            args.push("--verify".into());
            args.push(identity.to_string());
        }
        Emulator::start(dir, &args)
    }

    fn start(dir: tempfile::TempDir, args: &[String]) -> Emulator {
        let script = workspace_root().join("test-support/api_server.py");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let mut child = Command::new(python())
            .arg(&script)
            .args(args)
            // The emulator exits when its stdin closes, so it never outlives the test.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            panic!("the emulator did not print `PORT n` (got {line:?}); its stderr:\n{log}");
        };
        Emulator { child, port, dir }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queues scripted answers (see api_server.py): one is used per request.
    pub fn script(&self, actions: Value) {
        std::fs::write(self.dir.path().join("control.json"), actions.to_string())
            .expect("write the control file");
    }

    /// Every request the emulator accepted, in order (scripted answers left out).
    pub fn requests(&self) -> Vec<Value> {
        self.all_requests()
            .into_iter()
            .filter(|r| r.get("scripted").is_none())
            .collect()
    }

    /// Every request the emulator recorded, scripted answers included.
    pub fn all_requests(&self) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("the record is JSON lines"))
            .collect()
    }

    /// The only accepted request.
    pub fn only_request(&self) -> Value {
        let mut requests = self.requests();
        assert_eq!(requests.len(), 1, "requests: {requests:#?}\n{}", self.log());
        requests.remove(0)
    }

    /// The emulator's stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON object from pairs, for building settings in tests.
pub fn settings(pairs: &[(&str, &str)]) -> Value {
    let map: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Value::Object(map)
}

/// Sets (or with `None`, removes) one setting.
pub fn with(mut settings: Value, key: &str, value: Option<&str>) -> Value {
    let map = settings.as_object_mut().expect("settings are an object");
    match value {
        Some(v) => map.insert(key.into(), json!(v)),
        None => map.remove(key),
    };
    settings
}

/// Asserts that none of `secrets` appears anywhere in `error` (fields and Debug).
pub fn assert_no_secret(error: &DeliveryError, secrets: &[&str]) {
    let text = format!("{error:?} {error}");
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked into {text}"
        );
    }
}

//! A small harness: a private temporary home for each test (config, state dir, mail dir),
//! and builders that run the real `postflight` binary in it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `postflight` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postflight"))
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The directory with the built plugins (next to the binary), after checking they are there.
pub fn plugin_dir() -> PathBuf {
    let dir = bin().parent().unwrap().to_path_buf();
    for name in [
        "libpostflight_transport_smtp.so",
        "libpostflight_transport_api.so",
    ] {
        assert!(
            dir.join(name).exists(),
            "{} is missing: build the plugins first with `cargo build --workspace` (`cargo xtask ci` does)",
            dir.join(name).display()
        );
    }
    dir
}

/// The Python interpreter with the test servers' packages: $POSTFLIGHT_TEST_PYTHON, else
/// `<workspace>/.venv/bin/python`. Panics (never skips) with instructions when missing.
pub fn python() -> PathBuf {
    let path = std::env::var_os("POSTFLIGHT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python for the test servers at {}: run `cargo xtask ci`, or create it with \
         `python3 -m venv .venv && .venv/bin/pip install -r test-support/requirements.txt`",
        path.display()
    );
    path
}

/// One test's private world.
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// A fresh environment with no config file.
    pub fn new() -> TestEnv {
        plugin_dir();
        TestEnv {
            dir: tempfile::Builder::new()
                .prefix("postflight-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `$POSTFLIGHT_STATE_DIR`.
    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Where the config file is (written by [`config`](Self::config)).
    pub fn config_path(&self) -> PathBuf {
        self.path()
            .join("config")
            .join("postflight")
            .join("config.toml")
    }

    /// Writes the config file.
    pub fn config(&self, toml: &str) -> &Self {
        let path = self.config_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, toml).unwrap();
        self
    }

    /// A `postflight` command with a clean environment pointing into this test's world.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(bin());
        cmd.args(args);
        cmd
    }

    /// Any program, with the same environment as [`cmd`](Self::cmd) gives postflight.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("POSTFLIGHT_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_STATE_HOME", self.path().join("xdg-state"))
            .env("POSTFLIGHT_STATE_DIR", self.state_dir())
            .env("USER", "tester")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `postflight ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().unwrap())
    }

    /// The `.eml` files the file transport wrote into `dir` (default: `<state>/mail`), oldest first.
    pub fn mails_in(&self, dir: &Path) -> Vec<Eml> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| (std::fs::metadata(&p).unwrap().modified().unwrap(), p))
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| Eml::read(&p)).collect()
    }

    /// The `.eml` files of the built-in default account.
    pub fn mails(&self) -> Vec<Eml> {
        self.mails_in(&self.state_dir().join("mail"))
    }
}

/// A finished `postflight` invocation.
pub struct Run {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A parsed message (mail-parser): headers in order with encoded words decoded, and the
/// text body transfer-decoded.
#[derive(Debug, Clone)]
pub struct Eml {
    /// The file it came from (empty for parsed text).
    pub path: PathBuf,
    /// The raw text.
    pub raw: String,
    /// Header (name, value) pairs in order, decoded.
    pub headers: Vec<(String, String)>,
    /// The text/plain body, decoded.
    pub body: String,
}

impl Eml {
    /// Reads and parses a file.
    pub fn read(path: &Path) -> Eml {
        let mut eml = Eml::parse(&std::fs::read_to_string(path).unwrap());
        eml.path = path.to_path_buf();
        eml
    }

    /// Parses message text.
    pub fn parse(raw: &str) -> Eml {
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap_or_else(|| panic!("not a parseable message:\n{raw}"));
        let headers = message
            .headers()
            .iter()
            .map(|h| {
                let value = match h.value() {
                    mail_parser::HeaderValue::Text(t) => t.to_string(),
                    mail_parser::HeaderValue::TextList(l) => l.join(", "),
                    _ => {
                        // Structured values (addresses, dates, ids): show the raw text.
                        raw[h.offset_start() as usize..h.offset_end() as usize]
                            .trim()
                            .to_string()
                    }
                };
                (h.name().to_string(), value)
            })
            .collect();
        Eml {
            path: PathBuf::new(),
            raw: raw.to_string(),
            headers,
            body: message
                .body_text(0)
                .map(|b| b.into_owned())
                .unwrap_or_default(),
        }
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header name, lower-cased, in order.
    pub fn header_names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }
}

/// test-support/smtp_server.py (aiosmtpd) on 127.0.0.1, recording what it receives; stopped
/// when dropped, or when the test process dies (it exits at the end of its stdin).
pub struct SmtpServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    record: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts a server with extra command-line flags (see the script's --help).
    pub fn start(args: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("received.jsonl");
        let stderr = dir.path().join("stderr.log");
        let mut child = Command::new(python())
            .arg(workspace_root().join("test-support/smtp_server.py"))
            .arg("--record")
            .arg(&record)
            .arg("--stop-on-stdin-eof")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start test-support/smtp_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the test SMTP server did not start: {line:?}\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        SmtpServer {
            child,
            port,
            record,
            stderr,
            _dir: dir,
        }
    }

    /// Every message it accepted, in order (envelope, raw data, auth user).
    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The one message it accepted (panics with the server's log otherwise).
    pub fn only_message(&self) -> serde_json::Value {
        let mut all = self.received();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one message: {all:?}\nserver log:\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        all.remove(0)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

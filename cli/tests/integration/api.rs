//! The `api` plugin's transports through the real `postflight` binary: `test`, `run`,
//! `check` and the outbox, against the local provider emulators
//! (test-support/api_server.py), which accept only requests shaped as each provider documents.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{python, workspace_root, Run, TestEnv};

const API_KEY: &str = "pf-cli-test-key-51f0";
const AWS_KEY_ID: &str = "AKIDPOSTFLIGHTCLI";
const AWS_SECRET: &str = "postflight/cli/secret";
const FROM: &str = "Backups <backups@example.com>";

/// The provider emulator, killed when dropped.
struct Emulator {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Emulator {
    fn start() -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let mut child = Command::new(python())
            .arg(workspace_root().join("test-support/api_server.py"))
            .args(["serve", "--record", &path("requests.jsonl")])
            .args(["--control", &path("control.json")])
            .args(["--api-key", API_KEY, "--verified-domain", "example.com"])
            .args(["--mailgun-domain", "mg.example.com"])
            .args(["--aws-access-key-id", AWS_KEY_ID])
            .args(["--aws-secret-access-key", AWS_SECRET])
            .args(["--lifetime", "300"])
            .stdin(Stdio::piped()) // it exits when this pipe closes
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start test-support/api_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the emulator did not start: {line:?}"));
        Emulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// Queues scripted answers, one per request (see api_server.py).
    fn script(&self, actions: &str) {
        std::fs::write(self.dir.path().join("control.json"), actions).unwrap();
    }

    /// Every recorded request (scripted answers included, marked "scripted").
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The requests the emulator accepted.
    fn accepted(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.get("scripted").is_none())
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One account per API transport, all pointing at the emulator; secrets come from the
/// environment as the README recommends.
fn config(url: &str, extra_defaults: &str) -> String {
    format!(
        r#"
[defaults]
to = "ops@example.org"
{extra_defaults}

[accounts.sendgrid]
transport = "sendgrid"
from = "{FROM}"
api_key_env = "PF_TEST_API_KEY"
base_url = "{url}"

[accounts.mailgun]
transport = "mailgun"
from = "{FROM}"
api_key_env = "PF_TEST_API_KEY"
domain = "mg.example.com"
base_url = "{url}"

[accounts.postmark]
transport = "postmark"
from = "{FROM}"
api_key_env = "PF_TEST_API_KEY"
base_url = "{url}"

[accounts.resend]
transport = "resend"
from = "{FROM}"
api_key_env = "PF_TEST_API_KEY"
base_url = "{url}"

[accounts.ses]
transport = "ses"
from = "{FROM}"
region = "us-east-1"
access_key_id = "{AWS_KEY_ID}"
secret_access_key_env = "PF_TEST_AWS_SECRET"
base_url = "{url}"
"#
    )
}

const ACCOUNTS: [&str; 5] = ["sendgrid", "mailgun", "postmark", "resend", "ses"];

fn run(env: &TestEnv, args: &[&str], key: &str) -> Run {
    Run::from(
        env.cmd(args)
            .env("PF_TEST_API_KEY", key)
            .env("PF_TEST_AWS_SECRET", AWS_SECRET)
            .output()
            .unwrap(),
    )
}

fn output(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

/// The recipients of a recorded request, whatever the provider's shape.
fn recipients(request: &Value) -> Vec<String> {
    let body = &request["json"];
    match request["provider"].as_str().unwrap() {
        "sendgrid" => body["personalizations"][0]["to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["email"].as_str().unwrap().to_string())
            .collect(),
        "mailgun" => request["form"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f[0] == "to")
            .map(|f| f[1].as_str().unwrap().to_string())
            .collect(),
        "postmark" => body["To"]
            .as_str()
            .unwrap()
            .split(", ")
            .map(str::to_string)
            .collect(),
        "resend" => body["to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
        "ses" => body["Destination"]["ToAddresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
        other => panic!("unknown provider {other}"),
    }
}

#[test]
fn test_command_delivers_through_every_api_provider() {
    let server = Emulator::start();
    let env = TestEnv::new();
    env.config(&config(&server.url, ""));
    for account in ACCOUNTS {
        let run = run(
            &env,
            &[
                "test",
                "--account",
                account,
                "--to",
                "ops@example.org, bob@example.com",
            ],
            API_KEY,
        );
        run.expect_code(0);
        let requests = server.accepted();
        let last = requests.last().unwrap();
        assert_eq!(last["provider"], account);
        assert_eq!(
            recipients(last),
            ["ops@example.org", "bob@example.com"],
            "{account}"
        );
        let id = last["message_id"].as_str().unwrap();
        assert!(
            output(&run).contains(id),
            "{account}: the provider's message id is shown: {}",
            output(&run)
        );
    }
    assert_eq!(server.accepted().len(), ACCOUNTS.len());
}

#[test]
fn check_accepts_the_api_accounts() {
    let env = TestEnv::new();
    env.config(&config("http://127.0.0.1:9", ""));
    let run = run(&env, &["check"], API_KEY);
    run.expect_code(0);
}

#[test]
fn check_explains_bad_api_settings_without_touching_the_network() {
    let env = TestEnv::new();
    env.config(
        r#"
[accounts.mg]
transport = "mailgun"
from = "a@example.com"
api_key = "key-1"

[accounts.aws]
transport = "ses"
from = "a@example.com"
region = "us-east"
access_key_id = "AKIDX"
secret_access_key = "s"

[accounts.sg]
transport = "sendgrid"
from = "a@example.com"
api_key = "SG.1"
base_url = "api.sendgrid.com"
"#,
    );
    let run = run(&env, &["check"], API_KEY);
    run.expect_code(78);
    let text = output(&run);
    for needle in ["mg", "domain", "aws", "us-east-1", "sg", "base_url"] {
        assert!(
            text.contains(needle),
            "check should mention {needle}:\n{text}"
        );
    }
}

#[test]
fn a_wrong_key_is_an_auth_failure_that_never_prints_the_key() {
    let server = Emulator::start();
    let env = TestEnv::new();
    env.config(&config(&server.url, ""));
    let wrong = "pf-wrong-key-9d8e7f";
    for account in ["sendgrid", "mailgun", "postmark", "resend"] {
        let run = run(
            &env,
            &["test", "--account", account, "--to", "a@example.org"],
            wrong,
        );
        run.expect_code(77);
        let text = output(&run);
        assert!(!text.contains(wrong), "{account} printed the key:\n{text}");
        assert!(
            text.contains("api_key"),
            "{account} names the setting:\n{text}"
        );
    }
    assert!(server.accepted().is_empty());
}

#[test]
fn run_notifies_through_an_api_account() {
    let server = Emulator::start();
    let env = TestEnv::new();
    env.config(&config(&server.url, ""));
    let run = run(
        &env,
        &[
            "run",
            "--task",
            "nightly",
            "--account",
            "postmark",
            "--level",
            "always",
            "--",
            "sh",
            "-c",
            "echo sauvegarde échouée; exit 4",
        ],
        API_KEY,
    );
    run.expect_code(4);
    let requests = server.accepted();
    assert_eq!(requests.len(), 1);
    let body = &requests[0]["json"];
    assert!(
        body["Subject"].as_str().unwrap().contains("nightly"),
        "{body}"
    );
    assert!(
        body["TextBody"]
            .as_str()
            .unwrap()
            .contains("sauvegarde échouée"),
        "{body}"
    );
    assert_eq!(
        body["Headers"][1],
        serde_json::json!({"Name": "Auto-Submitted", "Value": "auto-generated"})
    );
}

#[test]
fn run_notifies_through_every_api_provider() {
    let server = Emulator::start();
    let env = TestEnv::new();
    env.config(&config(&server.url, ""));
    for (n, account) in ACCOUNTS.into_iter().enumerate() {
        let task = format!("backup-{account}");
        let run = run(
            &env,
            &["run", "--task", &task, "--account", account, "--", "false"],
            API_KEY,
        );
        run.expect_code(1);
        let requests = server.accepted();
        assert_eq!(requests.len(), n + 1, "{account}: {}", output(&run));
        let last = requests.last().unwrap();
        assert_eq!(last["provider"], account);
        assert_eq!(recipients(last), ["ops@example.org"], "{account}");
        assert!(
            run.stderr.contains(&format!("via account '{account}'")),
            "{account}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_hanging_api_gives_up_after_send_timeout() {
    let server = Emulator::start();
    server.script(r#"[{"hang": 20}]"#);
    let env = TestEnv::new();
    env.config(&config(&server.url, "send_timeout = \"1s\""));
    let started = Instant::now();
    let run = run(
        &env,
        &["test", "--account", "resend", "--to", "a@example.org"],
        API_KEY,
    );
    run.expect_code(75);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_rate_limited_notification_stays_queued_and_flush_sends_it_with_the_same_key() {
    let server = Emulator::start();
    server.script(r#"[{"status": 429, "retry_after": "1"}]"#);
    let env = TestEnv::new();
    env.config(&config(&server.url, ""));
    run(
        &env,
        &[
            "run",
            "--task",
            "t",
            "--account",
            "resend",
            "--level",
            "always",
            "--",
            "false",
        ],
        API_KEY,
    )
    .expect_code(1);
    assert!(server.accepted().is_empty());
    let queued = outbox_files(&env);
    assert_eq!(queued.len(), 1, "the notification is queued: {queued:?}");

    std::thread::sleep(Duration::from_millis(1100)); // honour Retry-After: 1
    run(&env, &["outbox", "flush"], API_KEY).expect_code(0);
    let all = server.requests();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].get("scripted").is_some());
    assert_eq!(
        all[0]["headers"]["idempotency-key"], all[1]["headers"]["idempotency-key"],
        "the retry repeats the idempotency key"
    );
    let first: Value = serde_json::from_str(all[0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(
        first["headers"]["Message-ID"], all[1]["json"]["headers"]["Message-ID"],
        "the retry repeats the Message-ID"
    );
    assert!(
        outbox_files(&env).is_empty(),
        "delivered items leave the outbox"
    );
}

/// The queued notifications: `<state>/outbox/*.json` (hidden temporary files left out).
fn outbox_files(env: &TestEnv) -> Vec<PathBuf> {
    std::fs::read_dir(env.state_dir().join("outbox"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    !name.starts_with('.') && name.ends_with(".json")
                })
                .collect()
        })
        .unwrap_or_default()
}

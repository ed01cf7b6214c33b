//! SMTP delivery end to end: the real `postflight` binary with the real `smtp` plugin against
//! aiosmtpd servers on 127.0.0.1 (test-support/smtp_server.py). Each case asserts what the
//! server received, or that it received nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{Eml, Run, SmtpServer, TestEnv};

const PASSWORD: &str = "s3cret pass phrase";

/// A self-signed certificate for 127.0.0.1, written to `dir`.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
}

impl Cert {
    fn new(dir: &Path) -> Cert {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = dir.join("server-cert.pem");
        let key = dir.join("server-key.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        Cert { cert, key }
    }

    fn args<'a>(&'a self, mode: &'a str) -> Vec<&'a str> {
        vec![
            "--mode",
            mode,
            "--cert",
            self.cert.to_str().unwrap(),
            "--key",
            self.key.to_str().unwrap(),
        ]
    }
}

/// A config with one SMTP account `mail` (the default) pointing at `port`, plus `extra`
/// lines in the account table.
fn config(port: u16, security: &str, extra: &str) -> String {
    format!(
        r#"
[defaults]
account = "mail"
level = "always"
to = "ops@example.com"
send_timeout = "10s"

[accounts.mail]
transport = "smtp"
from = "Backups <backups@example.com>"
host = "127.0.0.1"
port = {port}
security = "{security}"
{extra}
"#
    )
}

fn output(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

fn test_email(env: &TestEnv, to: &str) -> Run {
    Run::from(
        env.cmd(&["test", "--to", to])
            .env("MAIL_PASSWORD", PASSWORD)
            .output()
            .unwrap(),
    )
}

#[test]
fn test_command_delivers_over_starttls_with_login() {
    let env = TestEnv::new();
    let cert = Cert::new(env.path());
    let mut args = cert.args("starttls");
    args.extend([
        "--auth-user",
        "backups@example.com",
        "--auth-password",
        PASSWORD,
        "--auth-required",
        "--require-starttls",
    ]);
    let server = SmtpServer::start(&args);
    env.config(&config(
        server.port,
        "starttls",
        &format!(
            "username = \"backups@example.com\"\npassword_env = \"MAIL_PASSWORD\"\nca_file = \"{}\"",
            cert.cert.display()
        ),
    ));
    let run = test_email(&env, "ops@example.com, dev@example.com");
    run.expect_code(0);
    assert!(output(&run).contains("accepted"), "{}", output(&run));
    assert!(!output(&run).contains(PASSWORD));

    let got = server.only_message();
    assert_eq!(got["auth_user"], "backups@example.com");
    assert_eq!(got["tls"], true);
    assert_eq!(got["mail_from"], "backups@example.com");
    assert_eq!(
        got["rcpt_tos"],
        serde_json::json!(["ops@example.com", "dev@example.com"])
    );
    let mail = Eml::parse(got["data"].as_str().unwrap());
    assert!(mail
        .header("Subject")
        .unwrap()
        .starts_with("postflight test from"));
    assert!(mail.body.contains("This is a test email"), "{}", mail.body);
}

#[test]
fn an_untrusted_certificate_is_described_and_the_printed_line_pins_it() {
    let env = TestEnv::new();
    let cert = Cert::new(env.path());
    let server = SmtpServer::start(&cert.args("tls"));
    env.config(&config(server.port, "tls", ""));

    let run = test_email(&env, "ops@example.com");
    run.expect_code(69);
    let text = output(&run);
    for part in ["subject:", "issuer:", "(self-signed)", "valid:", "ca_file"] {
        assert!(text.contains(part), "missing {part}:\n{text}");
    }
    assert!(server.received().is_empty());

    // The operator copies the printed line into the account and never needs the unsafe switch.
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("tls_fingerprint = \"sha256:"))
        .unwrap_or_else(|| panic!("no tls_fingerprint line:\n{text}"))
        .to_string();
    env.config(&config(server.port, "tls", &line));
    test_email(&env, "ops@example.com").expect_code(0);
    server.only_message();
}

#[test]
fn a_refused_gmail_login_explains_app_passwords() {
    let env = TestEnv::new();
    let cert = Cert::new(env.path());
    let mut args = cert.args("starttls");
    args.extend([
        "--auth-user",
        "someone@gmail.com",
        "--auth-password",
        "abcdefghijklmnop",
    ]);
    let server = SmtpServer::start(&args);
    env.config(&format!(
        r#"
[defaults]
account = "gmail"
[accounts.gmail]
transport = "smtp"
from = "someone@gmail.com"
provider = "gmail"
host = "127.0.0.1"
port = {}
username = "someone@gmail.com"
password_env = "MAIL_PASSWORD"
ca_file = "{}"
"#,
        server.port,
        cert.cert.display()
    ));
    let run = test_email(&env, "ops@example.com");
    run.expect_code(77);
    let text = output(&run);
    assert!(text.contains("535"), "{text}");
    assert!(
        text.contains("App Password") && text.contains("@gmail.com"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD) && !text.contains("s3cretpassphrase"));
    assert!(server.received().is_empty());
}

#[test]
fn one_refused_recipient_is_named_and_the_others_get_the_email() {
    let env = TestEnv::new();
    let server = SmtpServer::start(&["--reject", "bob@example.com"]);
    env.config(&config(server.port, "none", ""));
    let run = test_email(
        &env,
        "alice@example.com, bob@example.com\ncarol@example.com",
    );
    run.expect_code(65);
    assert!(
        output(&run).contains("bob@example.com: 550"),
        "{}",
        output(&run)
    );
    let got = server.only_message();
    assert_eq!(
        got["rcpt_tos"],
        serde_json::json!(["alice@example.com", "carol@example.com"])
    );

    // From a task, the notification counts as delivered and the bad address is named.
    env.config(&format!(
        "{}\n[tasks.nightly]\nto = \"alice@example.com, bob@example.com\"\n",
        config(server.port, "none", "")
    ));
    let run = env.run(&["report", "--task", "nightly", "--exit-code", "1"]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("refused bob@example.com"),
        "{}",
        run.stderr
    );
    assert_eq!(server.received().len(), 2);
}

#[test]
fn a_task_name_with_line_breaks_adds_no_header() {
    let env = TestEnv::new();
    let server = SmtpServer::start(&[]);
    env.config(&format!(
        "{}\n[tasks.nightly]\nname = \"Nightly\\r\\nBcc: evil@example.com\"\n",
        config(server.port, "none", "")
    ));
    env.run(&["report", "--task", "nightly", "--exit-code", "1"])
        .expect_code(0);
    let got = server.only_message();
    assert_eq!(got["rcpt_tos"], serde_json::json!(["ops@example.com"]));
    let mail = Eml::parse(got["data"].as_str().unwrap());
    assert!(
        !mail.header_names().contains(&"bcc".to_string()),
        "{:?}",
        mail.headers
    );
    assert!(mail
        .header("Subject")
        .unwrap()
        .contains("Bcc: evil@example.com"));
}

#[test]
fn a_silent_server_fails_within_send_timeout() {
    let env = TestEnv::new();
    let server = SmtpServer::start(&["--silent"]);
    env.config(&config(server.port, "starttls", "").replace("\"10s\"", "\"1s\""));
    let started = Instant::now();
    let run = test_email(&env, "ops@example.com");
    run.expect_code(75);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(output(&run).contains("greeting"), "{}", output(&run));
}

#[test]
fn accept_invalid_certs_is_warned_about_on_every_use() {
    let env = TestEnv::new();
    let cert = Cert::new(env.path());
    let server = SmtpServer::start(&cert.args("starttls"));
    env.config(&config(
        server.port,
        "starttls",
        "accept_invalid_certs = true",
    ));
    for _ in 0..2 {
        let run = test_email(&env, "ops@example.com");
        run.expect_code(0);
        assert!(
            run.stderr.contains("accept_invalid_certs"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(server.received().len(), 2);
}

#[test]
fn outbox_flush_sends_queued_notifications_over_one_connection() {
    let env = TestEnv::new();
    // A port with nothing behind it yet: the reports are queued (connection refused).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.config(&config(port, "none", ""));
    for i in 0..3 {
        env.run(&["report", "--task", &format!("job{i}"), "--exit-code", "1"])
            .expect_code(0);
    }
    let port_text = port.to_string();
    let server = SmtpServer::start(&["--port", &port_text]);
    env.run(&["outbox", "flush"]).expect_code(0);
    let got = server.received();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|m| m["peer_port"] == got[0]["peer_port"]),
        "one connection for the whole flush: {got:?}"
    );
}

#[test]
fn the_sendmail_transport_pipes_to_the_command() {
    let env = TestEnv::new();
    let script = env.path().join("fake-sendmail");
    let captured = env.path().join("captured.eml");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat > '{}'\n", captured.display()),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).unwrap();
    env.config(&format!(
        r#"
[defaults]
account = "local"
[accounts.local]
transport = "sendmail"
from = "backups@example.com"
command = "'{}' -t -i"
"#,
        script.display()
    ));
    env.run(&["test", "--to", "ops@example.com"]).expect_code(0);
    let mail = Eml::read(&captured);
    assert_eq!(mail.header("To"), Some("ops@example.com"));
    assert!(mail.body.contains("This is a test email"));
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_secret_reaches_any_output_outbox_file_or_history() {
    let env = TestEnv::new();
    let cert = Cert::new(env.path());
    let mut args = cert.args("starttls");
    args.extend([
        "--auth-user",
        "backups@example.com",
        "--auth-password",
        "the right one",
    ]);
    let server = SmtpServer::start(&args);
    env.config(&format!(
        "{}username = \"backups@example.com\"\npassword_command = \"printf '%s' \\\"$MAIL_PASSWORD\\\"\"\nca_file = \"{}\"\n",
        config(server.port, "starttls", ""),
        cert.cert.display()
    ));
    let secret_env = |args: &[&str]| {
        Run::from(
            env.cmd(args)
                .env("MAIL_PASSWORD", PASSWORD)
                .output()
                .unwrap(),
        )
    };
    // A refused login from run (-v: every step explained), then the outbox commands.
    let mut outputs = vec![secret_env(&[
        "-v", "run", "--task", "nightly", "--", "false",
    ])];
    outputs.push(secret_env(&["outbox", "list", "--json"]));
    outputs.push(secret_env(&["-v", "outbox", "flush"]));
    outputs.push(secret_env(&["check"]));
    outputs.push(secret_env(&["test", "--to", "ops@example.com"]));
    assert!(
        outputs[0].stderr.contains("535"),
        "the login was refused: {}",
        outputs[0].stderr
    );
    let base64_plain = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(format!("\0backups@example.com\0{PASSWORD}"))
    };
    for run in &outputs {
        let text = output(run);
        assert!(
            !text.contains(PASSWORD) && !text.contains(&base64_plain),
            "{text}"
        );
    }
    let files = files_under(&env.state_dir());
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(PASSWORD),
            "{} holds the password",
            file.display()
        );
    }
    assert!(server.received().is_empty());
}

#[test]
fn a_secret_missing_where_the_flush_runs_keeps_the_notification_queued() {
    let env = TestEnv::new();
    let server = SmtpServer::start(&[
        "--auth-user",
        "backups@example.com",
        "--auth-password",
        PASSWORD,
        "--auth-over-plaintext",
    ]);
    env.config(&format!(
        "{}username = \"backups@example.com\"\npassword_env = \"MAIL_PASSWORD\"\nallow_insecure_auth = true\n",
        config(server.port, "none", "")
    ));
    // The task's environment lacks the variable (as a timer's often does)...
    let run = env.run(&["run", "--task", "nightly", "--", "false"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("MAIL_PASSWORD") && run.stderr.contains("queued"),
        "{}",
        run.stderr
    );
    let list = env.run(&["outbox", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(json["items"][0]["status"], "queued", "{json}");
    assert!(server.received().is_empty());

    // ...and a flush that has it delivers.
    let flush = Run::from(
        env.cmd(&["outbox", "flush"])
            .env("MAIL_PASSWORD", PASSWORD)
            .output()
            .unwrap(),
    );
    flush.expect_code(0);
    assert_eq!(server.only_message()["auth_user"], "backups@example.com");
}

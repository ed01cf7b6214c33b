//! The `sendmail` transport with shell scripts standing in for sendmail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use postflight_core::ErrorKind;
use serde_json::json;

use crate::support::{email, open_with_timeout};

fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-sendmail");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_message_is_piped_to_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let program = script(
        out,
        &format!(
            "printf '%s\\n' \"$@\" > '{0}/args'\ncat > '{0}/stdin'\necho queued",
            out.display()
        ),
    );
    let command = format!("'{}' -t -i -f 'backups@example.com'", program.display());
    let (mut session, _) =
        open_with_timeout("sendmail", json!({"command": command}), 5000).unwrap();
    let mail = email(
        &["ops@example.com", "Dev <dev@example.com>"],
        "Sauvegarde terminée",
        "line 1\nline 2\n",
    );
    let receipt = session.send(&mail).unwrap();
    assert_eq!(receipt.reply.as_deref(), Some("queued"));
    assert_eq!(receipt.message_id, mail.message_id);

    let args = std::fs::read_to_string(out.join("args")).unwrap();
    assert_eq!(args, "-t\n-i\n-f\nbackups@example.com\n");
    let input = std::fs::read_to_string(out.join("stdin")).unwrap();
    assert!(!input.contains('\r'), "sendmail gets LF line ends");
    assert!(
        input.contains("\nTo: ops@example.com, Dev <dev@example.com>\n"),
        "{input}"
    );
    assert!(
        input.contains(&format!("Message-ID: {}\n", mail.message_id)),
        "{input}"
    );
    assert!(input.contains("Subject: Sauvegarde =?utf-8?"), "{input}");
}

#[test]
fn a_failing_command_is_quoted_and_classified() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "cat >/dev/null\necho 'sendmail: fatal: ops@example.com: User unknown' >&2\nexit 67",
    );
    let (mut session, _) = open_with_timeout(
        "sendmail",
        json!({"command": program.display().to_string()}),
        5000,
    )
    .unwrap();
    let err = session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Command);
    assert!(err.permanent);
    assert!(
        err.message.contains("exited with status 67"),
        "{}",
        err.message
    );
    assert_eq!(
        err.reply.as_deref(),
        Some("sendmail: fatal: ops@example.com: User unknown")
    );

    let program = script(dir.path(), "echo 'mail queue full' >&2\nexit 75");
    let (mut session, _) = open_with_timeout(
        "sendmail",
        json!({"command": program.display().to_string()}),
        5000,
    )
    .unwrap();
    let err = session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap_err();
    assert!(!err.permanent, "EX_TEMPFAIL is retried");
    assert_eq!(err.reply.as_deref(), Some("mail queue full"));
}

#[test]
fn a_hanging_command_is_killed_at_send_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "sleep 30");
    let (mut session, _) = open_with_timeout(
        "sendmail",
        json!({"command": program.display().to_string()}),
        500,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[test]
fn a_missing_program_is_reported_at_open() {
    let err = open_with_timeout(
        "sendmail",
        json!({"command": "/nonexistent/sendmail -t -i"}),
        5000,
    )
    .err()
    .unwrap();
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.contains("/nonexistent/sendmail"));
}

//! How `run` treats the task when things around it go wrong: a broken config, a terminal on
//! stdin, a reader that goes away, signals after the task ended.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::TestEnv;

/// Waits for a child, killing it and failing the test after `limit` (so a regression fails
/// instead of hanging the suite).
fn wait_at_most(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} (still running after {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_broken_config_never_stops_the_task_from_running() {
    let env = TestEnv::new();
    for broken in [
        "[defaults\n",
        "[defaults]\nlevel = \"sometimes\"\n",
        "[default]\n",
    ] {
        env.config(broken);
        let run = env.run(&[
            "run",
            "--task",
            "nightly",
            "--",
            "sh",
            "-c",
            "echo RAN; exit 3",
        ]);
        run.expect_code(3);
        assert_eq!(run.stdout, "RAN\n", "the task ran");
        assert!(
            run.stderr.contains("configuration error")
                && run.stderr.contains("the task runs anyway"),
            "{}",
            run.stderr
        );
        let mail = env
            .mails()
            .pop()
            .expect("notified through the built-in defaults");
        assert!(
            mail.body
                .starts_with("Note from postflight: the configuration could not be loaded"),
            "{}",
            mail.body
        );
        assert!(
            mail.body.contains("config.toml"),
            "the note says where: {}",
            mail.body
        );
    }
    // Other commands still refuse to work on a broken config.
    env.run(&["report", "--task", "nightly", "--exit-code", "1"])
        .expect_code(78);
}

#[test]
fn a_task_on_a_terminal_can_read_it() {
    let env = TestEnv::new();
    // `script` gives postflight a pseudo-terminal as stdin, as an operator's shell would.
    let inner = format!(
        "{} run --level never --task tty -- sh -c 'read line; echo got:$line'",
        crate::util::bin().display()
    );
    let mut script = env
        .command("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the test on a pseudo-terminal");
    std::io::Write::write_all(&mut script.stdin.take().unwrap(), b"hello\n").unwrap();
    let status = wait_at_most(
        &mut script,
        Duration::from_secs(20),
        "the task could not read the terminal (stopped by SIGTTIN?)",
    );
    let mut out = String::new();
    script
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("got:hello"), "{out}");
}

#[test]
fn a_reader_that_goes_away_stops_the_task_as_without_postflight() {
    let env = TestEnv::new();
    let mut child = env
        .cmd(&["run", "--level", "never", "--task", "yes", "--", "yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 2];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"y\n");
    drop(stdout); // `| head -1`
    let status = wait_at_most(&mut child, Duration::from_secs(20), "the task kept running");
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGPIPE),
        "yes died of SIGPIPE"
    );
}

#[test]
fn a_signal_while_delivering_ends_postflight_and_keeps_the_notification_queued() {
    let env = TestEnv::new();
    let slow = env.path().join("slow-sendmail");
    std::fs::write(&slow, "#!/bin/sh\ncat > /dev/null\nsleep 30\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.config(&format!(
        "[defaults]\naccount = \"slow\"\nlevel = \"always\"\nto = \"ops@example.com\"\nsend_timeout = \"60s\"\n\n[accounts.slow]\ntransport = \"sendmail\"\ncommand = \"{}\"\n",
        slow.display()
    ));
    let mut child = env
        .cmd(&["run", "--task", "slow", "--", "sh", "-c", "exit 4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let outbox = env.state_dir().join("outbox");
    let started = Instant::now();
    while std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing was queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200)); // delivery is under way
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_at_most(&mut child, Duration::from_secs(10), "SIGTERM was ignored");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(4), "the task's code: {stderr}");
    assert!(stderr.contains("stays in the outbox"), "{stderr}");
    let queued = env.run(&["outbox", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&queued.stdout).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 1, "{json}");
}

#[test]
fn with_several_accounts_and_none_chosen_postflight_says_so() {
    let env = TestEnv::new();
    env.config("[accounts.a]\ntransport = \"file\"\ndir = \"/tmp/a\"\n\n[accounts.b]\ntransport = \"file\"\ndir = \"/tmp/b\"\n");
    let run = env.run(&["run", "--task", "t", "--", "false"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("several accounts are configured but none is chosen"),
        "{}",
        run.stderr
    );
    assert_eq!(env.mails().len(), 1, "saved by the built-in account");
}

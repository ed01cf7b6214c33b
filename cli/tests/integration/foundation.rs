//! The walking skeleton end to end: run/report -> policy -> template -> outbox -> the `file`
//! transport plugin -> an `.eml` file, with the built-in default account and with config.

use std::io::Read;
use std::process::Stdio;

use crate::util::TestEnv;

#[test]
fn failing_task_with_level_errors_writes_exactly_one_email() {
    let env = TestEnv::new();
    env.config(
        r#"
[defaults]
level = "errors"
to = "alice@example.com, bob@example.com"

[tasks.nightly]
name = "Nightly Backup"
"#,
    );
    let run = env.run(&[
        "run",
        "--task",
        "nightly",
        "--",
        "sh",
        "-c",
        "echo copying; echo disk full >&2; exit 3",
    ]);
    run.expect_code(3);
    assert_eq!(run.stdout, "copying\n", "stdout passes through unchanged");
    assert!(
        run.stderr.contains("disk full"),
        "stderr passes through: {}",
        run.stderr
    );
    let mails = env.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    let subject = mail.header("Subject").unwrap();
    assert!(subject.ends_with(": Nightly Backup: Failed"), "{subject}");
    assert_eq!(
        mail.header("To").unwrap().replace(' ', ""),
        "alice@example.com,bob@example.com"
    );
    assert_eq!(mail.header("Auto-Submitted"), Some("auto-generated"));
    assert!(mail.header("Message-ID").is_some() && mail.header("Date").is_some());
    assert!(mail.header("Content-Type").unwrap().contains("text/plain"));
    assert!(mail.body.contains("Exit code:         3"), "{}", mail.body);
    assert!(
        mail.body.contains("disk full") && mail.body.contains("copying"),
        "{}",
        mail.body
    );
    assert!(
        run.stderr.contains(&mail.path.display().to_string()),
        "says where the email went: {}",
        run.stderr
    );
}

#[test]
fn successful_task_with_level_errors_sends_nothing() {
    let env = TestEnv::new();
    env.run(&["run", "--", "true"]).expect_code(0);
    assert!(env.mails().is_empty());
    assert!(
        !env.state_dir().join("outbox").exists()
            || std::fs::read_dir(env.state_dir().join("outbox"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn levels_always_never_and_changes_behave() {
    let env = TestEnv::new();
    env.run(&["run", "--level", "always", "--task", "a", "--", "true"])
        .expect_code(0);
    assert_eq!(env.mails().len(), 1, "always notifies a success");
    env.run(&["run", "--level", "never", "--task", "b", "--", "false"])
        .expect_code(1);
    assert_eq!(env.mails().len(), 1, "never notifies nothing");

    for (cmd, expected_mails) in [("false", 2), ("false", 2), ("true", 3), ("true", 3)] {
        env.run(&["run", "--level", "changes", "--task", "c", "--", cmd]);
        assert_eq!(env.mails().len(), expected_mails, "after `{cmd}`");
    }
    let last = env.mails().pop().unwrap();
    assert!(
        last.header("Subject").unwrap().ends_with("c: Succeeded"),
        "recovery email"
    );
    assert!(
        last.body.contains("Previous status:   Failed"),
        "{}",
        last.body
    );
}

#[test]
fn warning_codes_and_report_command() {
    let env = TestEnv::new();
    env.config("[tasks.sync]\nwarning_codes = [24]\n");
    env.run(&[
        "report",
        "--task",
        "sync",
        "--exit-code",
        "24",
        "--started",
        "@1700000000",
        "--finished",
        "@1700003723",
    ])
    .expect_code(0);
    let mails = env.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0]
        .header("Subject")
        .unwrap()
        .ends_with("sync: Succeeded with warnings"));
    assert!(mails[0].body.contains("1h 2m 3s"), "{}", mails[0].body);
    env.run(&["report", "--task", "sync", "--status", "success"])
        .expect_code(0);
    assert_eq!(env.mails().len(), 1, "errors level skips a success");
    let bad = env.run(&[
        "report",
        "--task",
        "sync",
        "--exit-code",
        "1",
        "--started",
        "yesterday",
    ]);
    bad.expect_code(64);
    assert!(
        bad.stderr.contains("--started") && bad.stderr.contains("RFC 3339"),
        "{}",
        bad.stderr
    );
}

#[test]
fn report_reads_only_the_tail_of_a_huge_output_file() {
    let env = TestEnv::new();
    let mut child = env
        .cmd(&[
            "report",
            "--task",
            "dump",
            "--exit-code",
            "2",
            "--output-file",
            "-",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..50 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(b"\nthe very end\n").unwrap();
    });
    writer.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mail = env.mails().pop().unwrap();
    assert!(
        mail.body.trim_end().ends_with("the very end"),
        "tail kept: {:?}",
        &mail.body[mail.body.len() - 40..]
    );
    assert!(
        mail.body.len() < 64 * 1024,
        "only the tail: {} bytes",
        mail.body.len()
    );
    assert!(
        mail.body.contains("(52428814 bytes)"),
        "total size reported"
    );
}

#[test]
fn huge_output_passes_through_intact_and_the_email_keeps_only_the_tail() {
    let env = TestEnv::new();
    // 200 MB of numbered lines, then a marker; the caller must see every byte.
    let script =
        "seq 1 25000000 | awk '{printf \"%07d\\n\", $1 % 10000000}'; echo END-OF-OUTPUT; exit 5";
    let mut child = env
        .cmd(&["run", "--task", "big", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut total: u64 = 0;
    let mut last = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        last.extend_from_slice(&buf[..n]);
        if last.len() > 1 << 17 {
            last.drain(..last.len() - 64);
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
    assert_eq!(total, 25_000_000 * 8 + "END-OF-OUTPUT\n".len() as u64);
    assert!(last.ends_with(b"4999998\n4999999\n5000000\nEND-OF-OUTPUT\n"));
    // Peak memory of the children we waited for (postflight and the tiny shell pipeline):
    // postflight keeps a bounded tail, so it stays far below the 200 MB that went through it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert!(
        usage.ru_maxrss < 100 * 1024,
        "max RSS {} KiB",
        usage.ru_maxrss
    );
    let mail = env.mails().pop().unwrap();
    assert!(mail.body.contains("END-OF-OUTPUT"));
    assert!(
        mail.body.len() < 64 * 1024,
        "email keeps only the tail ({} bytes)",
        mail.body.len()
    );
    assert!(
        mail.body.contains("(200000014 bytes)"),
        "total size: {}",
        mail.body
    );
}

#[test]
fn killed_by_signal_exits_128_plus_n_and_says_so() {
    let env = TestEnv::new();
    env.run(&["run", "--task", "k", "--", "sh", "-c", "kill -KILL $$"])
        .expect_code(137);
    let mail = env.mails().pop().unwrap();
    assert!(
        mail.body.contains("killed by signal 9 (SIGKILL)"),
        "{}",
        mail.body
    );
}

#[test]
fn timeout_kills_the_whole_task_and_notifies() {
    let env = TestEnv::new();
    let started = std::time::Instant::now();
    // The shell's child (sleep) must die too, or the pipes would stay open.
    let run = env.run(&[
        "run",
        "--timeout",
        "1s",
        "--task",
        "slow",
        "--",
        "sh",
        "-c",
        "sleep 60; echo never",
    ]);
    run.expect_code(124);
    assert!(
        started.elapsed().as_secs() < 30,
        "did not wait for sleep 60"
    );
    let mail = env.mails().pop().unwrap();
    assert!(mail.body.contains("timed out after 1s"), "{}", mail.body);
    assert!(mail.header("Subject").unwrap().ends_with("slow: Failed"));
}

#[test]
fn command_not_found_and_not_executable_are_notified_failures() {
    let env = TestEnv::new();
    env.run(&["run", "--task", "nf", "--", "/nonexistent/backup.sh"])
        .expect_code(127);
    let mail = env.mails().pop().unwrap();
    assert!(
        mail.body.contains("could not start") && mail.body.contains("not found"),
        "{}",
        mail.body
    );

    let script = env.path().join("noexec.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    env.run(&["run", "--task", "ne", "--", script.to_str().unwrap()])
        .expect_code(126);
    assert!(env
        .mails()
        .pop()
        .unwrap()
        .body
        .contains("permission denied"));
}

#[test]
fn sigterm_to_postflight_reaches_the_task_and_the_notification_is_still_sent() {
    let env = TestEnv::new();
    let mut child = env
        .cmd(&[
            "run",
            "--task",
            "t",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 64];
    while !seen.contains("ready") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "task ended early");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7));
    assert!(rest.contains("got-term"));
    let mail = env.mails().pop().expect("notified after the signal");
    assert!(mail.body.contains("exited with code 7"), "{}", mail.body);
}

#[test]
fn a_task_name_with_line_breaks_cannot_add_a_header() {
    let env = TestEnv::new();
    env.config("[tasks.evil]\nname = \"Backup\\r\\nBcc: attacker@example.com\\nX-Evil: 1\"\n");
    env.run(&["run", "--task", "evil", "--", "false"])
        .expect_code(1);
    let mail = env.mails().pop().unwrap();
    let names = mail.header_names();
    assert!(
        !names.contains(&"bcc".to_string()) && !names.contains(&"x-evil".to_string()),
        "{names:?}"
    );
    assert!(
        mail.header("Subject")
            .unwrap()
            .contains("Bcc: attacker@example.com"),
        "kept inside the subject"
    );
}

#[test]
fn non_ascii_subject_and_body_are_encoded_and_arrive_intact() {
    let env = TestEnv::new();
    env.config("[tasks.u]\nname = \"Sauvegarde énorme ✓\"\n");
    env.run(&[
        "run",
        "--task",
        "u",
        "--",
        "sh",
        "-c",
        "echo 'Grüße, 世界'; exit 1",
    ])
    .expect_code(1);
    let mail = env.mails().pop().unwrap();
    assert!(
        mail.raw
            .lines()
            .find(|l| l.starts_with("Subject:"))
            .unwrap()
            .is_ascii(),
        "encoded header"
    );
    assert!(mail
        .header("Subject")
        .unwrap()
        .contains("Sauvegarde énorme ✓"));
    assert!(mail.body.contains("Grüße, 世界"));
}

#[test]
fn a_broken_template_never_costs_the_notification() {
    let env = TestEnv::new();
    env.config("[tasks.b]\nsubject = \"##Taks Name## broke\"\n");
    let run = env.run(&["run", "--task", "b", "--", "false"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("Task Name"),
        "warns with the suggestion: {}",
        run.stderr
    );
    let mail = env.mails().pop().unwrap();
    assert!(
        mail.header("Subject").unwrap().ends_with(": b: Failed"),
        "default subject used"
    );
    assert!(
        mail.body.contains("did you mean ##Task Name##"),
        "{}",
        mail.body
    );

    let render = env.run(&["render", "--task", "b"]);
    render.expect_code(78);
    assert!(
        render.stderr.contains("##Taks Name##") && render.stderr.contains("line 1, column 1"),
        "{}",
        render.stderr
    );
}

#[test]
fn render_prints_headers_and_body_without_sending() {
    let env = TestEnv::new();
    env.config("[tasks.r]\nname = \"Render Me\"\nto = [\"ops@example.com\"]\nsubject = \"[##Exit Status##] ##Task Name## (##Exit Code##)\"\n");
    let run = env.run(&["render", "--task", "r", "--exit-code", "0"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("Subject: [Succeeded] Render Me (0)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("To: ops@example.com"));
    assert!(run.stdout.contains("Auto-Submitted: auto-generated"));
    assert!(env.mails().is_empty(), "render sends nothing");
}

#[test]
fn templates_lists_every_value() {
    let env = TestEnv::new();
    let run = env.run(&["templates", "--json"]);
    run.expect_code(0);
    let values: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for name in [
        "Task Name",
        "Exit Status",
        "Exit Code",
        "Computer Name",
        "User Name",
        "Start Time",
        "End Time",
        "Elapsed Time",
        "Command",
        "Output",
        "Error Output",
        "Output Size",
        "Previous Status",
        "Failure Count",
        "Working Directory",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn config_errors_name_file_line_key_and_fix() {
    let env = TestEnv::new();
    env.config("[defaults]\nlevel = \"sometimes\"\n");
    let run = env.run(&["check"]);
    run.expect_code(78);
    assert!(run.stderr.contains("config.toml:2"), "{}", run.stderr);
    assert!(
        run.stderr.contains("defaults.level") && run.stderr.contains("changes"),
        "{}",
        run.stderr
    );

    env.config("[default]\nlevel = \"always\"\n");
    let run = env.run(&["check"]);
    run.expect_code(78);
    assert!(
        run.stderr.contains("did you mean `defaults`"),
        "{}",
        run.stderr
    );

    env.config("[defaults\n");
    let run = env.run(&["check"]);
    run.expect_code(78);
    assert!(
        run.stderr.contains("config.toml:1") && run.stderr.contains("invalid TOML"),
        "{}",
        run.stderr
    );
}

#[test]
fn environment_overrides_config_with_double_underscores() {
    let env = TestEnv::new();
    let mail_dir = env.path().join("elsewhere");
    env.config(
        "[accounts.files]\ntransport = \"file\"\ndir = \"/nonexistent-should-be-overridden\"\n",
    );
    let run = env
        .cmd(&["run", "--task", "e", "--", "false"])
        .env("POSTFLIGHT_ACCOUNTS__FILES__DIR", &mail_dir)
        .env("POSTFLIGHT_DEFAULTS__TO", "env@example.com")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let mail = env
        .mails_in(&mail_dir)
        .pop()
        .expect("delivered into the env-given dir");
    assert_eq!(mail.header("To"), Some("env@example.com"));
}

#[test]
fn check_validates_accounts_against_the_transport_schema() {
    let env = TestEnv::new();
    env.config("[accounts.files]\ntransport = \"file\"\ndri = \"/tmp/x\"\n\n[accounts.ghost]\ntransport = \"carrier-pigeon\"\n\n[defaults]\naccount = \"files\"\nto = \"not-an-address\"\n");
    let run = env.run(&["check"]);
    run.expect_code(78);
    assert!(
        run.stdout.contains("`dri`") && run.stdout.contains("did you mean `dir`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("no plugin provides the transport 'carrier-pigeon'"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("'not-an-address'"), "{}", run.stdout);

    env.config("[accounts.files]\ntransport = \"file\"\ndir = \"/tmp/x\"\n");
    env.run(&["check"]).expect_code(0);
}

#[test]
fn plugins_lists_the_built_in_plugins() {
    let env = TestEnv::new();
    let run = env.run(&["plugins", "--json"]);
    run.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let plugins = json["plugins"].as_array().unwrap();
    let smtp = plugins
        .iter()
        .find(|p| p["name"] == "smtp")
        .expect("smtp plugin found");
    assert_eq!(smtp["abi_version"], 1);
    assert!(smtp["transports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "file"));
}

#[test]
fn binary_garbage_output_passes_through_and_the_email_stays_readable_text() {
    let env = TestEnv::new();
    // 1 MiB of random bytes (NULs, escapes, invalid UTF-8), then a readable last line.
    let script = "head -c 1048576 /dev/urandom; printf '\\nlast words\\n'; exit 3";
    let run = env
        .cmd(&["run", "--task", "noise", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    assert_eq!(
        run.stdout.len(),
        1_048_576 + "\nlast words\n".len(),
        "every byte passes through"
    );
    // Eml::read reads the file as UTF-8 and parses it as a message; both must succeed.
    let mail = env.mails().pop().unwrap();
    assert!(mail.body.trim_end().ends_with("last words"), "tail kept");
    assert!(
        !mail
            .body
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r'),
        "no control characters reach the email"
    );
}

#[test]
fn a_wrong_command_line_is_a_usage_error_and_help_is_not() {
    let env = TestEnv::new();
    for args in [
        &["run", "false"][..],
        &["report", "--task", "x"],
        &["frobnicate"],
        &["run", "--level", "sometimes", "--", "true"],
    ] {
        let run = env.run(args);
        run.expect_code(64);
        assert!(run.stderr.contains("--help"), "{args:?}: {}", run.stderr);
    }
    env.run(&["--help"]).expect_code(0);
    env.run(&["--version"]).expect_code(0);
}

#[test]
fn task_keys_that_differ_only_in_punctuation_keep_separate_histories() {
    let env = TestEnv::new();
    // Each of these is a different task; with level `changes` each one's first failure is news.
    let keys = ["db dump", "db_dump", "Büro", "B_ro"];
    for (i, key) in keys.iter().enumerate() {
        let run = env.run(&["run", "--level", "changes", "--task", key, "--", "false"]);
        run.expect_code(1);
        assert_eq!(
            env.mails().len(),
            i + 1,
            "the first failure of {key:?} is notified\n{}",
            run.stderr
        );
    }
    // A second failure of one of them is not news.
    env.run(&[
        "run", "--level", "changes", "--task", "db dump", "--", "false",
    ])
    .expect_code(1);
    assert_eq!(env.mails().len(), keys.len());
}

#[test]
fn a_very_long_task_key_keeps_its_history() {
    let env = TestEnv::new();
    let key = "k".repeat(400);
    for (cmd, expected_mails) in [("false", 1), ("false", 1), ("true", 2)] {
        let run = env.run(&["run", "--level", "changes", "--task", &key, "--", cmd]);
        assert!(
            !run.stderr.contains("history"),
            "the history is saved without complaint: {}",
            run.stderr
        );
        assert_eq!(env.mails().len(), expected_mails, "after `{cmd}`");
    }
}

/// The name the password database gives the effective uid of this test process (which is
/// the uid `postflight` runs as).
fn passwd_name_of_this_process() -> String {
    let uid = nix::unistd::Uid::effective();
    nix::unistd::User::from_uid(uid)
        .unwrap()
        .unwrap_or_else(|| panic!("uid {uid} has no password entry"))
        .name
}

#[test]
fn without_user_or_logname_the_sender_and_recipient_are_the_real_user() {
    let env = TestEnv::new();
    env.config("[tasks.x]\nbody = \"user=##User Name##\"\n");
    let output = env
        .cmd(&["render", "--task", "x", "--exit-code", "1"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    let run = crate::util::Run::from(output);
    run.expect_code(0);
    let name = passwd_name_of_this_process();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let address = format!("{name}@{host}");
    let header = |field: &str| {
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}: ")))
            .unwrap_or_else(|| panic!("no {field} in:\n{}", run.stdout))
            .to_string()
    };
    assert!(header("From").contains(&address), "{}", run.stdout);
    assert!(header("To").contains(&address), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("user={name}\n"))
            || run.stdout.ends_with(&format!("user={name}")),
        "{}",
        run.stdout
    );
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!run.stdout.contains("root@"), "{}", run.stdout);
    }

    // With USER set, it still wins (cron and login shells set it).
    let run = env.run(&["render", "--task", "x", "--exit-code", "1"]);
    assert!(run.stdout.contains("user=tester"), "{}", run.stdout);
}

/// When the tests run as root, the same check as an unprivileged user (`nobody`, through
/// util-linux's `setpriv`), where the old fallback (`root@host`) would be wrong.
#[test]
fn without_user_or_logname_an_unprivileged_user_is_not_called_root() {
    use std::os::unix::fs::PermissionsExt;
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !nix::unistd::Uid::effective().is_root() || !setpriv.exists() {
        // Not root: the test above already runs as a non-root user.
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a `nobody` account");
    let env = TestEnv::new();
    env.config("[tasks.x]\nbody = \"user=##User Name##\"\n");
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = env.cmd(&["render", "--task", "x", "--exit-code", "1"]);
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = std::process::Command::new(setpriv);
    wrapped
        .arg(format!("--reuid={}", nobody.uid))
        .arg(format!("--regid={}", nobody.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .args(args);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
        .env_remove("USER")
        .env_remove("LOGNAME")
        .stdin(Stdio::null());
    let run = crate::util::Run::from(wrapped.output().unwrap());
    run.expect_code(0);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let address = format!("{}@{host}", nobody.name);
    for field in ["From: ", "To: "] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in:\n{}", run.stdout));
        assert!(line.contains(&address), "{line}\n{}", run.stdout);
    }
    assert!(
        run.stdout.contains(&format!("user={}", nobody.name)),
        "{}",
        run.stdout
    );
}

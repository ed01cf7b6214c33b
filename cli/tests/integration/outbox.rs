//! The durable outbox (DESIGN section 7, issue 4): queued when the server is down, flushed
//! when it is back, refused items in `failed/` until `outbox retry`, no loss under `kill -9`,
//! no duplicates between concurrent flushers, corrupt files moved aside, backoff, `max_age`,
//! and `changes` + `remind_every` with an injected clock (`POSTFLIGHT_TEST_NOW`).
//!
//! The "server" is either the `file` transport (made to fail transiently by pointing `dir` at
//! `/proc`, where no file can be created) or test-support/smtp_server.py.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Run, SmtpServer, TestEnv};

/// A fixed "now" for the clock-driven tests.
const T0: u64 = 1_800_000_000;

/// A `dir` the file transport cannot write into (a transient failure: "server down").
const UNWRITABLE_DIR: &str = "/proc";

/// A config with one `file` account delivering into `dir`.
fn file_config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
[defaults]
account = "main"
to = "ops@example.com"

[accounts.main]
transport = "file"
from = "Backups <backups@example.com>"
dir = "{}"
{extra}
"#,
        dir.display()
    )
}

/// `postflight ARGS` with `POSTFLIGHT_TEST_NOW` set.
fn run_at(env: &TestEnv, now: u64, args: &[&str]) -> Run {
    Run::from(
        env.cmd(args)
            .env("POSTFLIGHT_TEST_NOW", now.to_string())
            .output()
            .unwrap(),
    )
}

/// `outbox list --json`, parsed.
fn listing(env: &TestEnv) -> Value {
    let run = env.run(&["outbox", "list", "--json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn items_with_status(env: &TestEnv, status: &str) -> Vec<Value> {
    listing(env)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == status)
        .cloned()
        .collect()
}

/// The Message-IDs of the `.eml` files in `dir`, with how often each was delivered. Read
/// from the raw text: a file transport killed mid-write may leave a truncated message.
fn delivered_ids(dir: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID:"))
            .map(|v| v.trim().to_string())
        {
            *ids.entry(id).or_default() += 1;
        }
    }
    ids
}

/// Queues `n` notifications (tasks `t0`..) through an account that cannot deliver, two
/// processes at a time, and returns their Message-IDs.
fn queue_undeliverable(env: &TestEnv, n: usize) -> Vec<String> {
    env.config(&file_config(Path::new(UNWRITABLE_DIR), ""));
    for chunk in (0..n).collect::<Vec<_>>().chunks(2) {
        let children: Vec<Child> = chunk
            .iter()
            .map(|i| {
                env.cmd(&["report", "--task", &format!("t{i}"), "--exit-code", "1"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert_eq!(child.wait().unwrap().code(), Some(0), "report queues");
        }
    }
    let queued = items_with_status(env, "queued");
    assert_eq!(queued.len(), n);
    queued
        .iter()
        .map(|i| i["message_id"].as_str().unwrap().to_string())
        .collect()
}

/// A small xorshift generator: random kill moments that a failing run can reproduce.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("kill-moment seed: {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_failed_delivery_is_queued_with_backoff_and_flush_due_waits_for_it() {
    let env = TestEnv::new();
    env.config(&file_config(Path::new(UNWRITABLE_DIR), ""));
    let run = run_at(&env, T0, &["run", "--task", "nightly", "--", "false"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("could not deliver the notification for 'nightly' yet")
            && run.stderr.contains("postflight outbox flush"),
        "one line saying what happened and what to do: {}",
        run.stderr
    );

    let queued = items_with_status(&env, "queued");
    assert_eq!(queued.len(), 1);
    let item = &queued[0];
    assert_eq!(item["task"], "nightly");
    assert_eq!(item["run_status"], "failure");
    assert_eq!(item["attempts"], 1);
    assert_eq!(item["created_unix"], T0);
    let next = item["next_attempt_unix"].as_u64().unwrap();
    assert!(
        (T0 + 54..=T0 + 66).contains(&next),
        "about a minute, with jitter: {}",
        next - T0
    );
    assert_eq!(item["last_error"]["kind"], "other");
    assert_eq!(item["last_error"]["permanent"], false);
    assert!(item["created"].as_str().unwrap().ends_with('Z'));

    let mail_dir = env.path().join("mail");
    env.config(&file_config(&mail_dir, ""));
    let early = run_at(&env, T0 + 10, &["outbox", "flush", "--due"]);
    early.expect_code(0);
    assert!(early.stderr.contains("1 not due yet"), "{}", early.stderr);
    assert!(delivered_ids(&mail_dir).is_empty());

    let due = run_at(&env, T0 + 120, &["outbox", "flush", "--due"]);
    due.expect_code(0);
    assert!(due.stderr.contains("1 delivered"), "{}", due.stderr);
    let ids = delivered_ids(&mail_dir);
    assert_eq!(ids.keys().collect::<Vec<_>>(), vec![&item["message_id"]]);
    assert!(listing(&env)["items"].as_array().unwrap().is_empty());

    let history: Value = serde_json::from_slice(
        &std::fs::read(env.state_dir().join("history/nightly.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        history["last_delivery"]["outcome"], "delivered",
        "the later flush records the delivery in the task's history: {history}"
    );
}

#[test]
fn run_and_report_deliver_the_due_backlog_after_their_own_notification() {
    let env = TestEnv::new();
    let old = queue_undeliverable(&env, 2);
    let mail_dir = env.path().join("mail");
    env.config(&file_config(&mail_dir, ""));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let run = run_at(&env, now + 600, &["run", "--task", "fresh", "--", "false"]);
    run.expect_code(1);
    let ids = delivered_ids(&mail_dir);
    assert_eq!(ids.len(), 3, "{}", run.stderr);
    assert!(old.iter().all(|id| ids.contains_key(id)));
    assert!(run.stderr.contains("queued since"), "{}", run.stderr);
    assert!(listing(&env)["items"].as_array().unwrap().is_empty());
}

#[test]
fn a_permanent_failure_goes_to_failed_at_once_and_retry_delivers_it_once_fixed() {
    let env = TestEnv::new();
    // An account whose settings are wrong: no retry can help until the operator fixes it.
    env.config("[defaults]\naccount = \"main\"\nto = \"ops@example.com\"\n\n[accounts.main]\ntransport = \"file\"\n");
    let run = env.run(&["run", "--task", "broken", "--", "false"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("was refused") && run.stderr.contains("postflight outbox retry"),
        "{}",
        run.stderr
    );
    assert!(items_with_status(&env, "queued").is_empty());
    let failed = items_with_status(&env, "failed");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["failed_reason"].as_str().unwrap().contains("dir"),
        "{}",
        failed[0]
    );
    assert!(failed[0]["next_attempt"].is_null());
    let id = failed[0]["id"].as_str().unwrap();

    let flush = env.run(&["outbox", "flush"]);
    flush.expect_code(0);
    assert!(
        flush.stderr.contains("the outbox is empty"),
        "{}",
        flush.stderr
    );

    let mail_dir = env.path().join("mail");
    env.config(&file_config(&mail_dir, ""));
    let retry = env.run(&["outbox", "retry", id]);
    retry.expect_code(0);
    assert!(
        retry.stderr.contains("back in the queue"),
        "{}",
        retry.stderr
    );
    let requeued = items_with_status(&env, "queued");
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0]["due"], true);
    env.run(&["outbox", "flush", "--due"]).expect_code(0);
    assert_eq!(
        delivered_ids(&mail_dir).keys().collect::<Vec<_>>(),
        vec![&failed[0]["message_id"]]
    );
    assert!(listing(&env)["items"].as_array().unwrap().is_empty());
}

#[test]
fn an_item_retried_for_max_age_moves_to_failed_with_the_reason() {
    let env = TestEnv::new();
    env.config(&file_config(
        Path::new(UNWRITABLE_DIR),
        "\n[outbox]\nmax_age = \"1h\"\n",
    ));
    run_at(&env, T0, &["run", "--task", "t", "--", "false"]).expect_code(1);
    let flush = run_at(&env, T0 + 3 * 3600, &["outbox", "flush"]);
    flush.expect_code(69);
    assert!(flush.stderr.contains("gave up"), "{}", flush.stderr);
    let failed = items_with_status(&env, "failed");
    assert_eq!(failed.len(), 1);
    let reason = failed[0]["failed_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("gave up after 2 attempts over 1h") && reason.contains("/proc"),
        "{reason}"
    );
}

#[test]
fn a_corrupt_item_is_moved_aside_and_the_rest_is_delivered() {
    let env = TestEnv::new();
    let ids = queue_undeliverable(&env, 3);
    let files: Vec<PathBuf> = items_with_status(&env, "queued")
        .iter()
        .map(|i| PathBuf::from(i["path"].as_str().unwrap()))
        .collect();
    let torn = &files[1];
    let bytes = std::fs::read(torn).unwrap();
    std::fs::write(torn, &bytes[..bytes.len() / 2]).unwrap();

    let list = env.run(&["outbox", "list"]);
    list.expect_code(0);
    assert!(
        list.stderr.contains(&torn.display().to_string()),
        "list names the unreadable file: {}",
        list.stderr
    );

    let mail_dir = env.path().join("mail");
    env.config(&file_config(&mail_dir, ""));
    let flush = env.run(&["outbox", "flush"]);
    flush.expect_code(65);
    let moved = env
        .state_dir()
        .join("corrupt")
        .join(torn.file_name().unwrap());
    assert!(
        flush.stderr.contains(&torn.display().to_string())
            && flush.stderr.contains(&moved.display().to_string()),
        "a clear message naming the file and where it went: {}",
        flush.stderr
    );
    assert!(moved.exists() && !torn.exists());
    let delivered = delivered_ids(&mail_dir);
    assert_eq!(delivered.len(), 2, "the rest of the queue was delivered");
    assert!(delivered.contains_key(&ids[0]) && delivered.contains_key(&ids[2]));
    assert!(listing(&env)["items"].as_array().unwrap().is_empty());
    env.run(&["outbox", "flush"]).expect_code(0);
}

#[test]
fn kill_9_in_the_middle_of_flushes_loses_nothing() {
    let env = TestEnv::new();
    let ids = queue_undeliverable(&env, 60);
    let mail_dir = env.path().join("mail");
    env.config(&file_config(&mail_dir, ""));
    let queue = env.state_dir().join("outbox");
    let mut rng = Rng::seeded();
    let mut mid_flush_kills = 0;
    for _ in 0..60 {
        let before = item_files(&queue).len();
        if before == 0 {
            break;
        }
        // Let the flush deliver a random 1 to 4 more items, then kill it a random moment
        // later: somewhere inside the next item's claim, send, removal or history update.
        let target = delivered_ids(&mail_dir).values().sum::<usize>() + 1 + rng.below(4) as usize;
        let mut child = env
            .cmd(&["outbox", "flush"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let give_up = Instant::now() + Duration::from_secs(20);
        while delivered_ids(&mail_dir).values().sum::<usize>() < target
            && child.try_wait().unwrap().is_none()
            && Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // Whatever the moment, every file in the queue is a whole item.
        let after = item_files(&queue);
        for path in &after {
            let bytes = std::fs::read(path).unwrap();
            serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        }
        if !after.is_empty() && after.len() < before {
            mid_flush_kills += 1;
        }
    }
    eprintln!("{mid_flush_kills} kills landed in the middle of a flush");
    assert!(
        mid_flush_kills >= 5,
        "the kills should interrupt flushes that delivered some items and not others"
    );
    let list = listing(&env);
    assert!(list["unreadable"].as_array().unwrap().is_empty(), "{list}");
    env.run(&["outbox", "flush"]).expect_code(0);
    assert!(item_files(&queue).is_empty());
    assert!(!env.state_dir().join("corrupt").exists());
    let delivered = delivered_ids(&mail_dir);
    for id in &ids {
        assert!(delivered.contains_key(id), "{id} was lost");
    }
    let repeats: usize = delivered.values().map(|n| n - 1).sum();
    eprintln!(
        "{repeats} item(s) delivered again after a kill between send and removal (at-least-once)"
    );
}

/// The item files in a queue directory (not the temporary files a killed process left).
fn item_files(queue: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(queue)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    !name.starts_with('.') && name.ends_with(".json")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_concurrent_flushers_never_deliver_an_item_twice() {
    let env = TestEnv::new();
    let ids = queue_undeliverable(&env, 100);
    let mail_dir = env.path().join("mail");
    env.config(&file_config(&mail_dir, ""));
    let flushers: Vec<Child> = (0..2)
        .map(|_| {
            env.cmd(&["outbox", "flush"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in flushers {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains('\r'), "no progress line off a terminal");
        let summary = stderr.lines().last().unwrap_or_default().to_string();
        eprintln!("{summary}");
        assert!(
            summary.starts_with("postflight: outbox flush: ") && !summary.contains(": 0 delivered"),
            "both flushers worked on the queue at the same time: {stderr}"
        );
    }
    let delivered = delivered_ids(&mail_dir);
    assert_eq!(delivered.len(), 100);
    for id in &ids {
        assert_eq!(delivered.get(id), Some(&1), "{id}");
    }
    assert!(listing(&env)["items"].as_array().unwrap().is_empty());
}

#[test]
fn changes_with_remind_every_fail_fail_reminder_recovery() {
    let env = TestEnv::new();
    env.config("[tasks.nightly]\nlevel = \"changes\"\nremind_every = \"1d\"\n");
    let hour = 3600;
    let steps: [(u64, &str, usize); 5] = [
        (T0, "false", 1),             // first run fails: notify
        (T0 + hour, "false", 1),      // still failing: quiet
        (T0 + 23 * hour, "false", 1), // a day has not passed since the email
        (T0 + 25 * hour, "false", 2), // it has: a reminder
        (T0 + 26 * hour, "true", 3),  // recovery
    ];
    for (now, command, expected) in steps {
        run_at(&env, now, &["run", "--task", "nightly", "--", command]);
        assert_eq!(env.mails().len(), expected, "at T0+{}h", (now - T0) / hour);
    }
    let mails = env.mails();
    assert!(mails[1]
        .header("Subject")
        .unwrap()
        .ends_with("nightly: Failed"));
    assert!(
        mails[1].body.contains("Failures in a row: 4"),
        "the reminder carries the failure count: {}",
        mails[1].body
    );
    assert!(mails[2]
        .header("Subject")
        .unwrap()
        .ends_with("nightly: Succeeded"));
}

#[test]
fn drop_and_retry_name_items_by_id_and_explain_mistakes() {
    let env = TestEnv::new();
    queue_undeliverable(&env, 2);
    let queued = items_with_status(&env, "queued");
    let id = queued[0]["id"].as_str().unwrap();

    let unknown = env.run(&["outbox", "retry", "1700000000-000000000000"]);
    unknown.expect_code(65);
    assert!(
        unknown.stderr.contains("postflight outbox list"),
        "{}",
        unknown.stderr
    );
    env.run(&["outbox", "drop", "../../etc/passwd"])
        .expect_code(64);

    let retried = env.run(&["outbox", "retry", id]);
    retried.expect_code(0);
    assert!(
        retried.stderr.contains("already queued"),
        "{}",
        retried.stderr
    );
    assert_eq!(items_with_status(&env, "queued")[0]["due"], true);

    let dropped = env.run(&["outbox", "drop", id]);
    dropped.expect_code(0);
    assert!(
        dropped.stderr.contains("dropped the queued notification"),
        "{}",
        dropped.stderr
    );
    let left = items_with_status(&env, "queued");
    assert_eq!(left.len(), 1);
    assert_ne!(left[0]["id"], id);

    let table = env.run(&["outbox", "list"]);
    table.expect_code(0);
    assert!(
        table.stdout.starts_with("ID ")
            && table.stdout.contains("last error: cannot write into /proc")
            && table.stdout.contains("1 queued, 0 failed"),
        "{}",
        table.stdout
    );
}

// ---- against the SMTP test server -------------------------------------------------------

/// A port where nothing listens (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smtp_config(port: u16, send_timeout: &str) -> String {
    format!(
        r#"
[defaults]
account = "main"
to = "ops@example.com"
send_timeout = "{send_timeout}"

[accounts.main]
transport = "smtp"
from = "Backups <backups@example.com>"
host = "127.0.0.1"
port = {port}
security = "none"
"#
    )
}

#[test]
fn smtp_server_down_then_up_flush_delivers_exactly_one_message() {
    let env = TestEnv::new();
    env.config(&smtp_config(closed_port(), "3s"));
    let started = Instant::now();
    let run = env.run(&["run", "--task", "nightly", "--", "false"]);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(3 + 5),
        "took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("it is queued"), "{}", run.stderr);
    let queued = items_with_status(&env, "queued");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["last_error"]["permanent"], false);

    let server = SmtpServer::start(&[]);
    env.config(&smtp_config(server.port, "3s"));
    let flush = env.run(&["outbox", "flush"]);
    flush.expect_code(0);
    let received = server.received();
    assert_eq!(received.len(), 1, "exactly one message: {}", flush.stderr);
    assert!(
        received[0]["data"]
            .as_str()
            .unwrap()
            .contains(queued[0]["message_id"].as_str().unwrap()),
        "the same Message-ID as the queued item"
    );
    assert!(listing(&env)["items"].as_array().unwrap().is_empty());
    env.run(&["outbox", "flush"]).expect_code(0);
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_hung_smtp_server_costs_run_at_most_send_timeout() {
    let server = SmtpServer::start(&["--silent"]);
    let env = TestEnv::new();
    env.config(&smtp_config(server.port, "2s"));
    let started = Instant::now();
    let run = env.run(&["run", "--task", "nightly", "--", "false"]);
    let took = started.elapsed();
    run.expect_code(1);
    assert!(took < Duration::from_secs(2 + 4), "took {took:?}");
    assert_eq!(items_with_status(&env, "queued").len(), 1, "{}", run.stderr);
}

#[test]
fn an_smtp_rejection_goes_to_failed_and_retry_delivers_it_once_fixed() {
    let strict = SmtpServer::start(&["--reject", "ops@example.com"]);
    let env = TestEnv::new();
    env.config(&smtp_config(strict.port, "5s"));
    let report = env.run(&["report", "--task", "nightly", "--exit-code", "3"]);
    report.expect_code(65);
    assert!(
        report.stderr.contains("was refused") && report.stderr.contains("550"),
        "{}",
        report.stderr
    );
    let failed = items_with_status(&env, "failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["failed_reason"].as_str().unwrap().contains("550"));
    assert_eq!(failed[0]["last_error"]["kind"], "recipient_rejected");
    assert!(strict.received().is_empty());

    let fixed = SmtpServer::start(&[]);
    env.config(&smtp_config(fixed.port, "5s"));
    env.run(&["outbox", "retry", failed[0]["id"].as_str().unwrap()])
        .expect_code(0);
    env.run(&["outbox", "flush"]).expect_code(0);
    assert_eq!(fixed.received().len(), 1);
    assert!(listing(&env)["items"].as_array().unwrap().is_empty());
}

#[test]
fn a_flush_reuses_one_smtp_connection_for_all_items() {
    let env = TestEnv::new();
    let ids = queue_undeliverable(&env, 5);
    let server = SmtpServer::start(&[]);
    env.config(&smtp_config(server.port, "5s"));
    env.run(&["outbox", "flush"]).expect_code(0);
    let received = server.received();
    assert_eq!(received.len(), 5);
    let ports: std::collections::BTreeSet<u64> = received
        .iter()
        .map(|r| r["peer_port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports.len(), 1, "one connection: {ports:?}");
    for id in ids {
        assert!(received
            .iter()
            .any(|r| r["data"].as_str().unwrap().contains(&id)));
    }
}

#[test]
fn retry_all_requeues_every_failed_notification_once_the_cause_is_fixed() {
    let env = TestEnv::new();
    // Every notification fails for the same reason (a broken account)...
    env.config("[defaults]\naccount = \"main\"\nto = \"ops@example.com\"\n\n[accounts.main]\ntransport = \"file\"\n");
    for task in ["a", "b", "c"] {
        env.run(&["run", "--task", task, "--", "false"])
            .expect_code(1);
    }
    assert_eq!(items_with_status(&env, "failed").len(), 3);
    env.run(&["outbox", "retry"]).expect_code(64); // an id or --all is required

    // ...so once it is fixed, one command puts them all back.
    let mail_dir = env.path().join("mail");
    env.config(&file_config(&mail_dir, ""));
    let retry = env.run(&["outbox", "retry", "--all"]);
    retry.expect_code(0);
    assert!(
        retry
            .stderr
            .contains("3 failed notification(s) back in the queue"),
        "{}",
        retry.stderr
    );
    env.run(&["outbox", "flush"]).expect_code(0);
    assert_eq!(delivered_ids(&mail_dir).len(), 3);
    assert!(items_with_status(&env, "failed").is_empty());
    assert!(items_with_status(&env, "queued").is_empty());
}

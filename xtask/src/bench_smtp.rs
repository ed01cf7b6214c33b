//! `cargo xtask bench smtp`: one notification end to end to a local SMTP sink, postflight
//! (`postflight report`, outbox and policy included) against what users would otherwise run
//! for the same job: msmtp, swaks and Python's smtplib, in one run, as median wall times and
//! ratios. Issue 3's target: postflight takes at most half of msmtp's time.
//!
//! The sink is `test-support/smtp_server.py` (aiosmtpd) on 127.0.0.1; it records what it
//! receives, and every tool's messages are counted so a tool that silently failed to send
//! cannot look fast.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_run::median;
use crate::{install, util};

const RUNS: usize = 30;
const WARMUP: usize = 3;
const FROM: &str = "backups@example.com";
const TO: &str = "ops@example.com";
/// What a Python script would do: connect, send, quit.
const SMTPLIB_SCRIPT: &str = "import smtplib, sys\ns = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\ns.sendmail(sys.argv[2], [sys.argv[3]], open(sys.argv[4]).read())\ns.quit()";

/// A tool's name and how to build the command for one send.
type Case<'a> = (&'static str, Box<dyn Fn() -> Result<Command> + 'a>);

/// Runs the comparison and prints a table.
pub fn run() -> Result<()> {
    if !installed("msmtp") {
        bail!("msmtp is not installed (the reference for this benchmark): apt-get install msmtp");
    }
    let python = util::ensure_test_python()?;
    install::build(true)?;
    let postflight = util::target_dir().join("release").join("postflight");

    let work = std::env::temp_dir().join(format!("postflight-bench-smtp-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = compare(&python, &postflight, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn compare(python: &Path, postflight: &Path, work: &Path) -> Result<()> {
    let sink = Sink::start(python, &work.join("received.jsonl"))?;
    let config = work.join("config.toml");
    std::fs::write(&config, postflight_config(sink.port))?;
    let message = work.join("message.eml");
    std::fs::write(&message, sample_message())?;
    let port = sink.port.to_string();
    let state = work.join("state");

    // Each case builds a fresh command per run (msmtp reads the message from stdin).
    let mut cases: Vec<Case<'_>> = Vec::new();
    cases.push((
        "postflight report",
        Box::new(|| {
            let mut cmd = Command::new(postflight);
            cmd.args(["report", "--task", "bench", "--exit-code", "1"]);
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("POSTFLIGHT_") {
                    cmd.env_remove(&key);
                }
            }
            cmd.env("POSTFLIGHT_CONFIG", &config)
                .env("POSTFLIGHT_STATE_DIR", &state);
            Ok(cmd)
        }),
    ));
    cases.push((
        "msmtp",
        Box::new(|| {
            let mut cmd = Command::new("msmtp");
            cmd.args([
                "-C",
                "/dev/null",
                "--host=127.0.0.1",
                "--tls=off",
                "--auth=off",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--from={FROM}"))
            .arg(TO)
            .stdin(std::fs::File::open(&message)?);
            Ok(cmd)
        }),
    ));
    let mut skipped = Vec::new();
    if installed("swaks") {
        cases.push((
            "swaks",
            Box::new(|| {
                let mut cmd = Command::new("swaks");
                cmd.args([
                    "--server",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--from",
                    FROM,
                    "--to",
                    TO,
                ])
                .arg("--data")
                .arg(format!("@{}", message.display()))
                .arg("--hide-all");
                Ok(cmd)
            }),
        ));
    } else {
        skipped.push("swaks (apt-get install swaks)");
    }
    cases.push((
        "python3 smtplib",
        Box::new(|| {
            let mut cmd = Command::new("python3");
            cmd.args(["-c", SMTPLIB_SCRIPT, &port, FROM, TO])
                .arg(&message);
            Ok(cmd)
        }),
    ));

    println!(
        "\nbench smtp: one notification to a local SMTP sink ({RUNS} runs each after {WARMUP} warm-up, median wall time)"
    );
    println!("{:<22} {:>12} {:>14}", "tool", "median", "vs msmtp");
    let mut results = Vec::new();
    for (label, command) in &cases {
        let before = sink.received()?;
        for _ in 0..WARMUP {
            timed(label, command()?)?;
        }
        let time = median(RUNS, || timed(label, command()?))?;
        let delivered = sink.received()? - before;
        if delivered != RUNS + WARMUP {
            bail!(
                "{label} delivered {delivered} messages to the sink instead of {}",
                RUNS + WARMUP
            );
        }
        results.push((label, time));
    }
    let msmtp = results
        .iter()
        .find(|(label, _)| **label == "msmtp")
        .map(|(_, t)| *t)
        .expect("msmtp is always measured");
    for (label, time) in &results {
        println!(
            "{label:<22} {:>10.1}ms {:>13.2}x",
            util::millis(*time),
            time.as_secs_f64() / msmtp.as_secs_f64()
        );
    }
    for missing in skipped {
        println!("{missing:<22} {:>12}", "not installed");
    }
    let ratio = results[0].1.as_secs_f64() / msmtp.as_secs_f64();
    println!(
        "(ratio = tool / msmtp; target for postflight: at most 0.50x, measured {ratio:.2}x: {})",
        if ratio <= 0.5 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// Runs one send and returns its wall time; a failed send aborts the benchmark with its output.
fn timed(label: &str, mut cmd: Command) -> Result<Duration> {
    let start = Instant::now();
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot start {label}"))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!(
            "{label} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

fn postflight_config(port: u16) -> String {
    format!(
        r#"[defaults]
account = "sink"
level = "always"
to = "{TO}"

[accounts.sink]
transport = "smtp"
from = "Backups <{FROM}>"
host = "127.0.0.1"
port = {port}
security = "none"

[tasks.bench]
name = "Nightly Backup"
"#
    )
}

/// A message of about the size postflight sends, for the other tools.
fn sample_message() -> String {
    let body: String = (1..=20)
        .map(|i| format!("line {i} of the task's output: copied files, checked sums, all done\n"))
        .collect();
    format!(
        "From: Backups <{FROM}>\nTo: {TO}\nSubject: host: Nightly Backup: Failed\nAuto-Submitted: auto-generated\nContent-Type: text/plain; charset=utf-8\n\nTask: Nightly Backup\nExit code: 1\n\n{body}"
    )
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The aiosmtpd sink, stopped when dropped.
struct Sink {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    record: PathBuf,
}

impl Sink {
    fn start(python: &Path, record: &Path) -> Result<Sink> {
        let script = util::root().join("test-support").join("smtp_server.py");
        let mut child = Command::new(python)
            .arg(&script)
            .args(["--stop-on-stdin-eof", "--record"])
            .arg(record)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", script.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the SMTP sink did not start (it said {line:?})"))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        Ok(Sink {
            child,
            _stdin: stdin,
            port,
            record: record.to_path_buf(),
        })
    }

    /// How many messages the sink has accepted so far.
    fn received(&self) -> Result<usize> {
        Ok(match std::fs::read_to_string(&self.record) {
            Ok(text) => text.lines().count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

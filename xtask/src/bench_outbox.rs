//! `cargo xtask bench outbox`: a backlog of 1,000 queued notifications delivered by
//! `postflight outbox flush` over one reused SMTP connection, against Python's smtplib sending
//! the same 1,000 messages in one session, in one run; prints messages per second for both and
//! the ratio. Issue 4's target: postflight at least as fast as smtplib.
//!
//! Both talk to the same sink, a minimal SMTP server in this file (std only) that answers at
//! once, so the numbers measure the clients and not the server; it counts messages and
//! connections, so a tool that silently sent less (or opened a connection per message) cannot
//! look good. postflight's time includes everything the flush does for durability: it locks,
//! reads and removes every item file.
//!
//! Builds the release binary and plugins first, and uses the test servers' Python
//! environment (created if missing).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::util;

/// How many queued notifications the flush delivers.
const MESSAGES: usize = 1000;

/// What a Python user would write: read the same queued emails, send them all in one session.
const SMTPLIB_SCRIPT: &str = r#"
import json, os, smtplib, sys
from email.message import EmailMessage

port, items = int(sys.argv[1]), sys.argv[2]
messages = []
for name in sorted(os.listdir(items)):
    with open(os.path.join(items, name), encoding="utf-8") as f:
        email = json.load(f)["email"]
    m = EmailMessage()
    m["From"] = email["from"]
    m["To"] = ", ".join(email["to"])
    m["Subject"] = email["subject"]
    m["Date"] = email["date"]
    m["Message-ID"] = email["message_id"]
    for header in email["headers"]:
        m[header["name"]] = header["value"]
    m.set_content(email["text"])
    messages.append(m)
with smtplib.SMTP("127.0.0.1", port) as session:
    for m in messages:
        session.send_message(m)
"#;

/// Runs the comparison and prints the result.
pub fn run() -> Result<()> {
    crate::install::build(true)?;
    let postflight = util::target_dir().join("release").join("postflight");
    let python = util::ensure_test_python()?;
    let work = std::env::temp_dir().join(format!("postflight-bench-outbox-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = compare(&postflight, &python, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn compare(postflight: &Path, python: &Path, work: &Path) -> Result<()> {
    let sink = Sink::start()?;
    let state = work.join("state");
    let config = work.join("config.toml");
    let flush = |port: u16| -> Result<Duration> {
        std::fs::write(&config, postflight_config(port))?;
        let start = Instant::now();
        let status = Command::new(postflight)
            .args(["-q", "outbox", "flush"])
            .env("POSTFLIGHT_CONFIG", &config)
            .env("POSTFLIGHT_STATE_DIR", &state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("cannot run postflight")?;
        let elapsed = start.elapsed();
        ensure!(
            status.code() == Some(0),
            "postflight outbox flush failed ({status})"
        );
        Ok(elapsed)
    };

    // One real item, queued while the account points at a closed port, copied to 1,000.
    std::fs::write(&config, postflight_config(closed_port()?))?;
    let status = Command::new(postflight)
        .args([
            "-q",
            "report",
            "--task",
            "bench",
            "--level",
            "always",
            "--exit-code",
            "1",
        ])
        .env("POSTFLIGHT_CONFIG", &config)
        .env("POSTFLIGHT_STATE_DIR", &state)
        .stdin(Stdio::null())
        .stderr(Stdio::null()) // it says the server is unreachable, as intended
        .status()?;
    ensure!(status.success(), "postflight report failed ({status})");
    let queue = state.join("outbox");
    let items = work.join("items");
    clone_item(&queue, &items, MESSAGES)?;

    // A warm-up flush of a copy of one item, so both tools start with warm caches.
    copy_dir(&items, &queue, 1)?;
    flush(sink.port)?;
    copy_dir(&items, &queue, MESSAGES)?;

    sink.reset();
    let ours = flush(sink.port)?;
    let (ours_sent, ours_conns) = sink.counts();
    ensure!(
        ours_sent == MESSAGES,
        "the sink received {ours_sent} of {MESSAGES} messages from postflight"
    );
    let left = std::fs::read_dir(&queue)?.count();
    ensure!(left == 0, "{left} items are still queued after the flush");

    sink.reset();
    let start = Instant::now();
    let status = Command::new(python)
        .args(["-c", SMTPLIB_SCRIPT, &sink.port.to_string()])
        .arg(&items)
        .stdin(Stdio::null())
        .status()
        .context("cannot run Python")?;
    let theirs = start.elapsed();
    ensure!(status.success(), "the smtplib script failed ({status})");
    let (theirs_sent, theirs_conns) = sink.counts();
    ensure!(
        theirs_sent == MESSAGES,
        "the sink received {theirs_sent} of {MESSAGES} messages from smtplib"
    );

    let rate = |d: Duration| MESSAGES as f64 / d.as_secs_f64();
    println!("\nbench outbox: {MESSAGES} queued notifications to a local SMTP sink, one session each (wall time of the whole process)");
    println!(
        "{:<34} {:>9} {:>9} {:>10} {:>12}",
        "tool", "messages", "seconds", "msg/s", "connections"
    );
    for (name, sent, time, conns) in [
        ("postflight outbox flush", ours_sent, ours, ours_conns),
        (
            "python smtplib, one session",
            theirs_sent,
            theirs,
            theirs_conns,
        ),
    ] {
        println!(
            "{name:<34} {sent:>9} {:>9.3} {:>10.0} {conns:>12}",
            time.as_secs_f64(),
            rate(time)
        );
    }
    let ratio = rate(ours) / rate(theirs);
    println!(
        "ratio: postflight delivers {ratio:.2}x the messages per second of smtplib (target: at least 1.00x){}",
        if ratio >= 1.0 { "" } else { "  <-- BELOW TARGET" }
    );
    Ok(())
}

fn postflight_config(port: u16) -> String {
    format!(
        r#"[defaults]
account = "main"
to = "ops@example.com"
send_timeout = "30s"

[accounts.main]
transport = "smtp"
from = "Backups <backups@example.com>"
host = "127.0.0.1"
port = {port}
security = "none"
"#
    )
}

/// A port where nothing listens (bound, then released).
fn closed_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Writes `n` copies of the single item in `queue` into `into`, each with its own id,
/// Message-ID and idempotency key (the same format, so postflight reads them as its own), and
/// empties `queue`.
fn clone_item(queue: &Path, into: &Path, n: usize) -> Result<()> {
    let files: Vec<PathBuf> = std::fs::read_dir(queue)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    let [file] = files.as_slice() else {
        bail!(
            "expected one queued item in {}, found {}",
            queue.display(),
            files.len()
        );
    };
    let text = std::fs::read_to_string(file)?;
    let key = json_string(&text, "idempotency_key").context("no idempotency_key in the item")?;
    let id = json_string(&text, "id").context("no id in the item")?;
    let created = id.split('-').next().unwrap_or_default();
    std::fs::create_dir_all(into)?;
    for i in 0..n {
        let new_key = format!("{i:012x}{}", &key[12.min(key.len())..]);
        let new_id = format!("{created}-{}", &new_key[..12]);
        let copy = text.replace(&key, &new_key).replace(&id, &new_id);
        std::fs::write(into.join(format!("{new_id}.json")), copy)?;
    }
    std::fs::remove_file(file)?;
    Ok(())
}

/// The value of `"name": "..."` in JSON text (plain values only; enough for ids and keys).
fn json_string(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("\"{name}\": \""))? + name.len() + 5;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_string())
}

/// Copies the first `n` files of `from` (by name) into `to`.
fn copy_dir(from: &Path, to: &Path, n: usize) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(from)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    std::fs::create_dir_all(to)?;
    for file in files.iter().take(n) {
        std::fs::copy(file, to.join(file.file_name().unwrap_or_default()))?;
    }
    Ok(())
}

/// A minimal SMTP server on 127.0.0.1 that accepts everything at once and counts messages
/// and connections. One thread per connection; it lives until the process exits.
struct Sink {
    port: u16,
    messages: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Sink {
    fn start() -> Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let messages = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (m, c) = (messages.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let m = m.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &m);
                });
            }
        });
        Ok(Sink {
            port,
            messages,
            connections,
        })
    }

    fn reset(&self) {
        self.messages.store(0, Ordering::SeqCst);
        self.connections.store(0, Ordering::SeqCst);
    }

    /// Messages accepted and connections opened since the last reset.
    fn counts(&self) -> (usize, usize) {
        (
            self.messages.load(Ordering::SeqCst),
            self.connections.load(Ordering::SeqCst),
        )
    }
}

/// One SMTP session: every command is accepted; DATA is read up to the lone dot.
fn serve(stream: TcpStream, messages: &AtomicUsize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    writer.write_all(b"220 sink ESMTP\r\n")?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let verb = line
            .get(..4)
            .map(<[u8]>::to_ascii_uppercase)
            .unwrap_or_default();
        match verb.as_slice() {
            b"EHLO" => writer.write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?,
            b"DATA" => {
                writer.write_all(b"354 go ahead\r\n")?;
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                }
                let n = messages.fetch_add(1, Ordering::SeqCst) + 1;
                writer.write_all(format!("250 2.0.0 Ok: queued as S{n}\r\n").as_bytes())?;
            }
            b"QUIT" => {
                writer.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => writer.write_all(b"250 OK\r\n")?,
        }
    }
}

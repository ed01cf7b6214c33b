//! `postflight run`'s runner: starts the task in its own process group, passes its stdout and
//! stderr through as they come, keeps a bounded tail for the email, forwards termination
//! signals, enforces `--timeout`, and reports how the task ended.
//!
//! Like timeout(1), the task runs in its own process group so a timeout or a forwarded signal
//! reaches everything it started; signals postflight receives are passed on to that group.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime};

use postflight_core::Status;
use postflight_policy::{classify, Codes, Termination};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::outcome::RunOutcome;
use crate::tail::Tail;

/// Bytes of combined output kept for ##Output##.
pub const OUTPUT_TAIL_BYTES: usize = 32 * 1024;
/// Bytes of stderr kept for ##Error Output##.
pub const ERROR_TAIL_BYTES: usize = 16 * 1024;
/// After a timeout's SIGTERM, how long the task gets before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// After the task exits, how long to wait for processes it left behind to close the pipes.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug)]
pub struct RunRequest {
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Kill after this long.
    pub timeout: Option<Duration>,
    /// The task's exit code lists.
    pub codes: Codes,
}

/// A shell-like rendering of argv for ##Command## (quotes where a word needs them).
pub fn command_line(argv: &[OsString]) -> String {
    argv.iter()
        .map(|arg| {
            let s = arg.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Tails {
    combined: Tail,
    errors: Tail,
}

/// Runs the task to completion. Never fails: a task that cannot start is an outcome too.
pub async fn run(request: RunRequest) -> RunOutcome {
    let started = SystemTime::now();
    let working_dir = std::env::current_dir().unwrap_or_default();
    let command = command_line(&request.argv);
    let mut outcome = RunOutcome {
        command,
        termination: None,
        status: Status::Failure,
        started,
        finished: started,
        output: String::new(),
        error_output: String::new(),
        output_bytes: 0,
        working_dir,
        start_error: None,
        timed_out_after: None,
    };

    // Catch termination signals before the task exists: a signal that arrives between the
    // spawn and the handlers would otherwise kill postflight and lose the notification.
    let mut signals = ForwardedSignals::new();
    // On a terminal the task stays in postflight's (foreground) process group, as with
    // `timeout --foreground`: in a group of its own it could not read the terminal (it would
    // be stopped by SIGTTIN), and the terminal's Ctrl-C already reaches it directly.
    let interactive = std::io::stdin().is_terminal();
    let mut cmd = Command::new(&request.argv[0]);
    cmd.args(&request.argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !interactive {
        cmd.process_group(0);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(error) => {
            let reason = match error.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("{}: command not found", request.argv[0].to_string_lossy())
                }
                std::io::ErrorKind::PermissionDenied => {
                    format!(
                        "{}: permission denied (not executable?)",
                        request.argv[0].to_string_lossy()
                    )
                }
                _ => format!("{}: {error}", request.argv[0].to_string_lossy()),
            };
            eprintln!("postflight: cannot start {reason}");
            outcome.termination = Some(Termination::FailedToStart);
            outcome.start_error = Some(reason.clone());
            outcome.error_output = reason;
            outcome.finished = SystemTime::now();
            return outcome;
        }
    };
    // Whom signals and the timeout reach: the task's whole group, or (on a terminal) the task.
    let target = if interactive {
        child.id() as libc::pid_t
    } else {
        -(child.id() as libc::pid_t)
    };

    let tails = Arc::new(Mutex::new(Tails {
        combined: Tail::new(OUTPUT_TAIL_BYTES),
        errors: Tail::new(ERROR_TAIL_BYTES),
    }));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    spawn_pump(
        stdout,
        std::io::stdout(),
        Arc::clone(&tails),
        false,
        done_tx.clone(),
    );
    spawn_pump(stderr, std::io::stderr(), Arc::clone(&tails), true, done_tx);

    let wait = tokio::task::spawn_blocking(move || child.wait());
    tokio::pin!(wait);
    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut timed_out = false;
    let mut escalation = None;
    let status = loop {
        tokio::select! {
            result = &mut wait => break result.expect("the wait thread does not panic"),
            Some(sig) = signals.recv() => {
                // On a terminal, the keyboard's signals already went to the whole foreground
                // group, task included; pass on only what was sent to postflight alone.
                if !interactive || sig == libc::SIGTERM {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(target, sig) };
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() && !timed_out => {
                timed_out = true;
                eprintln!("postflight: the task exceeded its timeout; stopping it (SIGTERM, then SIGKILL after {}s)", KILL_GRACE.as_secs());
                // SAFETY: as above.
                unsafe { libc::kill(target, libc::SIGTERM) };
                escalation = Some(tokio::spawn(async move {
                    tokio::time::sleep(KILL_GRACE).await;
                    // SAFETY: as above; the task is still running (this is aborted once it
                    // ends, so the id cannot have been reused by another process).
                    unsafe { libc::kill(target, libc::SIGKILL) };
                }));
            }
        }
    };
    if let Some(escalation) = escalation {
        escalation.abort();
    }
    outcome.finished = SystemTime::now();

    // Let the pumps finish what is in the pipes; don't wait forever for daemons the task left
    // behind holding them open.
    let drain = tokio::task::spawn_blocking(move || {
        let limit = std::time::Instant::now() + DRAIN_GRACE;
        for _ in 0..2 {
            let left = limit.saturating_duration_since(std::time::Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
    });
    let _ = drain.await;

    outcome.termination = Some(match status {
        _ if timed_out => Termination::TimedOut,
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Termination::Exited(code),
            (None, Some(signal)) => Termination::Signaled(signal),
            (None, None) => Termination::Exited(1),
        },
        Err(error) => {
            outcome.start_error = Some(format!("lost track of the task: {error}"));
            Termination::Exited(1)
        }
    });
    if timed_out {
        outcome.timed_out_after = request.timeout;
    }
    outcome.status = classify(
        outcome.termination.as_ref().expect("set above"),
        &request.codes,
    );
    let tails = tails.lock().expect("pumps do not panic");
    outcome.output = tails.combined.to_text();
    outcome.error_output = tails.errors.to_text();
    outcome.output_bytes = tails.combined.total();
    outcome
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Copies one pipe to our own stream as data arrives, feeding the tails. A closed stdout of
/// ours (a broken pipe) is not an error: we keep draining the task so it never blocks.
fn spawn_pump<R, W>(
    mut from: R,
    mut to: W,
    tails: Arc<Mutex<Tails>>,
    is_stderr: bool,
    done: mpsc::Sender<()>,
) where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let forwarded = to.write_all(&buf[..n]).and_then(|()| to.flush()).is_ok();
            let mut tails = tails.lock().expect("pumps do not panic");
            tails.combined.push(&buf[..n]);
            if is_stderr {
                tails.errors.push(&buf[..n]);
            }
            if !forwarded {
                // Whoever read our output went away (`postflight run -- yes | head -1`).
                // Close the pipe too, so the task gets SIGPIPE/EPIPE as it would without us
                // instead of running on to completion.
                break;
            }
        }
        let _ = done.send(());
    });
}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to postflight, to be passed to the task (and,
/// once it ended, to stop waiting for the email).
pub struct ForwardedSignals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    hangup: Option<Signal>,
    quit: Option<Signal>,
}

impl ForwardedSignals {
    /// Installs the handlers; from now on these signals no longer end postflight by default.
    pub fn new() -> Self {
        ForwardedSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
            quit: signal(SignalKind::quit()).ok(),
        }
    }

    /// The next signal's number.
    pub async fn recv(&mut self) -> Option<i32> {
        tokio::select! {
            Some(()) = recv_one(&mut self.interrupt) => Some(libc::SIGINT),
            Some(()) = recv_one(&mut self.terminate) => Some(libc::SIGTERM),
            Some(()) = recv_one(&mut self.hangup) => Some(libc::SIGHUP),
            Some(()) = recv_one(&mut self.quit) => Some(libc::SIGQUIT),
        }
    }
}

async fn recv_one(stream: &mut Option<Signal>) -> Option<()> {
    match stream {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}

//! What happened to a task: filled by the runner (`run`) or from flags (`report`), read by
//! policy and by the template values.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use postflight_core::Status;
use postflight_policy::Termination;

/// One finished run of a task.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The command as a shell-like line, for ##Command##.
    pub command: String,
    /// How the process ended (`None` for `report --status`, which gives no code).
    pub termination: Option<Termination>,
    /// The classified status.
    pub status: Status,
    /// When it started.
    pub started: SystemTime,
    /// When it ended.
    pub finished: SystemTime,
    /// Tail of stdout and stderr interleaved.
    pub output: String,
    /// Tail of stderr.
    pub error_output: String,
    /// Bytes the task printed in all.
    pub output_bytes: u64,
    /// Where it ran.
    pub working_dir: PathBuf,
    /// Why it could not start, when it could not.
    pub start_error: Option<String>,
    /// The `--timeout` that killed it, when one did.
    pub timed_out_after: Option<Duration>,
}

impl RunOutcome {
    /// The exit code `run` exits with: the task's, 128+N for signal N, 124 for a timeout,
    /// 126/127 when it could not start (as a shell).
    pub fn shell_exit_code(&self) -> i32 {
        use crate::exit;
        match &self.termination {
            Some(Termination::Exited(code)) => *code,
            Some(Termination::Signaled(signal)) => 128 + signal,
            Some(Termination::TimedOut) => exit::TIMED_OUT,
            Some(Termination::FailedToStart) => {
                if self
                    .start_error
                    .as_deref()
                    .is_some_and(|e| e.contains("not found"))
                {
                    exit::NOT_FOUND
                } else {
                    exit::CANNOT_EXECUTE
                }
            }
            None => match self.status {
                Status::Success => 0,
                _ => 1,
            },
        }
    }

    /// ##Exit Code##: the code, or what stands for one.
    pub fn exit_code_text(&self) -> String {
        match &self.termination {
            Some(Termination::Exited(code)) => code.to_string(),
            Some(_) => self.shell_exit_code().to_string(),
            None => "none (reported by status)".to_string(),
        }
    }

    /// ##Exit Reason##: one phrase on how it ended.
    pub fn exit_reason(&self) -> String {
        match &self.termination {
            Some(Termination::Exited(code)) => format!("exited with code {code}"),
            Some(Termination::Signaled(signal)) => {
                format!("killed by signal {signal} ({})", signal_name(*signal))
            }
            Some(Termination::TimedOut) => match self.timed_out_after {
                Some(limit) => format!(
                    "timed out after {} and was killed",
                    humantime::format_duration(limit)
                ),
                None => "timed out and was killed".to_string(),
            },
            Some(Termination::FailedToStart) => format!(
                "could not start: {}",
                self.start_error.as_deref().unwrap_or("unknown error")
            ),
            None => format!("reported as {}", self.status),
        }
    }
}

/// The conventional name of a signal number.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "unknown signal",
    }
}

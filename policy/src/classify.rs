//! Turning how a process ended into a [`Status`] (DESIGN section 6).

use postflight_core::Status;
use serde::{Deserialize, Serialize};

/// How a task's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    /// The process exited on its own with this exit code.
    Exited(i32),
    /// The process was killed by this signal number.
    Signaled(i32),
    /// postflight stopped the process because it ran past its timeout.
    TimedOut,
    /// The command could not be started at all (not found, not executable, ...).
    FailedToStart,
}

/// The task's exit-code lists (defaults: success `[0]`, warning `[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codes {
    /// Exit codes that mean the run succeeded.
    pub success: Vec<i32>,
    /// Exit codes that mean the run succeeded with warnings.
    pub warning: Vec<i32>,
}

impl Default for Codes {
    /// Success `[0]`, warning `[]`.
    fn default() -> Self {
        Codes {
            success: vec![0],
            warning: Vec::new(),
        }
    }
}

/// Classifies a run.
///
/// An exit code listed in `codes.success` is [`Status::Success`]; one listed in
/// `codes.warning` is [`Status::Warning`] (a code listed in both counts as a success). Any
/// other exit code, a signal, a timeout or a command that failed to start is
/// [`Status::Failure`].
pub fn classify(termination: &Termination, codes: &Codes) -> Status {
    match termination {
        Termination::Exited(code) if codes.success.contains(code) => Status::Success,
        Termination::Exited(code) if codes.warning.contains(code) => Status::Warning,
        Termination::Exited(_)
        | Termination::Signaled(_)
        | Termination::TimedOut
        | Termination::FailedToStart => Status::Failure,
    }
}

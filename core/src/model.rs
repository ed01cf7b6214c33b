//! Plain domain types shared by every crate: notification levels and task status.
//!
//! These carry no behaviour beyond naming and parsing; the rules that use them live in
//! `postflight-policy`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// When a task's run should produce an email (DESIGN section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Never send.
    Never,
    /// Send after every run.
    Always,
    /// Send when the run ended with a warning or a failure.
    Errors,
    /// Send when the status differs from the previous run (plus reminders while failing).
    Changes,
}

impl Level {
    /// Every level, in the order the documentation lists them.
    pub const ALL: [Level; 4] = [Level::Never, Level::Always, Level::Errors, Level::Changes];

    /// The spelling used in config files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Never => "never",
            Level::Always => "always",
            Level::Errors => "errors",
            Level::Changes => "changes",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown level '{s}': use one of never, always, errors, changes")
            })
    }
}

/// How a task's run ended, as policy classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The exit code is one of the task's success codes.
    Success,
    /// The exit code is one of the task's warning codes.
    Warning,
    /// Any other exit code, a signal, a timeout, or a command that could not start.
    Failure,
}

impl Status {
    /// The spelling used in config, on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Warning => "warning",
            Status::Failure => "failure",
        }
    }

    /// The phrase used for `##Exit Status##` and in subjects.
    pub fn phrase(self) -> &'static str {
        match self {
            Status::Success => "Succeeded",
            Status::Warning => "Succeeded with warnings",
            Status::Failure => "Failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "success" => Ok(Status::Success),
            "warning" => Ok(Status::Warning),
            "failure" => Ok(Status::Failure),
            _ => Err(format!(
                "unknown status '{s}': use success, warning or failure"
            )),
        }
    }
}

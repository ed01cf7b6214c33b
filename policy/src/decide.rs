//! Applying a notification level to a run (DESIGN section 6).

use std::fmt;
use std::time::Duration;

use postflight_core::{Level, Status};

use crate::History;

/// What policy decided for a run, and why (for `-v` output and JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send a notification.
    Notify(Reason),
    /// Send nothing.
    Skip(Reason),
}

impl Decision {
    /// Whether a notification should be sent.
    pub fn should_notify(&self) -> bool {
        matches!(self, Decision::Notify(_))
    }

    /// Why policy decided this.
    pub fn reason(&self) -> &Reason {
        match self {
            Decision::Notify(reason) | Decision::Skip(reason) => reason,
        }
    }
}

/// Why policy decided what it decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The level is `never` (skip).
    LevelNever,
    /// The level is `always` (notify).
    LevelAlways,
    /// The level is `errors` and the run ended with a warning or a failure (notify).
    ErrorsAndStatusIsProblem,
    /// The level is `errors` and the run succeeded (skip).
    ErrorsAndSuccess,
    /// The level is `changes`, this is the task's first run and it did not succeed (notify).
    FirstRunNotSuccess,
    /// The level is `changes`, this is the task's first run and it succeeded (skip).
    FirstRunSuccess,
    /// The level is `changes` and the status differs from the previous run's (notify).
    StatusChanged {
        /// The previous run's status.
        from: Status,
        /// This run's status.
        to: Status,
    },
    /// The level is `changes` and the status is the same as the previous run's (skip).
    Unchanged,
    /// The level is `changes`, the task is still not succeeding and `remind_every` has passed
    /// since the last notification (notify).
    Reminder,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::LevelNever => f.write_str("level is never"),
            Reason::LevelAlways => f.write_str("level is always"),
            Reason::ErrorsAndStatusIsProblem => {
                f.write_str("level is errors and the run ended with a warning or failure")
            }
            Reason::ErrorsAndSuccess => f.write_str("level is errors and the run succeeded"),
            Reason::FirstRunNotSuccess => f.write_str("first run and it did not succeed"),
            Reason::FirstRunSuccess => f.write_str("first run and it succeeded"),
            Reason::StatusChanged { from, to } => {
                write!(f, "status changed from {from} to {to}")
            }
            Reason::Unchanged => f.write_str("status unchanged since the previous run"),
            Reason::Reminder => f.write_str(
                "reminder: still not succeeding and remind_every has passed since the last notification",
            ),
        }
    }
}

/// Decides whether this run should notify.
///
/// `previous` is the history before this run ([`History::default`] for a first run),
/// `now_unix` the current time in Unix seconds, `remind_every` the task's reminder interval.
///
/// - `never`: skip. `always`: notify.
/// - `errors`: notify for a warning or a failure, skip for a success.
/// - `changes`: on a first run (no previous status) notify unless it succeeded; otherwise
///   notify when the status differs from the previous one. While the status is unchanged and
///   not a success, notify a [`Reason::Reminder`] once `remind_every` has passed since the
///   last notification (or, if none was ever sent, since the non-success streak began);
///   otherwise skip. A clock that went backwards counts as no time having passed.
pub fn decide(
    level: Level,
    status: Status,
    previous: &History,
    now_unix: u64,
    remind_every: Option<Duration>,
) -> Decision {
    match level {
        Level::Never => Decision::Skip(Reason::LevelNever),
        Level::Always => Decision::Notify(Reason::LevelAlways),
        Level::Errors => match status {
            Status::Success => Decision::Skip(Reason::ErrorsAndSuccess),
            Status::Warning | Status::Failure => Decision::Notify(Reason::ErrorsAndStatusIsProblem),
        },
        Level::Changes => match previous.last_status {
            None if status == Status::Success => Decision::Skip(Reason::FirstRunSuccess),
            None => Decision::Notify(Reason::FirstRunNotSuccess),
            Some(from) if from != status => {
                Decision::Notify(Reason::StatusChanged { from, to: status })
            }
            Some(_)
                if status != Status::Success && reminder_due(previous, now_unix, remind_every) =>
            {
                Decision::Notify(Reason::Reminder)
            }
            Some(_) => Decision::Skip(Reason::Unchanged),
        },
    }
}

/// Whether `remind_every` has passed since the last notification (or, if none was ever sent,
/// since the non-success streak began). With no interval, or no reference time at all, no
/// reminder is due.
fn reminder_due(previous: &History, now_unix: u64, remind_every: Option<Duration>) -> bool {
    let Some(interval) = remind_every else {
        return false;
    };
    let Some(since) = previous.last_notified_unix.or(previous.failing_since_unix) else {
        return false;
    };
    Duration::from_secs(now_unix.saturating_sub(since)) >= interval
}

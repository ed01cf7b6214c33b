//! postflight-policy: what a task's run means and whether anyone should hear about it.
//!
//! This crate is pure: it performs no I/O and never reads the clock (the caller passes the
//! current time in as Unix seconds), so every rule here is deterministic and table-testable.
//!
//! - [`classify`] turns how a process ended ([`Termination`]) into a [`Status`](postflight_core::Status) using the
//!   task's [`Codes`] (DESIGN section 6).
//! - [`decide`] applies a notification [`Level`](postflight_core::Level) to that status and the task's previous
//!   [`History`], returning a [`Decision`] that carries its [`Reason`].
//! - [`History::after_run`] computes the history to store after the run; the CLI keeps it as
//!   JSON in the state directory and records the fate of the last notification in
//!   [`History::last_delivery`] (DESIGN section 7).
//!
//! A typical run:
//!
//! ```
//! use postflight_core::{Level, Status};
//! use postflight_policy::{classify, decide, Codes, History, Termination};
//!
//! let previous = History::default(); // first run
//! let now = 1_700_000_000;
//! let status = classify(&Termination::Exited(2), &Codes::default());
//! assert_eq!(status, Status::Failure);
//!
//! let decision = decide(Level::Changes, status, &previous, now, None);
//! assert!(decision.should_notify());
//! assert_eq!(previous.failure_count_with(status), 1);
//!
//! let next = previous.after_run(status, now, decision.should_notify());
//! assert_eq!(next.consecutive_failures, 1);
//! assert_eq!(next.failing_since_unix, Some(now));
//! assert_eq!(next.last_notified_unix, Some(now));
//! ```

#![warn(missing_docs)]

mod classify;
mod decide;
mod history;

#[cfg(test)]
mod tests;

pub use classify::{classify, Codes, Termination};
pub use decide::{decide, Decision, Reason};
pub use history::{DeliveryOutcome, DeliveryRecord, History};

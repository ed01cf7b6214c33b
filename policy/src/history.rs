//! Per-task history, kept by the CLI as JSON in the state directory.

use postflight_core::Status;
use serde::{Deserialize, Serialize};

/// Per-task history, stored by the CLI as JSON in the state directory.
///
/// The stored form must stay backward compatible: every field defaults when missing (so `{}`
/// reads as [`History::default`], a first run) and unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The status of the most recent run; `None` before the first run.
    #[serde(default)]
    pub last_status: Option<Status>,
    /// When the most recent run finished, in Unix seconds.
    #[serde(default)]
    pub last_run_unix: Option<u64>,
    /// Runs in a row with status failure, including the last one; a success or a warning
    /// resets it to zero.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// When the current non-success streak (warnings or failures) began, in Unix seconds;
    /// `None` while the task is succeeding.
    #[serde(default)]
    pub failing_since_unix: Option<u64>,
    /// When the last notification was decided (queued) for this task, in Unix seconds.
    #[serde(default)]
    pub last_notified_unix: Option<u64>,
    /// The status that the last notification reported.
    #[serde(default)]
    pub last_notified_status: Option<Status>,
    /// What became of the last notification, as recorded by the CLI after delivery.
    #[serde(default)]
    pub last_delivery: Option<DeliveryRecord>,
}

/// What became of a task's last notification (DESIGN section 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// When this outcome was recorded, in Unix seconds.
    pub at_unix: u64,
    /// Whether the notification was delivered, is still queued, or failed for good.
    pub outcome: DeliveryOutcome,
    /// The server's queue id or the provider's message id, or the error.
    #[serde(default)]
    pub detail: String,
}

/// The fate of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOutcome {
    /// The server or provider accepted it.
    Delivered,
    /// It is still in the outbox, waiting for a (re)try.
    Queued,
    /// It failed permanently and was moved to `failed/`.
    Failed,
}

impl History {
    /// Returns the history after this run; `notified` says whether the decision was
    /// [`Decision::Notify`](crate::Decision::Notify).
    ///
    /// The last status and run time are replaced, the failure counter and the non-success
    /// streak start are carried forward or reset, the notification fields are updated only
    /// when `notified`, and [`last_delivery`](History::last_delivery) is kept as it is (the
    /// CLI records the new delivery once it knows what became of it).
    pub fn after_run(&self, status: Status, now_unix: u64, notified: bool) -> History {
        let failing_since_unix = match status {
            Status::Success => None,
            Status::Warning | Status::Failure => match self.last_status {
                // Still in the same non-success streak: keep when it began (or, for a
                // history written without it, start counting now).
                Some(Status::Warning | Status::Failure) => {
                    self.failing_since_unix.or(Some(now_unix))
                }
                Some(Status::Success) | None => Some(now_unix),
            },
        };
        let (last_notified_unix, last_notified_status) = if notified {
            (Some(now_unix), Some(status))
        } else {
            (self.last_notified_unix, self.last_notified_status)
        };
        History {
            last_status: Some(status),
            last_run_unix: Some(now_unix),
            consecutive_failures: self.failure_count_with(status),
            failing_since_unix,
            last_notified_unix,
            last_notified_status,
            last_delivery: self.last_delivery.clone(),
        }
    }

    /// The consecutive failure count this run will have (for `##Failure Count##`), without
    /// mutating: the stored count plus one for a failure, zero for a success or a warning.
    pub fn failure_count_with(&self, status: Status) -> u32 {
        match status {
            Status::Failure => self.consecutive_failures.saturating_add(1),
            Status::Success | Status::Warning => 0,
        }
    }
}

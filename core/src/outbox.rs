//! The durable outbox (DESIGN section 7): one JSON file per notification in
//! `<state>/outbox/`, written atomically before the first attempt; permanently refused items
//! move to `<state>/failed/` with the reason. Items never hold a secret: the account is named,
//! and its secrets are resolved again at every attempt.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::error::DeliveryError;
use crate::fsutil;
use crate::model::Status;

/// The item format version written by this build.
pub const ITEM_VERSION: u32 = 1;

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it ended (Unix seconds).
    pub at_unix: u64,
    /// The error, when it failed (already redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DeliveryError>,
}

/// A queued notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Format version.
    pub version: u32,
    /// Unique id; also the file name (`<id>.json`).
    pub id: String,
    /// When it was queued (Unix seconds).
    pub created_unix: u64,
    /// The task's key.
    pub task: String,
    /// The task's display name.
    pub task_name: String,
    /// The run's status.
    pub status: Status,
    /// The account to deliver through (resolved again at each attempt).
    pub account: String,
    /// One attempt's time limit, in milliseconds.
    pub send_timeout_ms: u64,
    /// The rendered email.
    pub email: Email,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Not before this time (Unix seconds).
    #[serde(default)]
    pub next_attempt_unix: u64,
}

impl Item {
    /// A new item, due now.
    pub fn new(
        task: &str,
        task_name: &str,
        status: Status,
        account: &str,
        send_timeout: Duration,
        email: Email,
    ) -> Item {
        let now = unix_now();
        Item {
            version: ITEM_VERSION,
            id: format!(
                "{}-{}",
                now,
                &email.idempotency_key[..12.min(email.idempotency_key.len())]
            ),
            created_unix: now,
            task: task.to_string(),
            task_name: task_name.to_string(),
            status,
            account: account.to_string(),
            send_timeout_ms: send_timeout.as_millis().try_into().unwrap_or(u64::MAX),
            email,
            attempts: Vec::new(),
            next_attempt_unix: now,
        }
    }

    /// The last error, if the last attempt failed.
    pub fn last_error(&self) -> Option<&DeliveryError> {
        self.attempts.last().and_then(|a| a.error.as_ref())
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The outbox directories of one state directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    queue: PathBuf,
    failed: PathBuf,
}

impl Outbox {
    /// The outbox under `state_dir` (directories are created on first write).
    pub fn new(state_dir: &Path) -> Outbox {
        Outbox {
            queue: state_dir.join("outbox"),
            failed: state_dir.join("failed"),
        }
    }

    /// `<state>/outbox`.
    pub fn queue_dir(&self) -> &Path {
        &self.queue
    }

    /// `<state>/failed`.
    pub fn failed_dir(&self) -> &Path {
        &self.failed
    }

    fn queued_path(&self, id: &str) -> PathBuf {
        self.queue.join(format!("{id}.json"))
    }

    /// Writes the item durably into the queue (replacing an older version of it).
    pub fn save(&self, item: &Item) -> std::io::Result<PathBuf> {
        let path = self.queued_path(&item.id);
        let json = serde_json::to_vec_pretty(item).expect("an outbox item always serializes");
        fsutil::atomic_write(&path, &json)?;
        Ok(path)
    }

    /// Removes a delivered item.
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.queued_path(id)) {
            Ok(()) => fsutil::sync_dir(&self.queue),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves an item to `failed/` (writing its final state there first, then removing it
    /// from the queue, so a crash in between leaves a duplicate rather than a loss).
    pub fn move_to_failed(&self, item: &Item) -> std::io::Result<PathBuf> {
        let path = self.failed.join(format!("{}.json", item.id));
        let json = serde_json::to_vec_pretty(item).expect("an outbox item always serializes");
        fsutil::atomic_write(&path, &json)?;
        self.remove(&item.id)?;
        Ok(path)
    }
}

/// How long to wait before retrying after `attempts` failed attempts: about 1 min, 5 min,
/// 30 min, 2 h, 6 h, then every 6 h; a server's own `Retry-After` wins when it is longer.
pub fn retry_delay(attempts: usize, retry_after_secs: Option<u64>) -> Duration {
    const SCHEDULE: [u64; 5] = [60, 5 * 60, 30 * 60, 2 * 3600, 6 * 3600];
    let base = SCHEDULE[attempts.saturating_sub(1).min(SCHEDULE.len() - 1)];
    Duration::from_secs(base.max(retry_after_secs.unwrap_or(0)))
}

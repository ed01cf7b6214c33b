//! The durable outbox (DESIGN section 7): one JSON file per notification in
//! `<state>/outbox/`, written atomically before the first attempt; permanently refused or
//! expired items move to `<state>/failed/` with the reason, and files that cannot be read as
//! items are moved aside to `<state>/corrupt/`. Items never hold a secret: the account is
//! named, and its secrets are resolved again at every attempt.
//!
//! # Concurrency
//!
//! Several postflight processes may work on one outbox at once (a task's own attempt, a timer's
//! `outbox flush --due`, an operator's `outbox flush`). Whoever acts on a queued item first
//! [claims](Outbox::claim) it: an exclusive OS file lock (`flock`) on the item's file, which
//! the kernel releases when the process exits or dies. A lock belongs to the *inode*, and items
//! are replaced by rename, so after locking the claim checks that the path still names the very
//! file it locked: a process that opened an item just before another one delivered and removed
//! it finds it gone and does not send it again. New items are locked before they become
//! visible under their final name ([`Outbox::enqueue`]), so no flusher can take a task's item
//! away from its own first attempt.
//!
//! # Crash safety
//!
//! Every change is a single atomic step or ordered so that a crash in between leaves a
//! duplicate, never a loss: an item is written (temporary file, fsync, rename, directory
//! fsync) before its first attempt; it is unlinked only after the server accepted it; a
//! refused item is written to `failed/` before it is unlinked from the queue. Delivery is
//! therefore at least once, and an item's Message-ID stays the same on every attempt.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::error::DeliveryError;
use crate::fsutil;
use crate::model::Status;

/// The item format version written by this build.
pub const ITEM_VERSION: u32 = 1;

/// How long a queued item keeps being retried when `[outbox] max_age` is not set.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest wait a server's `Retry-After` can impose before the next attempt.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The backoff schedule after the 1st, 2nd, ... failed attempt (the last step repeats).
const SCHEDULE_SECS: [u64; 5] = [60, 5 * 60, 30 * 60, 2 * 3600, 6 * 3600];

/// Temporary files left by a process killed mid-write are removed once this old.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

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
///
/// The stored form stays backward compatible within [`ITEM_VERSION`]: fields added later
/// default when missing, and unknown fields are ignored.
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
    /// When `outbox retry` last put it back in the queue (Unix seconds); the backoff schedule
    /// and `max_age` count from here instead of from `created_unix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued_unix: Option<u64>,
    /// Why it was moved to `failed/` (set only there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_reason: Option<String>,
}

/// What to do with an item after a failed attempt ([`Item::record_failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A transient failure: keep it queued; the next attempt is due after `delay`.
    Retry {
        /// How long until the next attempt.
        delay: Duration,
    },
    /// A transient failure, but the item has been retried for `max_age`: move it to `failed/`.
    Expired,
    /// A permanent failure: move it to `failed/` now.
    Refused,
}

impl Item {
    /// A new item created at `now_unix`, due at once.
    pub fn new(
        task: &str,
        task_name: &str,
        status: Status,
        account: &str,
        send_timeout: Duration,
        email: Email,
        now_unix: u64,
    ) -> Item {
        Item {
            version: ITEM_VERSION,
            id: format!(
                "{}-{}",
                now_unix,
                &email.idempotency_key[..12.min(email.idempotency_key.len())]
            ),
            created_unix: now_unix,
            task: task.to_string(),
            task_name: task_name.to_string(),
            status,
            account: account.to_string(),
            send_timeout_ms: send_timeout.as_millis().try_into().unwrap_or(u64::MAX),
            email,
            attempts: Vec::new(),
            next_attempt_unix: now_unix,
            requeued_unix: None,
            failed_reason: None,
        }
    }

    /// One attempt's time limit.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    /// The last error, if the last attempt failed.
    pub fn last_error(&self) -> Option<&DeliveryError> {
        self.attempts.last().and_then(|a| a.error.as_ref())
    }

    /// When the item (last) entered the queue: its creation, or the last `outbox retry`.
    pub fn queued_since_unix(&self) -> u64 {
        self.requeued_unix.unwrap_or(self.created_unix)
    }

    /// Failed attempts since the item (last) entered the queue; they drive the backoff.
    pub fn attempts_since_queued(&self) -> usize {
        let since = self.queued_since_unix();
        self.attempts.iter().filter(|a| a.at_unix >= since).count()
    }

    /// Whether its retry time has come.
    pub fn is_due(&self, now_unix: u64) -> bool {
        self.next_attempt_unix <= now_unix
    }

    /// Records a failed attempt at `now_unix` and decides what becomes of the item.
    ///
    /// Permanent errors are [`Verdict::Refused`]. Transient ones are retried on the backoff
    /// schedule of [`retry_delay`] (`jitter` in `[0, 1)` spreads many items' retries), but
    /// never later than `max_age` after the item entered the queue: the attempt at that moment
    /// is the last, and failing it too makes the item [`Verdict::Expired`]. The reason is
    /// stored in [`failed_reason`](Item::failed_reason) for either kind of failure.
    pub fn record_failure(
        &mut self,
        error: DeliveryError,
        now_unix: u64,
        max_age: Duration,
        jitter: f64,
    ) -> Verdict {
        let permanent = !error.is_transient();
        let retry_after = error.retry_after_secs;
        let reason = error.to_string();
        self.attempts.push(Attempt {
            at_unix: now_unix,
            error: Some(error),
        });
        if permanent {
            self.failed_reason = Some(reason);
            return Verdict::Refused;
        }
        let give_up_at = self.queued_since_unix().saturating_add(max_age.as_secs());
        if now_unix >= give_up_at {
            let attempts = self.attempts_since_queued();
            self.failed_reason = Some(format!(
                "gave up after {attempts} attempt{} over {}; the last error was: {reason}",
                if attempts == 1 { "" } else { "s" },
                humantime::format_duration(max_age)
            ));
            return Verdict::Expired;
        }
        let delay = retry_delay(self.attempts_since_queued(), retry_after, jitter);
        self.next_attempt_unix = now_unix.saturating_add(delay.as_secs()).min(give_up_at);
        Verdict::Retry {
            delay: Duration::from_secs(self.next_attempt_unix - now_unix),
        }
    }
}

/// The current time in Unix seconds, from the system clock. (The CLI has its own clock with a
/// test override and passes times in; this is for callers without one.)
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long to wait before the next attempt after `attempts` failed ones: about 1 min, 5 min,
/// 30 min, 2 h, 6 h, then every 6 h. `jitter` in `[0, 1)` scales that by 0.9 to 1.1 so items
/// that failed together do not all come back at the same second. A server's own
/// `Retry-After` wins when it is longer (up to [`MAX_RETRY_AFTER`]).
pub fn retry_delay(attempts: usize, retry_after_secs: Option<u64>, jitter: f64) -> Duration {
    let base = SCHEDULE_SECS[attempts.saturating_sub(1).min(SCHEDULE_SECS.len() - 1)];
    let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    let jittered = (base as f64 * factor).round() as u64;
    let asked = retry_after_secs.unwrap_or(0).min(MAX_RETRY_AFTER.as_secs());
    Duration::from_secs(jittered.max(asked))
}

/// A random number in `[0, 1)` for [`retry_delay`]'s jitter.
pub fn random_jitter() -> f64 {
    fastrand::f64()
}

/// Why an outbox operation on a named item failed.
#[derive(Debug)]
pub enum OutboxError {
    /// The id cannot name an item (empty, a path, hidden).
    BadId(String),
    /// No item has this id.
    NotFound(String),
    /// Another process holds the item's lock right now.
    Busy(String),
    /// The item's file cannot be parsed.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: String,
    },
    /// A file operation failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboxError::BadId(id) => write!(
                f,
                "'{id}' is not an outbox item id (ids look like 1733281200-0123456789ab)"
            ),
            OutboxError::NotFound(id) => {
                write!(f, "no queued or failed notification has the id '{id}'")
            }
            OutboxError::Busy(id) => write!(
                f,
                "notification '{id}' is being delivered by another postflight process right now"
            ),
            OutboxError::Unreadable { path, error } => {
                write!(
                    f,
                    "{}: not a readable outbox item ({error})",
                    path.display()
                )
            }
            OutboxError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for OutboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OutboxError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// In `outbox/`, waiting for an attempt.
    Queued,
    /// In `failed/`, waiting for `outbox retry` or `outbox drop`.
    Failed,
}

impl Place {
    /// `queued` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Queued => "queued",
            Place::Failed => "failed",
        }
    }
}

/// An item as read by [`Outbox::list`].
#[derive(Debug, Clone)]
pub struct Listed {
    /// Where it is.
    pub place: Place,
    /// Its file.
    pub path: PathBuf,
    /// The item.
    pub item: Item,
}

/// A file in the outbox that is not a readable item.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// Where it is.
    pub place: Place,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub error: String,
}

/// Everything in the outbox, queued items first, each group oldest first.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Readable items.
    pub items: Vec<Listed>,
    /// Files that are not readable items.
    pub unreadable: Vec<Unreadable>,
}

/// The result of [`Outbox::claim`].
#[derive(Debug)]
pub enum Claim {
    /// The item is ours until the [`Claimed`] is consumed or dropped.
    Claimed(Box<Claimed>),
    /// Another process holds it (it is being delivered right now).
    Busy,
    /// It left the queue since it was listed (delivered, failed or dropped by another process).
    Gone,
    /// The file is not a readable item; it was moved aside (`moved_to`), unless that failed.
    Corrupt {
        /// The file as it was found in the queue.
        path: PathBuf,
        /// What is wrong with it.
        error: String,
        /// Where it is now, or why it could not be moved.
        moved_to: Result<PathBuf, String>,
    },
    /// Written by a newer postflight: left alone for that version to deliver.
    Newer {
        /// The file.
        path: PathBuf,
        /// Its format version.
        version: u32,
    },
}

/// A queued item this process holds the lock of. Consume it with [`remove`](Self::remove),
/// [`save`](Self::save) or [`move_to_failed`](Self::move_to_failed); dropping it releases the
/// lock and leaves the file as it was.
#[derive(Debug)]
pub struct Claimed {
    /// The item as read under the lock; change it before [`save`](Self::save).
    pub item: Item,
    path: PathBuf,
    failed_dir: PathBuf,
    // The flock lives as long as this open file description.
    _lock: File,
}

impl Claimed {
    /// The item's file in the queue.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the item from the queue (delivered, or moved to `failed/`).
    ///
    /// The unlink is deliberately not fsynced: a power cut that undoes it only brings back
    /// an item that was delivered (it is then delivered again, which at-least-once allows) or
    /// one already safe in `failed/` (the queued copy is tried again). Skipping that fsync per
    /// item is what lets a flush of a long backlog keep pace with the server.
    pub fn remove(self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes the item's new state (attempts, next attempt) back into the queue.
    pub fn save(self) -> std::io::Result<()> {
        fsutil::atomic_write(&self.path, &to_json(&self.item))
    }

    /// Moves the item to `failed/`: its final state is written there first and then it is
    /// removed from the queue, so a crash in between leaves a duplicate rather than a loss.
    pub fn move_to_failed(self) -> std::io::Result<PathBuf> {
        let name = self.path.file_name().unwrap_or_default().to_owned();
        let target = self.failed_dir.join(name);
        fsutil::atomic_write(&target, &to_json(&self.item))?;
        self.remove()?;
        Ok(target)
    }
}

/// An item named by id, as found by [`Outbox::drop_item`] and [`Outbox::retry`].
#[derive(Debug)]
pub struct Found {
    /// Where it was.
    pub place: Place,
    /// The item (`None` when its file was unreadable).
    pub item: Option<Item>,
}

/// The outbox directories of one state directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    queue: PathBuf,
    failed: PathBuf,
    corrupt: PathBuf,
}

impl Outbox {
    /// The outbox under `state_dir` (directories are created on first write).
    pub fn new(state_dir: &Path) -> Outbox {
        Outbox {
            queue: state_dir.join("outbox"),
            failed: state_dir.join("failed"),
            corrupt: state_dir.join("corrupt"),
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

    /// `<state>/corrupt`, where unreadable item files are moved aside.
    pub fn corrupt_dir(&self) -> &Path {
        &self.corrupt
    }

    /// Writes a new item durably into the queue and returns it already claimed: the file is
    /// locked before it appears under its final name, so no other process can attempt it
    /// before this one has.
    pub fn enqueue(&self, item: Item) -> std::io::Result<Claimed> {
        fsutil::create_private_dir(&self.queue)?;
        let path = self.queue.join(format!("{}.json", item.id));
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.queue)?;
        tmp.write_all(&to_json(&item))?;
        tmp.as_file().sync_all()?;
        fs4::FileExt::try_lock(tmp.as_file()).map_err(std::io::Error::from)?;
        let file = tmp.persist_noclobber(&path).map_err(|e| e.error)?;
        fsutil::sync_dir(&self.queue)?;
        Ok(Claimed {
            item,
            path,
            failed_dir: self.failed.clone(),
            _lock: file,
        })
    }

    /// The queue's item files, oldest first (ids start with the creation time).
    pub fn queued_files(&self) -> std::io::Result<Vec<PathBuf>> {
        item_files(&self.queue)
    }

    /// Takes the lock of the queued item at `path` and reads it (see the module docs). A file
    /// that is not a readable item is moved to `corrupt/` while the lock is held.
    pub fn claim(&self, path: &Path) -> std::io::Result<Claim> {
        // A changed inode means another process just rewrote the item; follow it a few times.
        for _ in 0..3 {
            let file = match File::open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Claim::Gone),
                Err(e) => return Err(e),
            };
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => {}
                Err(fs4::TryLockError::WouldBlock) => return Ok(Claim::Busy),
                Err(fs4::TryLockError::Error(e)) => return Err(e),
            }
            let held = file.metadata()?;
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Claim::Gone),
                Err(e) => return Err(e),
            }
            let mut bytes = Vec::new();
            (&file).read_to_end(&mut bytes)?;
            return Ok(match parse(&bytes) {
                Ok(item) => Claim::Claimed(Box::new(Claimed {
                    item,
                    path: path.to_path_buf(),
                    failed_dir: self.failed.clone(),
                    _lock: file,
                })),
                Err(Unparsed::Newer(version)) => Claim::Newer {
                    path: path.to_path_buf(),
                    version,
                },
                Err(Unparsed::Corrupt(error)) => {
                    let moved_to = self.move_aside(path).map_err(|e| e.to_string());
                    Claim::Corrupt {
                        path: path.to_path_buf(),
                        error,
                        moved_to,
                    }
                }
            });
        }
        Ok(Claim::Busy)
    }

    /// Moves an unreadable file to `corrupt/`, never overwriting an earlier one there.
    fn move_aside(&self, path: &Path) -> std::io::Result<PathBuf> {
        fsutil::create_private_dir(&self.corrupt)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let mut target = self.corrupt.join(&*name);
        let mut n = 1;
        while target.exists() {
            target = self.corrupt.join(format!("{name}.{n}"));
            n += 1;
        }
        std::fs::rename(path, &target)?;
        fsutil::sync_dir(&self.corrupt)?;
        fsutil::sync_dir(path.parent().unwrap_or_else(|| Path::new(".")))?;
        Ok(target)
    }

    /// Reads every queued and failed item without locking (files are replaced atomically, so
    /// each read sees a whole version). Moves nothing.
    pub fn list(&self) -> std::io::Result<Listing> {
        let mut listing = Listing::default();
        for (place, dir) in [(Place::Queued, &self.queue), (Place::Failed, &self.failed)] {
            for path in item_files(dir)? {
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    // Delivered or moved between listing the directory and reading the file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        listing.unreadable.push(Unreadable {
                            place,
                            path,
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                match parse(&bytes) {
                    Ok(item) => listing.items.push(Listed { place, path, item }),
                    Err(e) => listing.unreadable.push(Unreadable {
                        place,
                        path,
                        error: e.to_string(),
                    }),
                }
            }
        }
        Ok(listing)
    }

    /// The file an id names in `dir`, after checking the id cannot escape it.
    fn named(&self, dir: &Path, id: &str) -> Result<PathBuf, OutboxError> {
        let id = id.strip_suffix(".json").unwrap_or(id);
        let valid = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid {
            return Err(OutboxError::BadId(id.to_string()));
        }
        Ok(dir.join(format!("{id}.json")))
    }

    /// Puts a failed item back in the queue, due at `now_unix` (backoff and `max_age` start
    /// over). A queued item is made due at once. Returns the item as it is queued now.
    pub fn retry(&self, id: &str, now_unix: u64) -> Result<(Place, Item), OutboxError> {
        let queued = self.named(&self.queue, id)?;
        if queued.exists() {
            let mut claimed = self.claim_named(&queued, id)?;
            claimed.item.next_attempt_unix = now_unix;
            let item = claimed.item.clone();
            claimed.save().map_err(io_error(&queued))?;
            return Ok((Place::Queued, item));
        }
        let failed = self.named(&self.failed, id)?;
        let (lock, bytes) = lock_and_read(&failed, id)?;
        let mut item = parse(&bytes).map_err(|e| OutboxError::Unreadable {
            path: failed.clone(),
            error: e.to_string(),
        })?;
        item.requeued_unix = Some(now_unix);
        item.next_attempt_unix = now_unix;
        item.failed_reason = None;
        // Queue first, then unlink from failed/: a crash in between leaves a duplicate.
        fsutil::atomic_write(&queued, &to_json(&item)).map_err(io_error(&queued))?;
        std::fs::remove_file(&failed).map_err(io_error(&failed))?;
        fsutil::sync_dir(&self.failed).map_err(io_error(&self.failed))?;
        drop(lock);
        Ok((Place::Failed, item))
    }

    /// Discards a queued or failed item (even an unreadable one).
    pub fn drop_item(&self, id: &str) -> Result<Found, OutboxError> {
        let queued = self.named(&self.queue, id)?;
        if queued.exists() {
            let (lock, bytes) = lock_and_read(&queued, id)?;
            std::fs::remove_file(&queued).map_err(io_error(&queued))?;
            fsutil::sync_dir(&self.queue).map_err(io_error(&self.queue))?;
            drop(lock);
            return Ok(Found {
                place: Place::Queued,
                item: parse(&bytes).ok(),
            });
        }
        let failed = self.named(&self.failed, id)?;
        let (lock, bytes) = lock_and_read(&failed, id)?;
        std::fs::remove_file(&failed).map_err(io_error(&failed))?;
        fsutil::sync_dir(&self.failed).map_err(io_error(&self.failed))?;
        drop(lock);
        Ok(Found {
            place: Place::Failed,
            item: parse(&bytes).ok(),
        })
    }

    fn claim_named(&self, path: &Path, id: &str) -> Result<Claimed, OutboxError> {
        match self.claim(path).map_err(io_error(path))? {
            Claim::Claimed(claimed) => Ok(*claimed),
            Claim::Busy => Err(OutboxError::Busy(id.to_string())),
            Claim::Gone => Err(OutboxError::NotFound(id.to_string())),
            Claim::Corrupt {
                path,
                error,
                moved_to,
            } => Err(OutboxError::Unreadable {
                error: match moved_to {
                    Ok(to) => format!("{error}; moved to {}", to.display()),
                    Err(e) => format!("{error}; could not move it aside: {e}"),
                },
                path,
            }),
            Claim::Newer { path, version } => Err(OutboxError::Unreadable {
                path,
                error: format!("written by a newer postflight (item format {version})"),
            }),
        }
    }

    /// Removes temporary files that processes killed mid-write left behind.
    pub fn clean_stale_temp_files(&self) {
        for dir in [&self.queue, &self.failed] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let stale = entry.file_name().to_string_lossy().starts_with(".tmp-")
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age > STALE_TEMP_AGE);
                if stale {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Locks a file named by id (for `retry` and `drop`) and reads it.
fn lock_and_read(path: &Path, id: &str) -> Result<(File, Vec<u8>), OutboxError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OutboxError::NotFound(id.to_string()),
        _ => io_error(path)(e),
    })?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => return Err(OutboxError::Busy(id.to_string())),
        Err(fs4::TryLockError::Error(e)) => return Err(io_error(path)(e)),
    }
    // Still there after taking the lock? (It may have been delivered meanwhile.)
    if !path.exists() {
        return Err(OutboxError::NotFound(id.to_string()));
    }
    let mut bytes = Vec::new();
    (&file).read_to_end(&mut bytes).map_err(io_error(path))?;
    Ok((file, bytes))
}

/// `*.json` files in `dir` (not hidden temporary files), sorted by name. A missing directory
/// is an empty one.
fn item_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".json") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn to_json(item: &Item) -> Vec<u8> {
    serde_json::to_vec_pretty(item).expect("an outbox item always serializes")
}

/// Why bytes are not an item this build can use.
#[derive(Debug)]
enum Unparsed {
    Corrupt(String),
    Newer(u32),
}

impl std::fmt::Display for Unparsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unparsed::Corrupt(e) => f.write_str(e),
            Unparsed::Newer(v) => write!(f, "written by a newer postflight (item format {v})"),
        }
    }
}

fn parse(bytes: &[u8]) -> Result<Item, Unparsed> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Unparsed::Corrupt("the file is empty".to_string()));
    }
    match serde_json::from_slice::<Item>(bytes) {
        Ok(item) if item.version > ITEM_VERSION => Err(Unparsed::Newer(item.version)),
        Ok(item) => Ok(item),
        Err(e) => match serde_json::from_slice::<VersionOnly>(bytes) {
            Ok(v) if v.version > ITEM_VERSION => Err(Unparsed::Newer(v.version)),
            _ => Err(Unparsed::Corrupt(e.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::EmailParts;
    use crate::error::ErrorKind;

    const T0: u64 = 1_700_000_000;

    fn item(now: u64) -> Item {
        let email = Email::new(EmailParts {
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            subject: "s".into(),
            text: "t".into(),
        });
        Item::new(
            "task",
            "Task",
            Status::Failure,
            "main",
            Duration::from_secs(30),
            email,
            now,
        )
    }

    fn transient() -> DeliveryError {
        DeliveryError::transient(ErrorKind::Connect, "connection refused")
    }

    #[test]
    fn backoff_follows_the_schedule_with_bounded_jitter() {
        let mins = |m: u64| Duration::from_secs(m * 60);
        for (attempts, expected) in [
            (1, mins(1)),
            (2, mins(5)),
            (3, mins(30)),
            (4, mins(120)),
            (5, mins(360)),
            (6, mins(360)),
            (50, mins(360)),
        ] {
            assert_eq!(retry_delay(attempts, None, 0.5), expected, "{attempts}");
            let low = retry_delay(attempts, None, 0.0).as_secs_f64();
            let high = retry_delay(attempts, None, 0.999_999).as_secs_f64();
            let base = expected.as_secs_f64();
            assert!((low - base * 0.9).abs() < 1.0 && (high - base * 1.1).abs() < 1.0);
        }
        assert_eq!(retry_delay(1, Some(600), 0.5), mins(10), "Retry-After wins");
        assert_eq!(retry_delay(5, Some(600), 0.5), mins(360), "unless shorter");
        assert_eq!(
            retry_delay(1, Some(u64::MAX), 0.5),
            MAX_RETRY_AFTER,
            "capped"
        );
        let samples: Vec<f64> = (0..1000).map(|_| random_jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        let below = samples.iter().filter(|j| **j < 0.5).count();
        assert!(
            (400..600).contains(&below),
            "uniform: {below} of 1000 below 0.5"
        );
        assert!(samples.iter().any(|j| *j < 0.05) && samples.iter().any(|j| *j > 0.95));
    }

    #[test]
    fn transient_failures_back_off_until_max_age_then_expire() {
        let max_age = Duration::from_secs(24 * 3600);
        let mut it = item(T0);
        let mut now = T0;
        let mut delays = Vec::new();
        loop {
            match it.record_failure(transient(), now, max_age, 0.5) {
                Verdict::Retry { delay } => {
                    delays.push(delay.as_secs());
                    assert_eq!(it.next_attempt_unix, now + delay.as_secs());
                    assert!(!it.is_due(now) && it.is_due(it.next_attempt_unix));
                    now = it.next_attempt_unix;
                }
                Verdict::Expired => break,
                Verdict::Refused => panic!("transient"),
            }
        }
        assert_eq!(
            now,
            T0 + max_age.as_secs(),
            "the last attempt is at max_age"
        );
        assert_eq!(&delays[..5], &[60, 300, 1800, 7200, 21600]);
        let reason = it.failed_reason.as_deref().unwrap();
        assert!(reason.starts_with(&format!(
            "gave up after {} attempts over 1day",
            delays.len() + 1
        )));
        assert!(reason.ends_with("connection refused"), "{reason}");
    }

    #[test]
    fn a_permanent_failure_is_refused_at_once_with_the_reason() {
        let mut it = item(T0);
        let error =
            DeliveryError::permanent(ErrorKind::Auth, "bad password").with_reply("535 5.7.8 nope");
        assert_eq!(
            it.record_failure(error, T0, DEFAULT_MAX_AGE, 0.5),
            Verdict::Refused
        );
        assert_eq!(
            it.failed_reason.as_deref(),
            Some("bad password (server said: 535 5.7.8 nope)")
        );
    }

    #[test]
    fn a_requeued_item_starts_its_schedule_and_age_over() {
        let mut it = item(T0);
        for _ in 0..4 {
            it.record_failure(transient(), T0 + 10, DEFAULT_MAX_AGE, 0.5);
        }
        let later = T0 + 30 * 24 * 3600;
        it.requeued_unix = Some(later);
        assert_eq!(
            it.record_failure(transient(), later, DEFAULT_MAX_AGE, 0.5),
            Verdict::Retry {
                delay: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn enqueue_claim_and_the_lock_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        let claimed = outbox.enqueue(item(T0)).unwrap();
        let path = claimed.path().to_path_buf();
        assert!(matches!(outbox.claim(&path).unwrap(), Claim::Busy));
        drop(claimed);
        let Claim::Claimed(mut claimed) = outbox.claim(&path).unwrap() else {
            panic!("claimable once released")
        };
        claimed.item.next_attempt_unix = T0 + 60;
        claimed.save().unwrap();

        // A process that opened the file, then lost the race to one that delivered it.
        let early = File::open(&path).unwrap();
        let Claim::Claimed(claimed) = outbox.claim(&path).unwrap() else {
            panic!()
        };
        claimed.remove().unwrap();
        fs4::FileExt::try_lock(&early).unwrap();
        assert!(matches!(outbox.claim(&path).unwrap(), Claim::Gone));
        assert!(outbox.queued_files().unwrap().is_empty());
    }

    #[test]
    fn corrupt_files_are_moved_aside_and_newer_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        let good = outbox.enqueue(item(T0)).unwrap();
        let good_path = good.path().to_path_buf();
        drop(good);
        let bytes = std::fs::read(&good_path).unwrap();
        let torn = outbox.queue_dir().join("1600000001-torn.json");
        std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
        let empty = outbox.queue_dir().join("1600000002-empty.json");
        std::fs::write(&empty, b"").unwrap();
        let newer = outbox.queue_dir().join("1600000003-newer.json");
        std::fs::write(&newer, br#"{"version": 99, "future": true}"#).unwrap();
        std::fs::write(outbox.queue_dir().join(".tmp-abc"), b"partial").unwrap();

        let files = outbox.queued_files().unwrap();
        assert_eq!(
            files,
            vec![torn.clone(), empty.clone(), newer.clone(), good_path]
        );
        match outbox.claim(&torn).unwrap() {
            Claim::Corrupt { moved_to, .. } => {
                assert_eq!(
                    moved_to.unwrap(),
                    outbox.corrupt_dir().join("1600000001-torn.json")
                )
            }
            other => panic!("{other:?}"),
        }
        match outbox.claim(&empty).unwrap() {
            Claim::Corrupt { error, .. } => assert_eq!(error, "the file is empty"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            outbox.claim(&newer).unwrap(),
            Claim::Newer { version: 99, .. }
        ));
        assert!(newer.exists() && !torn.exists() && !empty.exists());
        assert_eq!(outbox.list().unwrap().items.len(), 1);
    }

    #[test]
    fn failed_items_can_be_retried_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        let mut claimed = outbox.enqueue(item(T0)).unwrap();
        let id = claimed.item.id.clone();
        let error = DeliveryError::permanent(ErrorKind::RecipientRejected, "no such user");
        claimed.item.record_failure(error, T0, DEFAULT_MAX_AGE, 0.5);
        let failed = claimed.move_to_failed().unwrap();
        assert!(failed.starts_with(outbox.failed_dir()));
        let listing = outbox.list().unwrap();
        assert_eq!(listing.items.len(), 1);
        assert_eq!(listing.items[0].place, Place::Failed);

        let (from, item) = outbox.retry(&id, T0 + 100).unwrap();
        assert_eq!(from, Place::Failed);
        assert_eq!(
            (item.requeued_unix, item.next_attempt_unix),
            (Some(T0 + 100), T0 + 100)
        );
        assert!(item.failed_reason.is_none() && !failed.exists());
        assert_eq!(outbox.list().unwrap().items[0].place, Place::Queued);

        assert!(matches!(
            outbox.retry("../etc/passwd", T0),
            Err(OutboxError::BadId(_))
        ));
        assert!(matches!(
            outbox.drop_item("1-nothing",),
            Err(OutboxError::NotFound(_))
        ));
        let found = outbox.drop_item(&id).unwrap();
        assert_eq!(found.place, Place::Queued);
        assert!(outbox.list().unwrap().items.is_empty());
    }
}

//! Per-task history on disk: `<state>/history/<task>.json`, written atomically. A missing or
//! unreadable file means "no history" (with a warning for the unreadable one), never a lost
//! notification.

use std::path::{Path, PathBuf};

use postflight_core::fsutil;
use postflight_policy::History;

use crate::app::Output;

/// The history file of a task. Task keys are used as file names after replacing anything
/// but letters, digits, `-`, `_` and `.`.
pub fn path(state_dir: &Path, task_key: &str) -> PathBuf {
    let safe: String = task_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    };
    state_dir.join("history").join(format!("{safe}.json"))
}

/// Reads a task's history.
pub fn load(state_dir: &Path, task_key: &str, out: &Output) -> History {
    let file = path(state_dir, task_key);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            out.warn(format!(
                "the history file {} is unreadable ({e}); treating this as the task's first run",
                file.display()
            ));
            History::default()
        }),
        Err(_) => History::default(),
    }
}

/// Writes a task's history atomically.
pub fn save(state_dir: &Path, task_key: &str, history: &History) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(history).expect("history always serializes");
    fsutil::atomic_write(&path(state_dir, task_key), &json)
}

/// Holds a task's history lock (`<state>/history/<task>.lock`, an OS file lock released when
/// the process dies) for a read-modify-write, so a run deciding the task's next notification
/// and a flush recording an older one's delivery never overwrite each other's update.
pub struct Guard {
    _lock: Option<std::fs::File>,
}

/// Waits for a task's history lock. Never fails: without a writable state directory the
/// history cannot be saved anyway, and the notification must go on (the save will warn).
pub fn lock(state_dir: &Path, task_key: &str) -> Guard {
    let lock_path = path(state_dir, task_key).with_extension("lock");
    let file = lock_path
        .parent()
        .map_or(Ok(()), fsutil::create_private_dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        })
        .and_then(|file| fs4::FileExt::lock(&file).map(|()| file));
    Guard { _lock: file.ok() }
}

//! Per-task history on disk: `<state>/history/<task>.json`, written atomically. A missing or
//! unreadable file means "no history" (with a warning for the unreadable one), never a lost
//! notification.

use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use postflight_core::fsutil;
use postflight_policy::History;
use sha2::{Digest, Sha256};

use crate::app::Output;

/// Bytes of a task key kept as they are in its file name: ASCII letters and digits, `-`, `_`
/// and `.`. Everything else, `%` included, is percent-encoded, so no two keys share a name.
const KEPT_AS_IS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Encoded names longer than this are cut and followed by a hash of the whole key, so the
/// name (hash, `.json`/`.lock` and an editor's backup suffix included) stays far below the
/// usual 255-byte limit.
const MAX_ENCODED_LEN: usize = 150;

/// The file name of a task's history without its extension: the key percent-encoded (a
/// leading `.` too, so no file is hidden), or, for an encoding longer than
/// [`MAX_ENCODED_LEN`], its first bytes, `~` and the SHA-256 of the key in hex. `~` is always
/// encoded in the first form, so the two forms never meet.
fn file_stem(task_key: &str) -> String {
    if task_key.is_empty() {
        // No key encodes to a lone `%` (`%` itself becomes `%25`).
        return "%".to_string();
    }
    let mut encoded = utf8_percent_encode(task_key, KEPT_AS_IS).to_string();
    if encoded.starts_with('.') {
        encoded.replace_range(..1, "%2E");
    }
    if encoded.len() <= MAX_ENCODED_LEN {
        return encoded;
    }
    // Cut on a boundary that does not split a `%XX` triplet (the text is all ASCII).
    let mut cut = MAX_ENCODED_LEN - 65;
    if let Some(percent) = encoded[cut.saturating_sub(2)..cut].rfind('%') {
        cut = cut - 2 + percent;
    }
    let digest = Sha256::digest(task_key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}~{hex}", &encoded[..cut])
}

/// The history file of a task: `<state>/history/<encoded key>.json` (see [`file_stem`]).
pub fn path(state_dir: &Path, task_key: &str) -> PathBuf {
    state_dir
        .join("history")
        .join(format!("{}.json", file_stem(task_key)))
}

/// The lock file of a task's history, named like [`path`].
fn lock_path(state_dir: &Path, task_key: &str) -> PathBuf {
    state_dir
        .join("history")
        .join(format!("{}.lock", file_stem(task_key)))
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
    let lock_path = lock_path(state_dir, task_key);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(key: &str) -> String {
        path(Path::new("/state"), key)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn keys_that_used_to_collide_get_their_own_files() {
        let keys = [
            "db dump",
            "db_dump",
            "db%20dump",
            "db%dump",
            "Büro",
            "B_ro",
            "B__ro",
            "a/b",
            "a_b",
            ".hidden",
            "_hidden",
            "%2Ehidden",
            "",
            "%",
            "~",
            "a~b",
        ];
        let names: std::collections::BTreeSet<String> = keys.iter().map(|k| name(k)).collect();
        assert_eq!(names.len(), keys.len(), "{names:?}");
        assert_eq!(name("daily-backup_2.x"), "daily-backup_2.x.json");
        assert_eq!(name("db dump"), "db%20dump.json");
        assert_eq!(name("Büro"), "B%C3%BCro.json");
        assert_eq!(name(".hidden"), "%2Ehidden.json");
        for key in keys {
            let n = name(key);
            assert!(!n.starts_with('.') && !n.contains('/'), "{n}");
        }
    }

    #[test]
    fn long_keys_are_cut_and_hashed_and_stay_distinct() {
        let long = "x".repeat(400);
        let longer = format!("{long}y");
        let spaced = " ".repeat(100);
        for key in [&long, &longer, &spaced] {
            let n = name(key);
            assert!(n.len() <= 220, "{} bytes: {n}", n.len());
            assert!(n.contains('~') && n.ends_with(".json"), "{n}");
        }
        assert_ne!(name(&long), name(&longer));
        // A cut never splits a `%20`.
        let stem = name(&spaced);
        let prefix = stem.split('~').next().unwrap();
        assert_eq!(prefix, "%20".repeat(prefix.len() / 3), "{stem}");
        let state = Path::new("/state");
        assert_eq!(
            lock_path(state, &long).file_stem(),
            path(state, &long).file_stem()
        );
    }

    #[test]
    fn a_long_key_is_saved_locked_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = "k".repeat(400);
        let history = History {
            consecutive_failures: 3,
            ..History::default()
        };
        let _guard = lock(dir.path(), &key);
        save(dir.path(), &key, &history).unwrap();
        let read = load(
            dir.path(),
            &key,
            &Output {
                quiet: true,
                verbose: false,
            },
        );
        assert_eq!(read.consecutive_failures, 3);
        assert!(lock_path(dir.path(), &key).exists());
    }
}

//! The catalogue of template values, and the [`Values`] that fill them in.

use std::collections::BTreeMap;

/// One template value in the catalogue: what `##Name##` can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueInfo {
    /// The canonical name, as written between `##` and `##` (matched case-insensitively).
    pub name: &'static str,
    /// A one-sentence description of the value, for `postflight templates`.
    pub description: &'static str,
    /// A realistic example of the value, used by [`Values::sample`] and for previews.
    pub sample: &'static str,
}

/// Every value, in the order `postflight templates` lists them.
///
/// Names are unique, ASCII, and made only of letters and single spaces.
pub const CATALOGUE: &[ValueInfo] = &[
    ValueInfo {
        name: "Task Name",
        description: "The task's `name` from its [tasks.KEY] table, else the key (`--task`, or the command's file name).",
        sample: "nightly-backup",
    },
    ValueInfo {
        name: "Exit Status",
        description: "The outcome as a short phrase: \"Succeeded\", \"Succeeded with warnings\" or \"Failed\".",
        sample: "Failed",
    },
    ValueInfo {
        name: "Exit Code",
        description: "The task's exit code; for a task killed by signal N, 128+N (124 after --timeout, 127/126 when it could not start), as a shell reports it.",
        sample: "23",
    },
    ValueInfo {
        name: "Exit Reason",
        description: "How the task ended, in words, e.g. \"exited with code 2\", \"killed by signal 9 (SIGKILL)\", \"timed out after 1h\" or \"could not start: No such file or directory\".",
        sample: "exited with code 23",
    },
    ValueInfo {
        name: "Computer Name",
        description: "The name of the computer the task ran on.",
        sample: "db1.example.com",
    },
    ValueInfo {
        name: "User Name",
        description: "The user the task ran as.",
        sample: "backup",
    },
    ValueInfo {
        name: "Start Time",
        description: "When the task started (local time).",
        sample: "2025-03-14 02:00:03 +01:00",
    },
    ValueInfo {
        name: "End Time",
        description: "When the task ended (local time).",
        sample: "2025-03-14 02:17:45 +01:00",
    },
    ValueInfo {
        name: "Elapsed Time",
        description: "How long the task ran.",
        sample: "17m 42s",
    },
    ValueInfo {
        name: "Command",
        description: "The command that was run, with its arguments.",
        sample: "/usr/local/bin/backup.sh --full /srv/data",
    },
    ValueInfo {
        name: "Output",
        description: "The last part of everything the task printed (standard output and standard error, interleaved).",
        sample: "sending incremental file list\n\
                 rsync: [sender] link_stat \"/srv/data/tmp/lock\" failed: No such file or directory (2)\n\
                 sent 1,203,114 bytes  received 4,871 bytes  2,415,970.00 bytes/sec\n\
                 rsync error: some files/attrs were not transferred (see previous errors) (code 23)\n",
    },
    ValueInfo {
        name: "Error Output",
        description: "The last part of what the task printed on standard error.",
        sample: "rsync: [sender] link_stat \"/srv/data/tmp/lock\" failed: No such file or directory (2)\n\
                 rsync error: some files/attrs were not transferred (see previous errors) (code 23)\n",
    },
    ValueInfo {
        name: "Output Size",
        description: "How much the task printed in total, standard output and standard error together, including anything cut from Output.",
        sample: "1.2 MB (1234567 bytes)",
    },
    ValueInfo {
        name: "Previous Status",
        description: "The Exit Status of the previous run of this task; empty if this is its first run.",
        sample: "Succeeded",
    },
    ValueInfo {
        name: "Failure Count",
        description: "How many runs of this task in a row have failed, including this one; 0 if this run did not fail.",
        sample: "1",
    },
    ValueInfo {
        name: "Working Directory",
        description: "The directory the task ran in.",
        sample: "/srv/backup",
    },
];

/// Finds the catalogue entry that `name` refers to, ignoring ASCII case, leading and
/// trailing spaces, and runs of spaces between words.
pub(crate) fn lookup(name: &str) -> Option<&'static ValueInfo> {
    let normalised = normalise(name);
    CATALOGUE
        .iter()
        .find(|info| info.name.eq_ignore_ascii_case(&normalised))
}

/// Collapses runs of spaces to one and trims them from both ends.
fn normalise(name: &str) -> String {
    name.split(' ')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Well-known names people try, and the catalogue value they mean.
const ALIASES: &[(&str, &str)] = &[
    ("hostname", "Computer Name"),
    ("host", "Computer Name"),
    ("host name", "Computer Name"),
    ("server", "Computer Name"),
    ("machine", "Computer Name"),
    ("duration", "Elapsed Time"),
    ("runtime", "Elapsed Time"),
    ("stdout", "Output"),
    ("stderr", "Error Output"),
    ("cwd", "Working Directory"),
    ("pwd", "Working Directory"),
    ("dir", "Working Directory"),
];

/// The least similarity for a suggestion to be offered.
const SUGGESTION_THRESHOLD: f64 = 0.8;

/// The catalogue name closest to the unknown `name`, if any is close enough to be a useful
/// suggestion.
///
/// Similarity is the Jaro-Winkler score, taken both with and without spaces (so `exitcode`
/// finds Exit Code); a name that is one whole word of a catalogue name (`status`) or a
/// well-known alias (`hostname`) also counts as close.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    let wanted = normalise(name).to_lowercase();
    if wanted.is_empty() {
        return None;
    }
    if let Some((_, target)) = ALIASES.iter().find(|(alias, _)| *alias == wanted) {
        return Some(target);
    }
    let wanted_compact = wanted.replace(' ', "");
    let mut best: Option<(f64, &'static str)> = None;
    for info in CATALOGUE {
        let candidate = info.name.to_ascii_lowercase();
        let candidate_compact = candidate.replace(' ', "");
        let mut score = strsim::jaro_winkler(&wanted, &candidate)
            .max(strsim::jaro_winkler(&wanted_compact, &candidate_compact));
        if wanted.len() >= 3 && candidate.split(' ').any(|word| word == wanted) {
            score = score.max(0.85);
        }
        if score >= SUGGESTION_THRESHOLD && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, info.name));
        }
    }
    best.map(|(_, name)| name)
}

/// Values to substitute, keyed by catalogue name (looked up case-insensitively).
///
/// A value that is not set renders as the empty string. Values are stored verbatim: a value
/// may contain newlines, and it is up to the header layer to keep them out of headers.
#[derive(Debug, Clone, Default)]
pub struct Values {
    values: BTreeMap<&'static str, String>,
}

impl Values {
    /// An empty set of values: every reference renders as the empty string.
    pub fn new() -> Values {
        Values::default()
    }

    /// Sets the value called `name` (matched like a `##Name##` reference: ignoring case and
    /// extra spaces), replacing any earlier value.
    ///
    /// # Panics
    ///
    /// If `name` is not a catalogue name: that is a programming error, not a user error.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        let info = lookup(name);
        assert!(
            info.is_some(),
            "{name:?} is not a template value in postflight_template::CATALOGUE"
        );
        if let Some(info) = info {
            self.values.insert(info.name, value.into());
        }
        self
    }

    /// The value called `name` (matched ignoring case and extra spaces), if it has been set.
    ///
    /// Returns `None` both for a value that was not set and for a name that is not in the
    /// catalogue.
    pub fn get(&self, name: &str) -> Option<&str> {
        let info = lookup(name)?;
        self.values.get(info.name).map(String::as_str)
    }

    /// Every catalogue value set to its [`ValueInfo::sample`], for previews and tests.
    pub fn sample() -> Values {
        let mut values = Values::new();
        for info in CATALOGUE {
            values.set(info.name, info.sample);
        }
        values
    }
}

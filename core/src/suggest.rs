//! "Did you mean" suggestions for misspelt names (config keys, transports, template values).

/// The candidate closest to `wanted`, if any is close enough to be a plausible typo: a
/// Jaro-Winkler similarity of 0.8 or more, or (for short names, where Jaro-Winkler is harsh)
/// at most one edit per three characters, transpositions counting as one.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted = wanted.to_lowercase();
    let max_edits = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let c = candidate.to_lowercase();
            let similarity = strsim::jaro_winkler(&wanted, &c);
            let edits = strsim::damerau_levenshtein(&wanted, &c);
            (similarity >= 0.8 || edits <= max_edits).then_some((similarity, candidate))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_close_names_only() {
        for (wanted, expected) in [
            ("smpt", Some("smtp")),
            ("dri", Some("dir")),
            ("zzz", None),
            ("sendmial", Some("sendmail")),
        ] {
            assert_eq!(
                closest(wanted, ["smtp", "file", "sendmail", "dir"]).as_deref(),
                expected,
                "{wanted}"
            );
        }
    }
}

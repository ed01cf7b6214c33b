//! "Did you mean" suggestions for misspelt names (config keys, transports, template values).

/// The candidate closest to `wanted`, if any is close enough to be a plausible typo.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted = wanted.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wanted, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            closest("smpt", ["smtp", "file", "sendmail"]),
            Some("smtp".into())
        );
        assert_eq!(closest("zzz", ["smtp", "file"]), None);
    }
}

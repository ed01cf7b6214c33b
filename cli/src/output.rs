//! Writing results to stdout. A closed stdout (`postflight plugins | head`) is not an error.

use std::io::Write;

/// Prints text to stdout, ignoring a broken pipe.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Prints a value as pretty JSON plus a newline.
pub fn print_json<T: serde::Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("our JSON types always serialize");
    text.push('\n');
    print(&text);
}

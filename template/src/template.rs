//! Parsing and rendering of `##Name##` templates.

use std::fmt;

use crate::catalogue::{lookup, suggest, Values};

/// The longest name, in chars, that `##Name##` can hold; anything longer is literal text.
const MAX_NAME_CHARS: usize = 64;

/// A parsed template: literal text interleaved with references to catalogue values.
///
/// Every reference in a `Template` names a catalogue value, so rendering cannot fail.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// One piece of a parsed template.
#[derive(Debug, Clone)]
enum Piece {
    /// Text copied to the output as it is.
    Text(String),
    /// A reference to the catalogue value with this canonical name.
    Value(&'static str),
}

impl Template {
    /// Parses `source`.
    ///
    /// `##Name##` is a reference when Name is 1 to 64 characters on one line, made of
    /// letters, digits, spaces, `_` and `-`, with at least one letter. Names match catalogue
    /// names ignoring case and extra spaces: `##task name##` and `## Task  Name ##` both mean
    /// Task Name. Any other text, including every `#` that does not start a reference
    /// (`# note`, `####`, a lone `##`, `## not closed`), is copied literally.
    ///
    /// # Errors
    ///
    /// The first reference to a name that is not in the catalogue, with where it is and the
    /// closest real name, if one is close.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let (mut line, mut column) = (1, 1);
        let mut rest = source;
        while let Some(c) = rest.chars().next() {
            if let Some((name, len)) = reference_at(rest) {
                let Some(info) = lookup(name) else {
                    return Err(TemplateError {
                        found: name.to_string(),
                        line,
                        column,
                        suggestion: suggest(name),
                    });
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Value(info.name));
                // A reference is all on one line, and all of it but the name is ASCII.
                column += name.chars().count() + 4;
                rest = &rest[len..];
                continue;
            }
            text.push(c);
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
            rest = &rest[c.len_utf8()..];
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// Renders the template with `values`. A value that is not set renders as the empty
    /// string; values are inserted verbatim, newlines and all.
    pub fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Value(name) => out.push_str(values.get(name).unwrap_or("")),
            }
        }
        out
    }
}

/// If `s` starts with a `##Name##` reference, returns the name as written (between the
/// `##`s) and the length of the whole reference in bytes.
fn reference_at(s: &str) -> Option<(&str, usize)> {
    let after_open = s.strip_prefix("##")?;
    let mut chars = 0;
    let mut has_letter = false;
    let mut name_len = after_open.len();
    for (i, c) in after_open.char_indices() {
        if !(c.is_alphanumeric() || c == ' ' || c == '_' || c == '-') {
            name_len = i;
            break;
        }
        chars += 1;
        has_letter |= c.is_alphabetic();
        if chars > MAX_NAME_CHARS {
            return None;
        }
    }
    let (name, after_name) = after_open.split_at(name_len);
    if !has_letter || !after_name.starts_with("##") {
        return None;
    }
    Some((name, name_len + 4))
}

/// A reference to a value that is not in the catalogue, such as `##Taks Name##`.
///
/// Its `Display` text is a complete message for the user, e.g. ``unknown template value
/// ##Taks Name## at line 1, column 5; did you mean ##Task Name##? (run `postflight
/// templates` for the list)``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The name as written between the `##`s, spaces and case preserved.
    pub found: String,
    /// The line of the opening `##`, counting from 1 (lines end with `\n`).
    pub line: usize,
    /// The column of the opening `##` within its line, counting from 1, in chars (not
    /// bytes).
    pub column: usize,
    /// The catalogue name the user probably meant, if one is close enough.
    pub suggestion: Option<&'static str>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown template value ##{}## at line {}, column {}",
            self.found, self.line, self.column
        )?;
        if let Some(suggestion) = self.suggestion {
            write!(f, "; did you mean ##{suggestion}##?")?;
        }
        f.write_str(" (run `postflight templates` for the list)")
    }
}

impl std::error::Error for TemplateError {}

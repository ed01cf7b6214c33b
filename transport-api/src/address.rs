//! Mailboxes as the providers want them: `Name <addr>` split into its parts (SendGrid), put
//! back together with the quoting RFC 5322 needs (comma-joined lists), and header text made
//! ASCII with RFC 2047 encoded-words where an API passes headers through unencoded.

use base64::Engine as _;
use postflight_core::{DeliveryError, ErrorKind};

/// One mailbox: an optional display name and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, unquoted (`Doe, John`), when there is one.
    pub name: Option<String>,
    /// The address, `local@domain`.
    pub email: String,
}

impl Mailbox {
    /// Parses `addr`, `<addr>`, `Name <addr>` or `"Quoted, Name" <addr>`.
    ///
    /// `role` ("sender", "recipient") words the error when the text is not an address.
    pub fn parse(text: &str, role: &str) -> Result<Mailbox, DeliveryError> {
        let text = text.trim();
        let (name, email) = match (text.rfind('<'), text.ends_with('>')) {
            (Some(open), true) => {
                let name = unquote(text[..open].trim());
                (
                    (!name.is_empty()).then_some(name),
                    text[open + 1..text.len() - 1].trim(),
                )
            }
            _ => (None, text),
        };
        if !is_plausible_address(email) {
            return Err(DeliveryError::permanent(
                if role == "sender" {
                    ErrorKind::SenderRejected
                } else {
                    ErrorKind::RecipientRejected
                },
                format!("the {role} address '{text}' is not an email address"),
            )
            .with_hint(if role == "sender" {
                "set the account's `from` to `Name <user@example.com>` or `user@example.com`"
            } else {
                "write recipients as `user@example.com` or `Name <user@example.com>`, separated by commas"
            }));
        }
        Ok(Mailbox {
            name,
            email: email.to_string(),
        })
    }

    /// `Name <addr>` with the name quoted when RFC 5322 requires it (so a comma in a name
    /// cannot split a comma-joined list), or the bare address.
    pub fn to_header(&self) -> String {
        match &self.name {
            Some(name) => format!("{} <{}>", quote_phrase(name), self.email),
            None => self.email.clone(),
        }
    }

    /// Like [`to_header`](Self::to_header) but ASCII only: a non-ASCII name becomes an RFC 2047
    /// encoded-word (what SES requires in its address fields).
    pub fn to_ascii_header(&self) -> String {
        match &self.name {
            Some(name) if !name.is_ascii() => format!("{} <{}>", encode_word(name), self.email),
            _ => self.to_header(),
        }
    }
}

/// Parses every recipient; the first bad one is the error.
pub fn parse_all(list: &[String]) -> Result<Vec<Mailbox>, DeliveryError> {
    list.iter()
        .map(|r| Mailbox::parse(r, "recipient"))
        .collect()
}

/// `local@domain` with no spaces or angle brackets. Deliberately loose: the provider has the
/// final word, this only catches text that is plainly not an address.
fn is_plausible_address(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
}

fn unquote(name: &str) -> String {
    match name
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => name.to_string(),
    }
}

/// Quotes a display name unless it is all atext and spaces (RFC 5322 `phrase`).
fn quote_phrase(name: &str) -> String {
    let atext = |c: char| {
        c.is_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
    };
    if name.chars().all(atext) {
        name.to_string()
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }
}

/// Makes a header value ASCII: unchanged when it already is, else one or more RFC 2047
/// `=?UTF-8?B?...?=` words (each under the 75-character limit, split on char boundaries).
pub fn encode_header_value(value: &str) -> String {
    if value.is_ascii() {
        value.to_string()
    } else {
        encode_word(value)
    }
}

fn encode_word(text: &str) -> String {
    // 75 chars per word minus "=?UTF-8?B?" and "?=" leaves 63 base64 chars = 45 bytes.
    const MAX_BYTES: usize = 45;
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + MAX_BYTES).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let chunk = &text.as_bytes()[start..end];
        words.push(format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(chunk)
        ));
        start = end;
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, email: &str) -> Mailbox {
        Mailbox {
            name: name.map(str::to_string),
            email: email.into(),
        }
    }

    #[test]
    fn parses_the_forms_core_produces() {
        let cases = [
            ("a@example.com", mb(None, "a@example.com")),
            ("<a@example.com>", mb(None, "a@example.com")),
            (
                "Backups <backups@example.com>",
                mb(Some("Backups"), "backups@example.com"),
            ),
            (
                "\"Doe, John\" <j@example.com>",
                mb(Some("Doe, John"), "j@example.com"),
            ),
            (
                "\"say \\\"hi\\\"\" <j@example.com>",
                mb(Some("say \"hi\""), "j@example.com"),
            ),
            ("Jörg <j@example.de>", mb(Some("Jörg"), "j@example.de")),
        ];
        for (text, want) in cases {
            assert_eq!(Mailbox::parse(text, "recipient").unwrap(), want, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in ["", "nobody", "a b@c", "@example.com", "a@", "Name <>"] {
            let e = Mailbox::parse(bad, "sender").unwrap_err();
            assert_eq!(e.kind, ErrorKind::SenderRejected, "{bad}");
            assert!(e.permanent);
        }
        let e = Mailbox::parse("x", "recipient").unwrap_err();
        assert_eq!(e.kind, ErrorKind::RecipientRejected);
    }

    #[test]
    fn formats_with_quoting_only_when_needed() {
        assert_eq!(mb(None, "a@x").to_header(), "a@x");
        assert_eq!(mb(Some("Ops Team"), "a@x").to_header(), "Ops Team <a@x>");
        assert_eq!(
            mb(Some("Doe, John"), "a@x").to_header(),
            "\"Doe, John\" <a@x>"
        );
        assert_eq!(
            mb(Some("a \"b\""), "a@x").to_header(),
            "\"a \\\"b\\\"\" <a@x>"
        );
        assert_eq!(mb(Some("Jörg"), "a@x").to_header(), "Jörg <a@x>");
        assert_eq!(
            mb(Some("Jörg"), "a@x").to_ascii_header(),
            "=?UTF-8?B?SsO2cmc=?= <a@x>"
        );
    }

    #[test]
    fn encoded_words_stay_short_and_split_on_char_boundaries() {
        assert_eq!(encode_header_value("auto-generated"), "auto-generated");
        let long = "Sauvegarde terminée — ".repeat(6);
        let encoded = encode_header_value(&long);
        let mut decoded = Vec::new();
        for word in encoded.split(' ') {
            assert!(word.len() <= 75, "{word}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            assert!(std::str::from_utf8(&bytes).is_ok(), "word splits a char");
            decoded.extend(bytes);
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), long);
    }
}

//! Mailboxes as the providers want them, on lettre's [`Mailbox`]: its RFC 5322 parser, its
//! `name`/`email` parts (SendGrid wants them split) and its `Display`, which quotes a display
//! name where RFC 5322 requires it (so a comma in a name cannot split a comma-joined list).
//! Header text an API passes through unencoded is made ASCII with the RFC 2047 encoder of
//! the `email-encoding` crate, the one lettre itself uses.

use email_encoding::headers::{rfc2047, writer::EmailWriter};
pub use lettre::message::Mailbox;
use postflight_core::email::single_line;
use postflight_core::{DeliveryError, ErrorKind};

/// Parses `addr`, `<addr>`, `Name <addr>` or `"Quoted, Name" <addr>` (RFC 5322 `mailbox`).
///
/// `role` ("sender", "recipient") words the error when the text is not an address.
pub fn parse(text: &str, role: &str) -> Result<Mailbox, DeliveryError> {
    // One line, as core already makes it: lettre's `Display` cannot write a name with CR/LF.
    let text = single_line(text);
    let mut mailbox = text.parse::<Mailbox>().map_err(|_| {
        DeliveryError::permanent(
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
        })
    })?;
    // `"" <addr>` has a name in the grammar but none to show.
    mailbox.name = mailbox.name.filter(|name| !name.trim().is_empty());
    Ok(mailbox)
}

/// Parses every recipient; the first bad one is the error.
pub fn parse_all(list: &[String]) -> Result<Vec<Mailbox>, DeliveryError> {
    list.iter().map(|r| parse(r, "recipient")).collect()
}

/// The mailbox as header text, ASCII only: a non-ASCII name becomes RFC 2047 encoded-words
/// (what SES requires in its address fields); otherwise lettre's RFC 5322 form.
pub fn to_ascii_header(mailbox: &Mailbox) -> String {
    match &mailbox.name {
        Some(name) if !name.is_ascii() => {
            format!("{} <{}>", encode_header_value(name), mailbox.email)
        }
        _ => mailbox.to_string(),
    }
}

/// Makes a header value ASCII: unchanged when it already is, else one or more RFC 2047
/// `=?utf-8?b?...?=` words (each within the 75-character limit, split on char boundaries).
pub fn encode_header_value(value: &str) -> String {
    if value.is_ascii() {
        return value.to_string();
    }
    let mut encoded = String::new();
    rfc2047::encode(value, &mut EmailWriter::new(&mut encoded, 0, 0, false))
        .expect("writing to a String cannot fail");
    // The encoder folds long values onto continuation lines, as a header needs; an API field
    // holds one line, so unfold (RFC 5322 section 2.2.3), which keeps the words apart.
    encoded.replace("\r\n", "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn mb(name: Option<&str>, email: &str) -> Mailbox {
        Mailbox::new(name.map(str::to_string), email.parse().unwrap())
    }

    #[test]
    fn parses_the_forms_core_produces() {
        let cases = [
            ("a@example.com", mb(None, "a@example.com")),
            ("<a@example.com>", mb(None, "a@example.com")),
            ("\"\" <a@example.com>", mb(None, "a@example.com")),
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
            assert_eq!(parse(text, "recipient").unwrap(), want, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in ["", "nobody", "a b@c", "@example.com", "a@", "Name <>"] {
            let e = parse(bad, "sender").unwrap_err();
            assert_eq!(e.kind, ErrorKind::SenderRejected, "{bad}");
            assert!(e.permanent);
        }
        let e = parse("x", "recipient").unwrap_err();
        assert_eq!(e.kind, ErrorKind::RecipientRejected);
    }

    #[test]
    fn formats_with_quoting_only_when_needed() {
        assert_eq!(mb(None, "a@x").to_string(), "a@x");
        assert_eq!(mb(Some("Ops Team"), "a@x").to_string(), "Ops Team <a@x>");
        assert_eq!(
            mb(Some("Doe, John"), "a@x").to_string(),
            "\"Doe, John\" <a@x>"
        );
        assert_eq!(
            mb(Some("a \"b\""), "a@x").to_string(),
            "\"a \\\"b\\\"\" <a@x>"
        );
        assert_eq!(mb(Some("Jörg"), "a@x").to_string(), "Jörg <a@x>");
        assert_eq!(
            to_ascii_header(&mb(Some("Ops Team"), "a@x")),
            "Ops Team <a@x>"
        );
        // RFC 2047 charset and encoding names are case-insensitive; email-encoding writes
        // them in lower case.
        assert_eq!(
            to_ascii_header(&mb(Some("Jörg"), "a@x")),
            "=?utf-8?b?SsO2cmc=?= <a@x>"
        );
    }

    #[test]
    fn encoded_words_stay_short_and_split_on_char_boundaries() {
        assert_eq!(encode_header_value("auto-generated"), "auto-generated");
        let long = "Sauvegarde terminée — ".repeat(6);
        let encoded = encode_header_value(&long);
        assert!(!encoded.contains(['\r', '\n']), "{encoded}");
        let mut decoded = Vec::new();
        for word in encoded.split(' ') {
            assert!(word.len() <= 75, "{word}");
            let b64 = word
                .strip_prefix("=?utf-8?b?")
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

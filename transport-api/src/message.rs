//! The parts of an [`Email`] every provider sends, checked once: sender and recipients parsed,
//! the headers the API may carry, and bodies that satisfy the providers' "non-empty" rules.

use postflight_core::{DeliveryError, Email};

use crate::address::{self, Mailbox};

/// Subject used when the rendered subject is empty (every provider requires one).
const EMPTY_SUBJECT: &str = "(no subject)";

/// An email ready to be put into a provider's request.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The sender.
    pub from: Mailbox,
    /// The recipients, never empty.
    pub to: Vec<Mailbox>,
    /// The subject, never empty.
    pub subject: &'a str,
    /// The text/plain body, never empty.
    pub text: &'a str,
    /// Extra headers in order: `Message-ID` first (when asked for), then the email's own
    /// (`Auto-Submitted`), minus any the provider reserves. Values are raw Unicode.
    pub headers: Vec<(&'a str, &'a str)>,
}

/// Which extra headers a provider accepts.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPolicy {
    /// Send the email's `Message-ID` (stable across retries) as a custom header.
    pub message_id: bool,
    /// Header names the API refuses or sets itself (compared case-insensitively).
    pub reserved: &'static [&'static str],
}

/// Headers no provider lets a custom-header field set: the API builds them from its own fields.
pub const ADDRESS_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "sender",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "date",
];

impl<'a> Outgoing<'a> {
    /// Parses and checks `email` for a provider with the given header policy.
    pub fn new(email: &'a Email, policy: HeaderPolicy) -> Result<Outgoing<'a>, DeliveryError> {
        let from = address::parse(&email.from, "sender")?;
        let to = address::parse_all(&email.to)?;
        if to.is_empty() {
            return Err(DeliveryError::permanent(
                postflight_core::ErrorKind::RecipientRejected,
                "the email has no recipient",
            )
            .with_hint("give at least one address in `to`"));
        }
        let reserved = |name: &str| {
            ADDRESS_HEADERS
                .iter()
                .chain(policy.reserved)
                .any(|r| r.eq_ignore_ascii_case(name))
        };
        let mut headers = Vec::new();
        if policy.message_id && !email.message_id.is_empty() {
            headers.push(("Message-ID", email.message_id.as_str()));
        }
        for header in &email.headers {
            let name = header.name.as_str();
            if reserved(name)
                || name.eq_ignore_ascii_case("message-id")
                || headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                continue;
            }
            headers.push((name, header.value.as_str()));
        }
        Ok(Outgoing {
            from,
            to,
            subject: if email.subject.trim().is_empty() {
                EMPTY_SUBJECT
            } else {
                &email.subject
            },
            // Every provider refuses an empty text part; a lone newline reads as empty.
            text: if email.text.is_empty() {
                "\n"
            } else {
                &email.text
            },
            headers,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use postflight_core::Header;

    /// A typical notification for unit tests.
    pub fn email() -> Email {
        Email {
            message_id: "<abc.postflight@host.example>".into(),
            date: "Fri, 04 Dec 2026 16:23:56 +0000".into(),
            from: "Backups <backups@example.com>".into(),
            to: vec!["ops@example.com".into(), "Bob <bob@example.org>".into()],
            subject: "host: Daily Backup: Failed".into(),
            text: "it broke\n".into(),
            headers: vec![Header {
                name: "Auto-Submitted".into(),
                value: "auto-generated".into(),
            }],
            idempotency_key: "abc".into(),
        }
    }

    #[test]
    fn headers_keep_message_id_first_and_drop_reserved_and_duplicates() {
        let mut email = email();
        email.headers.push(Header {
            name: "Reply-To".into(),
            value: "x@example.com".into(),
        });
        email.headers.push(Header {
            name: "message-id".into(),
            value: "<other@x>".into(),
        });
        email.headers.push(Header {
            name: "auto-submitted".into(),
            value: "twice".into(),
        });
        let policy = HeaderPolicy {
            message_id: true,
            reserved: &[],
        };
        let out = Outgoing::new(&email, policy).unwrap();
        assert_eq!(
            out.headers,
            vec![
                ("Message-ID", "<abc.postflight@host.example>"),
                ("Auto-Submitted", "auto-generated")
            ]
        );
        let policy = HeaderPolicy {
            message_id: false,
            reserved: &["auto-submitted"],
        };
        assert!(Outgoing::new(&email, policy).unwrap().headers.is_empty());
    }

    #[test]
    fn empty_subject_and_body_get_placeholders() {
        let mut email = email();
        email.subject = " ".into();
        email.text = String::new();
        let policy = HeaderPolicy {
            message_id: true,
            reserved: &[],
        };
        let out = Outgoing::new(&email, policy).unwrap();
        assert_eq!(out.subject, "(no subject)");
        assert_eq!(out.text, "\n");
    }
}

//! The rendered email as it crosses the plugin boundary, and what a transport answers.
//!
//! Values here are already safe to put in headers: [`Email::new`] folds every line break and
//! control character in header values into a space, so nothing a task prints can add a header.

use serde::{Deserialize, Serialize};

/// Headers every notification carries in addition to From/To/Subject/Date/Message-ID.
pub const AUTO_SUBMITTED: (&str, &str) = ("Auto-Submitted", "auto-generated");

/// One extra header. Names are plain ASCII tokens; values are single-line text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header field name, e.g. `Auto-Submitted`.
    pub name: String,
    /// Header value (Unicode allowed; transports encode it).
    pub value: String,
}

/// A fully rendered notification (plugin ABI v1 "email" object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// `<unique@host>`; stays the same on every retry.
    pub message_id: String,
    /// RFC 2822 date of when the notification was created.
    pub date: String,
    /// Sender, `Name <addr>` or `addr`.
    pub from: String,
    /// Recipients, each `Name <addr>` or `addr`; never empty.
    pub to: Vec<String>,
    /// Single-line subject (Unicode allowed).
    pub subject: String,
    /// The text/plain body, UTF-8, `\n` line ends.
    pub text: String,
    /// Extra headers, at least `Auto-Submitted: auto-generated`.
    pub headers: Vec<Header>,
    /// Key that API transports send as an idempotency key; stable across retries.
    pub idempotency_key: String,
}

/// Everything needed to build an [`Email`].
#[derive(Debug, Clone)]
pub struct EmailParts {
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject, may contain line breaks (they are folded).
    pub subject: String,
    /// Body text.
    pub text: String,
}

impl Email {
    /// Builds an email with a fresh Message-ID, the current date and the standard headers.
    ///
    /// Line breaks and control characters in the subject become spaces; the body keeps its
    /// lines (CRLF and lone CR become LF).
    pub fn new(parts: EmailParts) -> Email {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let host = message_id_host();
        Email {
            message_id: format!("<{id}.postflight@{host}>"),
            date: httpdate_rfc2822_now(),
            from: single_line(&parts.from),
            to: parts.to.iter().map(|a| single_line(a)).collect(),
            subject: single_line(&parts.subject),
            text: normalize_newlines(&parts.text),
            headers: vec![Header {
                name: AUTO_SUBMITTED.0.to_string(),
                value: AUTO_SUBMITTED.1.to_string(),
            }],
            idempotency_key: id,
        }
    }
}

/// What a transport returns when the server accepted the message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The Message-ID that was sent.
    #[serde(default)]
    pub message_id: String,
    /// The server's queue id or the provider's message id, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The server's final reply, for the log (e.g. `250 2.0.0 Ok: queued as ABC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Where the message went when that is a place the operator can look (the file transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Recipients the server refused while it accepted the message for the others. The
    /// message counts as delivered; the host reports these so the address can be fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedRecipient>,
}

impl Receipt {
    /// The recipients of `email` the server did not refuse: a recipient is refused when its
    /// bare address equals a refused one, ignoring case (refusing `bob@x` leaves `jimbob@x`).
    pub fn accepted<'a>(&self, email: &'a Email) -> Vec<&'a str> {
        email
            .to
            .iter()
            .map(String::as_str)
            .filter(|to| {
                !self
                    .refused
                    .iter()
                    .any(|r| same_address(bare_address(to), bare_address(&r.address)))
            })
            .collect()
    }
}

/// The address of a mailbox as written: the part inside the last `<...>` when there is one
/// (`Bob <bob@x>`), else the whole, trimmed.
fn bare_address(mailbox: &str) -> &str {
    let inner = mailbox.rfind('<').and_then(|open| {
        let rest = &mailbox[open + 1..];
        rest.find('>').map(|close| &rest[..close])
    });
    inner.unwrap_or(mailbox).trim()
}

fn same_address(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// A recipient refused by the server while others were accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRecipient {
    /// The address as sent in the envelope.
    pub address: String,
    /// The server's reply to it (e.g. `550 5.1.1 <bob@example.com>: user unknown`).
    pub reply: String,
}

/// Replaces every control character (CR and LF included) with a space and trims the ends.
pub fn single_line(value: &str) -> String {
    let folded: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    folded.trim().to_string()
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn message_id_host() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let clean: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}

/// The current time as an RFC 2822 date in UTC (`Fri, 04 Dec 2026 16:23:56 +0000`).
fn httpdate_rfc2822_now() -> String {
    // httpdate gives the IMF-fixdate form (`... GMT`), which is also a valid RFC 2822 date;
    // spell the zone numerically as mail software prefers.
    httpdate::fmt_http_date(std::time::SystemTime::now()).replace(" GMT", " +0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_cannot_carry_line_breaks() {
        let email = Email::new(EmailParts {
            from: "a@example.com".into(),
            to: vec!["b@example.com\r\nBcc: evil@example.com".into()],
            subject: "Backup\r\nBcc: evil@example.com".into(),
            text: "line1\r\nline2".into(),
        });
        assert_eq!(email.subject, "Backup  Bcc: evil@example.com");
        assert!(!email.to[0].contains('\n'));
        assert_eq!(email.text, "line1\nline2");
        assert!(email.message_id.starts_with('<') && email.message_id.ends_with('>'));
        assert!(email.date.ends_with("+0000"));
    }

    #[test]
    fn only_the_refused_addresses_themselves_are_not_accepted() {
        let email = Email::new(EmailParts {
            from: "a@x.org".into(),
            to: vec![
                "bob@x.org".into(),
                "jimbob@x.org".into(),
                "Bob Jr <bob@x.org.evil>".into(),
                "Carol <CAROL@x.org>".into(),
                "dave@x.org".into(),
                "Zoë <zoë@x.org>".into(),
            ],
            subject: "s".into(),
            text: "t".into(),
        });
        let refuse = |addresses: &[&str]| Receipt {
            refused: addresses
                .iter()
                .map(|a| RefusedRecipient {
                    address: a.to_string(),
                    reply: "550 5.1.1 user unknown".into(),
                })
                .collect(),
            ..Receipt::default()
        };
        assert_eq!(
            refuse(&["bob@x.org", " <carol@X.ORG> ", "ZOË@x.org"]).accepted(&email),
            ["jimbob@x.org", "Bob Jr <bob@x.org.evil>", "dave@x.org"]
        );
        assert_eq!(refuse(&[]).accepted(&email).len(), email.to.len());
        assert_eq!(
            refuse(&["x.org", "b"]).accepted(&email).len(),
            email.to.len()
        );
    }
}

//! Turns the host's [`Email`] into a lettre [`Message`]: lettre encodes non-ASCII headers
//! (RFC 2047) and the body (quoted-printable or base64) so every transport here sends the same
//! bytes.
//!
//! Header values are folded to one line here too, although core already does it: the email
//! crosses a plugin boundary, and whatever sent it, no value may add a header.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::Message;
use postflight_core::email::single_line;
use postflight_core::{DeliveryError, Email, ErrorKind};

/// Parses one address (`Name <a@b>` or `a@b`), naming which field was wrong.
pub fn mailbox(field: &str, value: &str) -> Result<Mailbox, DeliveryError> {
    value.trim().parse::<Mailbox>().map_err(|e| {
        DeliveryError::permanent(
            ErrorKind::Config,
            format!("the {field} address '{value}' is not a valid email address ({e})"),
        )
        .with_hint("write it as `user@example.com` or `Name <user@example.com>`")
    })
}

/// Builds the message; fails only on an invalid address or header name.
pub fn build(email: &Email) -> Result<Message, DeliveryError> {
    let mut builder = Message::builder()
        .from(mailbox("From", &single_line(&email.from))?)
        .subject(single_line(&email.subject))
        .message_id(Some(single_line(&email.message_id)))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(
            header_name("Date")?,
            single_line(&email.date),
        ));
    for to in &email.to {
        builder = builder.to(mailbox("To", &single_line(to))?);
    }
    for header in &email.headers {
        builder = builder.raw_header(HeaderValue::new(
            header_name(&header.name)?,
            single_line(&header.value),
        ));
    }
    builder.body(email.text.clone()).map_err(|e| {
        DeliveryError::permanent(
            ErrorKind::MessageRejected,
            format!("the message could not be built: {e}"),
        )
    })
}

fn header_name(name: &str) -> Result<HeaderName, DeliveryError> {
    HeaderName::new_from_ascii(name.to_string()).map_err(|_| {
        DeliveryError::permanent(
            ErrorKind::MessageRejected,
            format!("'{name}' is not a valid header name"),
        )
    })
}

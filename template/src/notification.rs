//! Rendering a whole notification (subject and body) without ever failing.

use crate::catalogue::Values;
use crate::template::{Template, TemplateError};

/// The built-in subject template, used when none is configured or the configured one is
/// broken.
pub const DEFAULT_SUBJECT: &str = "##Computer Name##: ##Task Name##: ##Exit Status##";

/// The built-in body template, used when none is configured or the configured one is broken.
///
/// Plain text: a summary line, one labelled line per detail, then the tail of the output.
/// Each line still reads sensibly when its value is empty.
pub const DEFAULT_BODY: &str = "\
##Task Name## on ##Computer Name##: ##Exit Status##

Result:            ##Exit Reason##
Exit code:         ##Exit Code##
Command:           ##Command##
Working directory: ##Working Directory##
Started:           ##Start Time##
Finished:          ##End Time##
Elapsed time:      ##Elapsed Time##
Previous status:   ##Previous Status##
Failures in a row: ##Failure Count##
Run as user:       ##User Name##

Output, last part shown. Total size: ##Output Size##
------------------------------------------------------------
##Output##
";

/// A rendered notification, ready for the transport layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The rendered subject. It may contain newlines from values; the header layer must
    /// fold or replace them.
    pub subject: String,
    /// The rendered body, starting with a note for each broken template.
    pub body: String,
    /// One message per broken template (subject first), e.g. `subject template: unknown
    /// template value ##X## at line 1, column 1 (...)`; empty when both templates were used.
    pub problems: Vec<String>,
}

/// Renders a notification's subject and body, as `run` and `report` need: it never fails.
///
/// `None` means the built-in template ([`DEFAULT_SUBJECT`], [`DEFAULT_BODY`]). A template
/// that does not parse is replaced by the built-in one for that part only, the problem is
/// recorded in [`Rendered::problems`], and the body starts with a short note saying which
/// template was broken and why, so the notification still goes out and says what to fix.
pub fn render_notification(subject: Option<&str>, body: Option<&str>, values: &Values) -> Rendered {
    let mut broken = Vec::new();
    let subject_template = parse_or_default("subject", subject, DEFAULT_SUBJECT, &mut broken);
    let body_template = parse_or_default("body", body, DEFAULT_BODY, &mut broken);

    let mut rendered_body = String::new();
    for (part, error) in &broken {
        rendered_body.push_str(&format!(
            "Note from postflight: the configured {part} template is broken, so the built-in \
             one was used instead: {error}\n"
        ));
    }
    if !broken.is_empty() {
        rendered_body.push('\n');
    }
    rendered_body.push_str(&body_template.render(values));

    Rendered {
        subject: subject_template.render(values),
        body: rendered_body,
        problems: broken
            .iter()
            .map(|(part, error)| format!("{part} template: {error}"))
            .collect(),
    }
}

/// Parses the configured template for `part`, or the built-in one if there is none or the
/// configured one is broken (recording why in `broken`).
fn parse_or_default(
    part: &'static str,
    configured: Option<&str>,
    default: &str,
    broken: &mut Vec<(&'static str, TemplateError)>,
) -> Template {
    if let Some(source) = configured {
        match Template::parse(source) {
            Ok(template) => return template,
            Err(error) => broken.push((part, error)),
        }
    }
    Template::parse(default).expect("the built-in templates parse")
}

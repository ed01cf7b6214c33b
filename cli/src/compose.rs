//! Composing emails for `render` and `test`, where a broken template is an error (at
//! `run`/`report` it is not: see `postflight_template::render_notification`).

use postflight_core::settings::{local_address, TaskSettings};
use postflight_core::{Email, EmailParts, Status};
use postflight_template::{Template, Values, DEFAULT_BODY, DEFAULT_SUBJECT};

use crate::app::Context;
use crate::exit::{self, Failure};

/// Renders subject and body strictly; an unknown value names the template and the closest
/// real value.
pub fn render_strict(
    subject: Option<&str>,
    body: Option<&str>,
    values: &Values,
    origin: &str,
) -> Result<(String, String), Failure> {
    let parse = |which: &str, source: &str| {
        Template::parse(source)
            .map_err(|e| Failure::new(exit::CONFIG, format!("{which} template of {origin}: {e}")))
    };
    let subject = parse("subject", subject.unwrap_or(DEFAULT_SUBJECT))?.render(values);
    let body = parse("body", body.unwrap_or(DEFAULT_BODY))?.render(values);
    Ok((subject, body))
}

/// The email for a task with a rendered subject and body: from the task's account (or the
/// local user when the account is missing, so the notification is still queued and the
/// account error is reported at delivery), to the task's recipients.
pub fn task_email(ctx: &Context, task: &TaskSettings, subject: String, body: String) -> Email {
    let from = ctx
        .config
        .account(&task.account, &ctx.state_dir)
        .map(|a| a.from)
        .unwrap_or_else(|_| local_address());
    Email::new(EmailParts {
        from,
        to: task.to.clone(),
        subject,
        text: body,
    })
}

/// Sample values adjusted to a task and a status, for previews and test emails.
pub fn sample_values(task: &TaskSettings, status: Status, exit_code: Option<i32>) -> Values {
    let mut values = Values::sample();
    let code = exit_code.unwrap_or(match status {
        Status::Success => task.success_codes.first().copied().unwrap_or(0),
        Status::Warning => task.warning_codes.first().copied().unwrap_or(1),
        Status::Failure => 1,
    });
    values
        .set("Task Name", task.name.clone())
        .set("Exit Status", status.phrase())
        .set("Exit Code", code.to_string())
        .set("Exit Reason", format!("exited with code {code}"))
        .set("Computer Name", crate::values::computer_name())
        .set("User Name", crate::values::user_name());
    values
}

/// The email as the transports will send it, headers first, for `render`.
pub fn preview(email: &Email) -> String {
    let mut text = String::new();
    text.push_str(&format!("From: {}\n", email.from));
    text.push_str(&format!("To: {}\n", email.to.join(", ")));
    text.push_str(&format!("Subject: {}\n", email.subject));
    text.push_str(&format!("Date: {}\n", email.date));
    text.push_str(&format!("Message-ID: {}\n", email.message_id));
    for header in &email.headers {
        text.push_str(&format!("{}: {}\n", header.name, header.value));
    }
    text.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n");
    text.push_str(&email.text);
    if !email.text.ends_with('\n') {
        text.push('\n');
    }
    text
}

//! `postflight test --to ADDRS [--account NAME]`: sends a test email now, bypassing policy and
//! the outbox, and explains any failure.

use postflight_core::config::Recipients;
use postflight_core::settings::TaskOverrides;
use postflight_core::{Email, EmailParts, Status};

use crate::app::Context;
use crate::args::TestArgs;
use crate::compose;
use crate::deliver::Deliverer;
use crate::exit::{self, Failure};

/// Exit 0 only when the server accepted the message.
pub async fn run(ctx: &Context, args: TestArgs) -> Result<i32, Failure> {
    let to = Recipients::parse(args.to.iter().map(String::as_str)).0;
    if to.is_empty() {
        return Err(Failure::new(exit::USAGE, "--to names no address"));
    }
    let account_name = args
        .account
        .clone()
        .unwrap_or_else(|| ctx.config.default_account_name());
    let mut deliverer = Deliverer::new(ctx);
    let account = deliverer.account(&account_name).map_err(|e| {
        Failure::new(
            exit::CONFIG,
            format!(
                "{e}{}",
                e.hint
                    .as_ref()
                    .map(|h| format!("\n  hint: {h}"))
                    .unwrap_or_default()
            ),
        )
    })?;
    let task = ctx.config.task(
        "postflight-test",
        &TaskOverrides {
            account: Some(account_name.clone()),
            to: to.clone(),
            ..Default::default()
        },
    );
    let mut task = task;
    task.name = "postflight test".to_string();
    let values = compose::sample_values(&task, Status::Failure, None);
    let (_, sample_body) = compose::render_strict(
        ctx.config.defaults.subject.as_deref(),
        ctx.config.defaults.body.as_deref(),
        &values,
        "[defaults]",
    )?;
    let body = format!(
        "This is a test email from postflight on {}, sent through the account '{}' (transport '{}').\n\
         If you can read it, this account works. Below is what a notification looks like with the\n\
         configured template and sample values.\n\n----------------------------------------\n{sample_body}",
        crate::values::computer_name(),
        account.name,
        account.transport
    );
    let email = Email::new(EmailParts {
        from: account.from.clone(),
        to,
        subject: format!("postflight test from {}", crate::values::computer_name()),
        text: body,
    });
    ctx.out.detail(format!(
        "sending a test email through account '{}' ({})",
        account.name, account.transport
    ));
    match deliverer
        .send(&account.name, &email, task.send_timeout)
        .await
    {
        Ok(receipt) => {
            let accepted = receipt.accepted(&email);
            let mut line = format!("test email accepted for {}", accepted.join(", "));
            if let Some(location) = &receipt.location {
                line.push_str(&format!("; written to {location}"));
            }
            if let Some(reply) = &receipt.reply {
                line.push_str(&format!("; server said: {reply}"));
            }
            if let Some(id) = &receipt.server_id {
                line.push_str(&format!(" (id {id})"));
            }
            ctx.out.info(line);
            if receipt.refused.is_empty() {
                return Ok(exit::OK);
            }
            // Accepted for the others, but an address is wrong: that is what a test is for.
            let refused: Vec<String> = receipt
                .refused
                .iter()
                .map(|r| format!("\n  {}: {}", r.address, r.reply))
                .collect();
            Err(Failure::new(
                exit::DATAERR,
                format!(
                    "the server refused {} of the recipients (the others got the email):{}\n  what to do: correct or remove these addresses in `to` or --to",
                    refused.len(),
                    refused.concat()
                ),
            ))
        }
        Err(error) => {
            let mut text = format!(
                "the test email through account '{}' failed: {} [{}{}]",
                account.name,
                error.message,
                error.kind.as_str(),
                if error.permanent {
                    ", permanent"
                } else {
                    ", temporary"
                }
            );
            if let Some(reply) = &error.reply {
                text.push_str(&format!("\n  server said: {reply}"));
            }
            if let Some(hint) = &error.hint {
                text.push_str(&format!("\n  what to do: {hint}"));
            }
            if let Some(details) = &error.details {
                for line in details.lines() {
                    text.push_str(&format!("\n  {line}"));
                }
            }
            Err(Failure::new(exit::for_delivery(&error), text))
        }
    }
}

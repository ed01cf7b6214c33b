//! The path from a finished run to a delivered (or safely queued) email, shared by `run` and
//! `report`: policy -> template -> outbox -> one immediate attempt -> history.

use std::time::Duration;

use postflight_core::outbox::{self, Attempt, Item, Outbox};
use postflight_core::settings::{local_address, TaskSettings};
use postflight_core::{DeliveryError, Email, EmailParts, Receipt};
use postflight_policy::{decide, DeliveryOutcome, DeliveryRecord};
use postflight_template::render_notification;

use crate::app::Context;
use crate::clock;
use crate::deliver::Deliverer;
use crate::exit::{self, Failure};
use crate::history;
use crate::outcome::RunOutcome;
use crate::values;

/// What became of a run's notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Policy said no.
    Skipped,
    /// The server accepted it.
    Delivered,
    /// A transient failure: queued for retry.
    Queued,
    /// A permanent failure: moved to `failed/`. Carries the exit code it deserves.
    Failed(i32),
}

/// Applies policy and, if it says so, renders, queues and delivers the notification.
/// Errors are postflight's own (the state directory cannot be written).
pub async fn notify(
    ctx: &Context,
    task: &TaskSettings,
    outcome: &RunOutcome,
) -> Result<Handled, Failure> {
    let out = &ctx.out;
    let previous = history::load(&ctx.state_dir, &task.key, out);
    let now = clock::unix(outcome.finished);
    let decision = decide(
        task.level,
        outcome.status,
        &previous,
        now,
        task.remind_every,
    );
    out.detail(format!(
        "task '{}': {} with level {}: {}",
        task.key,
        outcome.status,
        task.level,
        decision.reason()
    ));
    let notified = decision.should_notify();
    let mut history = previous.after_run(outcome.status, now, notified);
    if !notified {
        save_history(ctx, task, &history);
        return Ok(Handled::Skipped);
    }

    let failure_count = previous.failure_count_with(outcome.status);
    let values = values::for_run(task, outcome, previous.last_status, failure_count);
    let rendered = render_notification(task.subject.as_deref(), task.body.as_deref(), &values);
    for problem in &rendered.problems {
        out.warn(format!("{problem}; the built-in template was used (fix it and check with `postflight render --task {}`)", task.key));
    }
    let from = ctx
        .config
        .account(&task.account, &ctx.state_dir)
        .map(|a| a.from)
        .unwrap_or_else(|_| local_address());
    let email = Email::new(EmailParts {
        from,
        to: task.to.clone(),
        subject: rendered.subject,
        text: rendered.body,
    });
    let item = Item::new(
        &task.key,
        &task.name,
        outcome.status,
        &task.account,
        task.send_timeout,
        email,
    );
    let outbox = Outbox::new(&ctx.state_dir);
    outbox.save(&item).map_err(|e| {
        Failure::new(
            exit::CANTCREAT,
            format!(
                "cannot queue the notification in {}: {e}; set POSTFLIGHT_STATE_DIR to a writable directory",
                outbox.queue_dir().display()
            ),
        )
    })?;
    save_history(ctx, task, &history);

    let mut deliverer = Deliverer::new(ctx);
    let (handled, record) = attempt(ctx, &outbox, &mut deliverer, item).await;
    history.last_delivery = Some(record);
    save_history(ctx, task, &history);
    Ok(handled)
}

fn save_history(ctx: &Context, task: &TaskSettings, history: &postflight_policy::History) {
    if let Err(e) = history::save(&ctx.state_dir, &task.key, history) {
        ctx.out.warn(format!(
            "cannot save the history of task '{}' ({e}); the `changes` level may repeat itself",
            task.key
        ));
    }
}

/// One attempt at a queued item; updates the outbox and says what happened.
pub async fn attempt(
    ctx: &Context,
    outbox: &Outbox,
    deliverer: &mut Deliverer<'_>,
    mut item: Item,
) -> (Handled, DeliveryRecord) {
    let timeout = Duration::from_millis(item.send_timeout_ms);
    let result = deliverer.send(&item.account, &item.email, timeout).await;
    let now = outbox::unix_now();
    match result {
        Ok(receipt) => {
            if let Err(e) = outbox.remove(&item.id) {
                ctx.out.warn(format!(
                    "delivered, but cannot remove item {} from the outbox ({e}); it may be sent again",
                    item.id
                ));
            }
            report_delivered(ctx, &item, &receipt, deliverer);
            let detail = receipt
                .server_id
                .clone()
                .or(receipt.reply.clone())
                .unwrap_or_else(|| "accepted".to_string());
            (
                Handled::Delivered,
                record(now, DeliveryOutcome::Delivered, detail),
            )
        }
        Err(error) => {
            item.attempts.push(Attempt {
                at_unix: now,
                error: Some(error.clone()),
            });
            if error.is_transient() {
                let delay = outbox::retry_delay(item.attempts.len(), error.retry_after_secs);
                item.next_attempt_unix = now + delay.as_secs();
                if let Err(e) = outbox.save(&item) {
                    ctx.out
                        .warn(format!("cannot update outbox item {}: {e}", item.id));
                }
                ctx.out.warn(format!(
                    "could not deliver the notification for '{}' yet: {}; it is queued and will be retried in about {} (or run `postflight outbox flush` once the cause is fixed){}",
                    item.task_name,
                    error,
                    humantime::format_duration(delay),
                    hint_suffix(&error)
                ));
                (
                    Handled::Queued,
                    record(now, DeliveryOutcome::Queued, error.to_string()),
                )
            } else {
                let place = outbox
                    .move_to_failed(&item)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| format!("the outbox (moving it to failed/ failed: {e})"));
                ctx.out.error(format!(
                    "the notification for '{}' was refused: {}{}\n  it is kept in {place}; after fixing the cause run `postflight outbox retry {}`",
                    item.task_name,
                    error,
                    hint_suffix(&error),
                    item.id
                ));
                (
                    Handled::Failed(exit::for_delivery(&error)),
                    record(now, DeliveryOutcome::Failed, error.to_string()),
                )
            }
        }
    }
}

fn hint_suffix(error: &DeliveryError) -> String {
    error
        .hint
        .as_ref()
        .map(|h| format!("\n  hint: {h}"))
        .unwrap_or_default()
}

fn record(at_unix: u64, outcome: DeliveryOutcome, detail: String) -> DeliveryRecord {
    DeliveryRecord {
        at_unix,
        outcome,
        detail,
    }
}

fn report_delivered(ctx: &Context, item: &Item, receipt: &Receipt, deliverer: &Deliverer<'_>) {
    let what = format!(
        "the notification for '{}' ({})",
        item.task_name,
        item.status.phrase()
    );
    let builtin = deliverer
        .account(&item.account)
        .map(|a| a.builtin)
        .unwrap_or(false);
    if let Some(location) = &receipt.location {
        ctx.out.info(format!("{what} was written to {location}"));
        if builtin {
            ctx.out.info(format!(
                "no email account is configured, so notifications are saved as files; to get real email, add an [accounts.main] table to {} (see the README) and try it with `postflight test --to you@example.com`",
                ctx.config_path_for_messages()
            ));
        }
        return;
    }
    let id = receipt
        .server_id
        .as_ref()
        .map(|id| format!(" (id {id})"))
        .unwrap_or_default();
    ctx.out.info(format!(
        "{what} was sent to {} via account '{}'{id}",
        item.email.to.join(", "),
        item.account
    ));
}

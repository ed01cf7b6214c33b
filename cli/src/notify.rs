//! The path from a finished run to a delivered (or safely queued) email, shared by `run` and
//! `report`: policy -> template -> outbox -> one immediate attempt -> history, then the older
//! queued items that are due, within what is left of the same `send_timeout`.

use postflight_core::outbox::{Claimed, Item};
use postflight_core::settings::TaskSettings;
use postflight_policy::{decide, History};
use postflight_template::render_notification;
use tokio::time::Instant;

use crate::app::Context;
use crate::clock;
use crate::compose;
use crate::exit::{self, Failure};
pub use crate::flush::Handled;
use crate::flush::{FlushOptions, Pass};
use crate::history;
use crate::outcome::RunOutcome;
use crate::values;

/// Applies policy and, if it says so, renders, queues and delivers the notification; then
/// delivers the backlog that is due. Errors are postflight's own (the notification could be
/// neither queued nor delivered).
pub async fn notify(
    ctx: &Context,
    task: &TaskSettings,
    outcome: &RunOutcome,
) -> Result<Handled, Failure> {
    // Delivery after the task, own item and backlog together, takes at most send_timeout.
    let deadline = Instant::now() + task.send_timeout;
    let mut pass = Pass::new(ctx);
    let now = clock::now_unix();
    let queued = {
        // Decide and record under the task's history lock, so a concurrent run of the same
        // task (or a flush recording a delivery) cannot interleave its own update.
        let _guard = history::lock(&ctx.state_dir, &task.key);
        let previous = history::load(&ctx.state_dir, &task.key, &ctx.out);
        let decision = decide(
            task.level,
            outcome.status,
            &previous,
            now,
            task.remind_every,
        );
        ctx.out.detail(format!(
            "task '{}': {} with level {}: {}",
            task.key,
            outcome.status,
            task.level,
            decision.reason()
        ));
        let notified = decision.should_notify();
        // The item is durable before the history says the task notified.
        let queued = notified.then(|| {
            let item = new_item(ctx, task, outcome, &previous, now);
            match pass.outbox().enqueue(item.clone()) {
                Ok(claimed) => Queued::Claimed(claimed),
                Err(error) => Queued::Unsaved(item, error),
            }
        });
        save_history(
            ctx,
            task,
            &previous.after_run(outcome.status, now, notified),
        );
        queued
    };
    let mut own_id = None;
    let handled = match queued {
        None => Handled::Skipped,
        Some(Queued::Claimed(claimed)) => {
            own_id = Some(claimed.item.id.clone());
            pass.attempt(claimed, task.send_timeout).await
        }
        Some(Queued::Unsaved(item, error)) => {
            ctx.out.error(format!(
                "cannot queue the notification in {}: {error}; trying to send it directly, without a retry if that fails (set POSTFLIGHT_STATE_DIR to a writable directory)",
                pass.outbox().queue_dir().display()
            ));
            match pass.send_unqueued(&item).await {
                Ok(()) => Handled::Delivered,
                Err(e) => {
                    return Err(Failure::new(
                        exit::CANTCREAT,
                        format!(
                            "the notification for '{}' is lost: it could not be queued ({error}) nor delivered ({e})",
                            item.task_name
                        ),
                    ))
                }
            }
        }
    };
    // A machine that was offline delivers its backlog with the next task.
    let backlog = FlushOptions {
        due_only: true,
        deadline: Some(deadline),
        skip_id: own_id,
        progress: false,
    };
    if let Err(e) = pass.flush(&backlog).await {
        ctx.out.warn(format!(
            "cannot read the outbox {} ({e}); queued notifications wait for `postflight outbox flush`",
            pass.outbox().queue_dir().display()
        ));
    }
    Ok(handled)
}

/// The new item, durably queued and claimed, or not queued at all (and why).
enum Queued {
    Claimed(Claimed),
    Unsaved(Item, std::io::Error),
}

/// Renders the notification and wraps it in a new outbox item.
fn new_item(
    ctx: &Context,
    task: &TaskSettings,
    outcome: &RunOutcome,
    previous: &History,
    now_unix: u64,
) -> Item {
    let failure_count = previous.failure_count_with(outcome.status);
    let values = values::for_run(task, outcome, previous.last_status, failure_count);
    let mut rendered = render_notification(task.subject.as_deref(), task.body.as_deref(), &values);
    if let Some(error) = &ctx.config_error {
        rendered.body = format!(
            "Note from postflight: the configuration could not be loaded, so this notification used the built-in defaults. Fix it and check with `postflight check`:\n{error}\n\n{}",
            rendered.body
        );
    }
    for problem in &rendered.problems {
        ctx.out.warn(format!("{problem}; the built-in template was used (fix it and check with `postflight render --task {}`)", task.key));
    }
    let email = compose::task_email(ctx, task, rendered.subject, rendered.body);
    Item::new(
        &task.key,
        &task.name,
        outcome.status,
        &task.account,
        task.send_timeout,
        email,
        now_unix,
    )
}

fn save_history(ctx: &Context, task: &TaskSettings, history: &History) {
    if let Err(e) = history::save(&ctx.state_dir, &task.key, history) {
        ctx.out.warn(format!(
            "cannot save the history of task '{}' ({e}); the `changes` level may repeat itself",
            task.key
        ));
    }
}

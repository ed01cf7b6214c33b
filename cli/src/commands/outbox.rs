//! `postflight outbox list [--json] | flush [--due] | retry ID | drop ID`.
//!
//! Exit codes of `flush` (for timers and scripts): 0 when every item it tried was delivered
//! (with `--due`, items not due yet do not count); 75 (temporary failure) when some stay
//! queued; otherwise the code of the first permanent failure (65 refused message or
//! recipient, 77 authentication, 78 configuration, 69 other or expired); 65 when the only
//! problem was an unreadable item file (moved to `corrupt/`).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postflight_core::outbox::{Listing, OutboxError, Place};
use postflight_core::{ErrorKind, Status};
use serde::Serialize;

use crate::app::Context;
use crate::args::OutboxAction;
use crate::clock;
use crate::exit::{self, Failure};
use crate::flush::{self, plural, FlushOptions, Pass, Summary};
use crate::output;

/// Dispatches the outbox actions.
pub async fn run(ctx: &Context, action: OutboxAction) -> Result<i32, Failure> {
    match action {
        OutboxAction::List(args) => list(ctx, args.json),
        OutboxAction::Flush { due } => flush(ctx, due).await,
        OutboxAction::Retry { id: Some(id), .. } => retry(ctx, &id),
        OutboxAction::Retry { id: None, .. } => retry_all_failed(ctx),
        OutboxAction::Drop { id } => drop_item(ctx, &id),
    }
}

/// `outbox list --json`: a type defined for scripts. Fields are only ever added.
#[derive(Debug, Serialize)]
struct ListJson {
    /// Queued items first, then failed ones; each group oldest first.
    items: Vec<ItemJson>,
    /// Files in the outbox that are not readable items.
    unreadable: Vec<UnreadableJson>,
}

#[derive(Debug, Serialize)]
struct ItemJson {
    id: String,
    /// `queued` or `failed`.
    status: Place,
    task: String,
    task_name: String,
    /// The run's status: `success`, `warning` or `failure`.
    run_status: Status,
    account: String,
    subject: String,
    to: Vec<String>,
    message_id: String,
    /// RFC 3339, UTC.
    created: String,
    created_unix: u64,
    attempts: usize,
    last_attempt: Option<String>,
    last_attempt_unix: Option<u64>,
    /// `null` for failed items.
    next_attempt: Option<String>,
    next_attempt_unix: Option<u64>,
    /// Queued and its retry time has come.
    due: bool,
    last_error: Option<ErrorJson>,
    /// Why a failed item is in `failed/`.
    failed_reason: Option<String>,
    path: String,
}

#[derive(Debug, Serialize)]
struct ErrorJson {
    kind: ErrorKind,
    permanent: bool,
    message: String,
    reply: Option<String>,
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
struct UnreadableJson {
    status: Place,
    path: String,
    error: String,
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(at(unix)).to_string()
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn to_json(listing: &Listing, now: u64) -> ListJson {
    ListJson {
        items: listing
            .items
            .iter()
            .map(|listed| {
                let item = &listed.item;
                let queued = listed.place == Place::Queued;
                let last_attempt_unix = item.attempts.last().map(|a| a.at_unix);
                ItemJson {
                    id: item.id.clone(),
                    status: listed.place,
                    task: item.task.clone(),
                    task_name: item.task_name.clone(),
                    run_status: item.status,
                    account: item.account.clone(),
                    subject: item.email.subject.clone(),
                    to: item.email.to.clone(),
                    message_id: item.email.message_id.clone(),
                    created: rfc3339(item.created_unix),
                    created_unix: item.created_unix,
                    attempts: item.attempts.len(),
                    last_attempt: last_attempt_unix.map(rfc3339),
                    last_attempt_unix,
                    next_attempt: queued.then(|| rfc3339(item.next_attempt_unix)),
                    next_attempt_unix: queued.then_some(item.next_attempt_unix),
                    due: queued && item.is_due(now),
                    last_error: item.last_error().map(|e| ErrorJson {
                        kind: e.kind,
                        permanent: e.permanent,
                        message: e.message.clone(),
                        reply: e.reply.clone(),
                        hint: e.hint.clone(),
                    }),
                    failed_reason: item.failed_reason.clone(),
                    path: listed.path.display().to_string(),
                }
            })
            .collect(),
        unreadable: listing
            .unreadable
            .iter()
            .map(|u| UnreadableJson {
                status: u.place,
                path: u.path.display().to_string(),
                error: u.error.clone(),
            })
            .collect(),
    }
}

fn list(ctx: &Context, json: bool) -> Result<i32, Failure> {
    let outbox = postflight_core::outbox::Outbox::new(&ctx.state_dir);
    let listing = outbox.list().map_err(|e| {
        Failure::new(
            exit::CANTCREAT,
            format!("cannot read the outbox in {}: {e}", ctx.state_dir.display()),
        )
    })?;
    let now = clock::now_unix();
    if json {
        output::print_json(&to_json(&listing, now));
        return Ok(exit::OK);
    }
    for unreadable in &listing.unreadable {
        ctx.out.warn(format!(
            "{} is not a notification this postflight can read ({}); `postflight outbox flush` moves damaged files to corrupt/",
            unreadable.path.display(),
            unreadable.error
        ));
    }
    if listing.items.is_empty() {
        output::print("no queued or failed notifications\n");
        return Ok(exit::OK);
    }
    output::print(&render_table(&listing, now));
    Ok(exit::OK)
}

/// A table, one row per item, with the item's last error (or why it failed) indented below.
fn render_table(listing: &Listing, now: u64) -> String {
    let header = [
        "ID",
        "STATUS",
        "TASK",
        "CREATED",
        "ATTEMPTS",
        "NEXT ATTEMPT",
    ];
    let rows: Vec<[String; 6]> = listing
        .items
        .iter()
        .map(|listed| {
            let item = &listed.item;
            let next = match listed.place {
                Place::Failed => "-".to_string(),
                Place::Queued if item.is_due(now) => "now (due)".to_string(),
                Place::Queued => clock::format_local(at(item.next_attempt_unix)),
            };
            [
                item.id.clone(),
                listed.place.as_str().to_string(),
                item.task.clone(),
                clock::format_local(at(item.created_unix)),
                item.attempts.len().to_string(),
                next,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.push('\n');
        text
    };
    let mut text = line(&header);
    for (row, listed) in rows.iter().zip(&listing.items) {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        text.push_str(&line(&cells));
        let item = &listed.item;
        if let Some(reason) = &item.failed_reason {
            text.push_str(&format!("    failed: {reason}\n"));
        } else if let Some(error) = item.last_error() {
            text.push_str(&format!("    last error: {error}\n"));
        }
    }
    let queued = listing
        .items
        .iter()
        .filter(|l| l.place == Place::Queued)
        .count();
    let failed = listing.items.len() - queued;
    text.push_str(&format!("{queued} queued, {failed} failed\n"));
    text
}

async fn flush(ctx: &Context, due: bool) -> Result<i32, Failure> {
    let mut pass = Pass::new(ctx);
    let options = FlushOptions {
        due_only: due,
        deadline: None,
        skip_id: None,
        progress: flush::progress_available(ctx),
    };
    let summary = pass.flush(&options).await.map_err(|e| {
        Failure::new(
            exit::CANTCREAT,
            format!(
                "cannot read the outbox {}: {e}",
                pass.outbox().queue_dir().display()
            ),
        )
    })?;
    ctx.out.info(describe(&summary, due));
    Ok(exit_code(&summary))
}

/// The exit code of a flush (see the module docs).
fn exit_code(summary: &Summary) -> i32 {
    if summary.still_queued > 0 {
        exit::TEMPFAIL
    } else if let Some(code) = summary.failed_code {
        code
    } else if summary.corrupt > 0 {
        exit::DATAERR
    } else {
        exit::OK
    }
}

/// One line: what the flush did.
fn describe(summary: &Summary, due: bool) -> String {
    if summary.found == 0 {
        return "the outbox is empty; nothing to deliver".to_string();
    }
    let mut parts = Vec::new();
    let tried = summary.delivered + summary.still_queued + summary.failed;
    if tried > 0 || summary.not_due == 0 {
        parts.push(format!("{} delivered", summary.delivered));
    }
    if summary.still_queued > 0 {
        parts.push(format!("{} still queued", summary.still_queued));
    }
    if summary.failed > 0 {
        parts.push(format!("{} moved to failed/", summary.failed));
    }
    if summary.corrupt > 0 {
        parts.push(format!(
            "{} unreadable file{} moved to corrupt/",
            summary.corrupt,
            plural(summary.corrupt)
        ));
    }
    if summary.busy > 0 {
        parts.push(format!(
            "{} being delivered by another postflight process",
            summary.busy
        ));
    }
    if summary.not_due > 0 {
        let next = summary
            .next_due_unix
            .map(|t| format!(" (the next at {})", clock::format_local(at(t))))
            .unwrap_or_default();
        parts.push(format!("{} not due yet{next}", summary.not_due));
    }
    let what = if due {
        "outbox flush --due"
    } else {
        "outbox flush"
    };
    format!("{what}: {}", parts.join(", "))
}

fn outbox_failure(error: OutboxError) -> Failure {
    let code = match &error {
        OutboxError::BadId(_) => exit::USAGE,
        OutboxError::NotFound(_) | OutboxError::Unreadable { .. } => exit::DATAERR,
        OutboxError::Busy(_) => exit::TEMPFAIL,
        OutboxError::Io { .. } => exit::CANTCREAT,
    };
    let hint = match &error {
        OutboxError::BadId(_) | OutboxError::NotFound(_) => {
            "; `postflight outbox list` shows the ids"
        }
        OutboxError::Busy(_) => "; try again in a moment",
        _ => "",
    };
    Failure::new(code, format!("{error}{hint}"))
}

fn retry(ctx: &Context, id: &str) -> Result<i32, Failure> {
    let outbox = postflight_core::outbox::Outbox::new(&ctx.state_dir);
    let (from, item) = outbox
        .retry(id, clock::now_unix())
        .map_err(outbox_failure)?;
    let what = format!("the notification {} for '{}'", item.id, item.task_name);
    ctx.out.info(match from {
        Place::Failed => format!(
            "{what} is back in the queue and due now; `postflight outbox flush` sends it at once (a flush timer would within minutes)"
        ),
        Place::Queued => format!(
            "{what} was already queued; it is due now: `postflight outbox flush` sends it at once"
        ),
    });
    Ok(exit::OK)
}

/// `outbox retry --all`: every failed item back in the queue, due now.
fn retry_all_failed(ctx: &Context) -> Result<i32, Failure> {
    let outbox = postflight_core::outbox::Outbox::new(&ctx.state_dir);
    let listing = outbox.list().map_err(|e| {
        Failure::new(
            exit::CANTCREAT,
            format!("cannot read {}: {e}", outbox.failed_dir().display()),
        )
    })?;
    let failed: Vec<String> = listing
        .items
        .iter()
        .filter(|listed| listed.place == Place::Failed)
        .map(|listed| listed.item.id.clone())
        .collect();
    let mut requeued = 0;
    let mut first_error = None;
    for id in &failed {
        match outbox.retry(id, clock::now_unix()) {
            Ok(_) => requeued += 1,
            Err(e) => {
                ctx.out
                    .error(format!("cannot put {id} back in the queue: {e}"));
                first_error.get_or_insert(e);
            }
        }
    }
    ctx.out.info(format!(
        "{requeued} failed notification(s) back in the queue and due now; `postflight outbox flush` sends them at once"
    ));
    match first_error {
        Some(e) => Err(outbox_failure(e)),
        None => Ok(exit::OK),
    }
}

fn drop_item(ctx: &Context, id: &str) -> Result<i32, Failure> {
    let outbox = postflight_core::outbox::Outbox::new(&ctx.state_dir);
    let found = outbox.drop_item(id).map_err(outbox_failure)?;
    let place = found.place.as_str();
    ctx.out.info(match &found.item {
        Some(item) => format!(
            "dropped the {place} notification {} for '{}' (subject: {})",
            item.id, item.task_name, item.email.subject
        ),
        None => format!(
            "dropped the unreadable {place} file {}",
            Path::new(id).display()
        ),
    });
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(f: impl FnOnce(&mut Summary)) -> Summary {
        let mut summary = Summary {
            found: 3,
            ..Summary::default()
        };
        f(&mut summary);
        summary
    }

    #[test]
    fn flush_exit_codes_and_summary_lines() {
        let cases: [(Summary, i32, &str); 6] = [
            (
                Summary::default(),
                exit::OK,
                "the outbox is empty; nothing to deliver",
            ),
            (
                summary(|s| s.delivered = 3),
                exit::OK,
                "outbox flush: 3 delivered",
            ),
            (
                summary(|s| {
                    s.delivered = 1;
                    s.still_queued = 1;
                    s.failed = 1;
                    s.failed_code = Some(exit::NOPERM);
                }),
                exit::TEMPFAIL,
                "outbox flush: 1 delivered, 1 still queued, 1 moved to failed/",
            ),
            (
                summary(|s| {
                    s.delivered = 1;
                    s.failed = 2;
                    s.failed_code = Some(exit::DATAERR);
                }),
                exit::DATAERR,
                "outbox flush: 1 delivered, 2 moved to failed/",
            ),
            (
                summary(|s| {
                    s.delivered = 2;
                    s.corrupt = 1;
                }),
                exit::DATAERR,
                "outbox flush: 2 delivered, 1 unreadable file moved to corrupt/",
            ),
            (
                summary(|s| {
                    s.busy = 1;
                    s.not_due = 2;
                }),
                exit::OK,
                "outbox flush: 1 being delivered by another postflight process, 2 not due yet",
            ),
        ];
        for (summary, code, line) in cases {
            assert_eq!(exit_code(&summary), code, "{summary:?}");
            assert_eq!(describe(&summary, false), line);
        }
    }
}

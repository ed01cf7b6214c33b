//! Delivering queued notifications. Every attempt goes through a [`Pass`]: a run's or report's
//! own notification, the backlog they try after it, and `postflight outbox flush [--due]`.
//!
//! A pass keeps one transport session per account (through [`Deliverer`]), so a flush of many
//! items reuses one connection; and once an account's server fails in a way every message
//! would hit (cannot connect, timeout, bad TLS, ...), the pass stops trying that account's
//! other items: they stay queued for the next pass instead of each waiting out `send_timeout`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use postflight_core::outbox::{self, Claim, Claimed, Item, Outbox, Verdict};
use postflight_core::{DeliveryError, ErrorKind, Receipt};
use postflight_policy::{DeliveryOutcome, DeliveryRecord};
use tokio::time::Instant;

use crate::app::Context;
use crate::clock;
use crate::deliver::Deliverer;
use crate::exit;
use crate::history;

/// An attempt is not started with less time than this left before a pass's deadline.
const MIN_ATTEMPT_TIME: Duration = Duration::from_secs(1);

/// What became of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Policy said no.
    Skipped,
    /// The server accepted it.
    Delivered,
    /// A transient failure: queued for retry.
    Queued,
    /// A permanent failure (or retried for `max_age`): moved to `failed/`. Carries the exit
    /// code it deserves.
    Failed(i32),
}

/// What a [`Pass::flush`] should try.
#[derive(Debug, Clone, Default)]
pub struct FlushOptions {
    /// Only items whose retry time has come (`--due`, and the backlog of run/report).
    pub due_only: bool,
    /// Start no attempt after this; each attempt ends by it.
    pub deadline: Option<Instant>,
    /// An item not to touch (a run's own item, already attempted).
    pub skip_id: Option<String>,
    /// Show a progress line (only on a terminal).
    pub progress: bool,
}

/// What a [`Pass::flush`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Item files found in the queue.
    pub found: usize,
    /// Accepted by the server.
    pub delivered: usize,
    /// Still queued: a transient failure, or not tried (account unreachable, out of time).
    pub still_queued: usize,
    /// Moved to `failed/`.
    pub failed: usize,
    /// The exit code the first failure deserves.
    pub failed_code: Option<i32>,
    /// Unreadable files moved to `corrupt/`.
    pub corrupt: usize,
    /// Held by another postflight process (being delivered by it).
    pub busy: usize,
    /// Not due yet (`due_only`).
    pub not_due: usize,
    /// The earliest retry time among those not due (Unix seconds).
    pub next_due_unix: Option<u64>,
}

/// One pass of deliveries: the sessions, the accounts found unreachable, the progress line.
pub struct Pass<'a> {
    ctx: &'a Context,
    outbox: Outbox,
    deliverer: Deliverer<'a>,
    max_age: Duration,
    /// Accounts that failed for every message, with how many items were left untried.
    unreachable: BTreeMap<String, usize>,
    /// What became of each task's newest item in this pass, for its history. Written once
    /// per task at the end of [`flush`](Self::flush), not once per item: a long backlog of
    /// one task would otherwise rewrite (and fsync) its history a thousand times.
    records: BTreeMap<String, (u64, DeliveryRecord)>,
    progress: Progress,
}

impl<'a> Pass<'a> {
    /// A pass over the outbox of the context's state directory.
    pub fn new(ctx: &'a Context) -> Self {
        Pass {
            ctx,
            outbox: Outbox::new(&ctx.state_dir),
            deliverer: Deliverer::new(ctx),
            max_age: ctx.config.outbox.max_age.unwrap_or(outbox::DEFAULT_MAX_AGE),
            unreachable: BTreeMap::new(),
            records: BTreeMap::new(),
            progress: Progress::default(),
        }
    }

    /// The outbox this pass works on.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// One attempt at a claimed item, bounded by `timeout`; updates the outbox (removed,
    /// kept with backoff, or moved to `failed/`), the task's history, and says what happened
    /// in one line.
    pub async fn attempt(&mut self, claimed: Claimed, timeout: Duration) -> Handled {
        let result = self
            .deliverer
            .send(&claimed.item.account, &claimed.item.email, timeout)
            .await;
        self.progress.clear();
        match result {
            Ok(receipt) => self.delivered(claimed, &receipt),
            Err(error) => self.not_delivered(claimed, error),
        }
    }

    /// Sends an item that could not be queued (the state directory is not writable): one
    /// attempt with no outbox bookkeeping.
    pub async fn send_unqueued(&mut self, item: &Item) -> Result<(), DeliveryError> {
        let receipt = self
            .deliverer
            .send(&item.account, &item.email, item.send_timeout())
            .await?;
        self.report_delivered(item, &receipt);
        Ok(())
    }

    fn delivered(&mut self, claimed: Claimed, receipt: &Receipt) -> Handled {
        let item = claimed.item.clone();
        let path = claimed.path().to_path_buf();
        if let Err(e) = claimed.remove() {
            self.ctx.out.warn(format!(
                "delivered, but cannot remove {} from the outbox ({e}); it may be sent again",
                path.display()
            ));
        }
        self.report_delivered(&item, receipt);
        let detail = receipt
            .server_id
            .clone()
            .or(receipt.reply.clone())
            .unwrap_or_else(|| "accepted".to_string());
        self.record(&item, DeliveryOutcome::Delivered, detail);
        Handled::Delivered
    }

    fn not_delivered(&mut self, mut claimed: Claimed, error: DeliveryError) -> Handled {
        let out = &self.ctx.out;
        if error.is_transient() && !is_about_the_message(&error) {
            self.unreachable
                .entry(claimed.item.account.clone())
                .or_default();
        }
        let now = clock::now_unix();
        let verdict =
            claimed
                .item
                .record_failure(error.clone(), now, self.max_age, outbox::random_jitter());
        let item = claimed.item.clone();
        match verdict {
            Verdict::Retry { delay } => {
                if let Err(e) = claimed.save() {
                    out.warn(format!("cannot update outbox item {}: {e}", item.id));
                }
                out.warn(format!(
                    "could not deliver the notification for '{}' yet: {}; it is queued and will be retried in about {} (or run `postflight outbox flush` once the cause is fixed){}",
                    item.task_name,
                    error,
                    humantime::format_duration(delay),
                    hint_suffix(&error)
                ));
                self.record(&item, DeliveryOutcome::Queued, error.to_string());
                Handled::Queued
            }
            Verdict::Expired => {
                let place = self.move_to_failed(claimed);
                out.error(format!(
                    "the notification for '{}' (queued {}) could not be delivered in time: {}{}\n  it is kept in {place}; after fixing the cause run `postflight outbox retry {}`",
                    item.task_name,
                    clock::format_local(std::time::UNIX_EPOCH + Duration::from_secs(item.created_unix)),
                    item.failed_reason.as_deref().unwrap_or_default(),
                    hint_suffix(&error),
                    item.id
                ));
                self.record(&item, DeliveryOutcome::Failed, error.to_string());
                Handled::Failed(exit::UNAVAILABLE)
            }
            Verdict::Refused => {
                let place = self.move_to_failed(claimed);
                out.error(format!(
                    "the notification for '{}' was refused: {}{}\n  it is kept in {place}; after fixing the cause run `postflight outbox retry {}`",
                    item.task_name,
                    error,
                    hint_suffix(&error),
                    item.id
                ));
                self.record(&item, DeliveryOutcome::Failed, error.to_string());
                Handled::Failed(exit::for_delivery(&error))
            }
        }
    }

    fn move_to_failed(&self, claimed: Claimed) -> String {
        claimed
            .move_to_failed()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|e| format!("the outbox (moving it to failed/ failed: {e})"))
    }

    /// Notes what became of an item for its task's history (see [`Self::write_records`]).
    fn record(&mut self, item: &Item, outcome: DeliveryOutcome, detail: String) {
        let record = DeliveryRecord {
            at_unix: clock::now_unix(),
            outcome,
            detail,
        };
        match self.records.get(&item.task) {
            Some((created, _)) if *created > item.created_unix => {}
            _ => {
                self.records
                    .insert(item.task.clone(), (item.created_unix, record));
            }
        }
    }

    /// Writes the noted outcomes into the tasks' histories, each unless the task has notified
    /// again since that item (the history describes the task's last notification).
    fn write_records(&mut self) {
        let state = &self.ctx.state_dir;
        for (task, (created_unix, record)) in std::mem::take(&mut self.records) {
            let _guard = history::lock(state, &task);
            let mut history = history::load(state, &task, &self.ctx.out);
            if history
                .last_notified_unix
                .is_some_and(|last| last > created_unix)
            {
                continue;
            }
            history.last_delivery = Some(record);
            if let Err(e) = history::save(state, &task, &history) {
                self.ctx.out.warn(format!(
                    "cannot save the history of task '{task}' ({e}); the `changes` level may repeat itself"
                ));
            }
        }
    }

    fn report_delivered(&self, item: &Item, receipt: &Receipt) {
        let out = &self.ctx.out;
        let queued = if item.attempts.is_empty() {
            String::new()
        } else {
            format!(
                ", queued since {}",
                clock::format_local(std::time::UNIX_EPOCH + Duration::from_secs(item.created_unix))
            )
        };
        let what = format!(
            "the notification for '{}' ({}{queued})",
            item.task_name,
            item.status.phrase()
        );
        let builtin = self
            .deliverer
            .account(&item.account)
            .map(|a| a.builtin)
            .unwrap_or(false);
        if let Some(location) = &receipt.location {
            out.info(format!("{what} was written to {location}"));
            if builtin {
                let why = if self.ctx.config_error.is_some() {
                    "the configuration could not be loaded, so this notification was saved as a file; fix it (`postflight check` shows how)".to_string()
                } else if !self.ctx.config.accounts.is_empty() {
                    format!(
                        "several accounts are configured but none is chosen, so notifications are saved as files; set `account = \"NAME\"` under [defaults] (or in the task) in {}",
                        self.ctx.config_path_for_messages()
                    )
                } else {
                    format!(
                        "no email account is configured, so notifications are saved as files; to get real email, add an [accounts.main] table to {} (see the README) and try it with `postflight test --to you@example.com`",
                        self.ctx.config_path_for_messages()
                    )
                };
                out.info(why);
            }
            return;
        }
        let id = receipt
            .server_id
            .as_ref()
            .map(|id| format!(" (id {id})"))
            .unwrap_or_default();
        let accepted = receipt.accepted(&item.email);
        out.info(format!(
            "{what} was sent to {} via account '{}'{id}",
            accepted.join(", "),
            item.account
        ));
        if !receipt.refused.is_empty() {
            // Delivered to the others, so it leaves the outbox; the wrong address needs a human.
            let refused: Vec<String> = receipt
                .refused
                .iter()
                .map(|r| format!("{} ({})", r.address, r.reply))
                .collect();
            out.warn(format!(
                "the server refused {} for the notification for '{}'; the other recipients got it. Correct or remove {} in `to` of task '{}' (or [defaults])",
                refused.join(", "),
                item.task_name,
                if refused.len() == 1 { "this address" } else { "these addresses" },
                item.task
            ));
        }
    }

    /// Tries the queued items, oldest first (see [`FlushOptions`]). A file that is not a
    /// readable item is moved aside with a message and the rest goes on.
    /// The histories of the items' tasks are updated at the end (also for items attempted
    /// through [`attempt`](Self::attempt) before).
    pub async fn flush(&mut self, options: &FlushOptions) -> std::io::Result<Summary> {
        let result = self.flush_queue(options).await;
        self.write_records();
        result
    }

    async fn flush_queue(&mut self, options: &FlushOptions) -> std::io::Result<Summary> {
        self.outbox.clean_stale_temp_files();
        let files = self.outbox.queued_files()?;
        let mut summary = Summary {
            found: files.len(),
            ..Summary::default()
        };
        self.progress.enabled = options.progress && files.len() > 1;
        for (index, path) in files.iter().enumerate() {
            let claimed = match self.outbox.claim(path) {
                Ok(Claim::Claimed(claimed)) => *claimed,
                Ok(Claim::Busy) => {
                    summary.busy += 1;
                    continue;
                }
                Ok(Claim::Gone) => continue,
                Ok(Claim::Corrupt {
                    path,
                    error,
                    moved_to,
                }) => {
                    summary.corrupt += 1;
                    self.progress.clear();
                    self.ctx.out.error(match moved_to {
                        Ok(to) => format!(
                            "the outbox file {} is not a readable notification ({error}); moved it to {} and went on with the rest (look at it, then delete it)",
                            path.display(),
                            to.display()
                        ),
                        Err(e) => format!(
                            "the outbox file {} is not a readable notification ({error}) and could not be moved aside ({e}); went on with the rest (move or delete it by hand)",
                            path.display()
                        ),
                    });
                    continue;
                }
                Ok(Claim::Newer { path, version }) => {
                    self.progress.clear();
                    self.ctx.out.warn(format!(
                        "the outbox file {} was written by a newer postflight (item format {version}); leaving it for that version to deliver",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    summary.still_queued += 1;
                    self.progress.clear();
                    self.ctx.out.warn(format!(
                        "cannot open the outbox file {} ({e}); skipping it",
                        path.display()
                    ));
                    continue;
                }
            };
            let item = &claimed.item;
            if options.skip_id.as_deref() == Some(item.id.as_str()) {
                continue;
            }
            if options.due_only && !item.is_due(clock::now_unix()) {
                summary.not_due += 1;
                summary.next_due_unix = Some(
                    summary
                        .next_due_unix
                        .map_or(item.next_attempt_unix, |t| t.min(item.next_attempt_unix)),
                );
                continue;
            }
            if let Some(untried) = self.unreachable.get_mut(&item.account) {
                *untried += 1;
                summary.still_queued += 1;
                continue;
            }
            let mut timeout = item.send_timeout();
            if let Some(deadline) = options.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left < MIN_ATTEMPT_TIME {
                    summary.still_queued += files.len() - index;
                    self.ctx.out.detail(format!(
                        "out of time: {} queued notification(s) left for the next flush",
                        files.len() - index
                    ));
                    break;
                }
                timeout = timeout.min(left);
            }
            self.progress
                .show(index + 1, files.len(), summary.delivered);
            match self.attempt(claimed, timeout).await {
                Handled::Delivered => summary.delivered += 1,
                Handled::Queued | Handled::Skipped => summary.still_queued += 1,
                Handled::Failed(code) => {
                    summary.failed += 1;
                    summary.failed_code.get_or_insert(code);
                }
            }
        }
        self.progress.clear();
        for (account, untried) in std::mem::take(&mut self.unreachable) {
            if untried > 0 {
                self.ctx.out.warn(format!(
                    "{untried} more queued notification{} for account '{account}' {} not tried after that failure; {} queued (run `postflight outbox flush` once the cause is fixed)",
                    plural(untried),
                    if untried == 1 { "was" } else { "were" },
                    if untried == 1 { "it stays" } else { "they stay" },
                ));
            }
            // Keep remembering the account for the rest of this pass.
            self.unreachable.insert(account, 0);
        }
        Ok(summary)
    }
}

/// `s` for counts other than one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Errors about one message (a refused recipient, sender or content) do not mean the server
/// would refuse the account's other messages; every other error does.
fn is_about_the_message(error: &DeliveryError) -> bool {
    matches!(
        error.kind,
        ErrorKind::RecipientRejected | ErrorKind::SenderRejected | ErrorKind::MessageRejected
    )
}

fn hint_suffix(error: &DeliveryError) -> String {
    error
        .hint
        .as_ref()
        .map(|h| format!("\n  hint: {h}"))
        .unwrap_or_default()
}

/// `postflight: flushing the outbox: 3/100 (2 delivered)`, redrawn in place on stderr; only
/// when stderr is a terminal that understands it.
#[derive(Debug, Default)]
struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    /// Whether a progress line can be drawn (stderr is a terminal, and not a dumb one).
    fn available() -> bool {
        std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
    }

    fn show(&mut self, current: usize, total: usize, delivered: usize) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Kpostflight: flushing the outbox: {current}/{total} ({delivered} delivered)"
        );
        let _ = err.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

/// Whether `outbox flush` should draw a progress line.
pub fn progress_available(ctx: &Context) -> bool {
    !ctx.out.quiet && Progress::available()
}

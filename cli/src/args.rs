//! The command line (DESIGN section 3, a contract): only this module knows clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use postflight_core::{Level, Status};

/// Tells operators how their scheduled tasks went.
#[derive(Debug, Parser)]
#[command(name = "postflight", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Config file (else $POSTFLIGHT_CONFIG, else $XDG_CONFIG_HOME/postflight/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Say more: policy decisions, plugin search, each delivery step.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Say nothing on success; errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command, pass its output through, then notify per policy.
    Run(RunArgs),
    /// Notify about a task that ran elsewhere (cron line, systemd OnFailure=, another tool).
    Report(ReportArgs),
    /// Send a test email now, bypassing policy and the outbox.
    Test(TestArgs),
    /// Print the email that would be sent, with sample values; sends nothing.
    Render(RenderArgs),
    /// List every template value, what it means and a sample.
    Templates(JsonArg),
    /// Validate config, addresses, templates, secrets' sources and plugins.
    Check,
    /// List plugins found, their transports, and why candidates were rejected.
    Plugins(JsonArg),
    /// Show, deliver, retry or drop queued notifications.
    Outbox(OutboxArgs),
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Per-run overrides shared by `run` and `report`.
#[derive(Debug, Args, Default, Clone)]
pub struct Overrides {
    /// Notification level: never, always, errors, changes.
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<Level>,
    /// Recipients, separated by commas and/or newlines; may repeat.
    #[arg(long, value_name = "ADDRS")]
    pub to: Vec<String>,
    /// Account to send through.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Subject template.
    #[arg(long, value_name = "TEMPLATE")]
    pub subject: Option<String>,
    /// Body template.
    #[arg(long, value_name = "TEMPLATE")]
    pub body: Option<String>,
}

/// `postflight run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task key (a [tasks.KEY] table); defaults to the command's file name.
    #[arg(long, value_name = "NAME")]
    pub task: Option<String>,
    /// Kill the task after this long (e.g. 30m, 2h); the run then counts as a failure.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub overrides: Overrides,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// `postflight report`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("outcome").required(true).args(["exit_code", "status"]))]
pub struct ReportArgs {
    /// Task key (a [tasks.KEY] table, or any name for an ad-hoc task).
    #[arg(long, value_name = "NAME")]
    pub task: String,
    /// The task's exit code; classified with the task's success/warning codes.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub exit_code: Option<i32>,
    /// The task's status, when there is no exit code.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<Status>,
    /// When it started: RFC 3339 (2026-12-04T03:00:00Z) or @UNIX-SECONDS.
    #[arg(long, value_name = "T")]
    pub started: Option<String>,
    /// When it finished (default: now).
    #[arg(long, value_name = "T")]
    pub finished: Option<String>,
    /// The task's output, for ##Output## (`-` reads standard input). Only the tail is kept.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    /// The command, for ##Command##.
    #[arg(long = "command", value_name = "TEXT")]
    pub command_text: Option<String>,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// `postflight test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Recipients, separated by commas and/or newlines; may repeat.
    #[arg(long, required = true, value_name = "ADDRS")]
    pub to: Vec<String>,
    /// Account to test (default: the default account).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
}

/// `postflight render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Task key.
    #[arg(long, value_name = "NAME")]
    pub task: String,
    /// Render as if the task exited with this code.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "status"
    )]
    pub exit_code: Option<i32>,
    /// Render as if the task ended with this status.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<Status>,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// `postflight outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// What to do with the outbox.
    #[command(subcommand)]
    pub action: OutboxAction,
}

/// `postflight outbox ...`.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Show queued and failed notifications.
    List(JsonArg),
    /// Deliver every queued notification now.
    Flush {
        /// Only those whose retry time has come (for timers).
        #[arg(long)]
        due: bool,
    },
    /// Put a failed notification back in the queue.
    Retry {
        /// The item's id (see `postflight outbox list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every failed notification (after fixing what failed them all, e.g. a password).
        #[arg(long)]
        all: bool,
    },
    /// Discard a queued or failed notification.
    Drop {
        /// The item's id (see `postflight outbox list`).
        id: String,
    },
}

/// Parses humane durations (`30s`, `2h`, `1d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write durations like 30s, 5m, 2h, 1d)"))
}

//! `postflight run [--task NAME] [overrides] -- CMD [ARGS...]`.

use std::path::Path;

use postflight_policy::Codes;

use crate::app::Context;
use crate::args::RunArgs;
use crate::exit::Failure;
use crate::notify;
use crate::runner::{self, RunRequest};

/// Runs the task, notifies, and returns the task's exit code whatever happened to the email.
pub async fn run(ctx: &Context, args: RunArgs) -> Result<i32, Failure> {
    let key = args.task.clone().unwrap_or_else(|| {
        Path::new(&args.command[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".to_string())
    });
    let task = ctx.config.task(&key, &super::overrides(&args.overrides));
    let outcome = runner::run(RunRequest {
        argv: args.command,
        timeout: args.timeout,
        codes: Codes {
            success: task.success_codes.clone(),
            warning: task.warning_codes.clone(),
        },
    })
    .await;
    let code = outcome.shell_exit_code();
    // The runner's signal handlers stay installed for the life of the process, so without
    // this an operator's Ctrl-C or a service manager's SIGTERM would be ignored while the
    // email is being delivered. `biased` polls the delivery first: its first poll runs up to
    // the outbox write, so a signal can only cut in once the notification is durable.
    let mut signals = runner::ForwardedSignals::new();
    tokio::select! {
        biased;
        result = notify::notify(ctx, &task, &outcome) => {
            // The task's exit code is the contract; a notification problem is reported.
            if let Err(failure) = result {
                ctx.out.error(&failure.message);
            }
        }
        Some(signal) = signals.recv() => {
            ctx.out.warn(format!(
                "stopped by signal {signal} while delivering the notification; it stays in the outbox for the next `postflight outbox flush` or run"
            ));
        }
    }
    Ok(code)
}

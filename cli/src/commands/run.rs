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
    // The task's exit code is the contract; a notification problem is reported, not returned.
    if let Err(failure) = notify::notify(ctx, &task, &outcome).await {
        ctx.out.error(&failure.message);
    }
    Ok(code)
}

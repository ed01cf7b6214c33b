//! `postflight render --task NAME [--exit-code N | --status S]`: the email that would be
//! sent, with sample values; sends nothing.

use postflight_core::Status;
use postflight_policy::{classify, Codes, Termination};

use crate::app::Context;
use crate::args::RenderArgs;
use crate::compose;
use crate::exit::{self, Failure};
use crate::output;

/// Prints headers and body; fails on a bad template.
pub fn run(ctx: &Context, args: RenderArgs) -> Result<i32, Failure> {
    let task = ctx
        .config
        .task(&args.task, &super::overrides(&args.overrides));
    let status = match (args.exit_code, args.status) {
        (Some(code), _) => classify(
            &Termination::Exited(code),
            &Codes {
                success: task.success_codes.clone(),
                warning: task.warning_codes.clone(),
            },
        ),
        (None, Some(status)) => status,
        (None, None) => Status::Failure,
    };
    let values = compose::sample_values(&task, status, args.exit_code);
    let origin = format!("task '{}'", task.key);
    let (subject, body) = compose::render_strict(
        task.subject.as_deref(),
        task.body.as_deref(),
        &values,
        &origin,
    )?;
    let email = compose::task_email(ctx, &task, subject, body);
    output::print(&compose::preview(&email));
    ctx.out.detail(format!(
        "would send through account '{}' (level {})",
        task.account, task.level
    ));
    Ok(exit::OK)
}

//! One module per subcommand; each exposes `run(...) -> Result<i32, Failure>` returning the
//! exit code.

pub mod check;
pub mod outbox;
pub mod plugins;
pub mod render;
pub mod report;
pub mod run;
pub mod templates;
pub mod test;

use postflight_core::settings::TaskOverrides;

use crate::args::Overrides;

/// Converts the command-line overrides into core's form.
pub fn overrides(args: &Overrides) -> TaskOverrides {
    TaskOverrides {
        level: args.level,
        to: args.to.clone(),
        account: args.account.clone(),
        subject: args.subject.clone(),
        body: args.body.clone(),
    }
}

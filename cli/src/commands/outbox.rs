//! `postflight outbox list|flush|retry|drop`.

use crate::app::Context;
use crate::args::OutboxAction;
use crate::exit::{self, Failure};

/// Dispatches the outbox actions.
pub async fn run(_ctx: &Context, action: OutboxAction) -> Result<i32, Failure> {
    let _ = action;
    Err(Failure::new(
        exit::UNAVAILABLE,
        "outbox commands are not available in this build yet",
    ))
}

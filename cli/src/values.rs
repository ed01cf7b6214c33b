//! Fills the template values (the catalogue in `postflight-template`) from a run's outcome.

use postflight_core::settings::TaskSettings;
use postflight_core::Status;
use postflight_template::Values;

use crate::clock;
use crate::outcome::RunOutcome;

/// The user running postflight (`$USER`, `$LOGNAME`, else the password database's name).
pub fn user_name() -> String {
    postflight_core::settings::user_name()
}

/// This machine's name.
pub fn computer_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// `1.2 MB (1234567 bytes)`.
pub fn humane_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "";
    for u in UNITS {
        value /= 1000.0;
        unit = u;
        if value < 1000.0 {
            break;
        }
    }
    format!("{value:.1} {unit} ({bytes} bytes)")
}

/// Every value for one run. `previous` is the task's last status before this run.
pub fn for_run(
    task: &TaskSettings,
    outcome: &RunOutcome,
    previous: Option<Status>,
    failure_count: u32,
) -> Values {
    let mut values = Values::new();
    let elapsed = outcome
        .finished
        .duration_since(outcome.started)
        .unwrap_or_default();
    values
        .set("Task Name", task.name.clone())
        .set("Exit Status", outcome.status.phrase())
        .set("Exit Code", outcome.exit_code_text())
        .set("Exit Reason", outcome.exit_reason())
        .set("Computer Name", computer_name())
        .set("User Name", user_name())
        .set("Start Time", clock::format_local(outcome.started))
        .set("End Time", clock::format_local(outcome.finished))
        .set("Elapsed Time", clock::format_elapsed(elapsed))
        .set("Command", outcome.command.clone())
        .set("Output", outcome.output.clone())
        .set("Error Output", outcome.error_output.clone())
        .set("Output Size", humane_size(outcome.output_bytes))
        .set(
            "Previous Status",
            previous.map(Status::phrase).unwrap_or("none (first run)"),
        )
        .set("Failure Count", failure_count.to_string())
        .set(
            "Working Directory",
            outcome.working_dir.display().to_string(),
        );
    values
}

#[cfg(test)]
mod tests {
    use super::humane_size;

    #[test]
    fn sizes_are_humane_and_exact() {
        assert_eq!(humane_size(12), "12 bytes");
        assert_eq!(humane_size(1_234_567), "1.2 MB (1234567 bytes)");
    }
}

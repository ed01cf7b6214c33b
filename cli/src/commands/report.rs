//! `postflight report --task NAME (--exit-code N | --status S) ...`: a task that ran elsewhere.

use std::io::Read;
use std::time::SystemTime;

use postflight_policy::{classify, Codes, Termination};

use crate::app::Context;
use crate::args::ReportArgs;
use crate::clock;
use crate::exit::{self, Failure};
use crate::notify::{self, Handled};
use crate::outcome::RunOutcome;
use crate::runner::OUTPUT_TAIL_BYTES;
use crate::tail::Tail;

/// Returns 0 when the notification was handled (sent, queued or skipped by policy).
pub async fn run(ctx: &Context, args: ReportArgs) -> Result<i32, Failure> {
    let task = ctx
        .config
        .task(&args.task, &super::overrides(&args.overrides));
    let time = |flag: &str, value: &Option<String>| -> Result<Option<SystemTime>, Failure> {
        value
            .as_deref()
            .map(clock::parse_time)
            .transpose()
            .map_err(|e| Failure::new(exit::USAGE, format!("--{flag}: {e}")))
    };
    let finished = time("finished", &args.finished)?.unwrap_or_else(SystemTime::now);
    let started = time("started", &args.started)?.unwrap_or(finished);
    if started > finished {
        return Err(Failure::new(
            exit::USAGE,
            "--started is later than --finished",
        ));
    }
    let (termination, status) = match (args.exit_code, args.status) {
        (Some(code), _) => {
            let termination = Termination::Exited(code);
            let codes = Codes {
                success: task.success_codes.clone(),
                warning: task.warning_codes.clone(),
            };
            let status = classify(&termination, &codes);
            (Some(termination), status)
        }
        (None, Some(status)) => (None, status),
        (None, None) => unreachable!("clap requires --exit-code or --status"),
    };
    let mut output = Tail::new(OUTPUT_TAIL_BYTES);
    if let Some(path) = &args.output_file {
        read_tail(path, &mut output)?;
    }
    let outcome = RunOutcome {
        command: args.command_text.clone().unwrap_or_default(),
        termination,
        status,
        started,
        finished,
        output: output.to_text(),
        // A report has one output stream; it stands for both values.
        error_output: output.to_text(),
        output_bytes: output.total(),
        working_dir: std::env::current_dir().unwrap_or_default(),
        start_error: None,
        timed_out_after: None,
    };
    match notify::notify(ctx, &task, &outcome).await? {
        Handled::Skipped | Handled::Delivered | Handled::Queued => Ok(exit::OK),
        Handled::Failed(code) => Ok(code),
    }
}

/// Streams a file (or stdin for `-`) through a tail: gigabytes in, a bounded tail kept.
fn read_tail(path: &std::path::Path, tail: &mut Tail) -> Result<(), Failure> {
    let mut reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| {
            Failure::new(
                exit::DATAERR,
                format!("--output-file {}: {e}", path.display()),
            )
        })?)
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => tail.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure::new(
                    exit::DATAERR,
                    format!("--output-file {}: {e}", path.display()),
                ));
            }
        }
    }
}

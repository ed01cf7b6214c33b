//! `cargo xtask bench run`: the cost of wrapping a task, postflight against moreutils'
//! chronic (the usual "only tell me when it fails" wrapper), in one run, as ratios.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::{install, util};

const RUNS: usize = 30;

/// Runs the comparison and prints a table.
pub fn run() -> Result<()> {
    if Command::new("chronic").arg("true").status().is_err() {
        bail!("chronic is not installed: apt-get install moreutils");
    }
    install::build(true)?;
    let postflight = util::target_dir().join("release").join("postflight");
    let state = std::env::temp_dir().join(format!("postflight-bench-run-{}", std::process::id()));
    let big = "head -c 100000000 /dev/zero; exit 1";
    println!(
        "\nbench run: wrapping a task ({RUNS} runs each, median wall time, output to /dev/null)"
    );
    println!(
        "{:<38} {:>12} {:>12} {:>8}",
        "case", "postflight", "chronic", "ratio"
    );
    for (label, script) in [
        ("a task that does nothing", "exit 0"),
        ("a failing task printing 100 MB", big),
    ] {
        let ours = median(RUNS, || {
            wrapped(
                &postflight,
                &state,
                &[
                    "run", "--level", "never", "--task", "bench", "--", "sh", "-c", script,
                ],
            )
        })?;
        let chronic = median(RUNS, || {
            timed(Command::new("chronic").args(["sh", "-c", script]))
        })?;
        println!(
            "{label:<38} {:>10.1}ms {:>10.1}ms {:>7.2}x",
            util::millis(ours),
            util::millis(chronic),
            ours.as_secs_f64() / chronic.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&state);
    println!("(ratio = postflight / chronic; below 1 means postflight is faster)");
    Ok(())
}

fn wrapped(postflight: &Path, state: &Path, args: &[&str]) -> Result<Duration> {
    timed(
        Command::new(postflight)
            .args(args)
            .env("POSTFLIGHT_STATE_DIR", state)
            .env_remove("POSTFLIGHT_CONFIG"),
    )
}

fn timed(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .status()?;
    Ok(start.elapsed())
}

/// The median of `runs` measurements (robust against the odd slow run on a busy machine).
pub fn median(runs: usize, mut measure: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut samples = (0..runs).map(|_| measure()).collect::<Result<Vec<_>>>()?;
    samples.sort();
    Ok(samples[samples.len() / 2])
}

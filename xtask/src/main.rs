//! `cargo xtask`: the project's build, install, CI and benchmark entry point.
//!
//! - `cargo xtask build [--release]`: the CLI and every plugin.
//! - `cargo xtask install [--prefix P]`: release build laid out as `P/bin/postflight` and
//!   `P/lib/postflight/plugins/` (default prefix `~/.local`).
//! - `cargo xtask ci`: formatting, clippy, the test servers' Python environment, every plugin
//!   (workspace, example, C), all tests, and the plugin leak check.
//! - `cargo xtask bench [smtp|outbox|run]`: postflight side by side with the usual tools.

mod bench_outbox;
mod bench_run;
mod bench_smtp;
mod ci;
mod install;
mod plugins;
mod util;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("build") => install::build(rest.contains(&"--release")),
        Some("install") => install::install(&rest),
        Some("ci") => ci::run(),
        Some("bench") => match rest.first().copied() {
            Some("smtp") => bench_smtp::run(),
            Some("outbox") => bench_outbox::run(),
            Some("run") => bench_run::run(),
            None | Some("all") => {
                bench_smtp::run()?;
                bench_outbox::run()?;
                bench_run::run()
            }
            Some(other) => bail!("unknown benchmark '{other}': use smtp, outbox, run or all"),
        },
        _ => {
            eprintln!("usage: cargo xtask <build [--release] | install [--prefix DIR] | ci | bench [smtp|outbox|run|all]>");
            std::process::exit(64);
        }
    }
}

//! The `postflight` binary: parse the command line, run the command, map errors to exit codes.

mod app;
mod args;
mod clock;
mod commands;
mod compose;
mod deliver;
mod exit;
mod flush;
mod history;
mod notify;
mod outcome;
mod output;
mod runner;
mod tail;
mod values;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() {
    // Must happen while the process is single-threaded (see clock.rs).
    clock::init_local_offset();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors; a wrong command line is a usage error (64),
        // not clap's default 2, so scripts see the sysexits code the contract promises.
        Err(error) => {
            let code = if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = error.print();
            std::process::exit(code);
        }
    };
    let code = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(dispatch(cli)),
        Err(e) => {
            eprintln!("postflight: error: cannot start the async runtime: {e}");
            exit::SOFTWARE
        }
    };
    std::process::exit(code);
}

async fn dispatch(cli: Cli) -> i32 {
    // `templates` needs no config; everything else loads it first.
    let result = match cli.command {
        Command::Templates(ref args) => commands::templates::run(args),
        // The task runs whatever state the config is in (DESIGN section 3: `run` exits with
        // the task's code whatever happened to the email).
        Command::Run(_) => run(&app::Context::load_or_builtin(&cli), cli.command).await,
        _ => match app::Context::load(&cli) {
            Ok(ctx) => run(&ctx, cli.command).await,
            Err(failure) => Err(failure),
        },
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("postflight: error: {}", failure.message);
            failure.code
        }
    }
}

async fn run(ctx: &app::Context, command: Command) -> Result<i32, exit::Failure> {
    match command {
        Command::Run(args) => commands::run::run(ctx, args).await,
        Command::Report(args) => commands::report::run(ctx, args).await,
        Command::Test(args) => commands::test::run(ctx, args).await,
        Command::Render(args) => commands::render::run(ctx, args),
        Command::Templates(args) => commands::templates::run(&args),
        Command::Check => commands::check::run(ctx),
        Command::Plugins(args) => commands::plugins::run(ctx, args),
        Command::Outbox(args) => commands::outbox::run(ctx, args.action).await,
    }
}

//! `larder`: inspect and clear larder caches in Redis or in a directory, for operators
//! (feature `cli`). `larder --help` says how.
//!
//! Commands work on the L2 store that instances share (`--redis URL [--prefix P]` or
//! `--dir PATH`). Those that change it (`delete`, `clear`) also publish the matching bus
//! message, so that running instances drop their memory (L1) copies.

use std::io::Write;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

#[path = "larder/args.rs"]
mod args;
#[path = "larder/commands.rs"]
mod commands;
#[path = "larder/target.rs"]
mod target;

use target::{Failure, Target};

fn main() -> ExitCode {
    let matches = args::Cli::command().get_matches();
    let mut cli = match args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // An explicit --dir wins over a Redis URL from the environment.
    if cli.target.dir.is_some() && matches.value_source("redis") == Some(ValueSource::EnvVariable) {
        cli.target.redis = None;
    }

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return fail(&Failure::new(format!("cannot start the async runtime: {e}")));
        }
    };
    let mut out = String::new();
    let result = runtime.block_on(async {
        let target = Target::open(&cli.target).await?;
        commands::run(&target, cli.command, &mut out).await
    });
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`larder keys | head`) is not an error.
    let printed = stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush());
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return fail(&Failure::new(format!("cannot write the output: {e}")));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure),
    }
}

fn fail(failure: &Failure) -> ExitCode {
    eprintln!("larder: error: {failure}");
    ExitCode::from(failure.code)
}

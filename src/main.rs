//! The `as4gw` command: wires the rooms together; no logic of its own.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("as4gw: {e:#}");
            ExitCode::from(2)
        }
    }
}

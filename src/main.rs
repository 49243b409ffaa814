//! The `as4gw` command: wires the rooms together; no logic of its own.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// mimalloc instead of glibc's malloc: the message path allocates many small, short-lived
/// buffers across tokio's worker threads, where glibc's arenas spent ~14% of the gateways' CPU
/// (perf, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Built once per process: the version line names the enabled suites and algorithms.
    let version: &'static str = Box::leak(cli::version_text().into_boxed_str());
    let matches = cli::Cli::command()
        .version(version)
        .long_version(version)
        .get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("as4gw: {e:#}");
            ExitCode::from(2)
        }
    }
}

//! `as4gw conformance run`: every scenario of `conformance/scenarios/` against two in-process
//! gateways; a table on stdout, JUnit XML on request; exit 0 only if every case passes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};

use as4gw::conformance::{self, report};

#[derive(Subcommand)]
pub enum Command {
    /// Run the scenarios; exit 0 only if all pass, 1 if any fails, 2 on usage/I/O errors.
    Run(RunArgs),
}

#[derive(ClapArgs)]
pub struct RunArgs {
    /// Directory of scenario files (`*.toml`).
    #[arg(long, default_value = "conformance/scenarios")]
    scenarios: PathBuf,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Directory with as4gw.toml, as4gw-blue.toml, pmodes/ and certs/ (the repository root).
    #[arg(long, default_value = ".")]
    base: PathBuf,
    /// Only the scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run(a) => run_cases(a),
    }
}

fn run_cases(a: RunArgs) -> anyhow::Result<ExitCode> {
    let mut scenarios = match conformance::load_dir(&a.scenarios) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("as4gw: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(only) = &a.only {
        scenarios.retain(|s| s.name.contains(only.as_str()));
    }
    if scenarios.is_empty() {
        eprintln!("as4gw: no scenarios in {}", a.scenarios.display());
        return Ok(ExitCode::from(2));
    }
    let base = std::fs::canonicalize(&a.base)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let results = rt.block_on(conformance::run_all(&base, &scenarios));
    print!("{}", report::table(&results));
    if let Some(j) = &a.junit {
        std::fs::write(j, report::junit(&results))?;
    }
    Ok(if results.iter().all(|r| r.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

//! `as4gw conformance run`: the scenarios of `conformance/scenarios/` against one partner (a
//! second in-process as4gw, `--target URL`, or `--partner as4py`); a table on stdout, JUnit XML
//! on request; exit 0 only if no case fails. `as4gw conformance matrix`: every partner, written
//! as `conformance/matrix.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};

use as4gw::conformance::{self, as4py::As4pyPartner, report, Partner};

#[derive(Subcommand)]
pub enum Command {
    /// Run the scenarios; exit 0 only if all pass, 1 if any fails, 2 on usage/I/O errors.
    Run(RunArgs),
    /// Run the scenarios and write which cases each partner passes as a Markdown table.
    Matrix(MatrixArgs),
}

#[derive(ClapArgs)]
pub struct MatrixArgs {
    #[arg(long, default_value = "conformance/scenarios")]
    scenarios: PathBuf,
    #[arg(long, default_value = ".")]
    base: PathBuf,
    /// Where to write the Markdown table.
    #[arg(long, default_value = "conformance/matrix.md")]
    out: PathBuf,
    /// Python with the pinned `as4` library (the venv the interop tests build).
    #[arg(long, default_value = "target/venv-as4/bin/python")]
    python: PathBuf,
    /// Write JUnit XML of every run here (one testsuite per partner).
    #[arg(long)]
    junit: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PartnerKind {
    /// A second as4gw in this process (or `--target`).
    As4gw,
    /// The Python `as4` library behind tests/interop/python/partner.py, over HTTPS.
    As4py,
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
    /// A partner's AS4 endpoint (https): only the cases that need no control of the partner
    /// run, sent by an in-process as4gw over real HTTPS.
    #[arg(long)]
    target: Option<String>,
    /// With --target: only the scenarios on these P-Modes (repeatable; default all).
    #[arg(long)]
    pmode: Vec<String>,
    /// With --target: the P-Modes agreed with the partner (every endpoint other than our own
    /// `[as4] url` is replaced by --target).
    #[arg(long, default_value = "pmodes")]
    pmodes: PathBuf,
    /// With --target: our configuration (PartyId, keys, TLS client pair, trust anchors).
    #[arg(long, default_value = "as4gw.toml")]
    config: PathBuf,
    /// The partner: as4gw (in-process, or --target) or as4py (the Python library).
    #[arg(long, value_enum, default_value = "as4gw")]
    partner: PartnerKind,
    /// With --partner as4py: Python with the pinned `as4` library.
    #[arg(long, default_value = "target/venv-as4/bin/python")]
    python: PathBuf,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run(a) => run_cases(a),
        Command::Matrix(a) => matrix(a),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
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
    if a.target.is_some() {
        if a.partner == PartnerKind::As4py {
            eprintln!("as4gw: --target and --partner as4py exclude each other");
            return Ok(ExitCode::from(2));
        }
        // Only the cases a partner not under our control can take part in.
        let before = scenarios.len();
        scenarios.retain(|s| conformance::run::remote_support(s).is_none());
        println!(
            "--target: {} of {before} cases need no control of the partner; the others are not run",
            scenarios.len()
        );
        if !a.pmode.is_empty() {
            scenarios.retain(|s| s.send.as_ref().is_some_and(|x| a.pmode.contains(&x.pmode)));
        }
    }
    if scenarios.is_empty() {
        eprintln!("as4gw: no scenarios to run in {}", a.scenarios.display());
        return Ok(ExitCode::from(2));
    }
    let base = std::fs::canonicalize(&a.base)?;
    let rt = runtime()?;
    let results = match (&a.target, a.partner) {
        (Some(url), _) => {
            let t = conformance::world::RemoteTarget {
                config: a.config.clone(),
                pmodes: a.pmodes.clone(),
                url: url.clone(),
                party: None,
            };
            rt.block_on(conformance::run_all(&base, &scenarios, Partner::Remote(&t)))
        }
        (None, PartnerKind::As4py) => {
            let p = match As4pyPartner::start(&base, &a.python) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("as4gw: the Python partner: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            rt.block_on(conformance::run_all(&base, &scenarios, Partner::As4py(&p)))
        }
        (None, PartnerKind::As4gw) => {
            rt.block_on(conformance::run_all(&base, &scenarios, Partner::InProcess))
        }
    };
    print!("{}", report::table(&results));
    if let Some(j) = &a.junit {
        std::fs::write(j, report::junit(&results))?;
    }
    Ok(if results.iter().any(|r| r.failed()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs every scenario against as4gw in-process (the replays included) and against the
/// Python library, and writes the matrix. Exit 1 when an as4gw ↔ as4gw case or a replay
/// fails (those must all pass); the Python column is reported as it is.
fn matrix(a: MatrixArgs) -> anyhow::Result<ExitCode> {
    let scenarios = conformance::load_dir(&a.scenarios)?;
    let base = std::fs::canonicalize(&a.base)?;
    let rt = runtime()?;
    let own = rt.block_on(conformance::run_all(&base, &scenarios, Partner::InProcess));
    let partner = As4pyPartner::start(&base, &a.python)
        .map_err(|e| anyhow::anyhow!("the Python partner: {e:#}"))?;
    let py = rt.block_on(conformance::run_all(
        &base,
        &scenarios,
        Partner::As4py(&partner),
    ));
    drop(partner);
    let table = format!("{}{}", MATRIX_HEAD, report::matrix(&scenarios, &own, &py));
    std::fs::write(&a.out, &table)?;
    print!("{}", report::table(&own));
    print!("{}", report::table(&py));
    if let Some(j) = &a.junit {
        std::fs::write(
            j,
            report::junit_suites(&[("as4gw", own.as_slice()), ("as4py", py.as_slice())]),
        )?;
    }
    Ok(if own.iter().any(|r| r.failed()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

const MATRIX_HEAD: &str = "# Conformance / interoperability matrix\n\n\
Written by `as4gw conformance matrix` (do not edit: `tests/it/conformance.rs` compares this file \
with the command's output). Scenarios: `conformance/scenarios/`; how each column runs: \
`docs/conformance.md`.\n\n";

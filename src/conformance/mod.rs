//! The conformance self-test: scenarios as data (`conformance/scenarios/*.toml`) run against
//! two in-process gateways (real `Msh` engines, real crypto, SQLite stores in temp
//! directories, an in-memory transport with a mutation hook, a manual clock for retries).
//! `as4gw conformance run` prints a table and writes JUnit XML; see `docs/conformance.md`.

pub mod as4py;
pub mod report;
pub mod run;
pub mod scenario;
pub mod world;

pub use run::{run_scenario, CaseResult, Partner};
pub use scenario::{load_dir, Scenario};

use std::path::Path;

/// Runs every scenario (each in a fresh pair of gateways), in order.
pub async fn run_all(base: &Path, scenarios: &[Scenario], partner: Partner<'_>) -> Vec<CaseResult> {
    let mut out = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        out.push(run_scenario(base, s, partner).await);
    }
    out
}

//! The conformance suite: scenarios as data (`conformance/scenarios/*.toml`) run against a
//! partner — a second in-process gateway (real `Msh` engines, real crypto, SQLite stores in
//! temp directories, an in-memory transport with a mutation hook, a manual clock), any AS4
//! endpoint over HTTPS (`--target`), or the Python `as4` library (`as4py`) — and recorded
//! messages of other implementations replayed into a gateway with a pinned clock. The outputs
//! (table, JUnit XML, the interop matrix) are in `report`; see `docs/conformance.md`.

pub mod as4py;
pub mod report;
pub mod run;
pub mod scenario;
pub mod world;

pub use run::{run_scenario, CaseResult, Partner};
pub use scenario::{load_dir, Scenario};

use std::path::Path;

/// Runs every scenario against `partner` (each in a fresh world), in order.
pub async fn run_all(base: &Path, scenarios: &[Scenario], partner: Partner<'_>) -> Vec<CaseResult> {
    let mut out = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        out.push(run_scenario(base, s, partner).await);
    }
    out
}

//! P-Modes: the TOML model, loading, validation, matching and explanation.
//!
//! A P-Mode (ebMS3 §4, digest §2.3, §3.4) fixes everything two access points agree on for an
//! exchange: parties and roles, service and actions, security suite and certificates, receipt
//! and retry behaviour, payload rules. Files are TOML (`pmodes/*.toml`, format in
//! `docs/pmodes.md`); [`model::RawPMode`] is what a file says, [`model::PMode`] what the gateway
//! runs with, and [`set::PModeSet`] the validated whole that [`registry::Registry`] swaps on
//! reload. [`matching`] selects the P-Mode and leg of a message or submission.

pub mod certs;
pub mod diag;
pub mod matching;
pub mod model;
pub mod registry;
pub mod set;
pub mod units;

pub use diag::{Diagnostic, Diagnostics};
pub use matching::{
    explain_inbound, explain_submission, match_inbound, match_submission, MatchError, Matched,
    MessageKey, Submission,
};
pub use model::{PMode, Suite};
pub use registry::Registry;
pub use set::{PModeSet, SetContext};

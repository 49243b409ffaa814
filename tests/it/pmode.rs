//! Integration tests: pmode (demo PKI, configuration, P-Modes, matching, reload).

mod check;
mod config;
mod matching;
mod pki;
mod reload;

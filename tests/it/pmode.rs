//! Integration tests: pmode (demo PKI, configuration, P-Modes, matching, reload).

mod pki;
mod check;

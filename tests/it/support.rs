//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Path of a file under `tests/fixtures/` (copies of `../shared/fixtures/`, same layout).
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Bytes of a fixture file; panics with the path when missing.
pub fn read_fixture(rel: &str) -> Vec<u8> {
    let p = fixture(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Path of the `as4gw` binary built for these tests.
pub fn as4gw_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_as4gw"))
}

//! The hostile-input corpus (`conformance/hostile/`, issue 9 point 2) against a real `as4gw
//! serve` process over HTTPS, and the access tests (point 4). The generator of the corpus lives
//! here too (`gen.rs`, an ignored test).

pub mod corpus;
pub mod gen;
pub mod server;

/// The repository root.
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
pub mod access;

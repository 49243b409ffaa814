//! Integration tests: oots (EDM model, reader, writer, header rules, correlation keys).
//!
//! Every OOTS evidence-exchange sample under `tests/fixtures/oots/` is read, checked against
//! the header rules, written back and compared with the original; broken variants of them
//! must fail with the expected rule.

mod broken;
mod common;
mod keys;
mod samples;

//! Integration tests: the message service handler.
//!
//! * `pipeline`: two MSH cores back to back through an in-memory transport with a manual
//!   clock (both suites, one and several payloads, compressed or not, duplicates, retries,
//!   every inbound failure code we can provoke).
//! * `e2e`: two real `as4gw serve` processes over HTTPS with the demo certificates.

pub mod e2e;
pub mod harness;
mod inbound_errors;
mod pipeline;

//! as4gw — an eDelivery AS4 access point for the EU Once-Only Technical System (OOTS).
//!
//! The crate is organised in rooms, each with one job (see `ARCHITECTURE.md`). The protocol
//! rooms (`xml`, `mime`, `ebms`, `security`, `pki`, `pmode`) do no I/O beyond loading their
//! files and read no clock: bytes and `now` in, values out.
#![forbid(unsafe_code)]

pub mod backend;
pub mod config;
pub mod conformance;
pub mod ebms;
pub mod mime;
pub mod msh;
pub mod ns;
pub mod oots;
pub mod pki;
pub mod pmode;
pub mod security;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod xml;

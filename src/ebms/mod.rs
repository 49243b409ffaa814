//! The ebMS 3.0 message model (`eb:Messaging` with UserMessage and SignalMessage), its XML
//! codec, and the EBMS error-code table.

pub mod codes;

pub use codes::{Category, EbmsCode, Origin, Severity};

//! Integration tests: security (WS-Security verify/sign/encrypt/decrypt, receipts, PKI, CLI).

mod cli;
mod crypto;
mod demo;
mod fixtures;
mod msg;
mod negative;
mod pki;
mod roundtrip;
mod testpki;

//! Integration tests: security (WS-Security verify/sign/encrypt/decrypt, receipts, PKI, CLI).

mod fixtures;
mod msg;
mod negative;
mod roundtrip;
mod testpki;

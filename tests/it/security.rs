//! Integration tests: security (WS-Security verify/sign/encrypt/decrypt, receipts, PKI, CLI).

mod fixtures;

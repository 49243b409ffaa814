//! Integration tests: pmode.

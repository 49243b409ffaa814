//! Integration tests: c14n.

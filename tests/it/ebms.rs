//! Integration tests: ebms.

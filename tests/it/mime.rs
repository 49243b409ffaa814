//! Integration tests: mime.

//! Gateway configuration (`as4gw.toml`).

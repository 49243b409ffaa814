//! P-Modes: the TOML model, loading, validation, matching and explanation.

//! Profile validation (placeholder).

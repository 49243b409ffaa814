//! SOAP envelope (placeholder, filled below).

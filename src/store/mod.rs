//! The message store and retry queue behind a trait; SQLite is the embedded default.

//! Keys, certificates and trust decisions (the clock is passed in, never read).

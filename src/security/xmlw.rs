//! Small helpers for writing and reading the security header as text.

use base64::Engine;

/// Escapes text content.
pub(crate) fn text(s: &str) -> String {
    let mut out = Vec::new();
    crate::xml::escape_text(s, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Escapes an attribute value (for double quotes).
pub(crate) fn attr(s: &str) -> String {
    let mut out = Vec::new();
    crate::xml::escape_attr(s, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

pub(crate) fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes base64 after removing XML whitespace (line-wrapped values are common).
pub(crate) fn unb64(s: &str) -> Option<Vec<u8>> {
    let engine = &base64::engine::general_purpose::STANDARD;
    // Our own and most partners' values are on one line: decode in place, no copy.
    if !s.bytes().any(|b| b.is_ascii_whitespace()) {
        return engine.decode(s).ok();
    }
    let clean: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    engine.decode(clean).ok()
}

/// A fresh identifier for wsu:Id / Id attributes (an NCName).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

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
    // Our own and most partners' values are on one line: decoded as they are, without a scan
    // for white space first (the decoder refuses white space, so only then is a copy made).
    if let Ok(v) = engine.decode(s) {
        return Some(v);
    }
    if !s.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let clean: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    engine.decode(clean).ok()
}

/// A fresh identifier for wsu:Id / Id attributes (an NCName): `prefix-` and a random (v4) UUID.
/// The bytes come from aws-lc's DRBG, not `Uuid::new_v4`: that makes one `getrandom` system
/// call per id, five per secured message, a cost the instruction profile does not show but the
/// clock does.
pub(crate) fn new_id(prefix: &str) -> String {
    IdSource::new().id(prefix)
}

/// Identifiers for one message ([`new_id`]'s form), their random bits drawn from aws-lc's DRBG
/// for eight ids at a time: every DRBG call has a fixed cost (its key-schedule update, ~0.5 µs)
/// that a message with five ids otherwise pays five times.
pub(crate) struct IdSource {
    random: [u8; 128],
    next: usize,
}

impl IdSource {
    pub(crate) fn new() -> Self {
        IdSource {
            random: [0u8; 128],
            next: 128,
        }
    }

    pub(crate) fn id(&mut self, prefix: &str) -> String {
        if self.next == self.random.len() {
            if aws_lc_rs::rand::fill(&mut self.random).is_err() {
                for chunk in self.random.chunks_exact_mut(16) {
                    chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                }
            }
            self.next = 0;
        }
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.random[self.next..self.next + 16]);
        self.next += 16;
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut out = String::with_capacity(prefix.len() + 37);
        out.push_str(prefix);
        out.push('-');
        out.push_str(
            uuid.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_v4_uuids() {
        let a = super::new_id("X509");
        let b = super::new_id("X509");
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(a.strip_prefix("X509-").expect("prefix")).expect("uuid");
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn unb64_on_one_line_and_wrapped() {
        let data: Vec<u8> = (0u8..=200).collect();
        let line = super::b64(&data);
        assert_eq!(super::unb64(&line).as_deref(), Some(&data[..]));
        let wrapped: String = line
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect::<Vec<_>>()
            .join("\r\n\t ");
        assert_eq!(super::unb64(&wrapped).as_deref(), Some(&data[..]));
        assert_eq!(
            super::unb64(&format!(" {line}\n")).as_deref(),
            Some(&data[..])
        );
        for bad in ["a", "ab=c", "****", "QUJD\nRA", "QUJDRA=", "QUJDRB=="] {
            assert_eq!(super::unb64(bad), None, "{bad:?}");
        }
        assert_eq!(super::unb64("").as_deref(), Some(&[][..]));
    }

    #[test]
    fn one_source_gives_distinct_ids_across_refills() {
        let mut ids = super::IdSource::new();
        let all: Vec<String> = (0..20).map(|_| ids.id("ED")).collect();
        let mut uniq = all.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), all.len(), "{all:?}");
        for a in &all {
            let u = uuid::Uuid::parse_str(a.strip_prefix("ED-").expect("prefix")).expect("uuid");
            assert_eq!(u.get_version_num(), 4);
        }
    }
}

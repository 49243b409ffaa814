//! The envelope `Content-Type` (digest §2.2) and header blocks.

use super::MimeError;

/// What the HTTP `Content-Type` says the body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeType {
    /// SOAP with Attachments: `multipart/related` with a root part and payload parts.
    Multipart(MultipartRelated),
    /// A bare SOAP envelope (signals carry no payload, [EBMS3] §5.1.1): `application/soap+xml`,
    /// or `text/xml` for SOAP 1.1 samples. The field is the lower-case media type essence.
    Soap { media_type: String },
}

/// The parameters of `multipart/related` that matter to SwA (RFC 2387 §3, [EBMS3] §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartRelated {
    /// The delimiter string, without the leading `--`.
    pub boundary: String,
    /// `type`: the root part's media type (lower case). RFC 2387 makes it required, but it is
    /// tolerated when absent (the root part's own `Content-Type` is still checked).
    pub type_param: Option<String>,
    /// `start`: the root part's Content-ID **without** angle brackets; `None` means the first part.
    pub start: Option<String>,
    /// `start-info` as sent (for SOAP 1.2 `application/soap+xml`); informative only.
    pub start_info: Option<String>,
}

/// The SOAP media types accepted for the root part ([EBMS3] §5.1.4; SOAP 1.1 for samples).
pub(crate) fn is_soap_media_type(essence: &str) -> bool {
    essence.eq_ignore_ascii_case(crate::ns::MEDIA_SOAP12)
        || essence.eq_ignore_ascii_case("text/xml")
}

/// Joins folded header lines (RFC 5322 §2.2.3): CR/LF followed by white space becomes one space.
fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i > 0 {
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line);
        }
    }
    out.trim().to_string()
}

/// Strips the angle brackets of a `msg-id` (`<a@b>` → `a@b`, RFC 2392 §2); tolerates their absence,
/// which phase4 sends (`Content-ID: ph-as4-…` in `WrongCompression.mime`).
pub(crate) fn strip_angle(value: &str) -> &str {
    let v = value.trim();
    v.strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(v)
}

/// Parses the HTTP `Content-Type` of an AS4 message.
///
/// Accepts `multipart/related` (boundary required, RFC 2046 §5.1.1) and the bare SOAP types.
/// Every other media type is refused ([`MimeError::UnsupportedMediaType`]): an AS4 message is a
/// SOAP message, packaged as SwA when it has payloads (digest §2.2).
pub fn parse_content_type(value: &str) -> Result<EnvelopeType, MimeError> {
    let unfolded = unfold(value);
    let m: mime::Mime =
        unfolded
            .parse()
            .map_err(|e: mime::FromStrError| MimeError::InvalidContentType {
                value: value.to_string(),
                reason: e.to_string(),
            })?;
    let essence = m.essence_str().to_ascii_lowercase();
    if is_soap_media_type(&essence) {
        return Ok(EnvelopeType::Soap {
            media_type: essence,
        });
    }
    if essence != "multipart/related" {
        return Err(MimeError::UnsupportedMediaType(essence));
    }
    let boundary = m
        .get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_string())
        .ok_or(MimeError::MissingBoundary)?;
    if boundary.is_empty()
        || boundary.len() > 70
        || boundary.ends_with(' ')
        || boundary.contains(['\r', '\n'])
    {
        return Err(MimeError::InvalidBoundary(boundary));
    }
    let type_param = m
        .get_param("type")
        .map(|t| t.as_str().trim().to_ascii_lowercase());
    let start = m
        .get_param("start")
        .map(|s| strip_angle(s.as_str()).to_string())
        .filter(|s| !s.is_empty());
    let start_info = m.get_param("start-info").map(|s| s.as_str().to_string());
    Ok(EnvelopeType::Multipart(MultipartRelated {
        boundary,
        type_param,
        start,
        start_info,
    }))
}

/// Parses a header block (the lines before the blank line, without it) into `(name, value)` pairs
/// in order, names as sent, values unfolded. Bare LF line ends are tolerated.
pub(crate) fn parse_header_block(
    block: &[u8],
    index: usize,
) -> Result<Vec<(String, String)>, MimeError> {
    let text = std::str::from_utf8(block).map_err(|_| MimeError::MalformedHeader {
        index,
        reason: "header bytes are not UTF-8".to_string(),
    })?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Continuation of the previous header (RFC 5322 §2.2.3).
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => {
                    return Err(MimeError::MalformedHeader {
                        index,
                        reason: "continuation line before any header".to_string(),
                    })
                }
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(MimeError::MalformedHeader {
                index,
                reason: format!("no colon in header line {line:?}"),
            });
        };
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !valid_name {
            return Err(MimeError::MalformedHeader {
                index,
                reason: format!("invalid header name {name:?}"),
            });
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(headers)
}

/// Finds the end of a header block: returns `(block_len, body_start)` where `block_len` excludes
/// the blank line and `body_start` is just after it. Accepts CRLF and bare LF line ends.
pub(crate) fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    // The block may be empty: the body starts right after a first blank line.
    if buf.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if buf.starts_with(b"\n") {
        return Some((0, 1));
    }
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\n', &buf[from..]) {
        let nl = from + off;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
        if rest.is_empty() || rest == b"\r" {
            return None;
        }
        from = nl + 1;
    }
    None
}

/// Splits a captured message file into its `Content-Type` value and body.
///
/// Operators' captures (phase4 `.mime` / `.as4out` dumps) start with the MIME/HTTP headers
/// (`Content-Type`, `MIME-Version`, `Message-ID`…), then a blank line, then the body that went
/// over the wire. Folded header lines are joined. Errors: no blank line, no `Content-Type`.
pub fn split_headers(bytes: &[u8]) -> Result<(String, &[u8]), MimeError> {
    let (block_len, body_start) =
        find_header_end(bytes).ok_or_else(|| MimeError::MalformedHeader {
            index: 0,
            reason: "no blank line after the leading headers".to_string(),
        })?;
    let headers = parse_header_block(&bytes[..block_len], 0)?;
    let ct = headers
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v)
        .ok_or_else(|| MimeError::InvalidContentType {
            value: String::new(),
            reason: "no Content-Type header in the leading headers".to_string(),
        })?;
    Ok((ct, &bytes[body_start..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_swa_content_type() {
        let ct = "multipart/related; type=\"application/soap+xml\"; boundary=\"b1\"; start=\"<root@x>\"; start-info=\"application/soap+xml\"";
        let EnvelopeType::Multipart(m) = parse_content_type(ct).unwrap() else {
            panic!("not multipart")
        };
        assert_eq!(m.boundary, "b1");
        assert_eq!(m.type_param.as_deref(), Some("application/soap+xml"));
        assert_eq!(m.start.as_deref(), Some("root@x"));
        assert_eq!(m.start_info.as_deref(), Some("application/soap+xml"));
    }

    #[test]
    fn folded_and_plain() {
        let ct = "multipart/related; \r\n\tboundary=\"----=_Part_0\"; \r\n\ttype=\"application/soap+xml\"";
        assert!(matches!(
            parse_content_type(ct),
            Ok(EnvelopeType::Multipart(_))
        ));
        assert_eq!(
            parse_content_type("application/soap+xml; charset=UTF-8").unwrap(),
            EnvelopeType::Soap {
                media_type: "application/soap+xml".into()
            }
        );
        assert_eq!(
            parse_content_type("multipart/related; type=\"a/b\""),
            Err(MimeError::MissingBoundary)
        );
        assert!(matches!(
            parse_content_type("text/plain"),
            Err(MimeError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            parse_content_type("not a type"),
            Err(MimeError::InvalidContentType { .. })
        ));
    }

    #[test]
    fn header_end() {
        assert_eq!(find_header_end(b"A: b\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(find_header_end(b"A: b\n\nbody"), Some((5, 6)));
        assert_eq!(find_header_end(b"\r\nbody"), Some((0, 2)));
        assert_eq!(find_header_end(b"A: b\r\n"), None);
        assert_eq!(find_header_end(b"A: b\r\n\r"), None);
    }
}

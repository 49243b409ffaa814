//! Reading captured traffic for diagnostics (`as4gw message verify`): an HTTP header block or
//! MIME headers followed by the body, a raw `multipart/related` body with its Content-Type given
//! separately, or a plain SOAP envelope.
//!
//! The header block and the multipart body are read with the `mime` room
//! ([`crate::mime::split_headers`], [`crate::mime::MimeReader`], [`crate::mime::collect`]), so
//! there is one MIME parser in the product; this module only decides which of the four shapes a
//! file has and maps the parts to [`Attachment`]s.

use bytes::Bytes;
use futures_util::FutureExt;

use crate::mime::{collect, split_headers, MimeLimits, MimeReader};

use super::{Attachment, SecurityError};

/// A captured message split into its SOAP root part and its other MIME parts.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The Content-Type of the whole message, when known.
    pub content_type: Option<String>,
    /// The SOAP envelope bytes.
    pub soap: Vec<u8>,
    /// The other MIME parts (Content-ID without angle brackets).
    pub attachments: Vec<Attachment>,
}

fn bad(m: impl Into<String>) -> SecurityError {
    SecurityError::MissingPart(m.into())
}

/// Parses a capture. `content_type` overrides (and is required for a raw multipart body that
/// does not start with its MIME headers).
pub fn parse_capture(bytes: &[u8], content_type: Option<&str>) -> Result<Captured, SecurityError> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let trimmed = &bytes[start..];
    let bom_free = trimmed.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(trimmed);
    let (ct, body): (Option<String>, &[u8]) = match content_type {
        Some(ct) => (Some(ct.to_string()), bytes),
        None if bom_free.starts_with(b"<") => (None, bytes),
        None => {
            let (ct, body) = split_headers(trimmed).map_err(|e| bad(format!("capture: {e}")))?;
            (Some(ct), body)
        }
    };
    let is_multipart = ct.as_deref().is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    });
    let Some(ct_s) = ct.as_deref().filter(|_| is_multipart) else {
        return Ok(Captured {
            content_type: ct,
            soap: body.to_vec(),
            attachments: Vec::new(),
        });
    };
    let mut reader =
        MimeReader::from_bytes(ct_s, Bytes::copy_from_slice(body), MimeLimits::default())
            .map_err(|e| bad(format!("capture: {e}")))?;
    // The input is in memory, so the reader never waits: one poll completes it.
    let msg = collect(&mut reader)
        .now_or_never()
        .ok_or_else(|| bad("capture: MIME reader did not complete"))?
        .map_err(|e| bad(format!("capture: {e}")))?;
    let attachments = msg
        .payloads
        .into_iter()
        .map(|p| Attachment {
            content_id: p.headers.content_id.unwrap_or_default(),
            mime_type: p
                .headers
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_string()),
            data: p.body.to_vec(),
        })
        .collect();
    Ok(Captured {
        content_type: ct,
        soap: msg.root.body.to_vec(),
        attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multipart_with_headers() {
        let msg = b"Content-Type: multipart/related; boundary=\"b1\"; type=\"application/soap+xml\"\r\n\r\n--b1\r\nContent-Type: application/soap+xml\r\n\r\n<a/>\r\n--b1\r\nContent-ID: <p1@x>\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--b1--\r\n";
        let c = parse_capture(msg, None).expect("parse");
        assert_eq!(c.soap, b"<a/>");
        assert_eq!(c.attachments.len(), 1);
        assert_eq!(c.attachments[0].content_id, "p1@x");
        assert_eq!(c.attachments[0].data, b"DATA");
    }

    #[test]
    fn plain_soap_and_http_headers() {
        assert_eq!(parse_capture(b"<x/>", None).expect("plain").soap, b"<x/>");
        let c = parse_capture(
            b"Server: x\nContent-Type: application/soap+xml\n\n<y/>",
            None,
        )
        .expect("http");
        assert_eq!(c.soap, b"<y/>");
    }
}

//! Reading captured traffic for diagnostics (`as4gw message verify`): an HTTP header block or
//! MIME headers followed by the body, a raw `multipart/related` body with its Content-Type given
//! separately, or a plain SOAP envelope.
//!
//! This is a small, bounded splitter for operators' files; the gateway's streaming MIME reader
//! lives in the `mime` room. Only `binary`, `8bit`, `7bit` and `base64` transfer encodings.

use base64::Engine;

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

/// MIME header fields, lower-cased names.
type Headers = Vec<(String, String)>;

fn bad(m: impl Into<String>) -> SecurityError {
    SecurityError::MissingPart(m.into())
}

/// Splits a header block from the body at the first empty line (CRLF or LF).
fn split_headers(bytes: &[u8]) -> Option<(Headers, &[u8])> {
    let mut i = 0;
    let mut lines: Vec<String> = Vec::new();
    loop {
        let rest = &bytes[i..];
        let nl = rest.iter().position(|b| *b == b'\n')?;
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        i += nl + 1;
        if line.is_empty() {
            break;
        }
        let s = String::from_utf8_lossy(line).into_owned();
        if (s.starts_with(' ') || s.starts_with('\t')) && !lines.is_empty() {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(s.trim());
            }
        } else {
            lines.push(s);
        }
        if lines.len() > 200 {
            return None;
        }
    }
    let headers = lines
        .iter()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Some((headers, &bytes[i..]))
}

fn header<'h>(h: &'h [(String, String)], name: &str) -> Option<&'h str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A parameter of a Content-Type value (quoted or not).
pub fn content_type_param(ct: &str, name: &str) -> Option<String> {
    for p in ct.split(';').skip(1) {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
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
            let (h, body) =
                split_headers(trimmed).ok_or_else(|| bad("no header block and no XML"))?;
            (header(&h, "content-type").map(str::to_string), body)
        }
    };
    let is_multipart = ct.as_deref().is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    });
    if !is_multipart {
        return Ok(Captured {
            content_type: ct,
            soap: body.to_vec(),
            attachments: Vec::new(),
        });
    }
    let ct_s = ct.clone().unwrap_or_default();
    let boundary =
        content_type_param(&ct_s, "boundary").ok_or_else(|| bad("multipart without boundary"))?;
    let start_cid = content_type_param(&ct_s, "start")
        .map(|s| s.trim_matches(|c| c == '<' || c == '>').to_string());
    let parts = split_multipart(body, &boundary)?;
    let mut root: Option<Vec<u8>> = None;
    let mut attachments = Vec::new();
    for (i, (h, content)) in parts.into_iter().enumerate() {
        let cid = header(&h, "content-id")
            .map(|c| c.trim().trim_matches(|c| c == '<' || c == '>').to_string());
        let data = match header(&h, "content-transfer-encoding").map(|s| s.to_ascii_lowercase()) {
            Some(e) if e == "base64" => {
                let clean: Vec<u8> = content
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .map_err(|_| bad("bad base64 part"))?
            }
            Some(e) if e == "binary" || e == "8bit" || e == "7bit" => content.to_vec(),
            None => content.to_vec(),
            Some(other) => return Err(bad(format!("unsupported transfer encoding {other}"))),
        };
        let is_root = match &start_cid {
            Some(s) => cid.as_deref() == Some(s.as_str()),
            None => i == 0,
        };
        if is_root && root.is_none() {
            root = Some(data);
        } else {
            let mime_type = header(&h, "content-type")
                .unwrap_or("application/octet-stream")
                .to_string();
            attachments.push(Attachment {
                content_id: cid.unwrap_or_default(),
                mime_type,
                data,
            });
        }
    }
    let soap = root.ok_or_else(|| bad("no root part"))?;
    Ok(Captured {
        content_type: ct,
        soap,
        attachments,
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn split_multipart<'a>(
    body: &'a [u8],
    boundary: &str,
) -> Result<Vec<(Headers, &'a [u8])>, SecurityError> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut pos = find(body, d, 0).ok_or_else(|| bad("boundary not found"))?;
    let mut out = Vec::new();
    loop {
        let after = pos + d.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        // skip transport padding to the end of the delimiter line
        let line_end = find(body, b"\n", after).ok_or_else(|| bad("truncated part"))? + 1;
        let next = find(body, d, line_end).ok_or_else(|| bad("unterminated multipart"))?;
        let mut end = next;
        if end >= 1 && body[end - 1] == b'\n' {
            end -= 1;
            if end >= 1 && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        let part = &body[line_end..end.max(line_end)];
        let (h, content) = split_headers(part).ok_or_else(|| bad("part without header block"))?;
        out.push((h, content));
        if out.len() > 1000 {
            return Err(bad("too many parts"));
        }
        pos = next;
    }
    Ok(out)
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

//! Content-Transfer-Encoding decoding across chunk boundaries (RFC 2045 §6).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;

use super::MimeError;

/// Lenient about missing final padding only; used for the last, incomplete quantum.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A decoder for one part body.
#[derive(Debug)]
pub(crate) enum Decoder {
    /// `binary`, `8bit`, `7bit`: the bytes are the content.
    Identity,
    /// `base64`: line breaks and white space are skipped (RFC 2045 §6.8); up to three characters of
    /// an incomplete 4-character quantum are carried to the next chunk.
    Base64 { carry: Vec<u8>, ended: bool },
}

impl Decoder {
    pub(crate) fn base64() -> Self {
        Decoder::Base64 {
            carry: Vec::with_capacity(4),
            ended: false,
        }
    }

    /// Decodes one chunk; may return an empty `Bytes` when all of it is carried.
    pub(crate) fn decode(&mut self, chunk: Bytes, index: usize) -> Result<Bytes, MimeError> {
        match self {
            Decoder::Identity => Ok(chunk),
            Decoder::Base64 { carry, ended } => {
                let mut clean = std::mem::take(carry);
                clean.reserve(chunk.len());
                clean.extend(
                    chunk
                        .iter()
                        .copied()
                        .filter(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t')),
                );
                if clean.is_empty() {
                    *carry = clean;
                    return Ok(Bytes::new());
                }
                if *ended {
                    return Err(bad(index, "data after the final padded quantum"));
                }
                let whole = clean.len() - clean.len() % 4;
                let out = STANDARD
                    .decode(&clean[..whole])
                    .map_err(|e| bad(index, &e.to_string()))?;
                if whole > 0 && clean[whole - 1] == b'=' {
                    *ended = true;
                    if whole < clean.len() {
                        return Err(bad(index, "data after the final padded quantum"));
                    }
                }
                *carry = clean[whole..].to_vec();
                Ok(Bytes::from(out))
            }
        }
    }

    /// Ends the part: decodes a final quantum sent without its `=` padding.
    pub(crate) fn finish(&mut self, index: usize) -> Result<Bytes, MimeError> {
        match self {
            Decoder::Identity => Ok(Bytes::new()),
            Decoder::Base64 { carry, ended } => {
                if carry.is_empty() {
                    return Ok(Bytes::new());
                }
                if *ended {
                    return Err(bad(index, "data after the final padded quantum"));
                }
                let out = LENIENT
                    .decode(&carry[..])
                    .map_err(|e| bad(index, &e.to_string()))?;
                carry.clear();
                Ok(Bytes::from(out))
            }
        }
    }
}

fn bad(index: usize, reason: &str) -> MimeError {
    MimeError::InvalidBase64 {
        index,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Result<Vec<u8>, MimeError> {
        let mut d = Decoder::base64();
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&d.decode(Bytes::copy_from_slice(c), 0)?);
        }
        out.extend_from_slice(&d.finish(0)?);
        Ok(out)
    }

    #[test]
    fn splits_anywhere() {
        let text = b"aGVsbG8g\r\nd29ybGQ=\r\n";
        for cut in 0..text.len() {
            assert_eq!(
                run(&[&text[..cut], &text[cut..]]).unwrap(),
                b"hello world",
                "cut at {cut}"
            );
        }
        assert_eq!(run(&[b"aGk"]).unwrap(), b"hi");
        assert!(run(&[b"aGk=", b"aGk="]).is_err());
        assert!(run(&[b"a*k="]).is_err());
        assert!(run(&[b"a"]).is_err());
    }
}

//! Payload compression (digest §2.9): gzip before signing on the way out; on the way in a
//! bounded gunzip whose failures — corrupt data, more output than the configured size, or a
//! compression ratio only a zip bomb reaches — are all EBMS:0303 DecompressionFailure.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// gzip's best real-world ratio on text is ~10–20:1; 1032:1 is deflate's theoretical maximum.
/// Anything above this many output bytes per input byte (after the first MiB) is refused.
pub const MAX_RATIO: u64 = 200;

/// Why a payload could not be decompressed (always EBMS:0303).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("not valid gzip data: {0}")]
    Corrupt(String),
    #[error("decompressed payload exceeds {0} bytes")]
    TooLarge(u64),
    #[error("compression ratio above {MAX_RATIO}:1 (decompression bomb?)")]
    Ratio,
}

/// gzip `data` (default level).
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        Compression::default(),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// gunzip `data`, refusing more than `max_out` bytes or a ratio above [`MAX_RATIO`]. Reads in
/// 64 KiB steps so a bomb is stopped as soon as it crosses a limit.
pub fn gunzip_limited(data: &[u8], max_out: u64) -> Result<Vec<u8>, DecompressError> {
    let mut dec = GzDecoder::new(data);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let ratio_cap = (data.len() as u64)
        .saturating_mul(MAX_RATIO)
        .saturating_add(1 << 20);
    loop {
        let n = dec
            .read(&mut buf)
            .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let len = out.len() as u64;
        if len > max_out {
            return Err(DecompressError::TooLarge(max_out));
        }
        if len > ratio_cap {
            return Err(DecompressError::Ratio);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let data = b"hello hello hello hello".repeat(100);
        let z = gzip(&data).expect("gzip");
        assert_eq!(gunzip_limited(&z, 1 << 20).expect("gunzip"), data);
        assert_eq!(gunzip_limited(&z, 100), Err(DecompressError::TooLarge(100)));
        assert!(matches!(
            gunzip_limited(b"not gzip", 1 << 20),
            Err(DecompressError::Corrupt(_))
        ));
        let bomb = gzip(&vec![0u8; 8 << 20]).expect("gzip");
        assert_eq!(gunzip_limited(&bomb, 1 << 30), Err(DecompressError::Ratio));
    }
}

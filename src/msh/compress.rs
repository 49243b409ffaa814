//! Payload compression (digest §2.9): gzip before signing on the way out; on the way in a
//! bounded gunzip whose failures — corrupt data, more output than the configured size, or a
//! compression ratio only a zip bomb reaches — are all EBMS:0303 DecompressionFailure.

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// gzip's best real-world ratio on text is ~10–20:1; 1032:1 is deflate's theoretical maximum.
/// Anything above this many output bytes per input byte (after the first MiB) is refused.
pub const MAX_RATIO: u64 = 200;

/// Why a payload could not be decompressed (always EBMS:0303).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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

/// gzip the file `from` into the new file `to`, streaming; returns the compressed size and its
/// SHA-256 (the signature's digest input for the `application/gzip` part). Not synced: `to` is
/// a scratch file of the pack work directory; the wire file made from it is synced.
pub fn gzip_file(from: &Path, to: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let input = std::fs::File::open(from)?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let mut hw = HashingWriter {
        inner: std::io::BufWriter::with_capacity(256 * 1024, out),
        ctx: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
        len: 0,
    };
    {
        let mut enc = GzEncoder::new(&mut hw, Compression::default());
        std::io::copy(
            &mut std::io::BufReader::with_capacity(256 * 1024, input),
            &mut enc,
        )?;
        enc.finish()?;
    }
    hw.inner.flush()?;
    drop(hw.inner.into_inner().map_err(|e| e.into_error())?);
    let mut sha = [0u8; 32];
    sha.copy_from_slice(hw.ctx.finish().as_ref());
    Ok((hw.len, sha))
}

struct HashingWriter<W: Write> {
    inner: W,
    ctx: aws_lc_rs::digest::Context,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A streaming [`gunzip_limited`]: reads the gzip stream `input` of `input_len` bytes and fails
/// (an `io::Error` carrying the [`DecompressError`], see [`decompress_error`]) on corrupt data,
/// more than `max_out` bytes or a ratio above [`MAX_RATIO`].
pub struct GunzipLimited<R: Read> {
    dec: GzDecoder<R>,
    out: u64,
    max_out: u64,
    ratio_cap: u64,
}

impl<R: Read> GunzipLimited<R> {
    pub fn new(input: R, input_len: u64, max_out: u64) -> Self {
        GunzipLimited {
            dec: GzDecoder::new(input),
            out: 0,
            max_out,
            ratio_cap: input_len.saturating_mul(MAX_RATIO).saturating_add(1 << 20),
        }
    }
}

impl<R: Read> Read for GunzipLimited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .dec
            .read(buf)
            .map_err(|e| std::io::Error::other(DecompressError::Corrupt(e.to_string())))?;
        self.out += n as u64;
        if self.out > self.max_out {
            return Err(std::io::Error::other(DecompressError::TooLarge(
                self.max_out,
            )));
        }
        if self.out > self.ratio_cap {
            return Err(std::io::Error::other(DecompressError::Ratio));
        }
        Ok(n)
    }
}

/// The [`DecompressError`] inside an `io::Error` from [`GunzipLimited`], if that is what it is.
pub fn decompress_error(e: &std::io::Error) -> Option<&DecompressError> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<DecompressError>())
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
        // the streaming twin
        let read_all = |z: &[u8], max: u64| -> Result<Vec<u8>, DecompressError> {
            let mut out = Vec::new();
            GunzipLimited::new(z, z.len() as u64, max)
                .read_to_end(&mut out)
                .map_err(|e| {
                    decompress_error(&e)
                        .cloned()
                        .unwrap_or(DecompressError::Corrupt(e.to_string()))
                })?;
            Ok(out)
        };
        assert_eq!(read_all(&z, 1 << 20).expect("gunzip"), data);
        assert_eq!(read_all(&z, 100), Err(DecompressError::TooLarge(100)));
        assert!(matches!(
            read_all(b"not gzip", 1 << 20),
            Err(DecompressError::Corrupt(_))
        ));
        assert_eq!(read_all(&bomb, 1 << 30), Err(DecompressError::Ratio));
        // gzip_file: digest and size of the compressed bytes
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, &data).expect("write");
        let (n, sha) = gzip_file(&a, &b).expect("gzip_file");
        let zb = std::fs::read(&b).expect("read");
        assert_eq!(n, zb.len() as u64);
        assert_eq!(
            sha.as_slice(),
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &zb).as_ref()
        );
        assert_eq!(gunzip_limited(&zb, 1 << 20).expect("gunzip"), data);
    }
}

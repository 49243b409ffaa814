//! Peak memory of the MIME parser: streams a generated message with one payload of N MiB (a
//! stream of 64 KiB chunks, never held whole) through `MimeReader` into a SHA-256 sink and prints
//! VmHWM (peak resident set) from /proc/self/status before and after.
//!
//! Run: `cargo run --release --example mime_peak_rss -- 100` (size in MiB; default 100).
//! `-- 100 multer` runs multer 3.1 on the same stream instead, for comparison.

use std::time::Instant;

use as4gw::mime::{MimeLimits, MimeReader, Part};
use aws_lc_rs::digest;
use bytes::Bytes;

const CHUNK: usize = 64 * 1024;
const BOUNDARY: &str = "MIMEBoundary_peak";

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100);
    let before = vm_hwm_kib();
    let chunk = Bytes::from(
        (0..CHUNK)
            .map(|i| (i * 131 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let head = Bytes::from(format!(
        "--{BOUNDARY}\r\nContent-Type: application/soap+xml\r\nContent-ID: <root@p>\r\n\r\n<S12:Envelope xmlns:S12=\"http://www.w3.org/2003/05/soap-envelope\"/>\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-ID: <p@p>\r\n\r\n"
    ));
    let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
    let n_chunks = mib * 1024 * 1024 / CHUNK;
    // Lazily produced: each item is a handle on the one shared chunk.
    let body = futures_util::stream::iter(
        std::iter::once(head)
            .chain(std::iter::repeat_n(chunk, n_chunks))
            .chain(std::iter::once(tail))
            .map(Ok::<_, std::io::Error>),
    );
    let ct = format!("multipart/related; type=\"application/soap+xml\"; boundary=\"{BOUNDARY}\"; start=\"<root@p>\"");
    let limits = MimeLimits {
        max_part_bytes: u64::MAX,
        max_total_bytes: u64::MAX,
        ..MimeLimits::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let started = Instant::now();
    let use_multer = std::env::args().nth(2).as_deref() == Some("multer");
    let (size, sha) = rt.block_on(async {
        if use_multer {
            let mut m = multer::Multipart::new(body, BOUNDARY);
            let mut size = 0u64;
            let mut ctx = digest::Context::new(&digest::SHA256);
            while let Some(mut f) = m.next_field().await? {
                if f.headers().get("content-id").map(|v| v.as_bytes()) == Some(b"<p@p>") {
                    while let Some(c) = f.chunk().await? {
                        size += c.len() as u64;
                        ctx.update(&c);
                    }
                }
            }
            return Ok::<_, Box<dyn std::error::Error>>((size, ctx.finish()));
        }
        let mut r = MimeReader::new(&ct, body, limits)?;
        let mut size = 0u64;
        let mut ctx = digest::Context::new(&digest::SHA256);
        while let Some(part) = r.next_part().await? {
            if let Part::Payload(mut p) = part {
                while let Some(c) = p.chunk().await? {
                    size += c.len() as u64;
                    ctx.update(&c);
                }
            }
        }
        Ok((size, ctx.finish()))
    })?;
    let secs = started.elapsed().as_secs_f64();
    let after = vm_hwm_kib();
    println!(
        "{} payload {mib} MiB: parsed {size} bytes in {secs:.3} s (with SHA-256), sha256 {}..., VmHWM before {before} kB, after {after} kB",
        if use_multer { "multer" } else { "as4gw" },
        &hex::encode(sha.as_ref())[..16]
    );
    Ok(())
}

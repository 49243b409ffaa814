//! MIME parse throughput: our `MimeReader` (memchr::memmem scanner) vs multer 3.1 on the same
//! input, 1 MB and 100 MB payloads. The 100 MB body is a stream of 64 KiB chunks cycled from a
//! ring of 64 MiB of distinct pseudo-random chunks (larger than the 32 MiB L3 cache, so the
//! figure is not a cache artefact), never one big buffer: memory stays flat.
//!
//! Run: `cargo bench --bench mime`

use std::hint::black_box;

use as4gw::mime::{MimeLimits, MimeReader, Part};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::stream::{self, Stream};

const CHUNK: usize = 64 * 1024;
const BOUNDARY: &str = "MIMEBoundary_0123456789abcdef0123456789abcdef";
const ENV: &[u8] =
    b"<?xml version=\"1.0\"?><S12:Envelope xmlns:S12=\"http://www.w3.org/2003/05/soap-envelope\"/>";

fn content_type() -> String {
    format!(
        "multipart/related; type=\"application/soap+xml\"; boundary=\"{BOUNDARY}\"; start=\"<root@b>\"; start-info=\"application/soap+xml\""
    )
}

/// Ring size: 1024 × 64 KiB = 64 MiB of distinct chunks.
const RING: usize = 1024;

/// Pseudo-random payload chunks (xorshift), which contain no delimiter.
fn noise_ring() -> Vec<Bytes> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..RING)
        .map(|_| {
            let mut v = Vec::with_capacity(CHUNK);
            while v.len() < CHUNK {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.extend_from_slice(&x.to_le_bytes());
            }
            Bytes::from(v)
        })
        .collect()
}

/// The message as chunks: head (delimiter, root, payload headers), `n` payload chunks, tail.
fn message(payload_chunks: usize, ring: &[Bytes]) -> (u64, impl Fn() -> Vec<Bytes>) {
    let head = Bytes::from(format!(
        "--{BOUNDARY}\r\nContent-Type: application/soap+xml; charset=UTF-8\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <root@b>\r\n\r\n{}\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <p@b>\r\n\r\n",
        String::from_utf8_lossy(ENV)
    ));
    let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
    let total = (head.len() + tail.len() + payload_chunks * CHUNK) as u64;
    let ring = ring.to_vec();
    (total, move || {
        // Only the list of handles is built here; the chunk's bytes are shared.
        let mut v = Vec::with_capacity(payload_chunks + 2);
        v.push(head.clone());
        v.extend(ring.iter().cycle().take(payload_chunks).cloned());
        v.push(tail.clone());
        v
    })
}

fn as_stream(v: Vec<Bytes>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    stream::iter(v.into_iter().map(Ok))
}

async fn ours(v: Vec<Bytes>) -> u64 {
    let limits = MimeLimits {
        max_part_bytes: u64::MAX,
        max_total_bytes: u64::MAX,
        ..MimeLimits::default()
    };
    let mut r = MimeReader::new(&content_type(), as_stream(v), limits).expect("reader");
    let mut n = 0u64;
    while let Some(part) = r.next_part().await.expect("part") {
        match part {
            Part::Root(root) => n += root.body.len() as u64,
            Part::Payload(mut p) => {
                while let Some(c) = p.chunk().await.expect("chunk") {
                    n += black_box(c).len() as u64;
                }
            }
        }
    }
    n
}

async fn with_multer(v: Vec<Bytes>) -> u64 {
    let mut m =
        multer::Multipart::with_constraints(as_stream(v), BOUNDARY, multer::Constraints::new());
    let mut n = 0u64;
    while let Some(mut field) = m.next_field().await.expect("field") {
        while let Some(c) = field.chunk().await.expect("chunk") {
            n += black_box(c).len() as u64;
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ring = noise_ring();
    for (name, chunks) in [("1MB", 16usize), ("100MB", 1600)] {
        let (total, make) = message(chunks, &ring);
        let mut g = c.benchmark_group(format!("mime_parse_{name}"));
        g.throughput(Throughput::Bytes(total));
        if chunks > 100 {
            g.sample_size(10);
        }
        g.bench_function("as4gw_memmem", |b| b.iter(|| rt.block_on(ours(make()))));
        g.bench_function("multer", |b| b.iter(|| rt.block_on(with_multer(make()))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! MIME multipart/related reader (`as4gw::mime`).
//!
//! Input layout: the first byte picks how the `Content-Type` is found and which limits apply;
//! * even: the rest is a capture with leading headers, split by `mime::split_headers`;
//! * odd: the rest is `<content-type>\n<body>`.
//!
//! The body is read whole (`mime::collect`) once as one chunk and once split into small chunks
//! (size from the selector byte). Property: chunking never changes the outcome, because the
//! reader's boundary scanner must not depend on where the transport happened to split the body.
#![no_main]

use as4gw::mime::{collect, split_headers, CollectedMessage, MimeError, MimeLimits, MimeReader};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn limits(sel: u8) -> MimeLimits {
    if sel & 0x80 != 0 {
        // Small limits so the limit paths are reached with small inputs.
        MimeLimits {
            max_parts: 4,
            max_header_bytes: 128,
            max_root_bytes: 512,
            max_part_bytes: 512,
            max_total_bytes: 2048,
        }
    } else {
        MimeLimits::default()
    }
}

fn run(
    rt: &tokio::runtime::Runtime,
    ct: &str,
    body: &[u8],
    chunk: Option<usize>,
    limits: MimeLimits,
) -> Result<CollectedMessage, MimeError> {
    let body = Bytes::copy_from_slice(body);
    let mut reader = match chunk {
        None => MimeReader::from_bytes(ct, body, limits)?,
        Some(n) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(n)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            MimeReader::new(ct, futures_util::stream::iter(chunks), limits)?
        }
    };
    rt.block_on(collect(&mut reader))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (ct, body): (String, &[u8]) = if sel & 1 == 0 {
        match split_headers(rest) {
            Ok((ct, body)) => (ct, body),
            Err(_) => return,
        }
    } else {
        let nl = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let ct = String::from_utf8_lossy(&rest[..nl]).into_owned();
        (ct, rest.get(nl + 1..).unwrap_or(&[]))
    };
    let lim = limits(sel);
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    });
    let whole = run(rt, &ct, body, None, lim);
    let chunk = 1 + usize::from((sel >> 1) & 0x3f);
    let split = run(rt, &ct, body, Some(chunk), lim);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "chunking ({chunk}) changed the parts"),
        (Err(_), Err(_)) => {}
        _ => panic!("chunking ({chunk}) changed the outcome: whole {whole:?}, split {split:?}"),
    }
    if let Err(e) = &whole {
        // Every error maps to an ebMS code without panicking.
        let _ = e.ebms_code();
        let _ = e.is_peer_fault();
    }
});

//! The `mime` room: SwA parsing of real captures, hostile inputs, writer → parser round trips.

use std::io;

use as4gw::ebms::codes::EbmsCode;
use as4gw::mime::{
    collect, new_content_id, parse_content_type, split_headers, spool_to_dir, CollectedMessage,
    EnvelopeType, MimeError, MimeLimits, MimeReader, MimeWriter, Part, PartBody, TransferEncoding,
};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use proptest::prelude::*;

use crate::support::read_fixture;

const SOAP: &str = "application/soap+xml";
const ENV: &[u8] =
    b"<?xml version=\"1.0\"?><S12:Envelope xmlns:S12=\"http://www.w3.org/2003/05/soap-envelope\"/>";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Feeds `body` to the parser in chunks of the given sizes (cycled), as an HTTP body would arrive.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<Result<Bytes, io::Error>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < body.len() {
        let n = sizes[k % sizes.len()].max(1).min(body.len() - i);
        out.push(Ok(Bytes::copy_from_slice(&body[i..i + n])));
        i += n;
        k += 1;
    }
    out
}

async fn parse_chunked(
    ct: &str,
    body: &[u8],
    sizes: &[usize],
    limits: MimeLimits,
) -> Result<CollectedMessage, MimeError> {
    let mut r = MimeReader::new(ct, futures_util::stream::iter(chunked(body, sizes)), limits)?;
    collect(&mut r).await
}

fn parse(ct: &str, body: &[u8]) -> Result<CollectedMessage, MimeError> {
    rt().block_on(parse_chunked(
        ct,
        body,
        &[7, 4096, 1, 65536],
        MimeLimits::default(),
    ))
}

fn parse_limits(ct: &str, body: &[u8], limits: MimeLimits) -> Result<CollectedMessage, MimeError> {
    rt().block_on(parse_chunked(ct, body, &[13, 1000], limits))
}

fn ct(boundary: &str, start: Option<&str>) -> String {
    match start {
        Some(s) => format!("multipart/related; type=\"{SOAP}\"; boundary=\"{boundary}\"; start=\"<{s}>\"; start-info=\"{SOAP}\""),
        None => format!("multipart/related; type=\"{SOAP}\"; boundary=\"{boundary}\""),
    }
}

/// Frames parts by hand (not with our writer), so order, line ends and headers can vary.
/// Each part: (headers, body).
fn frame(boundary: &str, nl: &str, parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, body) in parts {
        out.extend_from_slice(format!("--{boundary}{nl}{h}{nl}").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(nl.as_bytes());
    }
    out.extend_from_slice(format!("--{boundary}--{nl}").as_bytes());
    out
}

fn root_part(cid: Option<&str>) -> (String, Vec<u8>) {
    let mut h = format!("Content-Type: {SOAP}; charset=UTF-8\r\n");
    if let Some(c) = cid {
        h.push_str(&format!("Content-ID: <{c}>\r\n"));
    }
    (h, ENV.to_vec())
}

fn payload(cid: &str, body: &[u8]) -> (String, Vec<u8>) {
    (format!("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n"), body.to_vec())
}

/// The writer's whole output.
fn body_of(w: MimeWriter) -> Vec<u8> {
    rt().block_on(w.into_stream().map_ok(|b| b.to_vec()).try_concat())
        .expect("body")
}

fn expect_err(r: Result<CollectedMessage, MimeError>) -> MimeError {
    match r {
        Ok(m) => panic!("expected an error, parsed {} payloads", m.payloads.len()),
        Err(e) => e,
    }
}

// --- real captures ------------------------------------------------------------------------------

#[test]
fn phase4_dump_parses() {
    let raw = read_fixture("interop/phase4/peppol-outbound/dump-raw.as4out");
    let (ct, body) = split_headers(&raw).expect("headers");
    let EnvelopeType::Multipart(m) = parse_content_type(&ct).expect("content type") else {
        panic!("not multipart")
    };
    assert_eq!(m.boundary, "----=_Part_0_1950117092.1769701143986");
    assert_eq!(m.start, None);
    let msg = parse(&ct, body).expect("parse");
    // Root: the first part (no `start`), which has no Content-ID.
    assert_eq!(msg.root.headers.index, 0);
    assert_eq!(msg.root.headers.content_id, None);
    assert_eq!(msg.root.headers.media_type().as_deref(), Some(SOAP));
    assert_eq!(msg.root.body.len(), 11863);
    assert!(msg
        .root
        .body
        .starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><S12:Envelope"));
    assert!(msg.root.body.ends_with(b"</S12:Envelope>"));
    assert_eq!(msg.payloads.len(), 1);
    let att = msg
        .payload("phase4-att-ff0f8ad5-f982-48ba-b8e2-26997600f496@cid")
        .expect("attachment");
    assert_eq!(att.body.len(), 2263);
    assert_eq!(att.headers.transfer_encoding, TransferEncoding::Binary);
    assert_eq!(
        att.headers.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(att.headers.get("content-description"), Some("Attachment"));
    assert_eq!(
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &att.body
        )),
        DUMP_ATT_SHA256
    );
}

const DUMP_ATT_SHA256: &str = "bb6d8ebcaf331aa11ad66cebe427c17dcc2fd198e53c8c5eeb52e043bb5a3773";
const WRONG_COMPRESSION_SHA256: &str =
    "c5ba9e978ff392b534ccb6f366251e640fd1bd45f77f4049f3d5525d3d913487";

#[test]
fn phase4_wrong_compression_parses_lf_and_base64() {
    let raw = read_fixture("interop/phase4/testfiles/WrongCompression.mime");
    let (ct, body) = split_headers(&raw).expect("headers");
    assert!(
        ct.starts_with("multipart/related; boundary=\"----=_Part_0_581318631.1482314477236\";"),
        "{ct}"
    );
    let msg = parse(&ct, body).expect("parse");
    assert_eq!(msg.root.body.len(), 1759);
    assert!(msg.root.body.starts_with(b"<?xml"));
    assert_eq!(msg.payloads.len(), 1);
    // Content-ID sent without angle brackets.
    let p = msg
        .payload("ph-as4-0026b807-e599-40e2-af67-22f2e6fe4ddd")
        .expect("payload");
    assert_eq!(p.headers.transfer_encoding, TransferEncoding::Base64);
    assert_eq!(p.body.len(), 721);
    assert_eq!(&p.body[..3], b"\x1f\x8b\x08", "base64 decoded to gzip");
    assert_eq!(
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &p.body
        )),
        WRONG_COMPRESSION_SHA256
    );
}

#[test]
fn phase4_dump_spools_with_digest() {
    let raw = read_fixture("interop/phase4/peppol-outbound/dump-raw.as4out");
    let (ct, body) = split_headers(&raw).expect("headers");
    let dir = tempfile::tempdir().expect("tempdir");
    let spooled = rt()
        .block_on(async {
            let mut r = MimeReader::from_async_read(&ct, body, MimeLimits::default())?;
            spool_to_dir(&mut r, dir.path()).await
        })
        .expect("spool");
    assert_eq!(spooled.payloads.len(), 1);
    let p = &spooled.payloads[0];
    assert_eq!(p.size, 2263);
    assert_eq!(hex::encode(p.sha256), DUMP_ATT_SHA256);
    assert_eq!(std::fs::read(&p.path).expect("file").len(), 2263);
}

#[test]
fn split_headers_needs_blank_line_and_content_type() {
    assert!(matches!(
        split_headers(b"Content-Type: a/b\r\n"),
        Err(MimeError::MalformedHeader { .. })
    ));
    assert!(matches!(
        split_headers(b"X: y\r\n\r\nbody"),
        Err(MimeError::InvalidContentType { .. })
    ));
    let (ct, body) =
        split_headers(b"content-type: multipart/related;\r\n boundary=x\r\n\r\nBODY").expect("ok");
    assert_eq!(ct, "multipart/related; boundary=x");
    assert_eq!(body, b"BODY");
}

// --- accepted variants --------------------------------------------------------------------------

#[test]
fn bare_soap_is_a_root_only_message() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(ENV);
    let msg = parse("application/soap+xml; charset=UTF-8", &body).expect("parse");
    assert_eq!(&msg.root.body[..], ENV, "BOM stripped");
    assert!(msg.payloads.is_empty());
    let msg = parse("text/xml; charset=utf-8", ENV).expect("SOAP 1.1");
    assert_eq!(msg.root.headers.media_type().as_deref(), Some("text/xml"));
}

#[test]
fn bom_stripped_from_multipart_root() {
    let (h, mut body) = root_part(Some("r@x"));
    body.splice(0..0, b"\xEF\xBB\xBF".iter().copied());
    let msg = parse(&ct("b", Some("r@x")), &frame("b", "\r\n", &[(h, body)])).expect("parse");
    assert_eq!(&msg.root.body[..], ENV);
}

#[test]
fn start_selects_root_anywhere_and_payloads_keep_order() {
    let parts = vec![
        payload("a@x", b"AAA"),
        payload("b@x", b""),
        root_part(Some("r@x")),
        payload("c@x", b"C"),
    ];
    let msg = parse(&ct("bnd", Some("r@x")), &frame("bnd", "\r\n", &parts)).expect("parse");
    assert_eq!(msg.root.headers.index, 2);
    assert_eq!(&msg.root.body[..], ENV);
    let ids: Vec<_> = msg
        .payloads
        .iter()
        .map(|p| p.headers.content_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["a@x", "b@x", "c@x"]);
    assert_eq!(&msg.payload("a@x").expect("a").body[..], b"AAA");
    assert!(msg.payload("b@x").expect("b").body.is_empty());
}

#[test]
fn preamble_epilogue_padding_and_headerless_body() {
    let boundary = "q";
    let mut body = b"This is a preamble.\r\n--q-not-a-delimiter\r\n".to_vec();
    body.extend_from_slice(&frame(
        boundary,
        "\r\n",
        &[
            root_part(None),
            payload("p@x", b"x\r\n--q-still-content\r\ny"),
        ],
    ));
    body.extend_from_slice(b"epilogue\r\n--q\r\nignored");
    // Transport padding after a delimiter (RFC 2046 §5.1.1).
    let body = String::from_utf8(body).expect("utf8").replacen(
        "--q\r\nContent-Type: application/octet",
        "--q  \t\r\nContent-Type: application/octet",
        1,
    );
    let msg = parse(&ct(boundary, None), body.as_bytes()).expect("parse");
    assert_eq!(
        &msg.payload("p@x").expect("p").body[..],
        b"x\r\n--q-still-content\r\ny"
    );
    // A part whose headers end right at the delimiter has an empty body.
    let raw = format!(
        "--q\r\nContent-Type: {SOAP}\r\n\r\n{}\r\n--q\r\nContent-ID: <e@x>\r\n\r\n--q--",
        String::from_utf8_lossy(ENV)
    );
    let msg = parse(&ct("q", None), raw.as_bytes()).expect("parse");
    assert!(msg.payload("e@x").expect("e").body.is_empty());
}

#[test]
fn unread_payload_is_skipped() {
    let parts = vec![
        root_part(None),
        payload("a@x", &[7u8; 100_000]),
        payload("b@x", b"B"),
    ];
    let body = frame("s", "\r\n", &parts);
    rt().block_on(async {
        let mut r =
            MimeReader::from_bytes(&ct("s", None), body, MimeLimits::default()).expect("reader");
        let mut seen = Vec::new();
        while let Some(part) = r.next_part().await.expect("part") {
            match part {
                Part::Root(_) => seen.push("root".to_string()),
                Part::Payload(mut p) => {
                    let id = p.headers.content_id.clone().unwrap_or_default();
                    if id == "b@x" {
                        assert_eq!(p.chunk().await.expect("chunk").as_deref(), Some(&b"B"[..]));
                        assert_eq!(p.chunk().await.expect("end"), None);
                    }
                    seen.push(id);
                }
            }
        }
        assert_eq!(seen, ["root", "a@x", "b@x"]);
    });
}

#[test]
fn base64_parts_decode_across_chunks() {
    use base64::Engine;
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let enc = base64::engine::general_purpose::STANDARD.encode(&data);
    let lines: Vec<&str> = enc
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    let h = "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: BASE64\r\nContent-ID: <b@x>\r\n".to_string();
    let body = frame(
        "z",
        "\r\n",
        &[
            root_part(None),
            (h.clone(), lines.join("\r\n").into_bytes()),
        ],
    );
    for sizes in [&[1usize][..], &[3, 5], &[77], &[100_000]] {
        let msg = rt()
            .block_on(parse_chunked(
                &ct("z", None),
                &body,
                sizes,
                MimeLimits::default(),
            ))
            .expect("parse");
        assert_eq!(
            &msg.payload("b@x").expect("b").body[..],
            &data[..],
            "chunks {sizes:?}"
        );
    }
    let bad = frame("z", "\r\n", &[root_part(None), (h, b"QUJD*A==".to_vec())]);
    let e = expect_err(parse(&ct("z", None), &bad));
    assert!(
        matches!(e, MimeError::InvalidBase64 { index: 1, .. }),
        "{e:?}"
    );
    assert_eq!(e.ebms_code(), EbmsCode::MimeInconsistency);
}

// --- hostile inputs -----------------------------------------------------------------------------

fn assert_mime_code(e: &MimeError) {
    assert_eq!(e.ebms_code(), EbmsCode::MimeInconsistency, "{e}");
    assert_eq!(e.ebms_code().code(), "EBMS:0007");
    assert!(e.is_peer_fault());
}

#[test]
fn start_naming_no_part() {
    let body = frame("b", "\r\n", &[root_part(Some("r@x")), payload("p@x", b"1")]);
    let e = expect_err(parse(&ct("b", Some("nope@x")), &body));
    assert_eq!(e, MimeError::NoStartPart("nope@x".into()));
    assert_mime_code(&e);
}

#[test]
fn duplicate_content_id() {
    let body = frame(
        "b",
        "\r\n",
        &[root_part(None), payload("p@x", b"1"), payload("p@x", b"2")],
    );
    let e = expect_err(parse(&ct("b", None), &body));
    assert_eq!(e, MimeError::DuplicateContentId("p@x".into()));
    assert_mime_code(&e);
    // The root's Content-ID counts too.
    let body = frame("b", "\r\n", &[root_part(Some("r@x")), payload("r@x", b"1")]);
    assert_eq!(
        expect_err(parse(&ct("b", None), &body)),
        MimeError::DuplicateContentId("r@x".into())
    );
}

#[test]
fn part_and_root_over_limits() {
    let limits = MimeLimits {
        max_part_bytes: 1000,
        max_root_bytes: 200,
        ..MimeLimits::default()
    };
    let ok = frame(
        "b",
        "\r\n",
        &[root_part(None), payload("p@x", &[1u8; 1000])],
    );
    assert!(
        parse_limits(&ct("b", None), &ok, limits).is_ok(),
        "exactly at the limit is fine"
    );
    let big = frame(
        "b",
        "\r\n",
        &[root_part(None), payload("p@x", &[1u8; 1001])],
    );
    let e = expect_err(parse_limits(&ct("b", None), &big, limits));
    assert_eq!(
        e,
        MimeError::PartTooLarge {
            index: 1,
            limit: 1000
        }
    );
    assert_mime_code(&e);
    let limits = MimeLimits {
        max_root_bytes: 50,
        ..MimeLimits::default()
    };
    let e = expect_err(parse_limits(&ct("b", None), &ok, limits));
    assert_eq!(e, MimeError::RootTooLarge { limit: 50 });
    assert_mime_code(&e);
    let e = expect_err(parse_limits(SOAP, ENV, limits));
    assert_eq!(e, MimeError::RootTooLarge { limit: 50 });
}

#[test]
fn message_and_headers_over_limits() {
    let body = frame(
        "b",
        "\r\n",
        &[root_part(None), payload("p@x", &[1u8; 5000])],
    );
    let limits = MimeLimits {
        max_total_bytes: 4000,
        ..MimeLimits::default()
    };
    let e = expect_err(parse_limits(&ct("b", None), &body, limits));
    assert_eq!(e, MimeError::MessageTooLarge { limit: 4000 });
    assert_mime_code(&e);
    let long = format!("X-Long: {}\r\n", "a".repeat(300));
    let body = frame("b", "\r\n", &[root_part(None), (long, b"x".to_vec())]);
    let limits = MimeLimits {
        max_header_bytes: 256,
        ..MimeLimits::default()
    };
    let e = expect_err(parse_limits(&ct("b", None), &body, limits));
    assert_eq!(
        e,
        MimeError::HeadersTooLarge {
            index: 1,
            limit: 256
        }
    );
    assert_mime_code(&e);
}

#[test]
fn too_many_parts() {
    let mut parts = vec![root_part(None)];
    for i in 0..4 {
        parts.push(payload(&format!("{i}@x"), b"."));
    }
    let body = frame("b", "\r\n", &parts);
    let limits = MimeLimits {
        max_parts: 4,
        ..MimeLimits::default()
    };
    let e = expect_err(parse_limits(&ct("b", None), &body, limits));
    assert_eq!(e, MimeError::TooManyParts { limit: 4 });
    assert_mime_code(&e);
    assert!(parse_limits(
        &ct("b", None),
        &body,
        MimeLimits {
            max_parts: 5,
            ..limits
        }
    )
    .is_ok());
}

#[test]
fn missing_boundary_and_no_delimiter() {
    let e = expect_err(parse(
        &format!("multipart/related; type=\"{SOAP}\""),
        b"--b\r\n\r\n--b--",
    ));
    assert_eq!(e, MimeError::MissingBoundary);
    assert_mime_code(&e);
    let e = expect_err(parse(
        &ct("other", None),
        &frame("b", "\r\n", &[root_part(None)]),
    ));
    assert_eq!(e, MimeError::NoDelimiter);
    assert_mime_code(&e);
    let e = expect_err(parse(&ct("b", None), b"--b--\r\n"));
    assert_eq!(e, MimeError::NoParts);
}

#[test]
fn truncated_bodies() {
    let full = frame(
        "b",
        "\r\n",
        &[root_part(None), payload("p@x", &[9u8; 3000])],
    );
    let close = full.len() - "--b--\r\n".len();
    // Cut inside the last payload, inside the close delimiter, inside headers.
    for cut in [close - 10, close - 2, close + 3, 20, 60] {
        let e = expect_err(parse(&ct("b", None), &full[..cut]));
        assert_eq!(e, MimeError::Truncated, "cut at {cut}");
        assert_mime_code(&e);
    }
    // The close delimiter without its final line end is complete.
    assert!(parse(&ct("b", None), &full[..full.len() - 2]).is_ok());
}

#[test]
fn excessive_transport_padding() {
    let body = frame("b", "\r\n", &[root_part(None), payload("p@x", b"1")]);
    let padded = String::from_utf8(body).expect("utf8").replacen(
        "--b\r\nContent-Type: application/octet",
        &format!("--b{}\r\nContent-Type: application/octet", " ".repeat(300)),
        1,
    );
    assert!(padded.contains(&" ".repeat(300)));
    // 200 bytes of padding are fine.
    let ok = padded.replacen(&" ".repeat(300), &" ".repeat(200), 1);
    assert!(parse(&ct("b", None), ok.as_bytes()).is_ok());
    let e = expect_err(parse(&ct("b", None), padded.as_bytes()));
    assert_eq!(e, MimeError::MalformedDelimiter { index: 0 });
    assert_mime_code(&e);
}

#[test]
fn refused_encodings_and_types() {
    let qp = "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-ID: <q@x>\r\n".to_string();
    let body = frame("b", "\r\n", &[root_part(None), (qp, b"a=3Db".to_vec())]);
    let e = expect_err(parse(&ct("b", None), &body));
    assert_eq!(
        e,
        MimeError::UnsupportedTransferEncoding {
            index: 1,
            encoding: "quoted-printable".into()
        }
    );
    assert_mime_code(&e);

    let body = frame("b", "\r\n", &[root_part(None)]);
    let e = expect_err(parse(
        "multipart/related; type=\"text/xml\"; boundary=b",
        &body,
    ));
    assert_eq!(
        e,
        MimeError::TypeMismatch {
            type_param: "text/xml".into(),
            root: SOAP.into()
        }
    );
    assert_mime_code(&e);

    let body = frame("b", "\r\n", &[payload("p@x", b"1")]);
    let e = expect_err(parse(&ct("b", None), &body));
    assert_eq!(e, MimeError::RootNotSoap("application/octet-stream".into()));
    assert_mime_code(&e);

    let e = expect_err(parse("application/json", b"{}"));
    assert_eq!(
        e,
        MimeError::UnsupportedMediaType("application/json".into())
    );
    assert_mime_code(&e);

    let body = frame(
        "b",
        "\r\n",
        &[
            root_part(None),
            ("Content-ID <x>\r\n".into(), b"1".to_vec()),
        ],
    );
    assert!(matches!(
        expect_err(parse(&ct("b", None), &body)),
        MimeError::MalformedHeader { index: 1, .. }
    ));
}

#[test]
fn input_errors_are_not_the_peers_fault() {
    let body = frame("b", "\r\n", &[root_part(None), payload("p@x", b"123")]);
    let items: Vec<Result<Bytes, io::Error>> = vec![
        Ok(Bytes::copy_from_slice(&body[..50])),
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
    ];
    let e = rt()
        .block_on(async {
            let mut r = MimeReader::new(
                &ct("b", None),
                futures_util::stream::iter(items),
                MimeLimits::default(),
            )?;
            collect(&mut r).await
        })
        .expect_err("error");
    assert!(matches!(e, MimeError::Input(_)), "{e:?}");
    assert!(!e.is_peer_fault());
    assert_eq!(e.ebms_code(), EbmsCode::Other);
}

#[test]
fn spool_removes_files_on_error() {
    let full = frame(
        "b",
        "\r\n",
        &[
            root_part(None),
            payload("p@x", &[1u8; 5000]),
            payload("q@x", &[2u8; 5000]),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let e = rt()
        .block_on(async {
            let mut r = MimeReader::from_bytes(
                &ct("b", None),
                Bytes::copy_from_slice(&full[..full.len() - 100]),
                MimeLimits::default(),
            )?;
            spool_to_dir(&mut r, dir.path()).await
        })
        .expect_err("error");
    assert_eq!(e, MimeError::Truncated);
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "partial files removed"
    );
}

// --- writer -------------------------------------------------------------------------------------

#[test]
fn writer_output_and_content_type() {
    let root_id = new_content_id("as4gw.example");
    assert!(root_id.ends_with("@as4gw.example") && root_id.len() == 36 + 14);
    let mut w = MimeWriter::with_boundary("BND", &format!("<{root_id}>"), ENV).expect("writer");
    w.add_part(
        "<p1@x>",
        "application/gzip",
        PartBody::Bytes(Bytes::from_static(b"PAY")),
    )
    .expect("part");
    let ct_value = w.content_type();
    assert_eq!(
        ct_value,
        format!("multipart/related; type=\"{SOAP}\"; boundary=\"BND\"; start=\"<{root_id}>\"; start-info=\"{SOAP}\"")
    );
    let body = body_of(w);
    let expected = format!(
        "--BND\r\nContent-Type: {SOAP}; charset=UTF-8\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{root_id}>\r\n\r\n{}\r\n\
         --BND\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <p1@x>\r\n\r\nPAY\r\n--BND--\r\n",
        String::from_utf8_lossy(ENV)
    );
    assert_eq!(String::from_utf8(body.clone()).expect("utf8"), expected);
    let msg = parse(&ct_value, &body).expect("parse");
    assert_eq!(
        msg.root.headers.content_id.as_deref(),
        Some(root_id.as_str())
    );
    assert_eq!(&msg.payload("p1@x").expect("p1").body[..], b"PAY");
}

#[test]
fn writer_refuses_header_injection_and_duplicates() {
    assert!(matches!(
        MimeWriter::new("a@x\r\nX: y", ENV),
        Err(MimeError::InvalidHeaderValue { .. })
    ));
    let mut w = MimeWriter::new("r@x", ENV).expect("writer");
    assert!(matches!(
        w.add_part(
            "p@x",
            "text/plain\r\nContent-ID: <evil>",
            PartBody::Bytes(Bytes::new())
        ),
        Err(MimeError::InvalidHeaderValue {
            name: "Content-Type",
            ..
        })
    ));
    assert!(matches!(
        w.add_part("", "a/b", PartBody::Bytes(Bytes::new())),
        Err(MimeError::InvalidHeaderValue { .. })
    ));
    assert_eq!(
        w.add_part("<r@x>", "a/b", PartBody::Bytes(Bytes::new())),
        Err(MimeError::DuplicateContentId("r@x".into()))
    );
    assert!(MimeWriter::with_boundary(&"x".repeat(71), "r@x", ENV).is_err());
    let a = MimeWriter::new("r@x", ENV).expect("a");
    assert_ne!(a.boundary(), w.boundary(), "boundaries are random");
}

#[test]
fn writer_streams_a_file_payload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).expect("write");
    rt().block_on(async {
        let mut w = MimeWriter::new("r@x", ENV).expect("writer");
        w.add_part(
            "f@x",
            "application/octet-stream",
            PartBody::file(&path).await.expect("open"),
        )
        .expect("part");
        let ct_value = w.content_type();
        let out = dir.path().join("message.mime");
        let mut f = tokio::fs::File::create(&out).await.expect("create");
        let n = w.write_to(&mut f).await.expect("write_to");
        drop(f);
        assert_eq!(std::fs::metadata(&out).expect("meta").len(), n);
        let f = tokio::fs::File::open(&out).await.expect("open");
        let mut r =
            MimeReader::from_async_read(&ct_value, f, MimeLimits::default()).expect("reader");
        let spool = dir.path().join("spool");
        let m = spool_to_dir(&mut r, &spool).await.expect("spool");
        assert_eq!(m.payloads[0].size, data.len() as u64);
        assert_eq!(std::fs::read(&m.payloads[0].path).expect("read"), data);
    });
}

// --- property tests -----------------------------------------------------------------------------

/// Payload content with a bias towards the bytes a delimiter is made of.
fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(
            prop_oneof![
                Just(b'\r'),
                Just(b'\n'),
                Just(b'-'),
                Just(b'B'),
                any::<u8>()
            ],
            0..300
        ),
        (1usize..200_000).prop_map(|n| (0..n).map(|i| (i * 7 % 256) as u8).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Writer → parser: every payload comes back byte-identical, whatever the chunking.
    #[test]
    fn writer_parser_round_trip(
        payloads in proptest::collection::vec(payload_bytes(), 0..5),
        sizes in proptest::collection::vec(1usize..70_000, 1..4),
    ) {
        let mut w = MimeWriter::new(&new_content_id("root.test"), ENV).expect("writer");
        let ids: Vec<String> = payloads.iter().map(|_| new_content_id("p.test")).collect();
        for (id, p) in ids.iter().zip(&payloads) {
            // Split each payload into a few stream chunks to exercise streamed sources.
            let chunks: Vec<io::Result<Bytes>> = p.chunks(10_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            w.add_part(id, "application/octet-stream", PartBody::stream(futures_util::stream::iter(chunks))).expect("part");
        }
        let ct_value = w.content_type();
        let body = body_of(w);
        let msg = rt().block_on(parse_chunked(&ct_value, &body, &sizes, MimeLimits::default())).expect("parse");
        prop_assert_eq!(&msg.root.body[..], ENV);
        prop_assert_eq!(msg.payloads.len(), payloads.len());
        for (id, p) in ids.iter().zip(&payloads) {
            prop_assert_eq!(&msg.payload(id).expect("payload").body[..], &p[..]);
        }
    }

    /// Hand-framed messages with the root anywhere (named by `start`), CRLF or bare LF line ends.
    #[test]
    fn root_anywhere_any_line_end(
        payloads in proptest::collection::vec(payload_bytes(), 0..4),
        root_at in 0usize..5,
        lf in any::<bool>(),
        sizes in proptest::collection::vec(1usize..5000, 1..4),
    ) {
        let nl = if lf { "\n" } else { "\r\n" };
        let mut parts: Vec<(String, Vec<u8>)> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("Content-ID: <{i}@p>{nl}Content-Type: application/octet-stream{nl}"), p.clone()))
            .collect();
        let at = root_at.min(parts.len());
        parts.insert(at, (format!("Content-Type: {SOAP}{nl}Content-ID: <root@r>{nl}"), ENV.to_vec()));
        let body = frame("B0undary", nl, &parts);
        let msg = rt().block_on(parse_chunked(&ct("B0undary", Some("root@r")), &body, &sizes, MimeLimits::default()));
        let msg = msg.expect("parse");
        prop_assert_eq!(msg.root.headers.index, at);
        prop_assert_eq!(&msg.root.body[..], ENV);
        for (i, p) in payloads.iter().enumerate() {
            let got = &msg.payload(&format!("{i}@p")).expect("payload").body;
            if lf {
                // With bare LF framing, a payload ending in CR loses it to the delimiter (the
                // CRLF reading wins); everything else is exact.
                let want = if p.ends_with(b"\r") { &p[..p.len() - 1] } else { &p[..] };
                prop_assert_eq!(&got[..], want);
            } else {
                prop_assert_eq!(&got[..], &p[..]);
            }
        }
    }
}

#[test]
fn stream_of_a_payload_part() {
    let body = frame(
        "b",
        "\r\n",
        &[root_part(None), payload("p@x", &[5u8; 70_000])],
    );
    rt().block_on(async {
        let mut r = MimeReader::new(
            &ct("b", None),
            futures_util::stream::iter(chunked(&body, &[4096])),
            MimeLimits::default(),
        )
        .expect("reader");
        let mut total = 0;
        while let Some(part) = r.next_part().await.expect("part") {
            if let Part::Payload(p) = part {
                let mut s = std::pin::pin!(p.into_stream());
                while let Some(c) = s.next().await {
                    let c = c.expect("chunk");
                    assert!(
                        !c.is_empty() && c.len() <= 4096 + 16,
                        "chunks follow the input, not the part size"
                    );
                    total += c.len();
                }
            }
        }
        assert_eq!(total, 70_000);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every strict prefix of a message that stops before its close delimiter is refused as
    /// truncated (or as having no delimiter at all), never accepted.
    #[test]
    fn every_cut_is_refused(payload in payload_bytes(), cut_frac in 0.0f64..1.0) {
        let mut w = MimeWriter::with_boundary("CUTB", "r@x", ENV).expect("writer");
        w.add_part("p@x", "application/octet-stream", PartBody::Bytes(Bytes::from(payload))).expect("part");
        let ct_value = w.content_type();
        let body = body_of(w);
        let close = body.len() - "--CUTB--\r\n".len();
        let cut = ((close + 6) as f64 * cut_frac) as usize; // up to "--CUTB-" inclusive
        let r = rt().block_on(parse_chunked(&ct_value, &body[..cut], &[4096, 333], MimeLimits::default()));
        prop_assert!(
            matches!(r, Err(MimeError::Truncated) | Err(MimeError::NoDelimiter)),
            "cut {} of {}: {:?}", cut, body.len(), r.map(|m| m.payloads.len())
        );
    }

    /// Arbitrary bytes never panic the parser; whatever it refuses is the peer's fault.
    #[test]
    fn garbage_never_panics(
        body in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'G'), Just(b':'), any::<u8>()], 0..600),
        sizes in proptest::collection::vec(1usize..50, 1..3),
        opened in any::<bool>(),
    ) {
        // Half the cases start like a real message, so the garbage reaches headers and bodies.
        let mut body = body;
        if opened {
            body.splice(0..0, format!("--G\r\nContent-Type: {SOAP}\r\n\r\n").bytes());
        }
        let limits = MimeLimits { max_parts: 8, max_header_bytes: 200, ..MimeLimits::default() };
        let r = rt().block_on(parse_chunked(&ct("G", None), &body, &sizes, limits));
        if let Err(e) = r {
            prop_assert!(e.is_peer_fault(), "{e:?}");
        }
    }
}

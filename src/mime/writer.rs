//! The SwA writer: root part first, then each payload, streamed (digest §2.2, §12 note 5).

use std::collections::HashSet;
use std::io;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::content_type::strip_angle;
use super::MimeError;
use crate::ns::MEDIA_SOAP12;

/// Read size for payloads given as readers.
const WRITE_CHUNK: usize = 64 * 1024;

/// A fresh random boundary: 128 random bits, so it cannot plausibly occur inside a part (RFC 2046
/// §5.1.1 leaves avoiding that to the sender). Only characters that need no quoting.
pub fn new_boundary() -> String {
    format!("MIMEBoundary_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh Content-ID `uuid@domain` (RFC 2392 `addr-spec` form; the `@domain` convention of the
/// OOTS samples, digest §6.5). Without angle brackets, as used in `cid:` URIs.
pub fn new_content_id(domain: &str) -> String {
    format!("{}@{}", uuid::Uuid::new_v4(), domain)
}

/// Where a payload's bytes come from. Readers and streams are pulled chunk by chunk while the
/// body is written, so a 1 GB file never sits in memory.
pub enum PartBody {
    Bytes(Bytes),
    Reader(Pin<Box<dyn AsyncRead + Send>>),
    Stream(BoxStream<'static, io::Result<Bytes>>),
}

impl PartBody {
    /// A body read from any `AsyncRead` (e.g. `tokio::fs::File`).
    pub fn reader(r: impl AsyncRead + Send + 'static) -> Self {
        PartBody::Reader(Box::pin(r))
    }

    /// A body given as a stream of chunks.
    pub fn stream(s: impl Stream<Item = io::Result<Bytes>> + Send + 'static) -> Self {
        PartBody::Stream(s.boxed())
    }

    /// A body read from a file, opened now so a missing file fails before anything is sent.
    pub async fn file(path: &std::path::Path) -> io::Result<Self> {
        Ok(PartBody::reader(tokio::fs::File::open(path).await?))
    }

    fn into_stream(self) -> BoxStream<'static, io::Result<Bytes>> {
        match self {
            PartBody::Bytes(b) => stream::once(async move { Ok(b) }).boxed(),
            PartBody::Stream(s) => s,
            PartBody::Reader(r) => stream::try_unfold(r, |mut r| async move {
                let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
                let n = r.read_buf(&mut buf).await?;
                Ok(if n == 0 {
                    None
                } else {
                    Some((buf.freeze(), r))
                })
            })
            .boxed(),
        }
    }
}

impl std::fmt::Debug for PartBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartBody::Bytes(b) => write!(f, "PartBody::Bytes({} bytes)", b.len()),
            PartBody::Reader(_) => f.write_str("PartBody::Reader"),
            PartBody::Stream(_) => f.write_str("PartBody::Stream"),
        }
    }
}

#[derive(Debug)]
struct OutPart {
    content_id: String,
    content_type: String,
    body: PartBody,
}

/// Builds a SwA `multipart/related` body: the SOAP envelope as root part (first on the wire,
/// because some peers ignore `start`, digest §12 note 5), then each payload in the order added.
///
/// Framing is CRLF; every part is `Content-Transfer-Encoding: binary` ([ED115] §1.6 example).
#[derive(Debug)]
pub struct MimeWriter {
    boundary: String,
    root_content_id: String,
    root: Bytes,
    parts: Vec<OutPart>,
    ids: HashSet<String>,
}

/// Header values go verbatim between CRLFs: refuse anything that could end the line.
fn check_value(name: &'static str, value: &str) -> Result<(), MimeError> {
    if value.is_empty() || value.chars().any(|c| c.is_control()) {
        return Err(MimeError::InvalidHeaderValue {
            name,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn check_content_id(value: &str) -> Result<String, MimeError> {
    let id = strip_angle(value);
    check_value("Content-ID", id)?;
    if id.contains(['<', '>', ' ', '"']) {
        return Err(MimeError::InvalidHeaderValue {
            name: "Content-ID",
            value: value.to_string(),
        });
    }
    Ok(id.to_string())
}

impl MimeWriter {
    /// A writer with a random boundary; `root_content_id` with or without angle brackets.
    pub fn new(root_content_id: &str, root: impl Into<Bytes>) -> Result<Self, MimeError> {
        MimeWriter::with_boundary(&new_boundary(), root_content_id, root)
    }

    /// A writer with a given boundary (tests, reproducible output).
    pub fn with_boundary(
        boundary: &str,
        root_content_id: &str,
        root: impl Into<Bytes>,
    ) -> Result<Self, MimeError> {
        let valid = !boundary.is_empty()
            && boundary.len() <= 70
            && !boundary.ends_with(' ')
            && boundary
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' || b == b' ');
        if !valid {
            return Err(MimeError::InvalidBoundary(boundary.to_string()));
        }
        let root_content_id = check_content_id(root_content_id)?;
        let mut ids = HashSet::new();
        ids.insert(root_content_id.clone());
        Ok(MimeWriter {
            boundary: boundary.to_string(),
            root_content_id,
            root: root.into(),
            parts: Vec::new(),
            ids,
        })
    }

    /// Adds a payload part. `content_id` with or without angle brackets, unique in the message.
    pub fn add_part(
        &mut self,
        content_id: &str,
        content_type: &str,
        body: PartBody,
    ) -> Result<(), MimeError> {
        let content_id = check_content_id(content_id)?;
        check_value("Content-Type", content_type)?;
        if !self.ids.insert(content_id.clone()) {
            return Err(MimeError::DuplicateContentId(content_id));
        }
        self.parts.push(OutPart {
            content_id,
            content_type: content_type.to_string(),
            body,
        });
        Ok(())
    }

    /// The boundary in use.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The root Content-ID (without angle brackets).
    pub fn root_content_id(&self) -> &str {
        &self.root_content_id
    }

    /// The HTTP `Content-Type` for this body ([ED115] §1.6 example, [EBMS3] §5.1.1).
    pub fn content_type(&self) -> String {
        format!(
            "multipart/related; type=\"{MEDIA_SOAP12}\"; boundary=\"{}\"; start=\"<{}>\"; start-info=\"{MEDIA_SOAP12}\"",
            self.boundary, self.root_content_id
        )
    }

    /// The body as a stream of chunks, pulled from the payload sources as it is consumed.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let b = self.boundary;
        let mut segments: Vec<BoxStream<'static, io::Result<Bytes>>> =
            Vec::with_capacity(2 * self.parts.len() + 3);
        let head = format!(
            "--{b}\r\nContent-Type: {MEDIA_SOAP12}; charset=UTF-8\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n",
            self.root_content_id
        );
        segments.push(PartBody::Bytes(Bytes::from(head)).into_stream());
        segments.push(PartBody::Bytes(self.root).into_stream());
        for p in self.parts {
            let head = format!(
                "\r\n--{b}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n",
                p.content_type, p.content_id
            );
            segments.push(PartBody::Bytes(Bytes::from(head)).into_stream());
            segments.push(p.body.into_stream());
        }
        segments.push(PartBody::Bytes(Bytes::from(format!("\r\n--{b}--\r\n"))).into_stream());
        stream::iter(segments)
            .flatten()
            .filter(|c| std::future::ready(!matches!(c, Ok(b) if b.is_empty())))
    }

    /// Writes the body to `w` (flushed); returns the number of bytes written.
    pub async fn write_to<W: AsyncWrite + Unpin>(self, w: &mut W) -> io::Result<u64> {
        let mut s = std::pin::pin!(self.into_stream());
        let mut n = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            w.write_all(&chunk).await?;
            n += chunk.len() as u64;
        }
        w.flush().await?;
        Ok(n)
    }
}

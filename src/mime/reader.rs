//! The streaming parser: parts one at a time, payload bodies as chunks (digest §2.2).

use std::collections::HashSet;
use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use memchr::memmem;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::content_type::{
    find_header_end, is_soap_media_type, parse_content_type, parse_header_block, strip_angle,
    EnvelopeType,
};
use super::decode::Decoder;
use super::{MimeError, MimeLimits};

/// The input: a stream of byte chunks (an HTTP body, a file). Errors are transport errors.
pub type ByteStream<'r> = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + 'r>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Read size when the input is an `AsyncRead`.
const READ_CHUNK: usize = 64 * 1024;

/// UTF-8 byte order mark, which receivers MUST tolerate at the start of the envelope ([ED115] §3.2.2).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `Content-Transfer-Encoding` of a part (RFC 2045 §6.1; absent means `7bit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEncoding {
    SevenBit,
    EightBit,
    Binary,
    Base64,
    QuotedPrintable,
    /// Anything else, lower-cased as sent.
    Other(String),
}

impl TransferEncoding {
    fn parse(value: Option<&str>) -> Self {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("7bit") => TransferEncoding::SevenBit,
            Some("8bit") => TransferEncoding::EightBit,
            Some("binary") => TransferEncoding::Binary,
            Some("base64") => TransferEncoding::Base64,
            Some("quoted-printable") => TransferEncoding::QuotedPrintable,
            Some(other) => TransferEncoding::Other(other.to_string()),
        }
    }

    /// The header value, lower case.
    pub fn as_str(&self) -> &str {
        match self {
            TransferEncoding::SevenBit => "7bit",
            TransferEncoding::EightBit => "8bit",
            TransferEncoding::Binary => "binary",
            TransferEncoding::Base64 => "base64",
            TransferEncoding::QuotedPrintable => "quoted-printable",
            TransferEncoding::Other(s) => s,
        }
    }

    fn decoder(&self, index: usize) -> Result<Decoder, MimeError> {
        match self {
            TransferEncoding::SevenBit | TransferEncoding::EightBit | TransferEncoding::Binary => {
                Ok(Decoder::Identity)
            }
            TransferEncoding::Base64 => Ok(Decoder::base64()),
            other => Err(MimeError::UnsupportedTransferEncoding {
                index,
                encoding: other.as_str().to_string(),
            }),
        }
    }
}

/// The headers of one part, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeaders {
    /// Position of the part in the message, 0-based, in wire order.
    pub index: usize,
    /// `Content-ID` **without** angle brackets, as `cid:` URIs use it ([EBMS3] §5.2.2.13).
    pub content_id: Option<String>,
    /// `Content-Type` value as sent (parameters included).
    pub content_type: Option<String>,
    /// `Content-Transfer-Encoding`; the body handed out is already decoded.
    pub transfer_encoding: TransferEncoding,
    /// Every other header, in order, names as sent (e.g. `Content-Description`, `Content-Disposition`).
    pub other: Vec<(String, String)>,
}

impl PartHeaders {
    fn from_raw(raw: Vec<(String, String)>, index: usize) -> Self {
        let mut h = PartHeaders {
            index,
            content_id: None,
            content_type: None,
            transfer_encoding: TransferEncoding::SevenBit,
            other: Vec::new(),
        };
        let mut cte = None;
        for (name, value) in raw {
            if name.eq_ignore_ascii_case("content-id") {
                h.content_id = Some(strip_angle(&value).to_string());
            } else if name.eq_ignore_ascii_case("content-type") {
                h.content_type = Some(value);
            } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
                cte = Some(value);
            } else {
                h.other.push((name, value));
            }
        }
        h.transfer_encoding = TransferEncoding::parse(cte.as_deref());
        h
    }

    /// The media type essence in lower case (`application/soap+xml`), or `None` without
    /// `Content-Type` (RFC 2045 §5.2 then means `text/plain`).
    pub fn media_type(&self) -> Option<String> {
        let ct = self.content_type.as_deref()?;
        match ct.parse::<mime::Mime>() {
            Ok(m) => Some(m.essence_str().to_ascii_lowercase()),
            Err(_) => Some(
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase(),
            ),
        }
    }

    /// First value of a header among [`PartHeaders::other`], by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The root part: the SOAP envelope, decoded, whole, UTF-8 BOM removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPart {
    pub headers: PartHeaders,
    pub body: Bytes,
}

/// A payload part being read: its headers and a body handed out chunk by chunk. Dropping it
/// before the end is fine: [`MimeReader::next_part`] skips the rest (still checking limits).
pub struct PayloadPart<'a, 'r> {
    pub headers: PartHeaders,
    reader: &'a mut MimeReader<'r>,
}

impl<'a, 'r> PayloadPart<'a, 'r> {
    /// The next decoded chunk of the body, `None` at the end of the part. Never empty.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, MimeError> {
        self.reader.next_decoded().await
    }

    /// The body as a `Stream` of chunks (for `tokio::io::copy`-style sinks).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, MimeError>> + Send + use<'a, 'r> {
        futures_util::stream::try_unfold(self.reader, |r| async move {
            Ok(r.next_decoded().await?.map(|b| (b, r)))
        })
    }
}

/// One part as handed out by [`MimeReader::next_part`].
pub enum Part<'a, 'r> {
    Root(RootPart),
    Payload(PayloadPart<'a, 'r>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter (multipart) / before the only part (bare SOAP).
    Preamble,
    Headers,
    Body,
    Done,
}

/// What follows `--boundary` on a delimiter line (RFC 2046 §5.1.1).
enum Suffix {
    NeedMore,
    /// `--`: close delimiter; the epilogue is ignored.
    Close,
    /// Optional white space then a line end; the value is the length to skip.
    Open(usize),
    NotDelimiter,
    /// More than [`MAX_PADDING`] bytes of white space after the boundary.
    TooMuchPadding,
}

/// Transport padding allowed after a delimiter (RFC 2046 §5.1.1 allows "linear white space";
/// this bounds how much of it we buffer while looking for the line end).
const MAX_PADDING: usize = 256;

fn delimiter_suffix(rest: &[u8]) -> Suffix {
    if rest.len() < 2 {
        return Suffix::NeedMore;
    }
    if rest.starts_with(b"--") {
        return Suffix::Close;
    }
    let mut i = 0;
    while i < rest.len() && (rest[i] == b' ' || rest[i] == b'\t') {
        i += 1;
        if i > MAX_PADDING {
            return Suffix::TooMuchPadding;
        }
    }
    match rest.get(i) {
        None => Suffix::NeedMore,
        Some(b'\n') => Suffix::Open(i + 1),
        Some(b'\r') => match rest.get(i + 1) {
            None => Suffix::NeedMore,
            Some(b'\n') => Suffix::Open(i + 2),
            Some(_) => Suffix::NotDelimiter,
        },
        Some(_) => Suffix::NotDelimiter,
    }
}

/// Bookkeeping for the part being read.
struct Current {
    index: usize,
    is_root: bool,
    raw_bytes: u64,
    limit: u64,
    decoder: Decoder,
    finished: bool,
}

/// Streaming parser of an AS4 HTTP body (SwA `multipart/related` or bare SOAP).
///
/// Parts come out in wire order via [`MimeReader::next_part`]. The root part is the one whose
/// Content-ID the `start` parameter names, else the first part (RFC 2387 §3.2, [EBMS3] §5.1.1);
/// payload parts may come before or after it. When the message ends, a `start` that named no part
/// is an error ([`MimeError::NoStartPart`]); so is a message without a root.
///
/// Delimiters are found with a `memchr::memmem` finder; a line end is CRLF (RFC 2046) or a bare LF
/// (tolerated: operators' captured files and some senders use it). Only the bytes that could be the
/// start of a delimiter stay buffered between chunks, so memory does not grow with part size.
pub struct MimeReader<'r> {
    input: ByteStream<'r>,
    input_done: bool,
    limits: MimeLimits,
    envelope: EnvelopeType,
    buf: BytesMut,
    total: u64,
    state: State,
    /// `\n--boundary`: a delimiter inside the body.
    finder: memmem::Finder<'static>,
    /// `--boundary`: the first delimiter, which may start the body.
    dash_boundary: Vec<u8>,
    /// Set while the raw body of the current part is exhausted.
    body_done: bool,
    /// Nothing of the current body handed out yet (see [`MimeReader::empty_body_delimiter`]).
    at_body_start: bool,
    parts: usize,
    ids: HashSet<String>,
    root_seen: bool,
    cur: Option<Current>,
}

impl<'r> MimeReader<'r> {
    /// A reader for a body given as a stream of chunks, with the HTTP `Content-Type` value.
    pub fn new<S, B, E>(content_type: &str, body: S, limits: MimeLimits) -> Result<Self, MimeError>
    where
        S: Stream<Item = Result<B, E>> + Send + 'r,
        B: Into<Bytes> + 'r,
        E: Into<BoxError> + 'r,
    {
        let envelope = parse_content_type(content_type)?;
        let input: ByteStream<'r> = Box::pin(body.map_ok(Into::into).map_err(Into::into));
        let boundary = match &envelope {
            EnvelopeType::Multipart(m) => m.boundary.as_bytes().to_vec(),
            EnvelopeType::Soap { .. } => Vec::new(),
        };
        let mut dash_boundary = b"--".to_vec();
        dash_boundary.extend_from_slice(&boundary);
        let mut nl = b"\n".to_vec();
        nl.extend_from_slice(&dash_boundary);
        Ok(MimeReader {
            input,
            input_done: false,
            limits,
            envelope,
            buf: BytesMut::new(),
            total: 0,
            state: State::Preamble,
            finder: memmem::Finder::new(&nl).into_owned(),
            dash_boundary,
            body_done: false,
            at_body_start: false,
            parts: 0,
            ids: HashSet::new(),
            root_seen: false,
            cur: None,
        })
    }

    /// A reader over a body already in memory.
    pub fn from_bytes(
        content_type: &str,
        body: impl Into<Bytes>,
        limits: MimeLimits,
    ) -> Result<Self, MimeError> {
        let body: Bytes = body.into();
        MimeReader::new(
            content_type,
            futures_util::stream::iter([Ok::<_, BoxError>(body)]),
            limits,
        )
    }

    /// A reader over an `AsyncRead` (a file, a socket), read in 64 KiB chunks.
    pub fn from_async_read<R>(
        content_type: &str,
        reader: R,
        limits: MimeLimits,
    ) -> Result<Self, MimeError>
    where
        R: AsyncRead + Send + 'r,
    {
        let stream = futures_util::stream::try_unfold(Box::pin(reader), |mut r| async move {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let n = r.read_buf(&mut buf).await?;
            Ok::<_, std::io::Error>(if n == 0 {
                None
            } else {
                Some((buf.freeze(), r))
            })
        });
        MimeReader::new(content_type, stream, limits)
    }

    /// What the `Content-Type` said.
    pub fn envelope(&self) -> &EnvelopeType {
        &self.envelope
    }

    /// Wire bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.total
    }

    /// Reads one more input chunk into the buffer; `false` at the end of the input.
    async fn fill(&mut self) -> Result<bool, MimeError> {
        if self.input_done {
            return Ok(false);
        }
        loop {
            match self.input.next().await {
                None => {
                    self.input_done = true;
                    return Ok(false);
                }
                Some(Err(e)) => return Err(MimeError::Input(e.to_string())),
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    self.total += chunk.len() as u64;
                    if self.total > self.limits.max_total_bytes {
                        return Err(MimeError::MessageTooLarge {
                            limit: self.limits.max_total_bytes,
                        });
                    }
                    if self.buf.is_empty() {
                        // Take ownership without copying when nothing is pending.
                        self.buf = BytesMut::from(chunk);
                    } else {
                        self.buf.extend_from_slice(&chunk);
                    }
                    return Ok(true);
                }
            }
        }
    }

    /// Skips the preamble up to and including the first delimiter line.
    async fn skip_preamble(&mut self) -> Result<(), MimeError> {
        let dl = self.dash_boundary.len();
        let mut at_start = true;
        loop {
            let mut from = 0;
            let mut need_more = false;
            while let Some(off) = memmem::find(&self.buf[from..], &self.dash_boundary) {
                let p = from + off;
                if (p == 0 && at_start) || (p > 0 && self.buf[p - 1] == b'\n') {
                    match delimiter_suffix(&self.buf[p + dl..]) {
                        Suffix::Close => return Err(MimeError::NoParts),
                        Suffix::Open(n) => {
                            self.buf.advance(p + dl + n);
                            self.state = State::Headers;
                            return Ok(());
                        }
                        Suffix::NeedMore => {
                            need_more = true;
                            break;
                        }
                        Suffix::NotDelimiter => {}
                        Suffix::TooMuchPadding => {
                            return Err(MimeError::MalformedDelimiter { index: 0 })
                        }
                    }
                }
                from = p + 1;
            }
            if !need_more {
                // Keep only what could begin a delimiter line (plus the byte before it).
                let keep = (dl + 1).min(self.buf.len());
                let drop = self.buf.len() - keep;
                if drop > 0 {
                    self.buf.advance(drop);
                    at_start = false;
                }
            }
            if !self.fill().await? {
                return Err(if need_more {
                    MimeError::Truncated
                } else {
                    MimeError::NoDelimiter
                });
            }
        }
    }

    /// The raw header lines of the next part, `None` after the close delimiter.
    async fn next_raw_headers(&mut self) -> Result<Option<Vec<(String, String)>>, MimeError> {
        if let EnvelopeType::Soap { media_type } = &self.envelope {
            if self.state == State::Preamble {
                self.state = State::Body;
                self.body_done = false;
                return Ok(Some(vec![("Content-Type".to_string(), media_type.clone())]));
            }
            self.state = State::Done;
            return Ok(None);
        }
        if self.state == State::Preamble {
            self.skip_preamble().await?;
        }
        if self.state == State::Done {
            return Ok(None);
        }
        let index = self.parts;
        loop {
            if let Some((block_len, body_start)) = find_header_end(&self.buf) {
                if body_start > self.limits.max_header_bytes {
                    return Err(MimeError::HeadersTooLarge {
                        index,
                        limit: self.limits.max_header_bytes,
                    });
                }
                let headers = parse_header_block(&self.buf[..block_len], index)?;
                self.buf.advance(body_start);
                self.state = State::Body;
                self.body_done = false;
                self.at_body_start = true;
                return Ok(Some(headers));
            }
            if self.buf.len() > self.limits.max_header_bytes {
                return Err(MimeError::HeadersTooLarge {
                    index,
                    limit: self.limits.max_header_bytes,
                });
            }
            if !self.fill().await? {
                return Err(MimeError::Truncated);
            }
        }
    }

    /// The next raw (still transfer-encoded) body chunk of the current part.
    async fn raw_chunk(&mut self) -> Result<Option<Bytes>, MimeError> {
        if self.body_done || self.state != State::Body {
            return Ok(None);
        }
        if let EnvelopeType::Soap { .. } = self.envelope {
            if self.buf.is_empty() && !self.fill().await? {
                self.body_done = true;
                return Ok(None);
            }
            return Ok(Some(self.buf.split().freeze()));
        }
        if self.at_body_start {
            self.at_body_start = false;
            if self.empty_body_delimiter().await? {
                return Ok(None);
            }
        }
        let fl = self.finder.needle().len();
        loop {
            if let Some(p) = self.finder.find(&self.buf) {
                match delimiter_suffix(&self.buf[p + fl..]) {
                    Suffix::Close | Suffix::Open(_) if p > 0 => {
                        // Hand out the data before the delimiter first; the CR of a CRLF belongs
                        // to the delimiter (RFC 2046 §5.1.1).
                        let end = if self.buf[p - 1] == b'\r' { p - 1 } else { p };
                        if end > 0 {
                            return Ok(Some(self.buf.split_to(end).freeze()));
                        }
                        // Only the CR is left before the delimiter: drop it and go round.
                        self.buf.advance(end + 1);
                        continue;
                    }
                    Suffix::Close => {
                        self.body_done = true;
                        self.state = State::Done;
                        self.buf.clear();
                        return Ok(None);
                    }
                    Suffix::Open(n) => {
                        self.body_done = true;
                        self.state = State::Headers;
                        self.buf.advance(fl + n);
                        return Ok(None);
                    }
                    Suffix::NeedMore => {
                        if p > 1 {
                            let end = if self.buf[p - 1] == b'\r' { p - 1 } else { p };
                            return Ok(Some(self.buf.split_to(end).freeze()));
                        }
                        if !self.fill().await? {
                            return Err(MimeError::Truncated);
                        }
                        continue;
                    }
                    Suffix::TooMuchPadding => {
                        return Err(MimeError::MalformedDelimiter {
                            index: self.parts.saturating_sub(1),
                        })
                    }
                    Suffix::NotDelimiter => {
                        // `--boundary` followed by other text is content (RFC 2046 §5.1.1 only
                        // recognises whole delimiter lines).
                        return Ok(Some(self.buf.split_to(p + 1).freeze()));
                    }
                }
            }
            // No delimiter: everything but a possible partial one (and its CR) is content.
            let safe = self.buf.len().saturating_sub(fl);
            if safe > 0 {
                return Ok(Some(self.buf.split_to(safe).freeze()));
            }
            if !self.fill().await? {
                return Err(MimeError::Truncated);
            }
        }
    }

    /// A part with no body section at all (`headers CRLF` then the delimiter `CRLF --boundary`,
    /// RFC 2046 §5.1.1 `body-part := MIME-part-headers [CRLF *OCTET]`): the line end that ended
    /// the headers was the delimiter's, so the buffer starts with `--boundary`.
    async fn empty_body_delimiter(&mut self) -> Result<bool, MimeError> {
        let dl = self.dash_boundary.len();
        while self.buf.len() < dl + 2
            && self
                .dash_boundary
                .starts_with(&self.buf[..self.buf.len().min(dl)])
        {
            if !self.fill().await? {
                break;
            }
        }
        if !self.buf.starts_with(&self.dash_boundary) {
            return Ok(false);
        }
        match delimiter_suffix(&self.buf[dl..]) {
            Suffix::Close => {
                self.body_done = true;
                self.state = State::Done;
                self.buf.clear();
                Ok(true)
            }
            Suffix::Open(n) => {
                self.body_done = true;
                self.state = State::Headers;
                self.buf.advance(dl + n);
                Ok(true)
            }
            Suffix::TooMuchPadding => Err(MimeError::MalformedDelimiter {
                index: self.parts.saturating_sub(1),
            }),
            Suffix::NeedMore | Suffix::NotDelimiter => Ok(false),
        }
    }

    /// The next decoded chunk of the current part, with the size limit enforced.
    async fn next_decoded(&mut self) -> Result<Option<Bytes>, MimeError> {
        loop {
            match &self.cur {
                Some(c) if !c.finished => {}
                _ => return Ok(None),
            }
            let raw = self.raw_chunk().await?;
            let Some(cur) = self.cur.as_mut() else {
                return Ok(None);
            };
            match raw {
                Some(raw) => {
                    cur.raw_bytes += raw.len() as u64;
                    if cur.raw_bytes > cur.limit {
                        return Err(if cur.is_root {
                            MimeError::RootTooLarge { limit: cur.limit }
                        } else {
                            MimeError::PartTooLarge {
                                index: cur.index,
                                limit: cur.limit,
                            }
                        });
                    }
                    let out = cur.decoder.decode(raw, cur.index)?;
                    if !out.is_empty() {
                        return Ok(Some(out));
                    }
                }
                None => {
                    cur.finished = true;
                    let out = cur.decoder.finish(cur.index)?;
                    return Ok(if out.is_empty() { None } else { Some(out) });
                }
            }
        }
    }

    /// The next part, `None` at the end of the message.
    ///
    /// A payload part left unread is skipped first. The root part is read whole here.
    pub async fn next_part(&mut self) -> Result<Option<Part<'_, 'r>>, MimeError> {
        while self.next_decoded().await?.is_some() {}
        self.cur = None;
        let Some(raw) = self.next_raw_headers().await? else {
            return match (&self.envelope, self.root_seen) {
                (_, true) => Ok(None),
                (EnvelopeType::Multipart(m), false) => match &m.start {
                    Some(start) => Err(MimeError::NoStartPart(start.clone())),
                    None => Err(MimeError::NoParts),
                },
                (EnvelopeType::Soap { .. }, false) => Err(MimeError::NoParts),
            };
        };
        let index = self.parts;
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            return Err(MimeError::TooManyParts {
                limit: self.limits.max_parts,
            });
        }
        let headers = PartHeaders::from_raw(raw, index);
        if let Some(id) = &headers.content_id {
            if !self.ids.insert(id.clone()) {
                return Err(MimeError::DuplicateContentId(id.clone()));
            }
        }
        let (is_root, type_param) = match &self.envelope {
            EnvelopeType::Soap { .. } => (true, None),
            EnvelopeType::Multipart(m) => {
                let is_root = !self.root_seen
                    && match &m.start {
                        Some(start) => headers.content_id.as_deref() == Some(start.as_str()),
                        None => index == 0,
                    };
                (is_root, m.type_param.clone())
            }
        };
        let decoder = headers.transfer_encoding.decoder(index)?;
        let limit = if is_root {
            self.limits.max_root_bytes
        } else {
            self.limits.max_part_bytes
        };
        if is_root {
            // [EBMS3] §5.1.4: the SOAP 1.2 root is application/soap+xml; §5.1.1: `type` equals it.
            let media = headers
                .media_type()
                .unwrap_or_else(|| "text/plain".to_string());
            if !is_soap_media_type(&media) {
                return Err(MimeError::RootNotSoap(media));
            }
            if let Some(t) = type_param {
                if t != media {
                    return Err(MimeError::TypeMismatch {
                        type_param: t,
                        root: media,
                    });
                }
            }
        }
        self.cur = Some(Current {
            index,
            is_root,
            raw_bytes: 0,
            limit,
            decoder,
            finished: false,
        });
        if !is_root {
            return Ok(Some(Part::Payload(PayloadPart {
                headers,
                reader: self,
            })));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = self.next_decoded().await? {
            body.extend_from_slice(&chunk);
        }
        if body.starts_with(BOM) {
            body.advance(BOM.len());
        }
        self.root_seen = true;
        Ok(Some(Part::Root(RootPart {
            headers,
            body: body.freeze(),
        })))
    }
}

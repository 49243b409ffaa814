//! Streaming Exclusive XML Canonicalization 1.0 of a whole document (no comments, no
//! `InclusiveNamespaces` PrefixList): what the SwA Attachment-Content-Signature-Transform
//! digests for an XML payload part (digest §3.2, [AS4] §5.1.5; OASIS SwA 1.1 §5.4.2).
//!
//! Why a second canonicalizer: a payload can be a gigabyte of XML, and the tree of
//! [`super::Document`] costs a multiple of the input. Here memory is bounded by the nesting
//! depth (one frame and the namespace bindings per open element) and by the largest single
//! markup token (a start tag with its attributes, a comment, a PI, a CDATA section, a
//! reference); character data, however long, streams through in buffer-sized chunks.
//!
//! The contract, checked by `tests/it/c14n_stream.rs`: for every input and every [`Limits`],
//! [`canonicalize_stream`] succeeds exactly when `Document::parse_with` does, and then writes
//! exactly the bytes of `canonicalize_document(&doc, &C14nOptions::default())`. To keep it so,
//! every check is the tree builder's (`tree.rs`): the same helper functions, the same quick-xml
//! configuration for markup, and the steps of `Builder` repeated here in the same order. The
//! one thing done by hand is character data and references between markup, which quick-xml
//! would buffer whole: they are read chunk by chunk with the rules `Builder::text_run`,
//! `Builder::reference` and quick-xml's `read_text`/`read_ref` apply.
//!
//! One difference by design: `Document::parse_with` refuses anything over 2 GiB (its arena
//! offsets are `u32`); this function has no such cap.

use std::cell::Cell;
use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;

use super::tree::{
    check_chars, check_ncname, declared_encoding, is_xml_space, malformed, normalize_line_ends,
    resolve_reference, split_qname,
};
use super::{escape_attr, escape_text, plain_ascii, Limits, XmlError};
use crate::ns;

/// Limits for payload parts (the Attachment-Content-Signature-Transform input), used by the
/// tree and the streaming path alike so that a part digests the same whichever path a side
/// takes. No size and no node-count limit: streaming memory does not grow with either, and a
/// limit that made a large document "not parse" would change its digest (raw bytes instead of
/// the canonical form other access points compute). Depth and attributes per element keep the
/// defaults: the tree canonicalizer recurses once per level, and a tag is one token.
pub const PAYLOAD_LIMITS: Limits = Limits {
    max_bytes: usize::MAX,
    max_depth: 256,
    max_attributes: 256,
    max_nodes: usize::MAX,
};

/// Why streaming canonicalization stopped.
#[derive(Debug, thiserror::Error)]
pub enum C14nStreamError {
    /// The input is not a document `Document::parse_with` accepts (same verdict).
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Reading the input or writing the output failed: says nothing about the document.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// Canonicalizes the whole document read from `input` (exclusive C14N 1.0, no comments) into
/// `out`, enforcing `limits` as `Document::parse_with` does. On error, part of the output may
/// have been written already: the caller discards it (a digest falls back to the raw bytes).
pub fn canonicalize_stream<R: Read, W: Write>(
    input: R,
    limits: &Limits,
    out: &mut W,
) -> Result<(), C14nStreamError> {
    let count = Rc::new(Cell::new(0u64));
    let raw = Counted {
        inner: input,
        count: count.clone(),
    };
    let decoded = decode(raw)?;
    let mut src = Src::new(decoded);
    // `Document::parse` strips one UTF-8 BOM while decoding and quick-xml's reader strips a
    // second one at its start (without counting it in positions): do the same.
    if src
        .peek(3)
        .map_err(from_io)?
        .starts_with(&[0xEF, 0xBB, 0xBF])
    {
        src.consume(3);
    }
    let mut reader = quick_xml::Reader::from_reader(src);
    let cfg = reader.config_mut();
    // The same configuration as `Builder::run`.
    cfg.check_end_names = true;
    cfg.check_comments = true;
    cfg.expand_empty_elements = false;
    cfg.trim_text_start = false;
    cfg.trim_text_end = false;
    let mut c = Canon {
        limits,
        out: Out {
            buf: Vec::with_capacity(OUT_BUF),
            w: out,
        },
        raw_count: count,
        text_bytes: 0,
        depth: 0,
        root_seen: false,
        nodes: 0,
        text_pending: false,
        frames: Vec::new(),
        arena: String::new(),
        scope: Vec::new(),
        rendered: Vec::new(),
        tag: String::new(),
        decls: Vec::new(),
        attrs: Vec::new(),
        out_decls: Vec::new(),
        scratch: String::new(),
    };
    c.run(&mut reader)?;
    c.out.flush()?;
    Ok(())
}

const OUT_BUF: usize = 64 * 1024;
const SRC_BUF: usize = 64 * 1024;

/// A run of output bytes this long goes to the writer directly, not through the buffer.
const DIRECT: usize = 8 * 1024;

struct Out<'w, W: Write> {
    buf: Vec<u8>,
    w: &'w mut W,
}

impl<W: Write> Out<'_, W> {
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= OUT_BUF {
            self.flush()?;
        }
        Ok(())
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        if b.len() >= DIRECT {
            self.flush()?;
            return self.w.write_all(b);
        }
        self.buf.extend_from_slice(b);
        self.maybe_flush()
    }

    fn text(&mut self, s: &str) -> io::Result<()> {
        if s.len() >= DIRECT && plain_ascii(s.as_bytes(), [b'&', b'<', b'>']) {
            self.flush()?;
            return self.w.write_all(s.as_bytes());
        }
        escape_text(s, &mut self.buf);
        self.maybe_flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Input: byte counting (`max_bytes`), decoding to UTF-8 as `tree::decode_input` does, buffering.

struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Carried inside an `io::Error` by the decoding readers, turned back into
/// [`XmlError::Encoding`] where errors are mapped.
#[derive(Debug)]
struct EncodingFailure(String);

impl std::fmt::Display for EncodingFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodingFailure {}

fn encoding_io(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, EncodingFailure(msg.into()))
}

/// An I/O error back to what it means: a decoding failure is the document's fault.
fn from_io(e: io::Error) -> C14nStreamError {
    if let Some(f) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<EncodingFailure>())
    {
        return XmlError::Encoding(f.0.clone()).into();
    }
    C14nStreamError::Io(e)
}

fn read_retry(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads the start of the input (enough for a BOM or the XML declaration) and returns a reader
/// of the document as UTF-8, with the rules of `tree::decode_input`: UTF-8 BOM, UTF-16 BOM
/// (either order), else the declared encoding (UTF-8, US-ASCII, ISO-8859-1; anything else
/// refused).
fn decode<'a, R: Read + 'a>(mut raw: R) -> Result<Box<dyn Read + 'a>, C14nStreamError> {
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    let mut eof = false;
    while head.len() < 5 && !eof {
        let n = read_retry(&mut raw, &mut chunk[..5 - head.len()])?;
        eof = n == 0;
        head.extend_from_slice(&chunk[..n]);
    }
    let rest = |head: Vec<u8>, skip: u64, raw: R| {
        let mut c = io::Cursor::new(head);
        c.set_position(skip);
        c.chain(raw)
    };
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(Box::new(rest(head, 3, raw)));
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        let le = head[0] == 0xFF;
        return Ok(Box::new(Transcode::new(
            rest(head, 2, raw),
            Enc::Utf16 { le },
        )));
    }
    if head.starts_with(b"<?xml") {
        // `declared_encoding` looks at the input up to the first `?>`: read that far.
        let mut scanned = 0;
        loop {
            if head[scanned..].windows(2).any(|w| w == b"?>") || eof {
                break;
            }
            scanned = head.len() - 1;
            let n = read_retry(&mut raw, &mut chunk)?;
            eof = n == 0;
            head.extend_from_slice(&chunk[..n]);
        }
    }
    let enc = match declared_encoding(&head).map(|e| e.to_ascii_lowercase()) {
        None => Enc::Utf8,
        Some(e) if e == "utf-8" || e == "utf8" => Enc::Utf8,
        Some(e) if e == "us-ascii" || e == "ascii" => Enc::Ascii,
        Some(e) if e == "iso-8859-1" || e == "latin1" || e == "latin-1" || e == "iso_8859-1" => {
            Enc::Latin1
        }
        Some(other) => {
            return Err(XmlError::Encoding(format!("unsupported encoding {other:?}")).into())
        }
    };
    let r = rest(head, 0, raw);
    Ok(match enc {
        Enc::Utf8 => Box::new(r),
        other => Box::new(Transcode::new(r, other)),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    Utf8,
    Ascii,
    Latin1,
    Utf16 { le: bool },
}

/// US-ASCII (checked), ISO-8859-1 or UTF-16 to UTF-8, a chunk at a time.
struct Transcode<R> {
    inner: R,
    enc: Enc,
    raw: Vec<u8>,
    /// UTF-8 produced and not yet read.
    pending: Vec<u8>,
    at: usize,
    /// UTF-16: an odd byte, a high surrogate, carried to the next chunk.
    odd: Option<u8>,
    high: Option<u16>,
    done: bool,
}

impl<R: Read> Transcode<R> {
    fn new(inner: R, enc: Enc) -> Self {
        Transcode {
            inner,
            enc,
            raw: vec![0u8; 16 * 1024],
            pending: Vec::with_capacity(48 * 1024),
            at: 0,
            odd: None,
            high: None,
            done: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.pending.clear();
        self.at = 0;
        while self.pending.is_empty() && !self.done {
            let n = read_retry(&mut self.inner, &mut self.raw)?;
            if n == 0 {
                self.done = true;
                if self.odd.is_some() {
                    return Err(encoding_io("odd number of bytes in UTF-16 input"));
                }
                if self.high.is_some() {
                    return Err(encoding_io("invalid UTF-16"));
                }
                break;
            }
            let raw = &self.raw[..n];
            match self.enc {
                Enc::Utf8 => self.pending.extend_from_slice(raw),
                Enc::Ascii => {
                    if !raw.is_ascii() {
                        return Err(encoding_io("non-ASCII byte in a US-ASCII document"));
                    }
                    self.pending.extend_from_slice(raw);
                }
                Enc::Latin1 => {
                    let mut b = [0u8; 4];
                    for &x in raw {
                        self.pending
                            .extend_from_slice((x as char).encode_utf8(&mut b).as_bytes());
                    }
                }
                Enc::Utf16 { le } => {
                    let mut bytes = raw.iter().copied();
                    let mut units = Vec::with_capacity(n / 2 + 1);
                    loop {
                        let a = match self.odd.take() {
                            Some(a) => a,
                            None => match bytes.next() {
                                Some(a) => a,
                                None => break,
                            },
                        };
                        let Some(b) = bytes.next() else {
                            self.odd = Some(a);
                            break;
                        };
                        units.push(if le {
                            u16::from_le_bytes([a, b])
                        } else {
                            u16::from_be_bytes([a, b])
                        });
                    }
                    let mut all: Vec<u16> = self.high.take().into_iter().collect();
                    all.extend_from_slice(&units);
                    if let Some(&last) = all.last() {
                        if (0xD800..0xDC00).contains(&last) {
                            self.high = all.pop();
                        }
                    }
                    let mut b = [0u8; 4];
                    for c in char::decode_utf16(all) {
                        let c = c.map_err(|_| encoding_io("invalid UTF-16"))?;
                        self.pending
                            .extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Transcode<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.pending.len() {
            self.refill()?;
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The decoded document, buffered, with a look-ahead of a few bytes ([`Src::peek`]).
struct Src<'a> {
    inner: Box<dyn Read + 'a>,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
}

impl<'a> Src<'a> {
    fn new(inner: Box<dyn Read + 'a>) -> Self {
        Src {
            inner,
            buf: vec![0u8; SRC_BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
        }
    }

    /// At least `n` bytes (fewer only at the end of the input).
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < n {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            while self.end < n {
                let k = read_retry(&mut self.inner, &mut self.buf[self.end..])?;
                if k == 0 {
                    break;
                }
                self.end += k;
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

impl Read for Src<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Src<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = read_retry(&mut self.inner, &mut self.buf)?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

// ---------------------------------------------------------------------------------------------
// The canonicalizer: `Builder`'s checks, `canonicalize_document`'s output.

type Span = (u32, u32);

/// An open element: where its bindings and its rendered declarations begin.
struct Frame {
    scope: usize,
    rendered: usize,
    arena: usize,
}

/// An attribute of the start tag being read (spans of `Canon::tag`, `ns` of `Canon::arena`).
#[derive(Clone, Copy)]
struct TagAttr {
    prefix: Option<Span>,
    local: Span,
    value: Span,
    ns: Option<Span>,
}

struct Canon<'l, 'w, W: Write> {
    limits: &'l Limits,
    out: Out<'w, W>,
    raw_count: Rc<Cell<u64>>,
    /// Bytes of character data and references read here (quick-xml counts the rest).
    text_bytes: u64,
    depth: usize,
    root_seen: bool,
    /// Nodes the tree would have built (`max_nodes`).
    nodes: usize,
    /// Character data since the last node: the tree's pending text node.
    text_pending: bool,
    frames: Vec<Frame>,
    /// Prefixes and URIs of the bindings in scope, back to back; truncated as elements close.
    arena: String,
    /// Bindings in scope, innermost last (`xmlns=""` has an empty URI span).
    scope: Vec<(Option<Span>, Span)>,
    /// Declarations rendered by the open elements (exc-c14n §3: "nearest output ancestor").
    rendered: Vec<(Option<Span>, Span)>,
    /// Scratch for one start tag: names and values, its declarations and attributes, and the
    /// declarations to render.
    tag: String,
    decls: Vec<(Option<Span>, Span)>,
    attrs: Vec<TagAttr>,
    out_decls: Vec<(Option<Span>, Span)>,
    scratch: String,
}

impl<W: Write> Canon<'_, '_, W> {
    fn run(&mut self, reader: &mut quick_xml::Reader<Src<'_>>) -> Result<(), C14nStreamError> {
        use quick_xml::events::Event;
        let mut buf = Vec::new();
        loop {
            self.check_size()?;
            let next = reader
                .get_mut()
                .fill_buf()
                .map_err(from_io)?
                .first()
                .copied();
            match next {
                Some(b'&') => {
                    self.reference(reader.get_mut())?;
                    continue;
                }
                Some(b) if b != b'<' => {
                    self.text_run(reader.get_mut())?;
                    continue;
                }
                _ => {}
            }
            // At `<` or at the end: quick-xml reads the markup.
            buf.clear();
            let pos = self.text_bytes + reader.buffer_position();
            let ev = match reader.read_event_into(&mut buf) {
                Ok(ev) => ev,
                Err(quick_xml::Error::Io(e)) => {
                    let e = std::sync::Arc::try_unwrap(e).unwrap_or_else(|a| {
                        match a
                            .get_ref()
                            .and_then(|i| i.downcast_ref::<EncodingFailure>())
                        {
                            Some(f) => encoding_io(&f.0),
                            None => io::Error::new(a.kind(), a.to_string()),
                        }
                    });
                    return Err(from_io(e));
                }
                Err(e) => {
                    return Err(XmlError::Malformed {
                        pos: self.text_bytes + reader.error_position(),
                        msg: e.to_string(),
                    }
                    .into())
                }
            };
            match ev {
                Event::Start(s) => self.start(&s, false, pos)?,
                Event::Empty(s) => self.start(&s, true, pos)?,
                Event::End(e) => self.end(e.name().as_ref(), pos)?,
                Event::Decl(_) => {
                    if pos != 0 {
                        return Err(malformed(pos, "XML declaration not at the start").into());
                    }
                }
                Event::DocType(_) => return Err(XmlError::DtdRefused.into()),
                Event::CData(cd) => {
                    if self.depth == 0 {
                        return Err(malformed(pos, "CDATA outside the root element").into());
                    }
                    let content = cd.xml10_content();
                    let content = normalize_line_ends(&content);
                    check_chars(&content, pos)?;
                    self.append_text(&content)?;
                }
                Event::Comment(cm) => {
                    let raw = cm.xml10_content();
                    if raw.contains("--") || raw.ends_with('-') {
                        return Err(malformed(pos, "'--' in a comment").into());
                    }
                    self.flush_text()?;
                    check_chars(&normalize_line_ends(&raw), pos)?;
                    self.push_node()?;
                }
                Event::PI(p) => self.pi(p.target(), p.content(), pos)?,
                // Not produced (character data and references are read above), but should
                // quick-xml ever hand them over, they take the tree builder's path.
                Event::Text(t) => self.text_piece(&t, pos, &mut TextRun::default())?,
                Event::GeneralRef(r) => {
                    let name = r.into_inner();
                    self.resolved_reference(&name, pos)?;
                }
                Event::Eof => break,
            }
        }
        self.check_size()?;
        if self.depth != 0 {
            return Err(malformed(self.text_bytes, "unexpected end of document").into());
        }
        if !self.root_seen {
            return Err(malformed(self.text_bytes, "no root element").into());
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), XmlError> {
        let size = self.raw_count.get();
        if size > self.limits.max_bytes as u64 {
            return Err(XmlError::TooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    fn push_node(&mut self) -> Result<(), XmlError> {
        if self.nodes >= self.limits.max_nodes {
            return Err(XmlError::TooManyNodes(self.limits.max_nodes));
        }
        self.nodes += 1;
        Ok(())
    }

    /// `Builder::flush_text`: pending character data becomes a text node.
    fn flush_text(&mut self) -> Result<(), XmlError> {
        if std::mem::take(&mut self.text_pending) {
            self.push_node()?;
        }
        Ok(())
    }

    /// Character data inside the root (CDATA, references, runs), escaped per C14N §2.3.
    fn append_text(&mut self, s: &str) -> io::Result<()> {
        if !s.is_empty() {
            self.text_pending = true;
            self.out.text(s)?;
        }
        Ok(())
    }

    /// One piece of a character-data run (`Builder::text_run` + `char_data`), the run's state
    /// carried across pieces: `]]>` and CR LF split between two pieces are seen.
    fn text_piece(&mut self, s: &str, pos: u64, run: &mut TextRun) -> Result<(), C14nStreamError> {
        // XML 1.0 §2.4 [14]: no `]]>` in character data.
        if s.is_empty() {
            return Ok(());
        }
        let b = s.as_bytes();
        let split_cdata_end = match run.brackets {
            0 => false,
            1 => b.starts_with(b"]>"),
            _ => b.starts_with(b">") || b.starts_with(b"]>"),
        };
        if split_cdata_end || memchr::memmem::find(b, b"]]>").is_some() {
            return Err(malformed(pos, "']]>' in character data").into());
        }
        let trailing = b.iter().rev().take_while(|&&c| c == b']').count();
        run.brackets = if trailing == b.len() {
            run.brackets.saturating_add(trailing.min(2) as u8).min(2)
        } else {
            trailing.min(2) as u8
        };
        // XML 1.0 §2.11 across pieces: the CR ending the last piece already became LF.
        let mut s = s;
        if run.cr && s.starts_with('\n') {
            s = &s[1..];
        }
        run.cr = s.ends_with('\r');
        let content = normalize_line_ends(s);
        check_chars(&content, pos)?;
        if self.depth == 0 {
            if content.chars().all(is_xml_space) {
                return Ok(());
            }
            return Err(malformed(pos, "text outside the root element").into());
        }
        self.append_text(&content)?;
        Ok(())
    }

    /// Character data up to the next `<` or `&` (quick-xml's `read_text`), in chunks.
    fn text_run(&mut self, src: &mut Src<'_>) -> Result<(), C14nStreamError> {
        let mut run = TextRun::default();
        // The first bytes of a character split by the end of a chunk.
        let mut carry = [0u8; 4];
        let mut carried = 0usize;
        loop {
            let pos = self.text_bytes;
            let avail = src.fill_buf().map_err(from_io)?;
            if avail.is_empty() {
                break;
            }
            let (len, stop) = match memchr::memchr2(b'<', b'&', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            let mut piece = &avail[..len];
            if carried > 0 {
                let want = utf8_len(carry[0]);
                let take = (want - carried).min(piece.len());
                carry[carried..carried + take].copy_from_slice(&piece[..take]);
                carried += take;
                piece = &piece[take..];
                if carried == want {
                    let s = std::str::from_utf8(&carry[..want]).map_err(|_| utf8_error(pos))?;
                    self.text_piece(s, pos, &mut run)?;
                    carried = 0;
                }
            }
            let text = match std::str::from_utf8(piece) {
                Ok(s) => s,
                Err(e) if e.error_len().is_none() && !stop => {
                    let (ok, tail) = piece.split_at(e.valid_up_to());
                    carry[..tail.len()].copy_from_slice(tail);
                    carried = tail.len();
                    std::str::from_utf8(ok).map_err(|_| utf8_error(pos))?
                }
                Err(_) => return Err(utf8_error(pos).into()),
            };
            self.text_piece(text, pos, &mut run)?;
            src.consume(len);
            self.text_bytes += len as u64;
            if stop {
                break;
            }
        }
        if carried > 0 {
            return Err(utf8_error(self.text_bytes).into());
        }
        Ok(())
    }

    /// `&name;` (quick-xml's `read_ref`, then `Builder::reference`).
    fn reference(&mut self, src: &mut Src<'_>) -> Result<(), C14nStreamError> {
        let pos = self.text_bytes;
        src.consume(1);
        self.text_bytes += 1;
        let mut name: Vec<u8> = Vec::new();
        loop {
            let avail = src.fill_buf().map_err(from_io)?;
            if avail.is_empty() {
                return Err(malformed(pos, "unclosed reference").into());
            }
            match memchr::memchr3(b';', b'&', b'<', avail) {
                Some(i) if avail[i] == b';' => {
                    name.extend_from_slice(&avail[..i]);
                    src.consume(i + 1);
                    self.text_bytes += i as u64 + 1;
                    break;
                }
                Some(_) => return Err(malformed(pos, "unclosed reference").into()),
                None => {
                    let n = avail.len();
                    name.extend_from_slice(avail);
                    src.consume(n);
                    self.text_bytes += n as u64;
                }
            }
        }
        let name = String::from_utf8(name).map_err(|_| utf8_error(pos))?;
        self.resolved_reference(&name, pos)
    }

    fn resolved_reference(&mut self, name: &str, pos: u64) -> Result<(), C14nStreamError> {
        if self.depth == 0 {
            return Err(malformed(pos, "reference outside the root element").into());
        }
        let c = resolve_reference(name)?;
        let mut b = [0u8; 4];
        self.append_text(c.encode_utf8(&mut b))?;
        Ok(())
    }

    fn pi(&mut self, target: &str, raw: &str, pos: u64) -> Result<(), C14nStreamError> {
        self.flush_text()?;
        if target.eq_ignore_ascii_case("xml") {
            return Err(malformed(pos, "reserved processing-instruction target").into());
        }
        if target.contains(':') {
            return Err(malformed(pos, "colon in a processing-instruction target").into());
        }
        check_ncname(target, pos)?;
        let data = normalize_line_ends(raw.trim_start_matches(is_xml_space));
        check_chars(&data, pos)?;
        self.push_node()?;
        // C14N §2.1: a PI outside the document element is separated from it by a line feed.
        let outside = self.depth == 0;
        if outside && self.root_seen {
            self.out.put(b"\n")?;
        }
        self.out.put(b"<?")?;
        self.out.put(target.as_bytes())?;
        if !data.is_empty() {
            self.out.put(b" ")?;
            self.out.put(data.as_bytes())?;
        }
        self.out.put(b"?>")?;
        if outside && !self.root_seen {
            self.out.put(b"\n")?;
        }
        Ok(())
    }

    fn end(&mut self, name: &str, pos: u64) -> Result<(), C14nStreamError> {
        self.flush_text()?;
        let Some(frame) = self.frames.pop() else {
            return Err(malformed(pos, "end tag without a start tag").into());
        };
        // quick-xml compared the name with the start tag's (`check_end_names`).
        self.out.put(b"</")?;
        self.out.put(name.as_bytes())?;
        self.out.put(b">")?;
        self.depth -= 1;
        self.scope.truncate(frame.scope);
        self.rendered.truncate(frame.rendered);
        self.arena.truncate(frame.arena);
        Ok(())
    }

    fn arena_str(&self, s: Span) -> &str {
        &self.arena[s.0 as usize..s.1 as usize]
    }

    fn tag_str(&self, s: Span) -> &str {
        &self.tag[s.0 as usize..s.1 as usize]
    }

    fn push_tag(&mut self, s: &str) -> Span {
        let a = self.tag.len() as u32;
        self.tag.push_str(s);
        (a, self.tag.len() as u32)
    }

    fn push_arena(&mut self, s: &str) -> Span {
        let a = self.arena.len() as u32;
        self.arena.push_str(s);
        (a, self.arena.len() as u32)
    }

    /// The URI bound to `prefix` in scope (`Builder::resolve`): `Ok(None)` for no namespace.
    fn resolve(&self, prefix: Option<&str>) -> Result<Option<Span>, XmlError> {
        if prefix == Some("xml") {
            return Ok(Some(XML_SPAN));
        }
        for &(p, uri) in self.scope.iter().rev() {
            if p.map(|p| self.arena_str(p)) == prefix {
                return Ok((uri.1 > uri.0).then_some(uri));
            }
        }
        match prefix {
            None => Ok(None),
            Some(p) => Err(XmlError::UndeclaredPrefix(p.to_string())),
        }
    }

    /// A start tag: `Builder::begin_element`, `attribute`, `end_start_tag`, then the element's
    /// start tag as `c14n::Writer::node` renders it.
    fn start(
        &mut self,
        s: &quick_xml::events::BytesStart<'_>,
        empty: bool,
        pos: u64,
    ) -> Result<(), C14nStreamError> {
        self.flush_text()?;
        if self.depth == 0 && self.root_seen {
            return Err(malformed(pos, "more than one root element").into());
        }
        if self.depth >= self.limits.max_depth {
            return Err(XmlError::TooDeep(self.limits.max_depth).into());
        }
        let qname: &str = s.name().into_inner();
        let (prefix, local) = split_qname(qname, pos)?;
        self.tag.clear();
        self.decls.clear();
        self.attrs.clear();
        let prefix = prefix.map(|p| self.push_tag(p));
        let local = self.push_tag(local);
        let mut count = 0usize;
        let mut xml_declared = false;
        super::tree::check_attribute_spacing(s.attributes_raw().as_bytes(), pos)?;
        for a in s.attributes().with_checks(true) {
            let a = a.map_err(|e| malformed(pos, &e.to_string()))?;
            let key: &str = a.key.into_inner();
            count += 1;
            if count > self.limits.max_attributes {
                return Err(XmlError::TooManyAttributes(self.limits.max_attributes).into());
            }
            let value = self.attribute_value(&a.value, pos)?;
            let v = self.tag_str(value);
            if key == "xmlns" {
                if v == ns::XML || v == ns::XMLNS {
                    return Err(XmlError::Namespace(format!(
                        "{v} cannot be the default namespace"
                    ))
                    .into());
                }
                if self.decls.iter().any(|d| d.0.is_none()) {
                    return Err(malformed(pos, "duplicate attribute xmlns").into());
                }
                self.decls.push((None, value));
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                check_ncname(p, pos)?;
                if v.is_empty() {
                    return Err(XmlError::Namespace(format!(
                        "prefix {p} cannot be undeclared (XML Namespaces 1.0)"
                    ))
                    .into());
                }
                let is_xml = p == "xml";
                if is_xml != (v == ns::XML) || p == "xmlns" || v == ns::XMLNS {
                    return Err(XmlError::Namespace(format!(
                        "illegal binding of prefix {p} to {v}"
                    ))
                    .into());
                }
                let dup = if is_xml {
                    std::mem::replace(&mut xml_declared, true)
                } else {
                    self.decls
                        .iter()
                        .any(|d| d.0.is_some_and(|q| self.tag_str(q) == p))
                };
                if dup {
                    return Err(malformed(pos, &format!("duplicate attribute {key}")).into());
                }
                if is_xml {
                    continue; // redundant but legal; never rendered
                }
                let p = self.push_tag(p);
                self.decls.push((Some(p), value));
            } else {
                let (ap, al) = split_qname(key, pos)?;
                let ap = ap.map(|p| self.push_tag(p));
                let al = self.push_tag(al);
                self.attrs.push(TagAttr {
                    prefix: ap,
                    local: al,
                    value,
                    ns: None,
                });
            }
        }

        // `end_start_tag`: the tag's bindings enter the scope (copied into the arena, which
        // outlives the tag), then names resolve and duplicates by expanded name are refused.
        let frame = Frame {
            scope: self.scope.len(),
            rendered: self.rendered.len(),
            arena: self.arena.len(),
        };
        for i in 0..self.decls.len() {
            let (p, u) = self.decls[i];
            let p = p.map(|p| {
                let s = self.tag[p.0 as usize..p.1 as usize].to_owned();
                self.push_arena(&s)
            });
            let u = {
                let s = self.tag[u.0 as usize..u.1 as usize].to_owned();
                self.push_arena(&s)
            };
            self.scope.push((p, u));
        }
        let elem_prefix = prefix.map(|p| self.tag_str(p).to_owned());
        self.resolve(elem_prefix.as_deref())?;
        for i in 0..self.attrs.len() {
            let a = self.attrs[i];
            let ans = match a.prefix {
                None => None,
                Some(p) => {
                    let p = self.tag_str(p).to_owned();
                    Some(
                        self.resolve(Some(&p))?
                            .ok_or(XmlError::UndeclaredPrefix(p))?,
                    )
                }
            };
            self.attrs[i].ns = ans;
            let local = self.tag_str(a.local);
            let ns_uri = ans.map(|n| self.ns_str(n));
            let dup = self.attrs[..i]
                .iter()
                .any(|x| self.tag_str(x.local) == local && x.ns.map(|n| self.ns_str(n)) == ns_uri);
            if dup {
                return Err(malformed(pos, &format!("duplicate attribute {local}")).into());
            }
        }
        self.push_node()?;
        if self.depth == 0 {
            self.root_seen = true;
        }
        self.render_start(prefix, local)?;
        if empty {
            self.out.put(b"</")?;
            self.out.put(qname.as_bytes())?;
            self.out.put(b">")?;
            self.scope.truncate(frame.scope);
            self.rendered.truncate(frame.rendered);
            self.arena.truncate(frame.arena);
        } else {
            self.depth += 1;
            self.frames.push(frame);
        }
        Ok(())
    }

    /// A namespace URI span: [`XML_SPAN`] stands for the `xml` namespace, others are arena spans.
    fn ns_str(&self, s: Span) -> &str {
        if s == XML_SPAN {
            ns::XML
        } else {
            self.arena_str(s)
        }
    }

    /// Looks `prefix` up in `list` (a scope or the rendered declarations), last binding wins.
    fn lookup(&self, list: &[(Option<Span>, Span)], prefix: Option<&str>) -> Option<Span> {
        list.iter()
            .rev()
            .find(|(p, _)| p.map(|p| self.arena_str(p)) == prefix)
            .map(|(_, u)| *u)
    }

    /// Exc-C14N §3 for a whole document without a PrefixList: render the bindings of the
    /// visibly utilised prefixes that the nearest output ancestor did not render the same way;
    /// declarations by prefix, attributes by (namespace URI, local name) (C14N §2.2).
    fn render_start(&mut self, prefix: Option<Span>, local: Span) -> Result<(), C14nStreamError> {
        // Candidate prefixes: the element's and its prefixed attributes' (not `xml`).
        let mut cands: Vec<Option<String>> = Vec::with_capacity(1 + self.attrs.len());
        cands.push(prefix.map(|p| self.tag_str(p).to_owned()));
        for a in &self.attrs {
            if let Some(p) = a.prefix {
                let p = self.tag_str(p);
                if p != "xml" && !cands.iter().any(|c| c.as_deref() == Some(p)) {
                    cands.push(Some(p.to_owned()));
                }
            }
        }
        self.out_decls.clear();
        for p in &cands {
            if p.as_deref() == Some("xml") {
                continue;
            }
            let Some(binding) = self
                .scope
                .iter()
                .rev()
                .find(|(k, _)| k.map(|k| self.arena_str(k)) == p.as_deref())
                .copied()
            else {
                // Unbound: only the default namespace can be (no namespace); an empty default
                // is rendered only to cancel a rendered non-empty one.
                if p.is_none() {
                    if let Some(r) = self.lookup(&self.rendered, None) {
                        if r.1 > r.0 {
                            self.out_decls.push((None, (0, 0)));
                        }
                    }
                }
                continue;
            };
            let uri = self.arena_str(binding.1);
            let already = self.lookup(&self.rendered, p.as_deref());
            let already = already.map(|a| self.arena_str(a));
            let needed = match p {
                None => uri != already.unwrap_or(""),
                Some(_) => !uri.is_empty() && already != Some(uri),
            };
            if needed {
                self.out_decls.push(binding);
            }
        }
        let arena = &self.arena;
        let key = |s: &Option<Span>| s.map(|p| &arena[p.0 as usize..p.1 as usize]).unwrap_or("");
        self.out_decls.sort_by(|a, b| key(&a.0).cmp(key(&b.0)));
        self.rendered.extend(self.out_decls.iter().copied());

        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        line.push('<');
        if let Some(p) = prefix {
            line.push_str(self.tag_str(p));
            line.push(':');
        }
        line.push_str(self.tag_str(local));
        let mut bytes = std::mem::take(&mut self.out.buf);
        bytes.extend_from_slice(line.as_bytes());
        for &(p, uri) in &self.out_decls {
            match p {
                None => bytes.extend_from_slice(b" xmlns=\""),
                Some(p) => {
                    bytes.extend_from_slice(b" xmlns:");
                    bytes.extend_from_slice(self.arena_str(p).as_bytes());
                    bytes.extend_from_slice(b"=\"");
                }
            }
            escape_attr(self.arena_str(uri), &mut bytes);
            bytes.push(b'"');
        }
        let mut order: Vec<usize> = (0..self.attrs.len()).collect();
        order.sort_by(|&i, &j| {
            let (a, b) = (&self.attrs[i], &self.attrs[j]);
            (
                a.ns.map(|n| self.ns_str(n)).unwrap_or(""),
                self.tag_str(a.local),
            )
                .cmp(&(
                    b.ns.map(|n| self.ns_str(n)).unwrap_or(""),
                    self.tag_str(b.local),
                ))
        });
        for i in order {
            let a = self.attrs[i];
            bytes.push(b' ');
            if let Some(p) = a.prefix {
                bytes.extend_from_slice(self.tag_str(p).as_bytes());
                bytes.push(b':');
            }
            bytes.extend_from_slice(self.tag_str(a.local).as_bytes());
            bytes.extend_from_slice(b"=\"");
            escape_attr(self.tag_str(a.value), &mut bytes);
            bytes.push(b'"');
        }
        bytes.push(b'>');
        self.out.buf = bytes;
        self.scratch = line;
        self.out.maybe_flush()?;
        Ok(())
    }

    /// Attribute-value normalisation (XML 1.0 §3.3.3), as `Builder::attribute_value`, into the
    /// tag scratch.
    fn attribute_value(&mut self, raw: &str, pos: u64) -> Result<Span, XmlError> {
        if plain_ascii(raw.as_bytes(), [b'<', b'&']) {
            return Ok(self.push_tag(raw));
        }
        if !raw
            .bytes()
            .any(|b| matches!(b, b'\r' | b'\n' | b'\t' | b'<' | b'&'))
        {
            check_chars(raw, pos)?;
            return Ok(self.push_tag(raw));
        }
        let start = self.tag.len() as u32;
        super::tree::normalise_attribute_value(raw, pos, &mut self.tag)?;
        Ok((start, self.tag.len() as u32))
    }
}

/// Stands for the `xml` namespace in attribute namespace spans (never a real arena span:
/// arena spans are never reversed).
const XML_SPAN: Span = (u32::MAX, u32::MAX - 1);

#[derive(Default)]
struct TextRun {
    /// `]` at the end of the previous piece (0, 1, 2 = two or more).
    brackets: u8,
    /// The previous piece ended with CR.
    cr: bool,
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

fn utf8_error(pos: u64) -> XmlError {
    XmlError::Encoding(format!("invalid UTF-8 near byte {pos}"))
}

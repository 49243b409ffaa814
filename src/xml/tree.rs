//! A namespace-aware, read-only XML tree built from quick-xml events (`Builder::run` drives
//! the reader; the tree-building steps check what quick-xml does not).
//!
//! Why our own tree and not roxmltree: WS-Security needs the exact namespace declarations
//! as written on each element (exclusive C14N renders from them), attribute values after
//! XML 1.0 attribute-value normalisation, and hard limits that fire before memory is spent.
//!
//! Why this layout: every inbound AS4 message is parsed on the hot path, and a signed header
//! has ~70 elements; with an owned `String` per name, namespace URI and value, allocation
//! cost more than the Ed25519 verification of the message (docs/security.md, "Performance").
//! So a document is four flat vectors and one string arena: nodes link to parent, first child
//! and next sibling by index; names, values and text are spans of the arena, which starts with
//! a copy of the input (whatever needs no normalisation is a span of that copy); an element's
//! namespace URI is the span of the declaration that binds it (no copy at all); attributes and
//! declarations are ranges of two shared vectors. Parsing allocates a handful of growing
//! vectors per document instead of ~10 strings per element. The public views ([`Node`],
//! [`Element`], [`Attribute`], [`NsDecl`]) borrow `&str` from the document.
//!
//! Safety rules enforced while parsing (all configurable through [`Limits`]):
//! - any `<!DOCTYPE` is refused, so no entity can be declared, expanded or fetched (XXE, bombs);
//! - only the five predefined entities and character references are accepted;
//! - nesting depth, attributes per element, total nodes and input size are bounded.

use std::borrow::Cow;
use std::collections::HashMap;

use super::XmlError;
use crate::ns;

/// Parsing limits. The defaults are generous for AS4 headers and strict enough for the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input size in bytes.
    pub max_bytes: usize,
    /// Maximum element nesting depth. The canonicalizer recurses once per level, so keep this
    /// in the hundreds; a signed AS4 header is about 10 levels deep.
    pub max_depth: usize,
    /// Maximum attributes (including namespace declarations) on one element.
    pub max_attributes: usize,
    /// Maximum number of nodes (elements, text, comments, PIs) in the document.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 256,
            max_attributes: 256,
            max_nodes: 1_000_000,
        }
    }
}

/// Index of a node in its [`Document`]. Ids are handed out in document order (pre-order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    fn idx(self) -> usize {
        self.0 as usize
    }
}

/// "No node" in the link fields of [`NodeData`].
const NIL: u32 = u32::MAX;

/// A string in the document's arena (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy)]
struct ElementData {
    prefix: Option<Span>,
    local: Span,
    /// `None` when the element is in no namespace.
    ns: Option<Span>,
    /// Range of [`Document::attrs`].
    attrs: (u32, u32),
    /// Range of [`Document::decls`].
    decls: (u32, u32),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Element(ElementData),
    Text(Span),
    Comment(Span),
    Pi { target: Span, data: Span },
}

#[derive(Debug, Clone, Copy)]
struct NodeData {
    kind: Kind,
    parent: u32,
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
}

#[derive(Debug, Clone, Copy)]
struct AttrData {
    prefix: Option<Span>,
    local: Span,
    ns: Option<Span>,
    value: Span,
    /// The element carrying it: identifier lookups scan the attributes, not the tree.
    owner: u32,
}

#[derive(Debug, Clone, Copy)]
struct DeclData {
    prefix: Option<Span>,
    /// Empty for `xmlns=""`.
    uri: Span,
}

/// A namespace declaration as written on an element (`xmlns="…"` or `xmlns:p="…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsDecl<'a> {
    /// `None` for the default namespace.
    pub prefix: Option<&'a str>,
    /// The namespace URI; empty for `xmlns=""` (undeclaring the default namespace).
    pub uri: &'a str,
}

/// An attribute (namespace declarations are kept apart, see [`Element::ns_decls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub prefix: Option<&'a str>,
    pub local: &'a str,
    /// Namespace URI; `None` for unprefixed attributes (they never take the default namespace).
    pub ns: Option<&'a str>,
    /// The value after entity expansion and attribute-value normalisation.
    pub value: &'a str,
}

/// An element's name, attributes and declarations, borrowed from its document.
#[derive(Clone, Copy)]
pub struct Element<'a> {
    doc: &'a Document,
    data: ElementData,
    pub prefix: Option<&'a str>,
    pub local: &'a str,
    /// Namespace URI, `None` when the element is in no namespace.
    pub ns: Option<&'a str>,
}

impl<'a> Element<'a> {
    /// The qualified name as written (`eb:Messaging`).
    pub fn qname(&self) -> Cow<'a, str> {
        match self.prefix {
            Some(p) => Cow::Owned(format!("{p}:{}", self.local)),
            None => Cow::Borrowed(self.local),
        }
    }

    /// Attributes in document order (namespace declarations excluded).
    pub fn attributes(&self) -> impl ExactSizeIterator<Item = Attribute<'a>> + Clone + 'a {
        let doc = self.doc;
        let (a, b) = self.data.attrs;
        doc.attrs[a as usize..b as usize]
            .iter()
            .map(move |d| doc.attribute(d))
    }

    /// Namespace declarations written on this element, in document order.
    pub fn ns_decls(&self) -> impl ExactSizeIterator<Item = NsDecl<'a>> + Clone + 'a {
        let doc = self.doc;
        let (a, b) = self.data.decls;
        doc.decls[a as usize..b as usize]
            .iter()
            .map(move |d| NsDecl {
                prefix: d.prefix.map(|p| doc.str(p)),
                uri: doc.str(d.uri),
            })
    }
}

impl std::fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element")
            .field("qname", &self.qname())
            .field("ns", &self.ns)
            .field("attributes", &self.attributes().collect::<Vec<_>>())
            .field("ns_decls", &self.ns_decls().collect::<Vec<_>>())
            .finish()
    }
}

impl PartialEq for Element<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix
            && self.local == other.local
            && self.ns == other.ns
            && self.attributes().eq(other.attributes())
            && self.ns_decls().eq(other.ns_decls())
    }
}

impl Eq for Element<'_> {}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind<'a> {
    Element(Element<'a>),
    /// Character data (text and CDATA sections merged, entities expanded, line ends normalised).
    Text(&'a str),
    Comment(&'a str),
    Pi {
        target: &'a str,
        data: &'a str,
    },
}

/// A parsed XML document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The input text, then what had to be normalised: every name, value, URI and text of the
    /// document is a span of it.
    strings: String,
    nodes: Vec<NodeData>,
    attrs: Vec<AttrData>,
    decls: Vec<DeclData>,
    root: NodeId,
    /// Document-level children in order: comments and PIs around the root, and the root.
    top: Vec<NodeId>,
}

/// A borrowed view of one node.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    doc: &'a Document,
    id: NodeId,
}

impl std::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind() {
            NodeKind::Element(e) => write!(f, "Element({})", e.qname()),
            other => write!(f, "{other:?}"),
        }
    }
}

impl Document {
    /// Parses with default [`Limits`].
    pub fn parse(input: &[u8]) -> Result<Document, XmlError> {
        Self::parse_with(input, &Limits::default())
    }

    /// Parses bytes (UTF-8 with or without BOM, UTF-16 with BOM, or ISO-8859-1/US-ASCII as
    /// declared) into a tree, enforcing `limits`.
    pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Document, XmlError> {
        // Arena offsets are u32: refuse anything that could overflow them, whatever the limit.
        let hard_cap = (u32::MAX / 2) as usize;
        if input.len() > limits.max_bytes || input.len() > hard_cap {
            return Err(XmlError::TooLarge {
                size: input.len(),
                limit: limits.max_bytes.min(hard_cap),
            });
        }
        let text = decode_input(input)?;
        Builder::new(limits, &text).run(&text)
    }

    fn str(&self, s: Span) -> &str {
        &self.strings[s.start as usize..s.end as usize]
    }

    fn attribute(&self, d: &AttrData) -> Attribute<'_> {
        Attribute {
            prefix: d.prefix.map(|p| self.str(p)),
            local: self.str(d.local),
            ns: d.ns.map(|n| self.str(n)),
            value: self.str(d.value),
        }
    }

    /// The document element.
    pub fn root(&self) -> Node<'_> {
        self.node(self.root)
    }

    /// Document-level nodes (comments and PIs before and after the root, and the root).
    pub fn top_level(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        self.top.iter().map(move |&id| self.node(id))
    }

    /// A view of the node `id`.
    ///
    /// Panics if `id` comes from another document: ids are only handed out by this document.
    pub fn node(&self, id: NodeId) -> Node<'_> {
        assert!(id.idx() < self.nodes.len(), "NodeId from another document");
        Node { doc: self, id }
    }

    /// Number of nodes in the arena.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// All elements in document order.
    pub fn elements(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        self.root().descendants().filter(|n| n.is_element())
    }

    /// Every element with this namespace URI and local name, in document order: a scan of the
    /// flat node vector (ids are pre-order), cheaper than walking the tree's links.
    pub fn elements_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = Node<'a>> + 'a {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| match &n.kind {
                Kind::Element(e) => {
                    self.str(e.local) == local && e.ns.is_some_and(|u| self.str(u) == ns)
                }
                _ => false,
            })
            .map(move |(i, _)| self.node(NodeId(i as u32)))
    }

    /// Every element that carries an identifier attribute with this value: `wsu:Id`,
    /// `xml:id`, or an unqualified `Id`/`id`. The caller decides what more than one match
    /// means; for WS-Security it is a wrapping attempt and must be refused.
    pub fn elements_by_id<'a>(&'a self, value: &'a str) -> Vec<Node<'a>> {
        // One pass over the flat attribute vector (document order, an element's attributes
        // contiguous), comparing the value first: cheaper than walking every element.
        let mut found: Vec<Node<'a>> = Vec::new();
        for a in &self.attrs {
            if self.str(a.value) != value
                || !is_id_attribute(a.ns.map(|n| self.str(n)), self.str(a.local))
            {
                continue;
            }
            if found.last().map(|n| n.id.0) != Some(a.owner) {
                found.push(self.node(NodeId(a.owner)));
            }
        }
        found
    }
}

impl<'a> Node<'a> {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn document(&self) -> &'a Document {
        self.doc
    }

    fn data(&self) -> &'a NodeData {
        &self.doc.nodes[self.id.idx()]
    }

    fn at(&self, raw: u32) -> Option<Node<'a>> {
        (raw != NIL).then_some(Node {
            doc: self.doc,
            id: NodeId(raw),
        })
    }

    fn element_data(&self) -> Option<&'a ElementData> {
        match &self.data().kind {
            Kind::Element(e) => Some(e),
            _ => None,
        }
    }

    pub fn kind(&self) -> NodeKind<'a> {
        let doc = self.doc;
        match self.data().kind {
            Kind::Element(d) => NodeKind::Element(self.element_view(d)),
            Kind::Text(s) => NodeKind::Text(doc.str(s)),
            Kind::Comment(s) => NodeKind::Comment(doc.str(s)),
            Kind::Pi { target, data } => NodeKind::Pi {
                target: doc.str(target),
                data: doc.str(data),
            },
        }
    }

    pub fn element(&self) -> Option<Element<'a>> {
        self.element_data().map(|d| self.element_view(*d))
    }

    fn element_view(&self, d: ElementData) -> Element<'a> {
        let doc = self.doc;
        Element {
            doc,
            data: d,
            prefix: d.prefix.map(|p| doc.str(p)),
            local: doc.str(d.local),
            ns: d.ns.map(|n| doc.str(n)),
        }
    }

    pub fn is_element(&self) -> bool {
        matches!(self.data().kind, Kind::Element(_))
    }

    /// True if this is an element with this namespace URI and local name.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.element_data().is_some_and(|e| {
            self.doc.str(e.local) == local && e.ns.is_some_and(|n| self.doc.str(n) == ns)
        })
    }

    pub fn local_name(&self) -> &'a str {
        self.element_data()
            .map(|e| self.doc.str(e.local))
            .unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&'a str> {
        let doc = self.doc;
        self.element_data().and_then(|e| e.ns.map(|n| doc.str(n)))
    }

    pub fn parent(&self) -> Option<Node<'a>> {
        self.at(self.data().parent)
    }

    /// The ancestors of this node, nearest first (the node itself excluded).
    pub fn ancestors(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        std::iter::successors(self.parent(), |n| n.parent())
    }

    pub fn children(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        std::iter::successors(self.at(self.data().first_child), |n| {
            n.at(n.data().next_sibling)
        })
    }

    pub fn child_elements(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        self.children().filter(|n| n.is_element())
    }

    /// Child elements with this namespace and local name.
    pub fn children_named(
        &self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = Node<'a>> + 'a {
        self.child_elements().filter(move |n| n.is(ns, local))
    }

    /// The first child element with this namespace and local name.
    pub fn child(&self, ns: &str, local: &str) -> Option<Node<'a>> {
        self.child_elements().find(|n| n.is(ns, local))
    }

    /// This node and all its descendants in document order.
    pub fn descendants(&self) -> Descendants<'a> {
        Descendants {
            doc: self.doc,
            apex: self.id.0,
            next: self.id.0,
        }
    }

    /// Attribute value by namespace (`None` = unqualified) and local name.
    pub fn attr(&self, ns: Option<&str>, local: &str) -> Option<&'a str> {
        let doc = self.doc;
        let e = self.element_data()?;
        doc.attrs[e.attrs.0 as usize..e.attrs.1 as usize]
            .iter()
            .find(|a| doc.str(a.local) == local && a.ns.map(|n| doc.str(n)) == ns)
            .map(|a| doc.str(a.value))
    }

    /// The concatenated character data of the direct text children.
    pub fn text(&self) -> Cow<'a, str> {
        let mut texts = self.children().filter_map(|c| match c.kind() {
            NodeKind::Text(t) => Some(t),
            _ => None,
        });
        let first = match texts.next() {
            Some(t) => t,
            None => return Cow::Borrowed(""),
        };
        match texts.next() {
            None => Cow::Borrowed(first),
            Some(second) => {
                let mut s = String::from(first);
                s.push_str(second);
                texts.for_each(|t| s.push_str(t));
                Cow::Owned(s)
            }
        }
    }

    /// Values of the identifier attributes on this element (`wsu:Id`, `xml:id`, `Id`, `id`).
    pub fn id_attributes(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.element()
            .into_iter()
            .flat_map(|e| e.attributes())
            .filter(|a| is_id_attribute(a.ns, a.local))
            .map(|a| a.value)
    }

    /// The namespace URI bound to `prefix` (`None` = default) in scope at this element.
    /// Returns `None` when unbound; the default namespace undeclared by `xmlns=""` is unbound.
    pub fn lookup_namespace(&self, prefix: Option<&str>) -> Option<&'a str> {
        if prefix == Some("xml") {
            return Some(ns::XML);
        }
        let mut cur = Some(*self);
        while let Some(n) = cur {
            if let Some(e) = n.element() {
                if let Some(d) = e.ns_decls().find(|d| d.prefix == prefix) {
                    return if d.uri.is_empty() { None } else { Some(d.uri) };
                }
            }
            cur = n.parent();
        }
        None
    }

    /// All namespace bindings in scope at this element (prefix `None` = default; an
    /// undeclared default appears as `""`). Nearer declarations win.
    pub fn in_scope_namespaces(&self) -> HashMap<Option<&'a str>, &'a str> {
        let mut chain = Vec::new();
        let mut cur = Some(*self);
        while let Some(n) = cur {
            chain.push(n);
            cur = n.parent();
        }
        let mut map = HashMap::new();
        for n in chain.iter().rev() {
            if let Some(e) = n.element() {
                for d in e.ns_decls() {
                    map.insert(d.prefix, d.uri);
                }
            }
        }
        map
    }
}

/// `wsu:Id`, `xml:id`, or an unqualified `Id`/`id`: the attributes a same-document reference
/// (`URI="#…"`) may select.
fn is_id_attribute(ns_uri: Option<&str>, local: &str) -> bool {
    match ns_uri {
        None => local == "Id" || local == "id",
        Some(u) => (u == ns::WSU && local == "Id") || (u == ns::XML && local == "id"),
    }
}

/// Depth-first, document-order iterator over a subtree (no allocation: it walks the links).
pub struct Descendants<'a> {
    doc: &'a Document,
    apex: u32,
    next: u32,
}

impl<'a> Iterator for Descendants<'a> {
    type Item = Node<'a>;
    fn next(&mut self) -> Option<Node<'a>> {
        if self.next == NIL {
            return None;
        }
        let cur = self.next;
        let nodes = &self.doc.nodes;
        let d = &nodes[cur as usize];
        self.next = if d.first_child != NIL {
            d.first_child
        } else {
            let mut n = cur;
            loop {
                if n == self.apex {
                    break NIL;
                }
                let nd = &nodes[n as usize];
                if nd.next_sibling != NIL {
                    break nd.next_sibling;
                }
                n = nd.parent;
                if n == NIL {
                    break NIL;
                }
            }
        };
        Some(Node {
            doc: self.doc,
            id: NodeId(cur),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Input decoding

/// Turns the raw bytes into UTF-8 text. UTF-8 is what eDelivery mandates ([ED115] §3.2.2, and a
/// receiver must tolerate a BOM); ISO-8859-1 and UTF-16 are accepted because c14n test suites and
/// older partners use them.
fn decode_input(input: &[u8]) -> Result<Cow<'_, str>, XmlError> {
    if let Some(rest) = input.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return utf8(rest);
    }
    if input.starts_with(&[0xFF, 0xFE]) || input.starts_with(&[0xFE, 0xFF]) {
        let le = input[0] == 0xFF;
        let body = &input[2..];
        if !body.len().is_multiple_of(2) {
            return Err(XmlError::Encoding(
                "odd number of bytes in UTF-16 input".into(),
            ));
        }
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        return String::from_utf16(&units)
            .map(Cow::Owned)
            .map_err(|_| XmlError::Encoding("invalid UTF-16".into()));
    }
    match declared_encoding(input).map(|e| e.to_ascii_lowercase()) {
        None => utf8(input),
        Some(e) if e == "utf-8" || e == "utf8" => utf8(input),
        Some(e) if e == "us-ascii" || e == "ascii" => {
            if input.is_ascii() {
                utf8(input)
            } else {
                Err(XmlError::Encoding(
                    "non-ASCII byte in a US-ASCII document".into(),
                ))
            }
        }
        Some(e) if e == "iso-8859-1" || e == "latin1" || e == "latin-1" || e == "iso_8859-1" => {
            Ok(Cow::Owned(input.iter().map(|&b| b as char).collect()))
        }
        Some(other) => Err(XmlError::Encoding(format!(
            "unsupported encoding {other:?}"
        ))),
    }
}

fn utf8(b: &[u8]) -> Result<Cow<'_, str>, XmlError> {
    std::str::from_utf8(b)
        .map(Cow::Borrowed)
        .map_err(|e| XmlError::Encoding(format!("invalid UTF-8 at byte {}", e.valid_up_to())))
}

/// The `encoding` pseudo-attribute of the XML declaration, if any.
pub(super) fn declared_encoding(input: &[u8]) -> Option<&str> {
    if !input.starts_with(b"<?xml") {
        return None;
    }
    let end = input.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&input[..end]).ok()?;
    let i = decl.find("encoding")?;
    let rest = decl[i + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next()?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let rest = &rest[1..];
    rest.find(quote).map(|j| &rest[..j])
}

// ---------------------------------------------------------------------------------------------
// Tree construction

/// A name as quick-xml's reader found it, checked as a QName when it is split.
#[derive(Clone, Copy)]
struct RawName<'a> {
    text: &'a str,
}

impl<'a> RawName<'a> {
    fn unchecked(text: &'a str) -> Self {
        RawName { text }
    }

    fn split(&self, pos: u64) -> Result<(Option<&'a str>, &'a str), XmlError> {
        split_qname(self.text, pos)
    }
}

/// A start tag being read: its name and where its declarations and attributes begin.
struct OpenTag {
    prefix: Option<Span>,
    local: Span,
    decl_start: usize,
    attr_start: usize,
    /// Attributes and declarations so far (the `max_attributes` limit).
    count: usize,
    /// `xmlns:xml` seen (legal, never stored, so duplicates are caught here).
    xml_declared: bool,
}

/// The key of prefixes longer than 7 bytes in [`prefix_key`].
const LONG_PREFIX: u64 = u64::MAX;
/// `prefix_key(Some("xml"))`.
const XML_PREFIX_KEY: u64 = u64::from_le_bytes([b'x', b'm', b'l', 0, 0, 0, 0, 0x83]);

/// A prefix packed into one word for the scope lookup: the default namespace is 0, a prefix of
/// up to 7 bytes is its bytes plus `0x80 | length` in the top byte (so equal keys mean equal
/// prefixes), a longer one is [`LONG_PREFIX`] and has to be compared as text.
fn prefix_key(prefix: Option<&str>) -> u64 {
    match prefix {
        None => 0,
        Some(p) if p.len() <= 7 => {
            // Shifts, not a copy into a byte array: a copy of a variable length is a `memcpy`
            // call, and this runs for every declaration and every prefixed name.
            let mut w = (0x80 | p.len() as u64) << 56;
            for (i, &b) in p.as_bytes().iter().enumerate() {
                w |= (b as u64) << (8 * i);
            }
            w
        }
        Some(_) => LONG_PREFIX,
    }
}

/// Character data being collected for the next text node (text, CDATA and references merge).
#[derive(Clone, Copy)]
enum PendingText {
    None,
    /// One piece so far, found as is in the input copy at the start of the arena.
    Input(Span),
    /// Several pieces (or a normalised one), appended to the arena from this offset.
    Arena(u32),
}

struct Builder<'l> {
    limits: &'l Limits,
    /// The arena: a copy of the input first, so that names, values and texts that need no
    /// normalisation (nearly all of them) are spans of it rather than copies of their own;
    /// then `ns::XML` and whatever had to be normalised.
    strings: String,
    /// Where the input (the text `run` reads) lies in memory and how long it is: a `&str`
    /// quick-xml hands out inside that range is at the same offset in `strings`.
    input_addr: usize,
    input_len: usize,
    /// The span of `ns::XML`, the namespace the `xml` prefix is bound to implicitly.
    xml_ns: Span,
    nodes: Vec<NodeData>,
    attrs: Vec<AttrData>,
    decls: Vec<DeclData>,
    /// Open elements.
    stack: Vec<u32>,
    top: Vec<NodeId>,
    root: Option<NodeId>,
    /// Namespace scopes: the bindings (prefix key, prefix, uri) of the open elements, innermost
    /// last, with the stack length at each level ([`prefix_key`]: most lookups compare one word).
    scopes: Vec<(u64, Option<Span>, Span)>,
    scope_marks: Vec<usize>,
    pending_text: PendingText,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l Limits, input: &str) -> Self {
        let input_len = input.len();
        let mut strings = String::with_capacity(input_len + ns::XML.len() + 64);
        strings.push_str(input);
        strings.push_str(ns::XML);
        let xml_ns = Span {
            start: input_len as u32,
            end: strings.len() as u32,
        };
        Builder {
            limits,
            strings,
            input_addr: input.as_ptr() as usize,
            input_len,
            xml_ns,
            nodes: Vec::with_capacity(input_len / 32),
            // Sized for a signed AS4 header (~40 attributes and ~10 declarations in 5 KB), so
            // that the usual message grows none of these; capped so that a large document
            // does not reserve more than it is likely to use.
            attrs: Vec::with_capacity((input_len / 64).clamp(8, 4096)),
            decls: Vec::with_capacity(16),
            stack: Vec::with_capacity(16),
            top: Vec::with_capacity(4),
            root: None,
            scopes: Vec::with_capacity(16),
            scope_marks: Vec::with_capacity(16),
            pending_text: PendingText::None,
        }
    }

    /// The span of `s` in the input copy, when `s` is a slice of the input.
    fn input_span(&self, s: &str) -> Option<Span> {
        let start = (s.as_ptr() as usize).checked_sub(self.input_addr)?;
        let end = start.checked_add(s.len())?;
        (end <= self.input_len).then_some(Span {
            start: start as u32,
            end: end as u32,
        })
    }

    fn s(&self, s: Span) -> &str {
        &self.strings[s.start as usize..s.end as usize]
    }

    /// The span of `s` in the arena: where it already is when it is a slice of the input,
    /// else appended.
    fn push_str(&mut self, s: &str) -> Span {
        if let Some(span) = self.input_span(s) {
            return span;
        }
        let start = self.strings.len() as u32;
        self.strings.push_str(s);
        Span {
            start,
            end: self.strings.len() as u32,
        }
    }

    fn finish(self, input_len: usize) -> Result<Document, XmlError> {
        if !self.stack.is_empty() {
            return Err(malformed(input_len as u64, "unexpected end of document"));
        }
        let root = self
            .root
            .ok_or_else(|| malformed(input_len as u64, "no root element"))?;
        Ok(Document {
            strings: self.strings,
            nodes: self.nodes,
            attrs: self.attrs,
            decls: self.decls,
            root,
            top: self.top,
        })
    }

    // Tree-building steps, fed by `Builder::run`.

    fn decl(&mut self, pos: u64) -> Result<(), XmlError> {
        if pos != 0 {
            return Err(malformed(pos, "XML declaration not at the start"));
        }
        Ok(())
    }

    /// Literal character data (no references): `]]>` refused, line ends normalised.
    fn text_run(&mut self, raw: &str, pos: u64) -> Result<(), XmlError> {
        // The usual run (base64, ids, URIs) is printable ASCII without `]`: then it holds no
        // `]]>`, no CR to normalise and no character to refuse, and one word-at-a-time pass
        // replaces the substring search, the CR scan and the character check below (three
        // passes and two calls per text node).
        if plain_ascii(raw.as_bytes(), [b']', 0x7F]) {
            return self.checked_char_data(raw, pos);
        }
        // XML 1.0 §2.4 [14]: character data never contains `]]>` literally. Runs end at `<` and
        // `&` only, so one run holds it whole.
        if raw.contains("]]>") {
            return Err(malformed(pos, "']]>' in character data"));
        }
        let content = normalize_line_ends(raw);
        self.char_data(&content, pos)
    }

    fn reference(&mut self, name: &str, pos: u64) -> Result<(), XmlError> {
        if self.stack.is_empty() {
            return Err(malformed(pos, "reference outside the root element"));
        }
        let c = resolve_reference(name)?;
        let mut buf = [0u8; 4];
        self.text(c.encode_utf8(&mut buf));
        Ok(())
    }

    fn cdata(&mut self, raw: &str, pos: u64) -> Result<(), XmlError> {
        if self.stack.is_empty() {
            return Err(malformed(pos, "CDATA outside the root element"));
        }
        let content = normalize_line_ends(raw);
        check_chars(&content, pos)?;
        self.text(&content);
        Ok(())
    }

    fn comment(&mut self, raw: &str, pos: u64) -> Result<(), XmlError> {
        // XML 1.0 §2.5 [15]: no `--` inside, and no `-` just before the closing `-->`.
        if raw.contains("--") || raw.ends_with('-') {
            return Err(malformed(pos, "'--' in a comment"));
        }
        self.flush_text()?;
        let content = normalize_line_ends(raw);
        check_chars(&content, pos)?;
        let span = self.push_str(&content);
        self.push_node(Kind::Comment(span))?;
        Ok(())
    }

    /// A processing instruction: `target` as written, `raw` the rest up to `?>`.
    fn pi(&mut self, target: &str, raw: &str, pos: u64) -> Result<(), XmlError> {
        self.flush_text()?;
        if target.eq_ignore_ascii_case("xml") {
            return Err(malformed(pos, "reserved processing-instruction target"));
        }
        // XML Namespaces 1.0 §7: PI targets contain no colon.
        if target.contains(':') {
            return Err(malformed(pos, "colon in a processing-instruction target"));
        }
        check_ncname(target, pos)?;
        // PI content is raw: apply the line-end normalisation of XML 1.0 §2.11 ourselves
        // (C14N §2.1 relies on it) and check the characters.
        let data = normalize_line_ends(raw.trim_start_matches(is_xml_space));
        check_chars(&data, pos)?;
        let target = self.push_str(target);
        let data = self.push_str(&data);
        self.push_node(Kind::Pi { target, data })?;
        Ok(())
    }

    fn end_element(&mut self, name: &str, pos: u64) -> Result<(), XmlError> {
        self.flush_text()?;
        let Some(&open) = self.stack.last() else {
            return Err(malformed(pos, "end tag without a start tag"));
        };
        let matches = match self.nodes[open as usize].kind {
            Kind::Element(e) => match e.prefix {
                None => name == self.s(e.local),
                // The start tag's prefix and local name are usually spans of the input around
                // its colon: then the qualified name as written is one slice and the end tag
                // is one comparison (one `memcmp` call instead of two per prefixed end tag).
                Some(p)
                    if p.end + 1 == e.local.start
                        && self.strings.as_bytes().get(p.end as usize) == Some(&b':') =>
                {
                    name.as_bytes()
                        == &self.strings.as_bytes()[p.start as usize..e.local.end as usize]
                }
                Some(p) => {
                    let (p, l) = (self.s(p), self.s(e.local));
                    name.len() == p.len() + 1 + l.len()
                        && name.starts_with(p)
                        && name.as_bytes()[p.len()] == b':'
                        && name.ends_with(l)
                }
            },
            _ => false,
        };
        if !matches {
            return Err(malformed(
                pos,
                &format!("end tag {name:?} does not match the start tag"),
            ));
        }
        self.stack.pop();
        if let Some(mark) = self.scope_marks.pop() {
            self.scopes.truncate(mark);
        }
        Ok(())
    }

    /// A start tag's name: checked, stored; its attributes follow ([`Builder::attribute`]).
    fn begin_element(&mut self, qname: RawName<'_>, pos: u64) -> Result<OpenTag, XmlError> {
        self.flush_text()?;
        if self.stack.is_empty() && self.root.is_some() {
            return Err(malformed(pos, "more than one root element"));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(XmlError::TooDeep(self.limits.max_depth));
        }
        let (prefix, local) = qname.split(pos)?;
        let prefix = prefix.map(|p| self.push_str(p));
        let local = self.push_str(local);
        Ok(OpenTag {
            prefix,
            local,
            decl_start: self.decls.len(),
            attr_start: self.attrs.len(),
            count: 0,
            xml_declared: false,
        })
    }

    /// One attribute or namespace declaration of the open start tag (`raw`: the value between
    /// the quotes). Attribute namespaces are resolved in [`Builder::end_start_tag`], once every
    /// declaration of the tag is known.
    fn attribute(
        &mut self,
        el: &mut OpenTag,
        name: RawName<'_>,
        raw: &str,
        pos: u64,
    ) -> Result<(), XmlError> {
        let key = name.text;
        el.count += 1;
        if el.count > self.limits.max_attributes {
            return Err(XmlError::TooManyAttributes(self.limits.max_attributes));
        }
        let value = self.attribute_value(raw, pos)?;
        let v = self.s(value);
        if key == "xmlns" {
            if v == ns::XML || v == ns::XMLNS {
                return Err(XmlError::Namespace(format!(
                    "{v} cannot be the default namespace"
                )));
            }
            if self.decls[el.decl_start..]
                .iter()
                .any(|d| d.prefix.is_none())
            {
                return Err(malformed(pos, "duplicate attribute xmlns"));
            }
            self.decls.push(DeclData {
                prefix: None,
                uri: value,
            });
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            check_ncname(p, pos)?;
            if v.is_empty() {
                return Err(XmlError::Namespace(format!(
                    "prefix {p} cannot be undeclared (XML Namespaces 1.0)"
                )));
            }
            let is_xml = p == "xml";
            if is_xml != (v == ns::XML) || p == "xmlns" || v == ns::XMLNS {
                return Err(XmlError::Namespace(format!(
                    "illegal binding of prefix {p} to {v}"
                )));
            }
            let dup = if is_xml {
                std::mem::replace(&mut el.xml_declared, true)
            } else {
                self.decls[el.decl_start..]
                    .iter()
                    .any(|d| d.prefix.is_some_and(|q| self.s(q) == p))
            };
            if dup {
                return Err(malformed(pos, &format!("duplicate attribute {key}")));
            }
            if is_xml {
                return Ok(()); // redundant but legal; never rendered
            }
            let p = self.push_str(p);
            self.decls.push(DeclData {
                prefix: Some(p),
                uri: value,
            });
        } else {
            let (ap, al) = name.split(pos)?;
            let ap = ap.map(|p| self.push_str(p));
            let al = self.push_str(al);
            self.attrs.push(AttrData {
                prefix: ap,
                local: al,
                ns: None,
                value,
                // `flush_text` ran in `begin_element`: the element is the next node pushed.
                owner: self.nodes.len() as u32,
            });
        }
        Ok(())
    }

    /// The start tag is complete: namespaces resolved, duplicate attributes (by expanded name)
    /// refused, the element node pushed and, unless empty, opened.
    fn end_start_tag(&mut self, el: OpenTag, pos: u64, empty: bool) -> Result<(), XmlError> {
        let (decl_start, attr_start) = (el.decl_start, el.attr_start);
        self.scope_marks.push(self.scopes.len());
        for i in decl_start..self.decls.len() {
            let d = self.decls[i];
            let key = prefix_key(d.prefix.map(|p| self.s(p)));
            self.scopes.push((key, d.prefix, d.uri));
        }
        let elem_ns = self.resolve(el.prefix)?;
        for i in attr_start..self.attrs.len() {
            let a = self.attrs[i];
            let ans = match a.prefix {
                None => None,
                Some(p) => Some(
                    self.resolve(Some(p))?
                        .ok_or_else(|| XmlError::UndeclaredPrefix(self.s(p).to_string()))?,
                ),
            };
            self.attrs[i].ns = ans;
            let (local, ns_uri) = (self.s(a.local), ans.map(|n| self.s(n)));
            let dup = self.attrs[attr_start..i]
                .iter()
                .any(|x| self.s(x.local) == local && x.ns.map(|n| self.s(n)) == ns_uri);
            if dup {
                return Err(malformed(pos, &format!("duplicate attribute {local}")));
            }
        }
        let element = ElementData {
            prefix: el.prefix,
            local: el.local,
            ns: elem_ns,
            attrs: (attr_start as u32, self.attrs.len() as u32),
            decls: (decl_start as u32, self.decls.len() as u32),
        };
        let id = self.push_node(Kind::Element(element))?;
        if self.stack.is_empty() {
            self.root = Some(id);
        }
        if empty {
            if let Some(mark) = self.scope_marks.pop() {
                self.scopes.truncate(mark);
            }
        } else {
            self.stack.push(id.0);
        }
        Ok(())
    }

    /// Appends character data to the pending text node.
    fn text(&mut self, s: &str) {
        match self.pending_text {
            PendingText::None => {
                self.pending_text = match self.input_span(s) {
                    Some(span) => PendingText::Input(span),
                    None => {
                        let start = self.strings.len() as u32;
                        self.strings.push_str(s);
                        PendingText::Arena(start)
                    }
                }
            }
            PendingText::Input(first) => {
                // A second piece: the node's text must be contiguous, so copy the first.
                let start = self.strings.len() as u32;
                self.strings
                    .extend_from_within(first.start as usize..first.end as usize);
                self.strings.push_str(s);
                self.pending_text = PendingText::Arena(start);
            }
            PendingText::Arena(_) => self.strings.push_str(s),
        }
    }

    fn char_data(&mut self, content: &str, pos: u64) -> Result<(), XmlError> {
        check_chars(content, pos)?;
        self.checked_char_data(content, pos)
    }

    /// [`Builder::char_data`] for content whose characters are already known to be allowed.
    fn checked_char_data(&mut self, content: &str, pos: u64) -> Result<(), XmlError> {
        if self.stack.is_empty() {
            if content.chars().all(is_xml_space) {
                return Ok(());
            }
            return Err(malformed(pos, "text outside the root element"));
        }
        self.text(content);
        Ok(())
    }

    fn flush_text(&mut self) -> Result<(), XmlError> {
        let span = match std::mem::replace(&mut self.pending_text, PendingText::None) {
            PendingText::None => return Ok(()),
            PendingText::Input(span) => span,
            PendingText::Arena(start) => Span {
                start,
                end: self.strings.len() as u32,
            },
        };
        if span.end > span.start {
            self.push_node(Kind::Text(span))?;
        }
        Ok(())
    }

    fn push_node(&mut self, kind: Kind) -> Result<NodeId, XmlError> {
        if self.nodes.len() >= self.limits.max_nodes {
            return Err(XmlError::TooManyNodes(self.limits.max_nodes));
        }
        let raw = self.nodes.len() as u32;
        let id = NodeId(raw);
        let parent = self.stack.last().copied().unwrap_or(NIL);
        self.nodes.push(NodeData {
            kind,
            parent,
            first_child: NIL,
            last_child: NIL,
            next_sibling: NIL,
        });
        if parent == NIL {
            self.top.push(id);
        } else {
            let p = &mut self.nodes[parent as usize];
            let prev = p.last_child;
            p.last_child = raw;
            if prev == NIL {
                p.first_child = raw;
            } else {
                self.nodes[prev as usize].next_sibling = raw;
            }
        }
        Ok(id)
    }

    /// Resolves a prefix against the open scopes. `None` prefix = default namespace, which may
    /// be absent (`Ok(None)`); an unknown explicit prefix is an error.
    fn resolve(&self, prefix: Option<Span>) -> Result<Option<Span>, XmlError> {
        let prefix = prefix.map(|p| self.s(p));
        let key = prefix_key(prefix);
        if key == XML_PREFIX_KEY {
            return Ok(Some(self.xml_ns));
        }
        // One word compared per binding in scope; only prefixes longer than 7 bytes (which
        // share the key `LONG_PREFIX`) need their text compared.
        for &(k, p, uri) in self.scopes.iter().rev() {
            if k == key && (key != LONG_PREFIX || p.map(|p| self.s(p)) == prefix) {
                return Ok((uri.end > uri.start).then_some(uri));
            }
        }
        match prefix {
            None => Ok(None),
            Some(p) => Err(XmlError::UndeclaredPrefix(p.to_string())),
        }
    }

    /// Attribute-value normalisation (XML 1.0 §3.3.3) for CDATA attributes, written to the
    /// arena: line ends become `\n`, then literal white space becomes a space; characters from
    /// references are kept as is.
    fn attribute_value(&mut self, raw: &str, pos: u64) -> Result<Span, XmlError> {
        // Fast paths: nothing to normalise, expand or refuse (checked as for character data).
        if plain_ascii(raw.as_bytes(), [b'<', b'&']) {
            return Ok(self.push_str(raw));
        }
        if !raw
            .bytes()
            .any(|b| matches!(b, b'\r' | b'\n' | b'\t' | b'<' | b'&'))
        {
            check_chars(raw, pos)?;
            return Ok(self.push_str(raw));
        }
        let start = self.strings.len() as u32;
        normalise_attribute_value(raw, pos, &mut self.strings)?;
        Ok(Span {
            start,
            end: self.strings.len() as u32,
        })
    }
}

/// The slow path of attribute-value normalisation (XML 1.0 §3.3.3, CDATA attributes): appends
/// `raw` to `out` with line ends and literal white space as spaces and references resolved;
/// refuses `<`, unterminated references and characters XML does not allow. Shared by the tree
/// and the streaming canonicalizer, so both accept and produce the same values.
pub(super) fn normalise_attribute_value(
    raw: &str,
    pos: u64,
    out: &mut String,
) -> Result<(), XmlError> {
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(' ');
            }
            '\n' | '\t' => out.push(' '),
            '<' => return Err(malformed(pos, "'<' in an attribute value")),
            '&' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some(';') => break,
                        Some(ch) if name.len() < 32 => name.push(ch),
                        _ => {
                            return Err(malformed(
                                pos,
                                "unterminated reference in an attribute value",
                            ))
                        }
                    }
                }
                out.push(resolve_reference(&name)?);
            }
            c if !is_xml_char(c) => {
                return Err(malformed(
                    pos,
                    &format!("character U+{:04X} is not allowed in XML", c as u32),
                ))
            }
            c => out.push(c),
        }
    }
    Ok(())
}

/// The driver: quick-xml's reader (the design's XML tokenizer) feeding the tree-building steps.
/// Every check of the XML room stays in those steps or here: DTDs refused, only predefined
/// entities and character references, names by the XML 1.0 classes, duplicate attributes, end
/// tags matching start tags, `--` in comments, characters by XML 1.0 §2.2, limits.
impl Builder<'_> {
    fn run(mut self, input: &str) -> Result<Document, XmlError> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(input);
        let cfg = reader.config_mut();
        // `Builder::end_element` matches end tags against start tags itself.
        cfg.check_end_names = false;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
        cfg.trim_text_start = false;
        cfg.trim_text_end = false;
        loop {
            let pos = reader.buffer_position();
            let ev = reader.read_event().map_err(|e| XmlError::Malformed {
                pos: reader.error_position(),
                msg: e.to_string(),
            })?;
            let (s, empty) = match ev {
                Event::Start(s) => (s, false),
                Event::Empty(s) => (s, true),
                Event::Decl(_) => {
                    self.decl(pos)?;
                    continue;
                }
                Event::DocType(_) => return Err(XmlError::DtdRefused),
                Event::End(e) => {
                    self.end_element(e.name().as_ref(), pos)?;
                    continue;
                }
                Event::Text(t) => {
                    self.text_run(&t, pos)?;
                    continue;
                }
                Event::CData(c) => {
                    self.cdata(&c.xml10_content(), pos)?;
                    continue;
                }
                Event::GeneralRef(r) => {
                    self.reference(&r.into_inner(), pos)?;
                    continue;
                }
                Event::Comment(c) => {
                    self.comment(&c.xml10_content(), pos)?;
                    continue;
                }
                Event::PI(p) => {
                    self.pi(p.target(), p.content(), pos)?;
                    continue;
                }
                Event::Eof => break,
            };
            let mut el = self.begin_element(RawName::unchecked(s.name().as_ref()), pos)?;
            // Duplicates are refused by expanded name in `end_start_tag` (which also catches
            // two attributes with the same qualified name), and declarations in `attribute`:
            // quick-xml's own check would only repeat that, with an allocation per start tag.
            check_attribute_spacing(s.attributes_raw().as_bytes(), pos)?;
            for a in s.attributes().with_checks(false) {
                let a = a.map_err(|e| malformed(pos, &e.to_string()))?;
                self.attribute(&mut el, RawName::unchecked(a.key.as_ref()), &a.value, pos)?;
            }
            self.end_start_tag(el, pos, empty)?;
        }
        self.finish(input.len())
    }
}

/// XML 1.0 §3.1 [40]: attributes are separated by white space. quick-xml reads `a="1"b="2"`
/// as two attributes; a parser that does not is one more way for two implementations to see
/// different documents in the same bytes, so it is refused. Outside attribute values a start
/// tag holds no quote, so the first quote opens a value and the same quote closes it.
pub(super) fn check_attribute_spacing(raw: &[u8], pos: u64) -> Result<(), XmlError> {
    let mut rest = raw;
    while let Some(open) = memchr::memchr2(b'"', b'\'', rest) {
        let quote = rest[open];
        let Some(len) = memchr::memchr(quote, &rest[open + 1..]) else {
            // Unterminated: the attribute reader reports it.
            return Ok(());
        };
        rest = &rest[open + len + 2..];
        if let Some(&b) = rest.first() {
            if !is_xml_space(char::from(b)) {
                return Err(malformed(
                    pos,
                    "attributes must be separated by white space",
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn malformed(pos: u64, msg: &str) -> XmlError {
    XmlError::Malformed {
        pos,
        msg: msg.to_string(),
    }
}

/// XML 1.0 §2.11: `\r\n` and a lone `\r` become `\n`.
pub(super) fn normalize_line_ends(s: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\r', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
}

pub(super) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Eight bytes at a time: true when no byte is a C0 control or non-ASCII, and none is one of
/// `stops` (e.g. `<` and `&`). The exact per-character checks run only when this
/// says no, so it only has to be right when it says yes.
pub(super) fn plain_ascii<const K: usize>(s: &[u8], stops: [u8; K]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Some byte below `n` (n <= 0x80); the classic `hasless` word trick.
    let has_less = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGHS != 0;
    let masks = stops.map(|b| ONES * b as u64);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        if w & HIGHS != 0 || has_less(w, 0x20) || masks.iter().any(|&m| has_less(w ^ m, 1)) {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| (0x20..0x80).contains(&b) && !stops.contains(&b))
}

pub(super) fn check_chars(s: &str, pos: u64) -> Result<(), XmlError> {
    // Fast paths: printable ASCII (the usual case, a word at a time), then ASCII with TAB, LF,
    // CR; anything else is checked character by character.
    if plain_ascii(s.as_bytes(), [0x7F, 0x7F])
        || s.bytes()
            .all(|b| (0x20..0x80).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'))
    {
        return Ok(());
    }
    match s.chars().find(|&c| !is_xml_char(c)) {
        Some(c) => Err(malformed(
            pos,
            &format!("character U+{:04X} is not allowed in XML", c as u32),
        )),
        None => Ok(()),
    }
}

/// Byte classes for [`split_qname`]'s one-pass fast path: ASCII `NameStartChar`, ASCII
/// `NameChar`, the colon; 0 for everything else (non-ASCII bytes included, they take the exact
/// path).
const NAME_START: u8 = 2;
const NAME_CHAR: u8 = 1;
const NAME_COLON: u8 = 4;
const NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        t[c] = if b.is_ascii_alphabetic() || b == b'_' {
            NAME_START
        } else if b.is_ascii_digit() || b == b'-' || b == b'.' {
            NAME_CHAR
        } else if b == b':' {
            NAME_COLON
        } else {
            0
        };
        c += 1;
    }
    t
};

/// Splits a QName into prefix and local part, both checked as NCNames. Names are ASCII in
/// practice, so one table lookup per byte decides (no byte of class 0, exactly one colon or
/// none, a `NameStartChar` first and after the colon); anything else takes the exact
/// character-class path of [`check_ncname`].
pub(super) fn split_qname(name: &str, pos: u64) -> Result<(Option<&str>, &str), XmlError> {
    let bytes = name.as_bytes();
    // One pass, no calls: a run of name bytes, then, if a colon stops it, a second run that
    // must reach the end. (The earlier three passes, the last a `memchr` call looking for a
    // second colon, cost ~190 instructions per name; a signed header has ~120 names.)
    let is_name = |b: &u8| NAME_CLASS[*b as usize] & (NAME_START | NAME_CHAR) != 0;
    let starts = |i: usize| {
        bytes
            .get(i)
            .is_some_and(|&b| NAME_CLASS[b as usize] == NAME_START)
    };
    if starts(0) {
        let i = 1 + bytes[1..]
            .iter()
            .position(|b| !is_name(b))
            .unwrap_or(bytes.len() - 1);
        if i == bytes.len() {
            return Ok((None, name));
        }
        if bytes[i] == b':' && starts(i + 1) && bytes[i + 2..].iter().all(is_name) {
            return Ok((Some(&name[..i]), &name[i + 1..]));
        }
    }
    match name.split_once(':') {
        Some((p, l)) => {
            check_ncname(p, pos)?;
            check_ncname(l, pos)?;
            Ok((Some(p), l))
        }
        None => {
            check_ncname(name, pos)?;
            Ok((None, name))
        }
    }
}

/// `NameStartChar` of XML 1.0 (Fifth Edition) §2.3, without the colon (an NCName never has one).
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// `NameChar` of XML 1.0 (Fifth Edition) §2.3, without the colon.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// An NCName (XML Namespaces 1.0 §3) by the exact XML 1.0 Fifth Edition character classes, so
/// that we accept and refuse the same names as other conforming parsers.
pub(super) fn check_ncname(s: &str, pos: u64) -> Result<(), XmlError> {
    let ok = if s.is_ascii() {
        // The ASCII subset of the same classes: [A-Za-z_] then [A-Za-z0-9_.-].
        match s.as_bytes().split_first() {
            None => false,
            Some((&c, rest)) => {
                (c.is_ascii_alphabetic() || c == b'_')
                    && rest
                        .iter()
                        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            }
        }
    } else {
        let mut chars = s.chars();
        match chars.next() {
            None => false,
            Some(c) => is_name_start_char(c) && chars.all(is_name_char),
        }
    };
    if ok {
        Ok(())
    } else {
        Err(malformed(pos, &format!("invalid name {s:?}")))
    }
}

/// Expands one `&name;` reference: the five predefined entities and character references.
/// Anything else is refused: with DTDs refused there is no way to declare an entity.
pub(super) fn resolve_reference(name: &str) -> Result<char, XmlError> {
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => {
            // XML 1.0 §4.1 [66]: `&#x` + hex digits or `&#` + decimal digits, nothing else
            // (`from_str_radix` alone would also take a sign, as in `&#x+41;`).
            let code = if let Some(hex) = name.strip_prefix("#x") {
                if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    None
                } else {
                    u32::from_str_radix(hex, 16).ok()
                }
            } else if let Some(dec) = name.strip_prefix('#') {
                if dec.is_empty() || !dec.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    dec.parse::<u32>().ok()
                }
            } else {
                return Err(XmlError::UnknownEntity(name.to_string()));
            };
            let c = code
                .and_then(char::from_u32)
                .filter(|&c| is_xml_char(c))
                .ok_or_else(|| XmlError::BadCharRef(name.to_string()))?;
            return Ok(c);
        }
    };
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_resolve_by_uri_not_prefix() {
        let doc =
            Document::parse(br#"<a:r xmlns:a="urn:x"><b xmlns="urn:y" a:k="v"/></a:r>"#).unwrap();
        let r = doc.root();
        assert!(r.is("urn:x", "r"));
        let b = r.child("urn:y", "b").unwrap();
        assert_eq!(b.attr(Some("urn:x"), "k"), Some("v"));
    }

    #[test]
    fn dtd_refused() {
        let e = Document::parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").unwrap_err();
        assert!(matches!(e, XmlError::DtdRefused), "{e:?}");
    }

    #[test]
    fn unknown_entity_refused() {
        let e = Document::parse(b"<a>&x;</a>").unwrap_err();
        assert!(matches!(e, XmlError::UnknownEntity(_)), "{e:?}");
    }

    #[test]
    fn fast_paths_refuse_what_the_slow_paths_refuse() {
        // names: ASCII and non-ASCII NCNames, bad starts, bad characters
        assert!(Document::parse("<a-b.c_1 x.y-z_2=\"v\"/>".as_bytes()).is_ok());
        assert!(Document::parse("<é·ü/>".as_bytes()).is_ok());
        for bad in ["<1a/>", "<-a/>", "<.a/>", "<a x$=\"v\"/>", "<·a/>"] {
            assert!(Document::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        // attribute values without anything to normalise: control characters still refused
        assert!(Document::parse(b"<a v=\"x\x01y\"/>").is_err());
        assert_eq!(
            Document::parse("<a v=\"plain é\"/>".as_bytes())
                .unwrap()
                .root()
                .attr(None, "v"),
            Some("plain é")
        );
        // character data: C0 controls refused, DEL and non-ASCII allowed
        assert!(Document::parse(b"<a>x\x0by</a>").is_err());
        assert!(Document::parse("<a>x\u{7f}é\ty</a>".as_bytes()).is_ok());
    }

    #[test]
    fn attribute_value_normalised() {
        let doc = Document::parse(b"<a v=\"x\ty\r\nz&#x9;\"/>").unwrap();
        assert_eq!(doc.root().attr(None, "v"), Some("x y z\t"));
    }

    #[test]
    fn undeclared_prefix_refused() {
        assert!(matches!(
            Document::parse(b"<p:a/>").unwrap_err(),
            XmlError::UndeclaredPrefix(_)
        ));
    }

    #[test]
    fn cdata_end_in_text_refused() {
        let e = Document::parse(b"<a>x]]>y</a>").unwrap_err();
        assert!(matches!(e, XmlError::Malformed { .. }), "{e:?}");
        // Escaped, or split by a reference, it is fine.
        assert_eq!(
            Document::parse(b"<a>]]&gt;</a>").unwrap().root().text(),
            "]]>"
        );
        assert_eq!(
            Document::parse(b"<a><![CDATA[]]]]><![CDATA[>]]></a>")
                .unwrap()
                .root()
                .text(),
            "]]>"
        );
    }

    #[test]
    fn char_refs_strict() {
        for bad in [
            "&#x+41;", "&#+65;", "&#x;", "&#;", "&#X41;", "&#x0;", "&#xD800;", "&#65a;",
        ] {
            let doc = format!("<a>{bad}</a>");
            let e = Document::parse(doc.as_bytes()).unwrap_err();
            assert!(
                matches!(e, XmlError::BadCharRef(_) | XmlError::Malformed { .. }),
                "{bad}: {e:?}"
            );
            let doc = format!("<a v=\"{bad}\"/>");
            assert!(
                Document::parse(doc.as_bytes()).is_err(),
                "{bad} in an attribute"
            );
        }
        assert_eq!(
            Document::parse(b"<a>&#x41;&#66;</a>")
                .unwrap()
                .root()
                .text(),
            "AB"
        );
    }

    #[test]
    fn pi_data_line_ends_normalised() {
        let doc = Document::parse(b"<a><?pi x\r\ny\rz?></a>").unwrap();
        let pi = doc.root().children().next().unwrap();
        assert_eq!(
            pi.kind(),
            NodeKind::Pi {
                target: "pi",
                data: "x\ny\nz"
            }
        );
        assert!(
            Document::parse(b"<a><?p:i x?></a>").is_err(),
            "colon in PI target"
        );
    }

    #[test]
    fn elements_by_id_in_document_order_once_each() {
        let doc = Document::parse(
            br#"<a xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"><b wsu:Id="x" Id="x"/><c><d id="x" other="x"/></c><e Id="y" xml:id="x"/><f foo:Id="x" xmlns:foo="urn:f"/></a>"#,
        )
        .unwrap();
        let names: Vec<&str> = doc
            .elements_by_id("x")
            .iter()
            .map(|n| n.local_name())
            .collect();
        assert_eq!(names, ["b", "d", "e"]);
        assert_eq!(doc.elements_by_id("y")[0].local_name(), "e");
        assert!(doc.elements_by_id("z").is_empty());
    }

    #[test]
    fn qnames_split_and_checked() {
        for good in ["a", "a:b", "_x.y-z:k9", "é:b", "a:é"] {
            assert!(split_qname(good, 0).is_ok(), "{good}");
        }
        assert_eq!(split_qname("p:l", 0).unwrap(), (Some("p"), "l"));
        assert_eq!(split_qname("l", 0).unwrap(), (None, "l"));
        for bad in [
            "",
            ":",
            ":a",
            "a:",
            "a:b:c",
            "1a",
            "a:1b",
            "a:-b",
            "a b",
            "a::b",
            "a:b\u{7f}",
        ] {
            assert!(split_qname(bad, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_by_xml_fifth_edition_classes() {
        // U+0301 (combining acute) is a NameChar, not a NameStartChar; U+00D7 is neither.
        assert!(Document::parse("<\u{301}e/>".as_bytes()).is_err());
        assert!(Document::parse("<e\u{301}/>".as_bytes()).is_ok());
        assert!(Document::parse("<x\u{D7}/>".as_bytes()).is_err());
        assert!(Document::parse(b"<a-b.c_d\xC2\xB7/>").is_ok());
        assert!(Document::parse(b"<1a/>").is_err());
    }

    #[test]
    fn plain_ascii_is_exact() {
        let base = *b"abcdefghijklmnopq";
        for len in [0usize, 1, 7, 8, 9, 16, 17] {
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut buf = base;
                    buf[at] = v;
                    let s = &buf[..len];
                    let naive = s
                        .iter()
                        .all(|&b| (0x20..0x80).contains(&b) && b != b'<' && b != b'&');
                    assert_eq!(plain_ascii(s, [b'<', b'&']), naive, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn depth_limit() {
        let mut s = String::new();
        for _ in 0..300 {
            s.push_str("<a>");
        }
        for _ in 0..300 {
            s.push_str("</a>");
        }
        assert!(matches!(
            Document::parse(s.as_bytes()).unwrap_err(),
            XmlError::TooDeep(_)
        ));
    }
}

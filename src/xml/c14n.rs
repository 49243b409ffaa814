//! Exclusive XML Canonicalization 1.0 (W3C Recommendation 18 July 2002), with and without
//! comments, with the `InclusiveNamespaces PrefixList`, over a whole document or the subtree
//! of one element (what a `ds:Reference URI="#id"` selects). Canonical XML 1.0 (inclusive,
//! W3C Recommendation 15 March 2001) is available as an option because partners' SignedInfo and
//! the W3C interop vectors still use it; AS4 itself signs with the exclusive form.
//!
//! AS4 only ever canonicalises complete subtrees (`eb:Messaging`, `S12:Body`, `ds:SignedInfo`),
//! so no XPath node-set machinery is needed: every descendant of the apex is in the node set.
//! A union of disjoint subtrees ([`canonicalize_subtrees`]) covers the XPath examples of the
//! Exc-C14N Recommendation (§2.2) without an XPath engine.
//!
//! Rules implemented (section numbers of Exc-C14N and C14N 1.0):
//! - a namespace declaration is rendered on an element when its prefix is *visibly utilised*
//!   there (the element's own prefix, or a prefixed attribute's), or listed in the PrefixList,
//!   and the nearest output ancestor did not already render the same binding (Exc-C14N §3);
//! - the default namespace counts as utilised by an unprefixed element; `xmlns=""` is emitted
//!   only to undo a non-empty default rendered by an output ancestor (C14N §4.6 via Exc §3);
//! - `xml:*` attributes are not imported from ancestors (Exc-C14N §3, unlike inclusive C14N);
//! - namespace declarations sort by prefix (default first), attributes by (namespace URI, local
//!   name) with unqualified attributes first (C14N §2.2);
//! - text escapes `& < > #xD`, attributes escape `& < " #x9 #xA #xD` (C14N §2.3);
//! - empty elements become start/end pairs; comments only with comments; PIs always.
//!
//! Inclusive C14N 1.0 differs only at namespaces and `xml:*` attributes: every in-scope binding
//! is rendered on the apex and every change of binding below it (C14N §2.3 "Namespace Nodes",
//! §4.7), and the apex imports the `xml:*` attributes of its ancestors (C14N §2.4).

use super::{Attribute, Document, Node, NodeId, NodeKind};
use crate::ns;

/// Which canonicalization algorithm to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum C14nAlgorithm {
    /// Exclusive XML Canonicalization 1.0 (`http://www.w3.org/2001/10/xml-exc-c14n#`), what
    /// WS-Security and AS4 use: the output of a subtree does not depend on its context.
    #[default]
    Exclusive,
    /// Canonical XML 1.0 (`http://www.w3.org/TR/2001/REC-xml-c14n-20010315`): the apex carries
    /// every in-scope namespace and the inherited `xml:*` attributes. The `PrefixList` is ignored.
    Inclusive,
}

/// The canonicalization options carried by a `ds:Transform` / `ds:CanonicalizationMethod`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct C14nOptions {
    /// `…#WithComments` when true.
    pub with_comments: bool,
    /// `ec:InclusiveNamespaces/@PrefixList` tokens; `#default` stands for the default namespace.
    /// Only meaningful for [`C14nAlgorithm::Exclusive`] (Exc-C14N §3).
    pub inclusive_prefixes: Vec<String>,
    /// Exclusive (the default) or inclusive C14N 1.0.
    pub algorithm: C14nAlgorithm,
}

impl C14nOptions {
    /// Exclusive C14N options from a whitespace-separated PrefixList attribute value.
    pub fn with_prefix_list(list: &str) -> Self {
        C14nOptions {
            with_comments: false,
            inclusive_prefixes: list.split_ascii_whitespace().map(str::to_string).collect(),
            algorithm: C14nAlgorithm::Exclusive,
        }
    }

    /// Options for an `Algorithm` URI of `ds:CanonicalizationMethod` / `ds:Transform`, or `None`
    /// when the URI is not one of the four C14N 1.0 identifiers (C14N §1 / Exc-C14N §1 list
    /// them). C14N 1.1 is deliberately absent: no AS4 profile uses it.
    pub fn from_algorithm_uri(uri: &str, prefix_list: &str) -> Option<Self> {
        let (algorithm, with_comments) = match uri {
            ns::ALG_EXC_C14N => (C14nAlgorithm::Exclusive, false),
            ns::ALG_EXC_C14N_WITH_COMMENTS => (C14nAlgorithm::Exclusive, true),
            ALG_C14N => (C14nAlgorithm::Inclusive, false),
            ALG_C14N_WITH_COMMENTS => (C14nAlgorithm::Inclusive, true),
            _ => return None,
        };
        let mut o = Self::with_prefix_list(prefix_list);
        o.algorithm = algorithm;
        o.with_comments = with_comments;
        Some(o)
    }
}

/// Canonical XML 1.0 algorithm identifier (C14N §1).
pub const ALG_C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
/// Canonical XML 1.0 with comments (C14N §1).
pub const ALG_C14N_WITH_COMMENTS: &str =
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";

/// Canonicalizes the subtree rooted at `apex` (an element) and appends the bytes to `out`.
pub fn canonicalize_subtree(doc: &Document, apex: NodeId, opts: &C14nOptions, out: &mut Vec<u8>) {
    let node = doc.node(apex);
    let inclusive = Inclusive::new(opts);
    // In-scope bindings at the apex come from its ancestors too; nothing is rendered yet.
    // (Nearest declaration of each prefix wins; a short vector, not a hash map: an AS4 header
    // has a handful of bindings and this runs for every reference of every message.)
    let mut scope: Vec<(Option<&str>, &str)> = Vec::with_capacity(16);
    let mut anc = node.parent();
    while let Some(a) = anc {
        if let Some(e) = a.element() {
            for d in e.ns_decls() {
                if !scope.iter().any(|(p, _)| same_prefix(*p, d.prefix)) {
                    scope.push((d.prefix, d.uri));
                }
            }
        }
        anc = a.parent();
    }
    // No sort needed: each prefix is in `scope` once (nearest declaration), and every use of
    // it is a lookup by prefix; the rendered declarations are sorted per start tag.
    let mut rendered: Vec<(Option<&str>, &str)> = Vec::with_capacity(16);
    let imported = match opts.algorithm {
        C14nAlgorithm::Inclusive => inherited_xml_attributes(node),
        C14nAlgorithm::Exclusive => Vec::new(),
    };
    // Scratch sized for AS4 headers: no start tag there needs more, so none of them regrows.
    let mut w = Writer {
        out,
        opts,
        inclusive: &inclusive,
        imported,
        candidates: Vec::with_capacity(8),
        decls: Vec::with_capacity(8),
        attrs: Vec::with_capacity(8),
    };
    w.node(node, &mut scope, &mut rendered);
}

/// Canonicalizes the union of the subtrees rooted at `apexes`, as an XPath node-set such as
/// `(//. | //@* | //namespace::*)[ancestor-or-self::p]` selects them (Exc-C14N §2.2, third
/// example). An apex inside another selected subtree adds nothing; the remaining subtrees are
/// disjoint, none has an output ancestor, and the nodes between them are not in the set, so
/// the canonical form of the set is the concatenation of each subtree's form in document order
/// (C14N §2.1: nodes are processed in document order).
pub fn canonicalize_subtrees(
    doc: &Document,
    apexes: &[NodeId],
    opts: &C14nOptions,
    out: &mut Vec<u8>,
) {
    let mut sorted: Vec<NodeId> = apexes.to_vec();
    // Node ids are allocated in document order (pre-order), see `tree::Builder::push_node`.
    sorted.sort();
    sorted.dedup();
    for (i, &id) in sorted.iter().enumerate() {
        let nested = doc
            .node(id)
            .ancestors()
            .any(|a| sorted[..i].binary_search(&a.id()).is_ok());
        if !nested {
            canonicalize_subtree(doc, id, opts, out);
        }
    }
}

/// The `xml:*` attributes an inclusive apex inherits: for each local name, the value on the
/// nearest ancestor, unless the apex carries it itself (C14N 1.0 §2.4, which imports them all,
/// `xml:id` and `xml:base` included; C14N 1.1 changed that, C14N 1.0 did not).
fn inherited_xml_attributes(apex: Node<'_>) -> Vec<Attribute<'_>> {
    let own: Vec<&str> = apex
        .element()
        .map(|e| {
            e.attributes()
                .filter(|a| a.ns == Some(ns::XML))
                .map(|a| a.local)
                .collect()
        })
        .unwrap_or_default();
    let mut found: Vec<Attribute<'_>> = Vec::new();
    for anc in apex.ancestors() {
        let Some(e) = anc.element() else { continue };
        for a in e.attributes() {
            if a.ns == Some(ns::XML)
                && !own.contains(&a.local)
                && !found.iter().any(|f| f.local == a.local)
            {
                found.push(a);
            }
        }
    }
    found
}

/// Canonicalizes a whole document (comments and PIs outside the root element included, each
/// separated from the root by a line feed as C14N §2.1 prescribes).
pub fn canonicalize_document(doc: &Document, opts: &C14nOptions, out: &mut Vec<u8>) {
    let inclusive = Inclusive::new(opts);
    let mut seen_root = false;
    let root = doc.root().id();
    for n in doc.top_level() {
        let is_root = n.id() == root;
        let emitted = match n.kind() {
            NodeKind::Comment(_) if !opts.with_comments => false,
            NodeKind::Text(_) => false,
            _ => true,
        };
        if !emitted {
            continue;
        }
        if seen_root && !is_root {
            out.push(b'\n');
        }
        let mut w = Writer {
            out: &mut *out,
            opts,
            inclusive: &inclusive,
            imported: Vec::new(),
            candidates: Vec::new(),
            decls: Vec::new(),
            attrs: Vec::new(),
        };
        w.node(n, &mut Vec::new(), &mut Vec::new());
        if !seen_root && !is_root {
            out.push(b'\n');
        }
        if is_root {
            seen_root = true;
        }
    }
}

/// Convenience: the canonical bytes of a subtree.
pub fn canonical_bytes(doc: &Document, apex: NodeId, opts: &C14nOptions) -> Vec<u8> {
    // A signed AS4 SignedInfo is ~1.3 KB canonical: one allocation, no regrowth.
    let mut v = Vec::with_capacity(2048);
    canonicalize_subtree(doc, apex, opts, &mut v);
    v
}

struct Inclusive<'p> {
    default: bool,
    prefixes: Vec<&'p str>,
}

impl<'p> Inclusive<'p> {
    fn new(opts: &'p C14nOptions) -> Self {
        if opts.algorithm == C14nAlgorithm::Inclusive {
            // Inclusive C14N renders the whole namespace axis; a PrefixList adds nothing.
            return Inclusive {
                default: false,
                prefixes: Vec::new(),
            };
        }
        Inclusive {
            default: opts.inclusive_prefixes.iter().any(|p| p == "#default"),
            prefixes: opts
                .inclusive_prefixes
                .iter()
                .map(String::as_str)
                .filter(|p| *p != "#default")
                .collect(),
        }
    }
}

struct Writer<'o, 'p, 'd> {
    out: &'o mut Vec<u8>,
    opts: &'p C14nOptions,
    inclusive: &'p Inclusive<'p>,
    /// `xml:*` attributes imported onto the apex (inclusive C14N only); taken by the first element.
    imported: Vec<Attribute<'d>>,
    /// Scratch space for one start tag, reused across elements (emptied before the children are
    /// written, so the recursion never sees them): candidate prefixes, the declarations to
    /// render, the attributes in canonical order.
    candidates: Vec<Option<&'d str>>,
    decls: Vec<(Option<&'d str>, &'d str)>,
    attrs: Vec<Attribute<'d>>,
}

/// Looks a prefix up in a scope stack (last binding wins).
fn lookup<'a>(stack: &[(Option<&'a str>, &'a str)], prefix: Option<&str>) -> Option<&'a str> {
    stack
        .iter()
        .rev()
        .find(|(p, _)| same_prefix(*p, prefix))
        .map(|(_, u)| *u)
}

/// Prefix equality compared byte by byte: prefixes are a few bytes long, and `==` on two
/// strings of equal length is a `memcmp` call (most of the C14N's lookups compare prefixes).
#[inline]
fn same_prefix(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y),
        _ => false,
    }
}

/// Namespace-URI equality, by address first: scope and rendered entries are spans of the
/// document, so a binding compared with the declaration it came from is the same span, and
/// the comparison of its ~40 bytes is skipped.
#[inline]
fn same_uri(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

impl<'d> Writer<'_, '_, 'd> {
    fn node(
        &mut self,
        node: Node<'d>,
        scope: &mut Vec<(Option<&'d str>, &'d str)>,
        rendered: &mut Vec<(Option<&'d str>, &'d str)>,
    ) {
        match node.kind() {
            NodeKind::Text(t) => escape_text(t, self.out),
            NodeKind::Comment(c) => {
                if self.opts.with_comments {
                    self.out.extend_from_slice(b"<!--");
                    self.out.extend_from_slice(c.as_bytes());
                    self.out.extend_from_slice(b"-->");
                }
            }
            NodeKind::Pi { target, data } => {
                self.out.extend_from_slice(b"<?");
                self.out.extend_from_slice(target.as_bytes());
                if !data.is_empty() {
                    self.out.push(b' ');
                    self.out.extend_from_slice(data.as_bytes());
                }
                self.out.extend_from_slice(b"?>");
            }
            NodeKind::Element(e) => {
                let scope_mark = scope.len();
                for d in e.ns_decls() {
                    scope.push((d.prefix, d.uri));
                }

                // Candidate prefixes: visibly utilised ones plus the inclusive list (exclusive),
                // or every prefix in scope (inclusive: the whole namespace axis, C14N §2.3).
                // The attributes in canonical order, read once: their prefixes are candidates too.
                let imported = std::mem::take(&mut self.imported);
                let mut attrs = std::mem::take(&mut self.attrs);
                attrs.clear();
                attrs.extend(e.attributes().chain(imported.iter().copied()));
                attrs.sort_by(|a, b| {
                    (a.ns.unwrap_or(""), a.local).cmp(&(b.ns.unwrap_or(""), b.local))
                });

                let mut candidates = std::mem::take(&mut self.candidates);
                candidates.clear();
                let has =
                    |c: &[Option<&str>], p: Option<&str>| c.iter().any(|k| same_prefix(*k, p));
                if self.opts.algorithm == C14nAlgorithm::Inclusive {
                    for (p, _) in scope.iter() {
                        if !has(&candidates, *p) {
                            candidates.push(*p);
                        }
                    }
                }
                if !has(&candidates, e.prefix) {
                    candidates.push(e.prefix);
                }
                for a in &attrs {
                    // (imported attributes are all `xml:*`: never a candidate)
                    if let Some(p) = a.prefix {
                        if p != "xml" && !has(&candidates, Some(p)) {
                            candidates.push(Some(p));
                        }
                    }
                }
                if self.inclusive.default && !has(&candidates, None) {
                    candidates.push(None);
                }
                for &p in &self.inclusive.prefixes {
                    // Borrow the prefix from the document (via the scope), not from the options.
                    let bound = scope
                        .iter()
                        .rev()
                        .find(|(k, _)| same_prefix(*k, Some(p)))
                        .map(|(k, _)| *k);
                    if let Some(k) = bound {
                        if !has(&candidates, k) {
                            candidates.push(k);
                        }
                    }
                }

                let rendered_mark = rendered.len();
                let mut decls = std::mem::take(&mut self.decls);
                decls.clear();
                for &p in &candidates {
                    if same_prefix(p, Some("xml")) {
                        continue;
                    }
                    let uri = lookup(scope, p).unwrap_or("");
                    let already = lookup(rendered, p);
                    let needed = match p {
                        // An empty default is only rendered to cancel a rendered non-empty one.
                        None => !same_uri(uri, already.unwrap_or("")),
                        Some(_) => !uri.is_empty() && !already.is_some_and(|a| same_uri(a, uri)),
                    };
                    if needed {
                        decls.push((p, uri));
                    }
                }
                decls.sort_by(|a, b| a.0.unwrap_or("").cmp(b.0.unwrap_or("")));
                rendered.extend(decls.iter().copied());

                self.out.push(b'<');
                write_qname(e.prefix, e.local, self.out);
                for (p, uri) in &decls {
                    match p {
                        None => self.out.extend_from_slice(b" xmlns=\""),
                        Some(p) => {
                            self.out.extend_from_slice(b" xmlns:");
                            self.out.extend_from_slice(p.as_bytes());
                            self.out.extend_from_slice(b"=\"");
                        }
                    }
                    escape_attr(uri, self.out);
                    self.out.push(b'"');
                }
                for a in &attrs {
                    self.out.push(b' ');
                    write_qname(a.prefix, a.local, self.out);
                    self.out.extend_from_slice(b"=\"");
                    escape_attr(a.value, self.out);
                    self.out.push(b'"');
                }
                self.out.push(b'>');
                self.candidates = candidates;
                self.decls = decls;
                self.attrs = attrs;
                for c in node.children() {
                    self.node(c, scope, rendered);
                }
                self.out.extend_from_slice(b"</");
                write_qname(e.prefix, e.local, self.out);
                self.out.push(b'>');

                rendered.truncate(rendered_mark);
                scope.truncate(scope_mark);
            }
        }
    }
}

fn write_qname(prefix: Option<&str>, local: &str, out: &mut Vec<u8>) {
    if let Some(p) = prefix {
        out.extend_from_slice(p.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(local.as_bytes());
}

/// Escapes character data the way C14N does (valid for any XML output).
pub fn escape_text(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    // Fast path (a word at a time): printable ASCII with nothing to escape.
    if super::plain_ascii(bytes, [b'&', b'<', b'>']) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
}

/// Escapes an attribute value the way C14N does (valid for any XML output, double quotes).
pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    // Fast path (a word at a time): printable ASCII with nothing to escape (TAB, LF, CR are
    // below 0x20, so they take the loop).
    if super::plain_ascii(bytes, [b'&', b'<', b'"']) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'"' => b"&quot;",
            b'\t' => b"&#x9;",
            b'\n' => b"&#xA;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, id: Option<&str>, prefixes: &str) -> String {
        let doc = Document::parse(xml.as_bytes()).unwrap();
        let opts = C14nOptions::with_prefix_list(prefixes);
        let mut out = Vec::new();
        match id {
            Some(id) => {
                let n = doc.elements_by_id(id)[0].id();
                canonicalize_subtree(&doc, n, &opts, &mut out)
            }
            None => canonicalize_document(&doc, &opts, &mut out),
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unused_namespace_dropped_and_used_pushed_down() {
        let x = r#"<r xmlns:a="urn:a" xmlns:b="urn:b"><x Id="t"><a:y/></x></r>"#;
        assert_eq!(
            c14n(x, Some("t"), ""),
            r#"<x Id="t"><a:y xmlns:a="urn:a"></a:y></x>"#
        );
    }

    #[test]
    fn default_namespace_inherited_into_subset() {
        let x = r#"<r xmlns="urn:d"><x Id="t"><y xmlns=""/></x></r>"#;
        assert_eq!(
            c14n(x, Some("t"), ""),
            r#"<x xmlns="urn:d" Id="t"><y xmlns=""></y></x>"#
        );
    }

    #[test]
    fn superfluous_empty_default_not_rendered() {
        let x = r#"<r><x Id="t" xmlns=""><y/></x></r>"#;
        assert_eq!(c14n(x, Some("t"), ""), r#"<x Id="t"><y></y></x>"#);
    }

    /// C14N §2.3 processes namespace nodes like attributes, so `&` in a namespace name is
    /// escaped (libxml2 writes it raw; see the differential test).
    #[test]
    fn ampersand_in_namespace_uri_escaped() {
        let x = r#"<r xmlns:a="urn:q?x=1&amp;y=&lt;"><a:x Id="t"/></r>"#;
        assert_eq!(
            c14n(x, Some("t"), ""),
            r#"<a:x xmlns:a="urn:q?x=1&amp;y=&lt;" Id="t"></a:x>"#
        );
    }

    #[test]
    fn inclusive_renders_namespace_axis_and_imports_xml_attributes() {
        let x = r#"<r xmlns="urn:d" xmlns:a="urn:a" xml:lang="en" xml:space="preserve"><x Id="t" xml:lang="fr"><y xmlns:a="urn:a" xmlns:b="urn:b"/><z xmlns=""/></x></r>"#;
        let doc = Document::parse(x.as_bytes()).unwrap();
        let t = doc.elements_by_id("t")[0].id();
        let opts = C14nOptions::from_algorithm_uri(ALG_C14N, "ignored").unwrap();
        assert_eq!(
            String::from_utf8(canonical_bytes(&doc, t, &opts)).unwrap(),
            r#"<x xmlns="urn:d" xmlns:a="urn:a" Id="t" xml:lang="fr" xml:space="preserve"><y xmlns:b="urn:b"></y><z xmlns=""></z></x>"#
        );
    }

    #[test]
    fn algorithm_uris() {
        assert_eq!(
            C14nOptions::from_algorithm_uri(ns::ALG_EXC_C14N, "a"),
            Some(C14nOptions::with_prefix_list("a"))
        );
        let o = C14nOptions::from_algorithm_uri(ALG_C14N_WITH_COMMENTS, "").unwrap();
        assert!(o.with_comments && o.algorithm == C14nAlgorithm::Inclusive);
        assert!(
            C14nOptions::from_algorithm_uri("http://www.w3.org/2006/12/xml-c14n11", "").is_none()
        );
    }

    #[test]
    fn prefix_list_renders_unused_in_scope_prefix() {
        let x = r#"<r xmlns:a="urn:a"><x Id="t"/></r>"#;
        assert_eq!(c14n(x, Some("t"), "a"), r#"<x xmlns:a="urn:a" Id="t"></x>"#);
    }
}

//! Exclusive XML Canonicalization 1.0 (W3C Recommendation 18 July 2002), with and without
//! comments, with the `InclusiveNamespaces PrefixList`, over a whole document or the subtree
//! of one element (what a `ds:Reference URI="#id"` selects).
//!
//! AS4 only ever canonicalises complete subtrees (`eb:Messaging`, `S12:Body`, `ds:SignedInfo`),
//! so no XPath node-set machinery is needed: every descendant of the apex is in the node set.
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

use super::{Document, Node, NodeId, NodeKind};

/// The canonicalization options carried by a `ds:Transform` / `ds:CanonicalizationMethod`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct C14nOptions {
    /// `http://www.w3.org/2001/10/xml-exc-c14n#WithComments` when true.
    pub with_comments: bool,
    /// `ec:InclusiveNamespaces/@PrefixList` tokens; `#default` stands for the default namespace.
    pub inclusive_prefixes: Vec<String>,
}

impl C14nOptions {
    /// Options from a whitespace-separated PrefixList attribute value.
    pub fn with_prefix_list(list: &str) -> Self {
        C14nOptions {
            with_comments: false,
            inclusive_prefixes: list.split_ascii_whitespace().map(str::to_string).collect(),
        }
    }
}

/// Canonicalizes the subtree rooted at `apex` (an element) and appends the bytes to `out`.
pub fn canonicalize_subtree(doc: &Document, apex: NodeId, opts: &C14nOptions, out: &mut Vec<u8>) {
    let node = doc.node(apex);
    let inclusive = Inclusive::new(opts);
    // In-scope bindings at the apex come from its ancestors too; nothing is rendered yet.
    let mut scope: Vec<(Option<&str>, &str)> = node
        .parent()
        .map(|p| {
            let mut v: Vec<_> = p.in_scope_namespaces().into_iter().collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let mut rendered: Vec<(Option<&str>, &str)> = Vec::new();
    let mut w = Writer {
        out,
        opts,
        inclusive: &inclusive,
    };
    w.node(node, &mut scope, &mut rendered);
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
    let mut v = Vec::with_capacity(1024);
    canonicalize_subtree(doc, apex, opts, &mut v);
    v
}

struct Inclusive {
    default: bool,
    prefixes: Vec<String>,
}

impl Inclusive {
    fn new(opts: &C14nOptions) -> Self {
        Inclusive {
            default: opts.inclusive_prefixes.iter().any(|p| p == "#default"),
            prefixes: opts
                .inclusive_prefixes
                .iter()
                .filter(|p| *p != "#default")
                .cloned()
                .collect(),
        }
    }
}

struct Writer<'o, 'p> {
    out: &'o mut Vec<u8>,
    opts: &'p C14nOptions,
    inclusive: &'p Inclusive,
}

/// Looks a prefix up in a scope stack (last binding wins).
fn lookup<'a>(stack: &[(Option<&'a str>, &'a str)], prefix: Option<&str>) -> Option<&'a str> {
    stack
        .iter()
        .rev()
        .find(|(p, _)| *p == prefix)
        .map(|(_, u)| *u)
}

impl Writer<'_, '_> {
    fn node<'a>(
        &mut self,
        node: Node<'a>,
        scope: &mut Vec<(Option<&'a str>, &'a str)>,
        rendered: &mut Vec<(Option<&'a str>, &'a str)>,
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
                for d in &e.ns_decls {
                    scope.push((d.prefix.as_deref(), d.uri.as_str()));
                }

                // Candidate prefixes: visibly utilised ones plus the inclusive list.
                let mut candidates: Vec<Option<&str>> = Vec::with_capacity(4);
                candidates.push(e.prefix.as_deref());
                for a in &e.attributes {
                    if let Some(p) = a.prefix.as_deref() {
                        if p != "xml" && !candidates.contains(&Some(p)) {
                            candidates.push(Some(p));
                        }
                    }
                }
                if self.inclusive.default && !candidates.contains(&None) {
                    candidates.push(None);
                }
                for p in &self.inclusive.prefixes {
                    // Borrow the prefix from the document (via the scope), not from the options.
                    let bound = scope
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == Some(p.as_str()))
                        .map(|(k, _)| *k);
                    if let Some(k) = bound {
                        if !candidates.contains(&k) {
                            candidates.push(k);
                        }
                    }
                }

                let rendered_mark = rendered.len();
                let mut decls: Vec<(Option<&str>, &str)> = Vec::new();
                for p in candidates {
                    if p == Some("xml") {
                        continue;
                    }
                    let uri = lookup(scope, p).unwrap_or("");
                    let already = lookup(rendered, p).unwrap_or("");
                    let needed = match p {
                        // An empty default is only rendered to cancel a rendered non-empty one.
                        None => uri != already,
                        Some(_) => !uri.is_empty() && lookup(rendered, p) != Some(uri),
                    };
                    if needed {
                        decls.push((p, uri));
                    }
                }
                decls.sort_by(|a, b| a.0.unwrap_or("").cmp(b.0.unwrap_or("")));
                rendered.extend(decls.iter().copied());

                self.out.push(b'<');
                write_qname(e.prefix.as_deref(), &e.local, self.out);
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
                let mut attrs: Vec<_> = e.attributes.iter().collect();
                attrs.sort_by(|a, b| {
                    (a.ns.as_deref().unwrap_or(""), a.local.as_str())
                        .cmp(&(b.ns.as_deref().unwrap_or(""), b.local.as_str()))
                });
                for a in attrs {
                    self.out.push(b' ');
                    write_qname(a.prefix.as_deref(), &a.local, self.out);
                    self.out.extend_from_slice(b"=\"");
                    escape_attr(&a.value, self.out);
                    self.out.push(b'"');
                }
                self.out.push(b'>');
                for c in node.children() {
                    self.node(c, scope, rendered);
                }
                self.out.extend_from_slice(b"</");
                write_qname(e.prefix.as_deref(), &e.local, self.out);
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

    #[test]
    fn prefix_list_renders_unused_in_scope_prefix() {
        let x = r#"<r xmlns:a="urn:a"><x Id="t"/></r>"#;
        assert_eq!(c14n(x, Some("t"), "a"), r#"<x xmlns:a="urn:a" Id="t"></x>"#);
    }
}

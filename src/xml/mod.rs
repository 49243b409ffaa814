//! The XML layer: a namespace-aware tree with safe parsing limits, identifier lookup, and
//! Exclusive XML Canonicalization 1.0.
//!
//! No I/O and no clock here: bytes in, trees and canonical bytes out.

mod c14n;
mod c14n_stream;
mod tree;

pub use c14n::{
    canonical_bytes, canonicalize_document, canonicalize_subtree, canonicalize_subtrees,
    escape_attr, escape_text, C14nAlgorithm, C14nOptions, ALG_C14N, ALG_C14N_WITH_COMMENTS,
};
pub use c14n_stream::{canonicalize_stream, C14nStreamError, PAYLOAD_LIMITS};
use tree::plain_ascii;
pub use tree::{Attribute, Descendants, Document, Element, Limits, Node, NodeId, NodeKind, NsDecl};

/// Why a document was refused. All of these are the sender's fault; at the MSH boundary they
/// become EBMS:0009 InvalidHeader when they concern the SOAP envelope.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlError {
    #[error("document type declarations (DTD) are refused: no entities, no external references")]
    DtdRefused,
    #[error("entity reference &{0}; refused: only the five predefined entities and character references are allowed")]
    UnknownEntity(String),
    #[error("invalid character reference &{0};")]
    BadCharRef(String),
    #[error("nesting deeper than the limit of {0} elements")]
    TooDeep(usize),
    #[error("more than {0} attributes on one element")]
    TooManyAttributes(usize),
    #[error("more than {0} nodes in the document")]
    TooManyNodes(usize),
    #[error("document of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("encoding: {0}")]
    Encoding(String),
    #[error("namespace prefix {0:?} is not declared")]
    UndeclaredPrefix(String),
    #[error("namespace error: {0}")]
    Namespace(String),
    #[error("not well-formed XML at byte {pos}: {msg}")]
    Malformed { pos: u64, msg: String },
}

//! The OOTS room: the EDM (RegRep 4) evidence request / response / error documents, the
//! OOTS rules on the ebMS header that carries them, and correlation keys.
//!
//! - [`model`]: typed, serde-serialisable EDM values (v1.0 and v2.0 side by side).
//! - [`read`]: EDM XML → model, by namespace URI (never by prefix: Domibus renames prefixes
//!   between messages, digest §9 item 2).
//! - [`write`]: model → EDM XML with the structure, slots and namespaces of the official
//!   samples.
//! - [`rules`]: the OOTS header rules of digest §6.3 plus the payload checks the gateway must
//!   answer with EDM:ERR:0003 (digest §7.4), and the builder of that error response.
//! - [`keys`]: ConversationId-independent correlation keys (digest §7.5, §7.6).
//!
//! No I/O, no clock, no randomness: identifiers and timestamps a new document needs are
//! passed in by the caller.

pub mod keys;
pub mod model;
pub mod read;
pub mod rules;
pub mod write;

pub use keys::{correlation_keys, normalize_request_id, response_answers, CorrelationKeys};
pub use model::*;
pub use read::{parse_edm, read_edm, EdmError};
pub use rules::{
    check, check_message, invalid_request_response, HeaderFields, MessageProperty, PayloadPart,
    Rule, Violation,
};
pub use write::{write_edm, write_request, write_response};

// --- Namespaces (digest §7.1) -----------------------------------------------------------------

/// RegRep 4 query namespace.
pub const QUERY: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0";
/// RegRep 4 information model namespace.
pub const RIM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:4.0";
/// RegRep 4 registry services namespace (`rs:Exception`).
pub const RS: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:4.0";
/// SDG metadata profile namespace (`sdg:Agent`, `sdg:Person`, …).
pub const SDG: &str = "http://data.europa.eu/p4s";
/// XLink (`xlink:href` on `rim:RepositoryItemRef`).
pub const XLINK: &str = "http://www.w3.org/1999/xlink";
/// XML-binary optimised packaging MIME attributes (declared by the samples, unused).
pub const XMIME: &str = "http://www.w3.org/2005/05/xmlmime";

// --- Fixed values (digest §7.1, §6.1, §6.3) ------------------------------------------------------

/// `SpecificationIdentifier` of EDM v2.0.
pub const EDM_V2: &str = "oots-edm:v2.0";
/// `SpecificationIdentifier` of EDM v1.0.
pub const EDM_V1: &str = "oots-edm:v1.0";
/// Prefix shared by the v1.x identifiers (`oots-edm:v1.0`, `oots-edm:v1.2`, digest §6.1).
pub const EDM_V1_PREFIX: &str = "oots-edm:v1.";
/// `QueryResponse/@status` values.
pub const RS_STATUS_SUCCESS: &str = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success";
pub const RS_STATUS_FAILURE: &str = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure";
pub const RS_STATUS_UNAVAILABLE: &str =
    "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Unavailable";
/// Severity of an ordinary EDM error.
pub const SEVERITY_ERROR: &str = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error";
/// Severity of a preview-required EDM:ERR:0002 in the v1.0 samples.
pub const SEVERITY_PREVIEW_REQUIRED_V1: &str =
    "urn:sr.oots.tech.europa.eu:codes:ErrorSeverity:EDMErrorResponse:PreviewRequired";
/// Severity of a preview-required EDM:ERR:0002 in v2.0 (domain changed to `…tech.ec.europa.eu`).
pub const SEVERITY_PREVIEW_REQUIRED_V2: &str =
    "urn:sr.oots.tech.ec.europa.eu:codes:ErrorSeverity:EDMErrorResponse:PreviewRequired";
/// RegRep collection type used by the collection-valued slots.
pub const COLLECTION_SET: &str = "urn:oasis:names:tc:ebxml-regrep:CollectionType:Set";
/// `query:ResponseOption/@returnType`.
pub const RETURN_TYPE: &str = "LeafClassWithRepositoryItem";
/// `query:Query/@queryDefinition`.
pub const QUERY_DEFINITION: &str = "DocumentQuery";
/// v2.0 classification scheme of evidence objects.
pub const EDM_CLASSIFICATION_SCHEME: &str = "urn:fdc:oots:classification:edm";
/// MIME type of the RegRep payload part (digest §6.5).
pub const MIME_EBRS: &str = "application/x-ebrs+xml";

/// ebMS Actions of the OOTS QueryManager service (digest §6.3).
pub const ACTION_REQUEST: &str = "ExecuteQueryRequest";
pub const ACTION_RESPONSE: &str = "ExecuteQueryResponse";
pub const ACTION_EXCEPTION: &str = "ExceptionResponse";

/// Four-corner message property names (digest §3.5, §6.3).
pub const PROP_ORIGINAL_SENDER: &str = "originalSender";
pub const PROP_FINAL_RECIPIENT: &str = "finalRecipient";
/// v2.0 mandatory properties (digest §6.3).
pub const PROP_EXCHANGE_ID: &str = "ExchangeId";
pub const PROP_SPECIFICATION_ID: &str = "SpecificationId";

//! The EDM (OOTS Exchange Data Model) as typed, JSON-serialisable Rust values.
//!
//! Only the fields a backend acts on are modelled (digest §7.2–§7.4); the RegRep envelope
//! around them (slot value types, collection types, prefixes) is re-created by the writer.
//! Every field that the schema or the OOTS samples allow to be absent is an `Option` or a
//! `Vec`, so that an incomplete document still reads and can be *judged* (an incomplete
//! request must be answered with EDM:ERR:0003, digest §7.4, not dropped by a parse error).
//!
//! The same structs serve EDM v1.0 (`oots-edm:v1.0`) and v2.0 (`oots-edm:v2.0`); the
//! differences are carried by the data itself (e.g. [`Procedure::Code`] vs
//! [`Procedure::Localized`], [`QueryResponse::package_id`]) or by
//! [`EdmVersion`] where the wire form differs without a field to show it.

use serde::{Deserialize, Serialize};

use super::{
    EDM_V1_PREFIX, EDM_V2, RS_STATUS_FAILURE, SEVERITY_ERROR, SEVERITY_PREVIEW_REQUIRED_V1,
    SEVERITY_PREVIEW_REQUIRED_V2,
};

/// The EDM line a document follows, from its `SpecificationIdentifier` (digest §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EdmVersion {
    /// `oots-edm:v1.x` (TDD 1.0–1.2; the samples use `oots-edm:v1.0`).
    #[serde(rename = "oots-edm:v1")]
    V1,
    /// `oots-edm:v2.0` (TDD 2.0.x).
    #[serde(rename = "oots-edm:v2.0")]
    V2,
}

impl EdmVersion {
    /// Classifies a `SpecificationIdentifier` / `SpecificationId` value; `None` when it names
    /// no EDM line this gateway knows.
    pub fn from_spec_id(spec: &str) -> Option<EdmVersion> {
        let spec = spec.trim();
        if spec == EDM_V2 {
            Some(EdmVersion::V2)
        } else if spec.starts_with(EDM_V1_PREFIX) {
            Some(EdmVersion::V1)
        } else {
            None
        }
    }

    /// The severity URN of a preview-required exception: its domain changed between the
    /// v1.0 samples and v2.0 (digest §7.4).
    pub fn preview_required_severity(self) -> &'static str {
        match self {
            EdmVersion::V1 => SEVERITY_PREVIEW_REQUIRED_V1,
            EdmVersion::V2 => SEVERITY_PREVIEW_REQUIRED_V2,
        }
    }
}

/// A text with an optional language (`sdg:Name lang="en"`, `rim:LocalizedString xml:lang`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LocalizedText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub value: String,
}

impl LocalizedText {
    pub fn new(lang: Option<&str>, value: &str) -> Self {
        LocalizedText {
            lang: lang.map(str::to_owned),
            value: value.to_owned(),
        }
    }
}

/// An identifier with its scheme (`sdg:Identifier schemeID="…"`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_id: Option<String>,
    pub value: String,
}

/// `sdg:Address` / `sdg:CurrentAddress` / `sdg:RegisteredAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thoroughfare: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator_designator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_city_name: Option<String>,
    /// ISO 3166-1 alpha-2 country code (digest §7.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_unit_level1: Option<String>,
    /// NUTS code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_unit_level2: Option<String>,
}

/// `sdg:Agent`: Evidence Requester, Intermediary Platform, Evidence Provider, Error Provider,
/// and (without classification) an evidence's issuing authority.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub identifier: Identifier,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<LocalizedText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// `ER`/`IP`/`EP`/`ERRP` (v2.0) or `EvidenceRequester`/`IntermediaryPlatform`/… (v1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
}

/// `sdg:Requirement` (Semantic Repository URI + names).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    pub identifier: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<LocalizedText>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptions: Vec<LocalizedText>,
}

/// `sdg:DistributedAs` (requested) / `sdg:Distribution` (delivered).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conforms_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `sdg:DataServiceEvidenceType` inside the `EvidenceRequest` query slot: which evidence
/// type the requester asks for (digest §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceTypeRequest {
    /// The DSD identifier of the data service evidence type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// The evidence type classification (Semantic Repository URI in v2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_type_classification: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub titles: Vec<LocalizedText>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptions: Vec<LocalizedText>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distributed_as: Vec<Distribution>,
}

/// `sdg:EvidenceProviderClassification` (DSD disambiguation attributes), optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceProviderClassification {
    pub identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_expression: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptions: Vec<LocalizedText>,
    /// `sdg:SupportedValue/sdg:StringValue` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_values: Vec<String>,
}

/// `sdg:Person` (query slot `NaturalPerson`, `AuthorizedRepresentative`) and
/// `sdg:NaturalPerson` (an evidence's subject).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NaturalPerson {
    /// eIDAS level of assurance (`Low`/`Substantial`/`High`); absent in evidence metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_of_assurance: Option<String>,
    /// eIDAS identifier (`schemeID="eidas"`, `XX/YY/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_of_birth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
}

/// `sdg:LegalPerson` (query slot `LegalPerson`, evidence subject). The field list is not
/// confirmed by a sample (digest §7.2 marks it UNCONFIRMED); these are the SDG profile names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegalPerson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_of_assurance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_person_identifier: Option<Identifier>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legal_names: Vec<LocalizedText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_address: Option<Address>,
}

/// The subject of a request or of an evidence: natural XOR legal person (digest §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Subject {
    NaturalPerson(NaturalPerson),
    LegalPerson(LegalPerson),
}

impl Subject {
    /// The eIDAS level of assurance the requester authenticated the user with.
    pub fn level_of_assurance(&self) -> Option<&str> {
        match self {
            Subject::NaturalPerson(p) => p.level_of_assurance.as_deref(),
            Subject::LegalPerson(p) => p.level_of_assurance.as_deref(),
        }
    }
}

/// The `Procedure` slot: a code (v2.0, `StringValueType`, e.g. `T3`, `00`) or localised
/// text (v1.0 samples, `InternationalStringValueType`) — digest §7.2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Procedure {
    Code(String),
    Localized(Vec<LocalizedText>),
}

/// `query:QueryRequest`, the evidence request (Action `ExecuteQueryRequest`, digest §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    /// `@id`, `urn:uuid:…` in v2.0 (plain UUID in the v1.0 samples); echoed as the
    /// response's `requestId` (digest §7.6).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specification_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<Procedure>,
    /// Only in the second request of the preview flow (digest §7.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_location: Option<String>,
    /// v2.0, second request of the preview flow (digest §7.2, secondary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub possibility_for_preview: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_request_given: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Requirement>,
    /// Evidence Requester, and an Intermediary Platform when one acts for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_requester: Vec<Agent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_provider: Option<Agent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_provider_classifications: Vec<EvidenceProviderClassification>,
    /// Query slot `NaturalPerson` or `LegalPerson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// Query slot `AuthorizedRepresentative` (a natural person acting for the subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_representative: Option<NaturalPerson>,
    /// Query slot `EvidenceRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_request: Option<EvidenceTypeRequest>,
}

impl QueryRequest {
    /// The agent an answer is addressed to: the one classified as the evidence requester
    /// (`ER`, or `EvidenceRequester` in older samples), else the first listed (digest §7.2).
    pub fn requesting_agent(&self) -> Option<&Agent> {
        self.evidence_requester
            .iter()
            .find(|a| {
                matches!(
                    a.classification.as_deref(),
                    Some("ER") | Some("EvidenceRequester")
                )
            })
            .or_else(|| self.evidence_requester.first())
    }

    /// The EDM line this request declares.
    pub fn version(&self) -> Option<EdmVersion> {
        self.specification_identifier
            .as_deref()
            .and_then(EdmVersion::from_spec_id)
    }

    /// True for the second request of the preview flow (it carries `PreviewLocation`).
    pub fn is_after_preview(&self) -> bool {
        self.preview_location.is_some()
    }
}

/// `sdg:IsConformantTo` of an evidence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceConformance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_type_classification: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub titles: Vec<LocalizedText>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptions: Vec<LocalizedText>,
}

/// `sdg:ValidityPeriod`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidityPeriod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
}

/// `sdg:Evidence` (slot `EvidenceMetadata` of an evidence object, digest §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_about: Option<Subject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_authority: Option<Agent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_conformant_to: Option<EvidenceConformance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_date: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distributions: Vec<Distribution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_period: Option<ValidityPeriod>,
}

/// `rim:Classification` of an evidence object (v2.0: scheme `urn:fdc:oots:classification:edm`,
/// node `MainEvidence`, digest §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub scheme: String,
    pub node: String,
}

/// `rim:RepositoryItemRef`: which MIME part of the AS4 message holds the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartReference {
    /// `xlink:href`, `cid:<content-id>` (digest §6.5).
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// One evidence: a `rim:RegistryObject xsi:type="rim:ExtrinsicObjectType"`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<EvidenceMetadata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classifications: Vec<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartReference>,
}

/// `rs:Exception` inside an error response (digest §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdmException {
    /// Local name of `xsi:type` (`InvalidRequestExceptionType`, …); the writer puts
    /// `QueryExceptionType` in the query namespace and all others in rs.
    pub exception_type: String,
    /// `EDM:ERR:000n`; optional in the schema (the v1.0 preview sample omits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_location: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview_description: Vec<LocalizedText>,
    /// `GET` or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_method: Option<String>,
}

impl EdmException {
    /// An exception for `code` with the type, message and (non-preview) severity the code
    /// list prescribes (digest §7.4).
    pub fn for_code(code: EdmErrorCode) -> Self {
        EdmException {
            exception_type: code.exception_type().to_owned(),
            code: Some(code.as_str().to_owned()),
            message: Some(code.message().to_owned()),
            severity: Some(SEVERITY_ERROR.to_owned()),
            ..EdmException::default()
        }
    }

    /// The code as a typed value, when it is one of the eight EDM codes.
    pub fn error_code(&self) -> Option<EdmErrorCode> {
        self.code.as_deref().and_then(EdmErrorCode::parse)
    }

    /// True when the provider asks for the two-step preview (digest §7.5): a
    /// `PreviewLocation` is present.
    pub fn requires_preview(&self) -> bool {
        self.preview_location.is_some()
    }
}

/// `query:QueryResponse`, either the evidence response (Action `ExecuteQueryResponse`,
/// digest §7.3) or the error response (Action `ExceptionResponse`, digest §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    /// `@requestId`, echoing `QueryRequest/@id` (digest §7.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `@status`: `urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success|Failure|Unavailable`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specification_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_response_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date_time: Option<String>,
    /// v1: when status is Unavailable, when the response will be available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_available_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_provider: Vec<Agent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_provider: Option<Agent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_requester: Option<Agent>,
    /// v2.0 wraps the evidences in a `rim:RegistryPackageType` object with this id; v1.0
    /// lists them directly (digest §7.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidences: Vec<Evidence>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<EdmException>,
}

impl QueryResponse {
    /// The EDM line this response declares.
    pub fn version(&self) -> Option<EdmVersion> {
        self.specification_identifier
            .as_deref()
            .and_then(EdmVersion::from_spec_id)
    }

    /// An error response carries `rs:Exception` or the Failure status (digest §7.4).
    pub fn is_exception(&self) -> bool {
        !self.exceptions.is_empty() || self.status == RS_STATUS_FAILURE
    }
}

/// Any EDM document the gateway carries in the first payload part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
// One document per message, moved rarely: boxing the request would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum EdmDocument {
    QueryRequest(QueryRequest),
    QueryResponse(QueryResponse),
}

/// What the payload is, for the Action consistency rule (digest §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadKind {
    /// `query:QueryRequest` — travels with `ExecuteQueryRequest`.
    Request,
    /// `query:QueryResponse` without exception — `ExecuteQueryResponse`.
    Response,
    /// `query:QueryResponse` with `rs:Exception` — `ExceptionResponse`.
    Exception,
}

impl PayloadKind {
    /// The ebMS Action that must accompany this payload (digest §6.3).
    pub fn action(self) -> &'static str {
        match self {
            PayloadKind::Request => super::ACTION_REQUEST,
            PayloadKind::Response => super::ACTION_RESPONSE,
            PayloadKind::Exception => super::ACTION_EXCEPTION,
        }
    }
}

impl EdmDocument {
    pub fn kind(&self) -> PayloadKind {
        match self {
            EdmDocument::QueryRequest(_) => PayloadKind::Request,
            EdmDocument::QueryResponse(r) if r.is_exception() => PayloadKind::Exception,
            EdmDocument::QueryResponse(_) => PayloadKind::Response,
        }
    }

    pub fn specification_identifier(&self) -> Option<&str> {
        match self {
            EdmDocument::QueryRequest(r) => r.specification_identifier.as_deref(),
            EdmDocument::QueryResponse(r) => r.specification_identifier.as_deref(),
        }
    }

    pub fn version(&self) -> Option<EdmVersion> {
        self.specification_identifier()
            .and_then(EdmVersion::from_spec_id)
    }

    /// Every `rim:RepositoryItemRef/@xlink:href` of the document (empty for a request).
    pub fn part_references(&self) -> Vec<&str> {
        match self {
            EdmDocument::QueryRequest(_) => Vec::new(),
            EdmDocument::QueryResponse(r) => r
                .evidences
                .iter()
                .filter_map(|e| e.part.as_ref().map(|p| p.href.as_str()))
                .collect(),
        }
    }
}

/// The EDM error code list (`EDMErrorCodes`, digest §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EdmErrorCode {
    #[serde(rename = "EDM:ERR:0001")]
    AuthenticationFailed,
    #[serde(rename = "EDM:ERR:0002")]
    MissingAuthorization,
    #[serde(rename = "EDM:ERR:0003")]
    InvalidRequest,
    #[serde(rename = "EDM:ERR:0004")]
    ObjectNotFound,
    #[serde(rename = "EDM:ERR:0005")]
    Timeout,
    #[serde(rename = "EDM:ERR:0006")]
    UnresolvedReference,
    #[serde(rename = "EDM:ERR:0007")]
    UnsupportedCapability,
    #[serde(rename = "EDM:ERR:0008")]
    InvalidQuery,
}

impl EdmErrorCode {
    pub const ALL: [EdmErrorCode; 8] = [
        EdmErrorCode::AuthenticationFailed,
        EdmErrorCode::MissingAuthorization,
        EdmErrorCode::InvalidRequest,
        EdmErrorCode::ObjectNotFound,
        EdmErrorCode::Timeout,
        EdmErrorCode::UnresolvedReference,
        EdmErrorCode::UnsupportedCapability,
        EdmErrorCode::InvalidQuery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EdmErrorCode::AuthenticationFailed => "EDM:ERR:0001",
            EdmErrorCode::MissingAuthorization => "EDM:ERR:0002",
            EdmErrorCode::InvalidRequest => "EDM:ERR:0003",
            EdmErrorCode::ObjectNotFound => "EDM:ERR:0004",
            EdmErrorCode::Timeout => "EDM:ERR:0005",
            EdmErrorCode::UnresolvedReference => "EDM:ERR:0006",
            EdmErrorCode::UnsupportedCapability => "EDM:ERR:0007",
            EdmErrorCode::InvalidQuery => "EDM:ERR:0008",
        }
    }

    pub fn parse(s: &str) -> Option<EdmErrorCode> {
        EdmErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim())
    }

    /// Local name of the `xsi:type` (rs namespace, except `QueryExceptionType`: query).
    pub fn exception_type(self) -> &'static str {
        match self {
            EdmErrorCode::AuthenticationFailed => "AuthenticationExceptionType",
            EdmErrorCode::MissingAuthorization => "AuthorizationExceptionType",
            EdmErrorCode::InvalidRequest => "InvalidRequestExceptionType",
            EdmErrorCode::ObjectNotFound => "ObjectNotFoundExceptionType",
            EdmErrorCode::Timeout => "TimeoutExceptionType",
            EdmErrorCode::UnresolvedReference => "UnresolvedReferenceExceptionType",
            EdmErrorCode::UnsupportedCapability => "UnsupportedCapabilityExceptionType",
            EdmErrorCode::InvalidQuery => "QueryExceptionType",
        }
    }

    /// The `message` text of the code list.
    pub fn message(self) -> &'static str {
        match self {
            EdmErrorCode::AuthenticationFailed => "Failed Authentication",
            EdmErrorCode::MissingAuthorization => "Missing Authorization",
            EdmErrorCode::InvalidRequest => "Syntactically or semantically invalid request",
            EdmErrorCode::ObjectNotFound => "Object not found",
            EdmErrorCode::Timeout => "Exceeding timeout period",
            EdmErrorCode::UnresolvedReference => "Referenced object that cannot be resolved",
            EdmErrorCode::UnsupportedCapability => {
                "Optional feature or capability is not supported"
            }
            EdmErrorCode::InvalidQuery => {
                "Invalid query syntax or semantics that must be corrected"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for c in EdmErrorCode::ALL {
            assert_eq!(EdmErrorCode::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).expect("json");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(EdmErrorCode::parse("EDM:ERR:0009"), None);
        assert_eq!(
            EdmErrorCode::InvalidQuery.exception_type(),
            "QueryExceptionType"
        );
    }

    #[test]
    fn versions_from_specification_identifiers() {
        assert_eq!(
            EdmVersion::from_spec_id("oots-edm:v1.0"),
            Some(EdmVersion::V1)
        );
        assert_eq!(
            EdmVersion::from_spec_id("oots-edm:v1.2"),
            Some(EdmVersion::V1)
        );
        assert_eq!(
            EdmVersion::from_spec_id(" oots-edm:v2.0 "),
            Some(EdmVersion::V2)
        );
        assert_eq!(EdmVersion::from_spec_id("oots-edm:v2.1"), None);
        assert_ne!(
            EdmVersion::V1.preview_required_severity(),
            EdmVersion::V2.preview_required_severity()
        );
    }
}

//! EDM XML → [`EdmDocument`].
//!
//! Elements and attributes are matched by namespace URI and local name only; `xsi:type`
//! QNames are resolved through the in-scope declarations. Prefixes are never compared: the
//! same document arrives as `query:`/`rim:` from one partner and `ns2:`/`ns7:` from another
//! (digest §9 item 2; the hand-built `reponseAvecPieceJointe` binds xlink to `ns7`).
//!
//! The reader is lenient about *content* (absent or empty slots become `None`/empty) because
//! an incomplete request must still be read to be answered with EDM:ERR:0003 (digest §7.4);
//! it is strict only about what makes the document unidentifiable: the root element and its
//! `id` (request) or `status` (response).

use crate::ns;
use crate::xml::{Document, Node, XmlError};

use super::model::*;
use super::{QUERY, RIM, RS, SDG, XLINK};

/// Why a payload is not an EDM document at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdmError {
    #[error("RegRep payload is not well-formed XML: {0}")]
    Xml(#[from] XmlError),
    #[error("root element {{{ns}}}{local} is neither query:QueryRequest nor query:QueryResponse (digest §7.2-§7.4)")]
    UnexpectedRoot { ns: String, local: String },
    #[error("{element} has no {attribute} attribute (required by RegRep 4)")]
    MissingAttribute {
        element: &'static str,
        attribute: &'static str,
    },
}

/// Parses bytes and reads the EDM document.
pub fn parse_edm(bytes: &[u8]) -> Result<EdmDocument, EdmError> {
    let doc = Document::parse(bytes)?;
    read_edm(&doc)
}

/// Reads an EDM document from a parsed tree (its root must be the RegRep element).
pub fn read_edm(doc: &Document) -> Result<EdmDocument, EdmError> {
    read_edm_element(doc.root())
}

/// Reads an EDM document rooted at `root` (e.g. a RegRep element embedded in another tree).
pub fn read_edm_element(root: Node<'_>) -> Result<EdmDocument, EdmError> {
    if root.is(QUERY, "QueryRequest") {
        read_request(root).map(EdmDocument::QueryRequest)
    } else if root.is(QUERY, "QueryResponse") {
        read_response(root).map(EdmDocument::QueryResponse)
    } else {
        Err(EdmError::UnexpectedRoot {
            ns: root.namespace().unwrap_or("").to_owned(),
            local: root.local_name().to_owned(),
        })
    }
}

fn read_request(root: Node<'_>) -> Result<QueryRequest, EdmError> {
    let id = root.attr(None, "id").ok_or(EdmError::MissingAttribute {
        element: "query:QueryRequest",
        attribute: "id",
    })?;
    let mut r = QueryRequest {
        id: id.trim().to_owned(),
        ..QueryRequest::default()
    };
    for slot in root.children_named(RIM, "Slot") {
        let Some(value) = slot.child(RIM, "SlotValue") else {
            continue;
        };
        match slot.attr(None, "name").unwrap_or("") {
            "SpecificationIdentifier" => r.specification_identifier = string_value(value),
            "IssueDateTime" => r.issue_date_time = string_value(value),
            "Procedure" => r.procedure = procedure_value(value),
            "PreviewLocation" => r.preview_location = string_value(value),
            "ReturnLocation" => r.return_location = string_value(value),
            "PossibilityForPreview" => r.possibility_for_preview = bool_value(value),
            "ExplicitRequestGiven" => r.explicit_request_given = bool_value(value),
            "Requirements" => {
                r.requirements = any_values(value, "Requirement")
                    .map(read_requirement)
                    .collect();
            }
            "EvidenceRequester" => {
                r.evidence_requester = any_values(value, "Agent").map(read_agent).collect()
            }
            "EvidenceProvider" => {
                r.evidence_provider = any_values(value, "Agent").next().map(read_agent)
            }
            "EvidenceProviderClassification" => {
                r.evidence_provider_classifications =
                    any_values(value, "EvidenceProviderClassification")
                        .map(read_ep_classification)
                        .collect();
            }
            _ => {}
        }
    }
    if let Some(query) = root.child(QUERY, "Query") {
        for slot in query.children_named(RIM, "Slot") {
            let Some(value) = slot.child(RIM, "SlotValue") else {
                continue;
            };
            match slot.attr(None, "name").unwrap_or("") {
                "NaturalPerson" => {
                    if let Some(p) = any_values(value, "Person").next() {
                        r.subject = Some(Subject::NaturalPerson(read_natural_person(p)));
                    }
                }
                "LegalPerson" => {
                    if let Some(p) = any_values(value, "LegalPerson").next() {
                        r.subject = Some(Subject::LegalPerson(read_legal_person(p)));
                    }
                }
                "AuthorizedRepresentative" => {
                    r.authorized_representative =
                        any_values(value, "Person").next().map(read_natural_person);
                }
                "EvidenceRequest" => {
                    r.evidence_request = any_values(value, "DataServiceEvidenceType")
                        .next()
                        .map(read_evidence_type);
                }
                _ => {}
            }
        }
    }
    Ok(r)
}

fn read_response(root: Node<'_>) -> Result<QueryResponse, EdmError> {
    let status = root
        .attr(None, "status")
        .ok_or(EdmError::MissingAttribute {
            element: "query:QueryResponse",
            attribute: "status",
        })?;
    let mut r = QueryResponse {
        request_id: root.attr(None, "requestId").map(|s| s.trim().to_owned()),
        status: status.trim().to_owned(),
        ..QueryResponse::default()
    };
    for slot in root.children_named(RIM, "Slot") {
        let Some(value) = slot.child(RIM, "SlotValue") else {
            continue;
        };
        match slot.attr(None, "name").unwrap_or("") {
            "SpecificationIdentifier" => r.specification_identifier = string_value(value),
            "EvidenceResponseIdentifier" => r.evidence_response_identifier = string_value(value),
            "IssueDateTime" => r.issue_date_time = string_value(value),
            "ResponseAvailableDateTime" => r.response_available_date_time = string_value(value),
            "EvidenceProvider" => {
                r.evidence_provider = any_values(value, "Agent").map(read_agent).collect()
            }
            "ErrorProvider" => r.error_provider = any_values(value, "Agent").next().map(read_agent),
            "EvidenceRequester" => {
                r.evidence_requester = any_values(value, "Agent").next().map(read_agent)
            }
            _ => {}
        }
    }
    if let Some(list) = root.child(RIM, "RegistryObjectList") {
        for obj in list.children_named(RIM, "RegistryObject") {
            match xsi_type_local(obj) {
                Some("RegistryPackageType") => {
                    r.package_id = obj.attr(None, "id").map(|s| s.trim().to_owned());
                    if let Some(inner) = obj.child(RIM, "RegistryObjectList") {
                        for e in inner.children_named(RIM, "RegistryObject") {
                            r.evidences.push(read_evidence(e));
                        }
                    }
                }
                _ => r.evidences.push(read_evidence(obj)),
            }
        }
    }
    for ex in root.children_named(RS, "Exception") {
        r.exceptions.push(read_exception(ex));
    }
    Ok(r)
}

fn read_evidence(obj: Node<'_>) -> Evidence {
    let mut e = Evidence {
        id: obj.attr(None, "id").unwrap_or("").trim().to_owned(),
        ..Evidence::default()
    };
    for slot in obj.children_named(RIM, "Slot") {
        if slot.attr(None, "name") == Some("EvidenceMetadata") {
            if let Some(value) = slot.child(RIM, "SlotValue") {
                e.metadata = any_values(value, "Evidence")
                    .next()
                    .map(read_evidence_metadata);
            }
        }
    }
    for c in obj.children_named(RIM, "Classification") {
        e.classifications.push(Classification {
            id: obj_attr(c, "id"),
            scheme: c
                .attr(None, "classificationScheme")
                .unwrap_or("")
                .trim()
                .to_owned(),
            node: c
                .attr(None, "classificationNode")
                .unwrap_or("")
                .trim()
                .to_owned(),
        });
    }
    if let Some(item) = obj.child(RIM, "RepositoryItemRef") {
        e.part = Some(PartReference {
            href: item
                .attr(Some(XLINK), "href")
                .unwrap_or("")
                .trim()
                .to_owned(),
            title: item.attr(Some(XLINK), "title").map(str::to_owned),
        });
    }
    e
}

fn read_exception(ex: Node<'_>) -> EdmException {
    let mut e = EdmException {
        exception_type: xsi_type_local(ex).unwrap_or("").to_owned(),
        code: obj_attr(ex, "code"),
        message: ex.attr(None, "message").map(str::to_owned),
        severity: obj_attr(ex, "severity"),
        detail: ex.attr(None, "detail").map(str::to_owned),
        ..EdmException::default()
    };
    for slot in ex.children_named(RIM, "Slot") {
        let Some(value) = slot.child(RIM, "SlotValue") else {
            continue;
        };
        match slot.attr(None, "name").unwrap_or("") {
            "Timestamp" => e.timestamp = string_value(value),
            "PreviewLocation" => e.preview_location = string_value(value),
            "PreviewDescription" => e.preview_description = localized_value(value),
            "PreviewMethod" => e.preview_method = string_value(value),
            _ => {}
        }
    }
    e
}

// --- sdg: content ------------------------------------------------------------------------

fn read_agent(n: Node<'_>) -> Agent {
    Agent {
        identifier: sdg_identifier(n, "Identifier").unwrap_or_default(),
        names: sdg_texts(n, "Name"),
        address: n.child(SDG, "Address").map(read_address),
        classification: sdg_text(n, "Classification"),
    }
}

fn read_address(n: Node<'_>) -> Address {
    Address {
        full_address: sdg_text(n, "FullAddress"),
        thoroughfare: sdg_text(n, "Thoroughfare"),
        locator_designator: sdg_text(n, "LocatorDesignator"),
        post_code: sdg_text(n, "PostCode"),
        post_city_name: sdg_text(n, "PostCityName"),
        admin_unit_level1: sdg_text(n, "AdminUnitLevel1"),
        admin_unit_level2: sdg_text(n, "AdminUnitLevel2"),
    }
}

fn read_requirement(n: Node<'_>) -> Requirement {
    Requirement {
        identifier: sdg_text(n, "Identifier").unwrap_or_default(),
        names: sdg_texts(n, "Name"),
        descriptions: sdg_texts(n, "Description"),
    }
}

fn read_distribution(n: Node<'_>) -> Distribution {
    Distribution {
        format: sdg_text(n, "Format"),
        conforms_to: sdg_text(n, "ConformsTo"),
        transformation: sdg_text(n, "Transformation"),
        language: sdg_text(n, "Language"),
    }
}

fn read_evidence_type(n: Node<'_>) -> EvidenceTypeRequest {
    EvidenceTypeRequest {
        identifier: sdg_text(n, "Identifier"),
        evidence_type_classification: sdg_text(n, "EvidenceTypeClassification"),
        titles: sdg_texts(n, "Title"),
        descriptions: sdg_texts(n, "Description"),
        distributed_as: n
            .children_named(SDG, "DistributedAs")
            .map(read_distribution)
            .collect(),
    }
}

fn read_ep_classification(n: Node<'_>) -> EvidenceProviderClassification {
    EvidenceProviderClassification {
        identifier: sdg_text(n, "Identifier").unwrap_or_default(),
        r#type: sdg_text(n, "Type"),
        value_expression: sdg_text(n, "ValueExpression"),
        descriptions: sdg_texts(n, "Description"),
        supported_values: n
            .children_named(SDG, "SupportedValue")
            .filter_map(|v| sdg_text(v, "StringValue"))
            .collect(),
    }
}

fn read_natural_person(n: Node<'_>) -> NaturalPerson {
    NaturalPerson {
        level_of_assurance: sdg_text(n, "LevelOfAssurance"),
        identifier: sdg_identifier(n, "Identifier"),
        family_name: sdg_text(n, "FamilyName"),
        given_name: sdg_text(n, "GivenName"),
        date_of_birth: sdg_text(n, "DateOfBirth"),
        birth_name: sdg_text(n, "BirthName"),
        place_of_birth: sdg_text(n, "PlaceOfBirth"),
        current_address: n.child(SDG, "CurrentAddress").map(read_address),
        gender: sdg_text(n, "Gender"),
    }
}

fn read_legal_person(n: Node<'_>) -> LegalPerson {
    LegalPerson {
        level_of_assurance: sdg_text(n, "LevelOfAssurance"),
        legal_person_identifier: sdg_identifier(n, "LegalPersonIdentifier"),
        identifiers: n
            .children_named(SDG, "Identifier")
            .map(|i| Identifier {
                scheme_id: i.attr(None, "schemeID").map(str::to_owned),
                value: i.text().trim().to_owned(),
            })
            .collect(),
        legal_names: sdg_texts(n, "LegalName"),
        registered_address: n.child(SDG, "RegisteredAddress").map(read_address),
    }
}

fn read_evidence_metadata(n: Node<'_>) -> EvidenceMetadata {
    let is_about = n.child(SDG, "IsAbout").and_then(|a| {
        if let Some(p) = a.child(SDG, "NaturalPerson") {
            Some(Subject::NaturalPerson(read_natural_person(p)))
        } else {
            a.child(SDG, "LegalPerson")
                .map(|p| Subject::LegalPerson(read_legal_person(p)))
        }
    });
    EvidenceMetadata {
        identifier: sdg_text(n, "Identifier"),
        is_about,
        issuing_authority: n.child(SDG, "IssuingAuthority").map(read_agent),
        is_conformant_to: n.child(SDG, "IsConformantTo").map(|c| EvidenceConformance {
            evidence_type_classification: sdg_text(c, "EvidenceTypeClassification"),
            titles: sdg_texts(c, "Title"),
            descriptions: sdg_texts(c, "Description"),
        }),
        issuing_date: sdg_text(n, "IssuingDate"),
        distributions: n
            .children_named(SDG, "Distribution")
            .map(read_distribution)
            .collect(),
        validity_period: n.child(SDG, "ValidityPeriod").map(|v| ValidityPeriod {
            start_date: sdg_text(v, "StartDate"),
            end_date: sdg_text(v, "EndDate"),
        }),
    }
}

// --- helpers -------------------------------------------------------------------------------

/// Trimmed text of the first `sdg:<local>` child; `None` when absent or blank.
fn sdg_text(n: Node<'_>, local: &str) -> Option<String> {
    n.child(SDG, local).and_then(|c| non_empty(&c.text()))
}

fn sdg_texts(n: Node<'_>, local: &'static str) -> Vec<LocalizedText> {
    n.children_named(SDG, local)
        .map(|c| LocalizedText {
            lang: c.attr(None, "lang").map(str::to_owned),
            value: c.text().trim().to_owned(),
        })
        .collect()
}

fn sdg_identifier(n: Node<'_>, local: &str) -> Option<Identifier> {
    n.child(SDG, local).map(|c| Identifier {
        scheme_id: c.attr(None, "schemeID").map(str::to_owned),
        value: c.text().trim().to_owned(),
    })
}

fn obj_attr(n: Node<'_>, local: &str) -> Option<String> {
    n.attr(None, local).and_then(non_empty)
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// `rim:SlotValue/rim:Value` as trimmed text.
fn string_value(value: Node<'_>) -> Option<String> {
    value.child(RIM, "Value").and_then(|v| non_empty(&v.text()))
}

/// xsd:boolean lexical forms; anything else reads as absent (and so fails the presence rule).
fn bool_value(value: Node<'_>) -> Option<bool> {
    match string_value(value)?.as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// `rim:SlotValue/rim:Value/rim:LocalizedString*` (InternationalStringValueType).
fn localized_value(value: Node<'_>) -> Vec<LocalizedText> {
    value
        .child(RIM, "Value")
        .map(|v| {
            v.children_named(RIM, "LocalizedString")
                .map(|l| LocalizedText {
                    lang: l.attr(Some(ns::XML), "lang").map(str::to_owned),
                    value: l.attr(None, "value").unwrap_or("").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The Procedure slot is localised text in the v1.0 samples and a code in v2.0.
fn procedure_value(value: Node<'_>) -> Option<Procedure> {
    let v = value.child(RIM, "Value")?;
    if v.child(RIM, "LocalizedString").is_some() {
        Some(Procedure::Localized(localized_value(value)))
    } else {
        non_empty(&v.text()).map(Procedure::Code)
    }
}

/// The `sdg:<local>` values of an AnyValueType or CollectionValueType slot value: direct
/// children, or children of its `rim:Element`s.
fn any_values<'a>(value: Node<'a>, local: &'static str) -> impl Iterator<Item = Node<'a>> + 'a {
    value.child_elements().flat_map(move |c| {
        let items: Vec<Node<'a>> = if c.is(RIM, "Element") {
            c.children_named(SDG, local).collect()
        } else if c.is(SDG, local) {
            vec![c]
        } else {
            Vec::new()
        };
        items
    })
}

/// Local part of `xsi:type` when its prefix resolves to a namespace in scope (RegRep types
/// live in rim, rs or query; the local part is unique across them for what we read).
fn xsi_type_local(n: Node<'_>) -> Option<&str> {
    let t = n.attr(Some(ns::XSI), "type")?.trim();
    match t.split_once(':') {
        Some((prefix, local)) => n.lookup_namespace(Some(prefix)).map(|_| local),
        None => Some(t),
    }
}

//! [`EdmDocument`] → EDM XML.
//!
//! The output follows the official samples element for element (digest §7.2–§7.4): slot
//! order, slot value types (`xsi:type`), collection types and the prefixes `query`, `rim`,
//! `rs`, `sdg`, `xlink`, `xsi` declared on the root. Where v1.0 and v2.0 differ without a
//! model field to show it, the document's `SpecificationIdentifier` decides: v2.0 puts
//! `collectionType` on the agent collections (`EvidenceRequester` of a request,
//! `EvidenceProvider` of a response); the v1.0 samples do not.

use crate::xml::{escape_attr, escape_text};

use super::model::*;
use super::{COLLECTION_SET, QUERY, QUERY_DEFINITION, RETURN_TYPE, RIM, RS, SDG, XLINK, XMIME};

/// Serialises any EDM document.
pub fn write_edm(doc: &EdmDocument) -> Vec<u8> {
    match doc {
        EdmDocument::QueryRequest(r) => write_request(r),
        EdmDocument::QueryResponse(r) => write_response(r),
    }
}

/// Serialises a `query:QueryRequest`.
pub fn write_request(r: &QueryRequest) -> Vec<u8> {
    let v2 = r.version() == Some(EdmVersion::V2);
    let mut w = Writer::new();
    w.open(
        "query:QueryRequest",
        &[
            ("xmlns:xsi", crate::ns::XSI),
            ("xmlns:rs", RS),
            ("xmlns:sdg", SDG),
            ("xmlns:xmime", XMIME),
            ("xmlns:rim", RIM),
            ("xmlns:query", QUERY),
            ("xmlns:xlink", XLINK),
            ("id", &r.id),
        ],
    );
    w.string_slot(
        "SpecificationIdentifier",
        r.specification_identifier.as_deref(),
    );
    w.typed_slot(
        "IssueDateTime",
        "rim:DateTimeValueType",
        r.issue_date_time.as_deref(),
    );
    match &r.procedure {
        Some(Procedure::Code(c)) => w.string_slot("Procedure", Some(c)),
        Some(Procedure::Localized(l)) => w.localized_slot("Procedure", l),
        None => {}
    }
    w.string_slot("PreviewLocation", r.preview_location.as_deref());
    w.string_slot("ReturnLocation", r.return_location.as_deref());
    w.bool_slot("PossibilityForPreview", r.possibility_for_preview);
    w.bool_slot("ExplicitRequestGiven", r.explicit_request_given);
    if !r.requirements.is_empty() {
        w.collection_open("Requirements", true);
        for q in &r.requirements {
            w.element_open();
            w.open("sdg:Requirement", &[]);
            w.leaf("sdg:Identifier", &[], &q.identifier);
            w.texts("sdg:Name", &q.names);
            w.texts("sdg:Description", &q.descriptions);
            w.close("sdg:Requirement");
            w.element_close();
        }
        w.collection_close();
    }
    if !r.evidence_requester.is_empty() {
        w.collection_open("EvidenceRequester", v2);
        for a in &r.evidence_requester {
            w.element_open();
            w.agent("sdg:Agent", a);
            w.element_close();
        }
        w.collection_close();
    }
    if let Some(a) = &r.evidence_provider {
        w.any_open("EvidenceProvider");
        w.agent("sdg:Agent", a);
        w.any_close();
    }
    if !r.evidence_provider_classifications.is_empty() {
        w.collection_open("EvidenceProviderClassification", v2);
        for c in &r.evidence_provider_classifications {
            w.element_open();
            w.open("sdg:EvidenceProviderClassification", &[]);
            w.leaf("sdg:Identifier", &[], &c.identifier);
            w.opt_leaf("sdg:Type", c.r#type.as_deref());
            w.opt_leaf("sdg:ValueExpression", c.value_expression.as_deref());
            w.texts("sdg:Description", &c.descriptions);
            for v in &c.supported_values {
                w.open("sdg:SupportedValue", &[]);
                w.leaf("sdg:StringValue", &[], v);
                w.close("sdg:SupportedValue");
            }
            w.close("sdg:EvidenceProviderClassification");
            w.element_close();
        }
        w.collection_close();
    }
    w.empty("query:ResponseOption", &[("returnType", RETURN_TYPE)]);
    w.open("query:Query", &[("queryDefinition", QUERY_DEFINITION)]);
    match &r.subject {
        Some(Subject::NaturalPerson(p)) => {
            w.any_open("NaturalPerson");
            w.natural_person("sdg:Person", p);
            w.any_close();
        }
        Some(Subject::LegalPerson(p)) => {
            w.any_open("LegalPerson");
            w.legal_person("sdg:LegalPerson", p);
            w.any_close();
        }
        None => {}
    }
    if let Some(p) = &r.authorized_representative {
        w.any_open("AuthorizedRepresentative");
        w.natural_person("sdg:Person", p);
        w.any_close();
    }
    if let Some(e) = &r.evidence_request {
        w.any_open("EvidenceRequest");
        w.open("sdg:DataServiceEvidenceType", &[]);
        w.opt_leaf("sdg:Identifier", e.identifier.as_deref());
        w.opt_leaf(
            "sdg:EvidenceTypeClassification",
            e.evidence_type_classification.as_deref(),
        );
        w.texts("sdg:Title", &e.titles);
        w.texts("sdg:Description", &e.descriptions);
        for d in &e.distributed_as {
            w.distribution("sdg:DistributedAs", d);
        }
        w.close("sdg:DataServiceEvidenceType");
        w.any_close();
    }
    w.close("query:Query");
    w.close("query:QueryRequest");
    w.finish()
}

/// Serialises a `query:QueryResponse` (evidence response or error response).
pub fn write_response(r: &QueryResponse) -> Vec<u8> {
    let v2 = r.version() == Some(EdmVersion::V2);
    let mut w = Writer::new();
    let mut attrs: Vec<(&str, &str)> = vec![
        ("xmlns:xsi", crate::ns::XSI),
        ("xmlns:rs", RS),
        ("xmlns:rim", RIM),
        ("xmlns:sdg", SDG),
        ("xmlns:query", QUERY),
        ("xmlns:xlink", XLINK),
        ("status", &r.status),
    ];
    if let Some(id) = &r.request_id {
        attrs.push(("requestId", id));
    }
    w.open("query:QueryResponse", &attrs);
    w.string_slot(
        "SpecificationIdentifier",
        r.specification_identifier.as_deref(),
    );
    w.string_slot(
        "EvidenceResponseIdentifier",
        r.evidence_response_identifier.as_deref(),
    );
    w.typed_slot(
        "IssueDateTime",
        "rim:DateTimeValueType",
        r.issue_date_time.as_deref(),
    );
    w.typed_slot(
        "ResponseAvailableDateTime",
        "rim:DateTimeValueType",
        r.response_available_date_time.as_deref(),
    );
    if !r.evidence_provider.is_empty() {
        w.collection_open("EvidenceProvider", v2);
        for a in &r.evidence_provider {
            w.element_open();
            w.agent("sdg:Agent", a);
            w.element_close();
        }
        w.collection_close();
    }
    if let Some(a) = &r.error_provider {
        w.any_open("ErrorProvider");
        w.agent("sdg:Agent", a);
        w.any_close();
    }
    if let Some(a) = &r.evidence_requester {
        w.any_open("EvidenceRequester");
        w.agent("sdg:Agent", a);
        w.any_close();
    }
    if !r.evidences.is_empty() || r.package_id.is_some() {
        w.open("rim:RegistryObjectList", &[]);
        if let Some(pkg) = &r.package_id {
            w.open(
                "rim:RegistryObject",
                &[("xsi:type", "rim:RegistryPackageType"), ("id", pkg)],
            );
            w.open("rim:RegistryObjectList", &[]);
        }
        for e in &r.evidences {
            w.evidence(e);
        }
        if r.package_id.is_some() {
            w.close("rim:RegistryObjectList");
            w.close("rim:RegistryObject");
        }
        w.close("rim:RegistryObjectList");
    }
    for ex in &r.exceptions {
        w.exception(ex);
    }
    w.close("query:QueryResponse");
    w.finish()
}

/// A minimal indenting XML writer; all text and attribute values go through the crate's
/// escaping helpers.
struct Writer {
    out: Vec<u8>,
    depth: usize,
}

impl Writer {
    fn new() -> Self {
        let mut out = Vec::with_capacity(8 * 1024);
        out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        Writer { out, depth: 0 }
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'\n');
        self.out
    }

    fn indent(&mut self) {
        if self.depth > 0 || !self.out.ends_with(b"\n") {
            self.out.push(b'\n');
        }
        for _ in 0..self.depth {
            self.out.extend_from_slice(b"  ");
        }
    }

    fn start_tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        for (k, v) in attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape_attr(v, &mut self.out);
            self.out.push(b'"');
        }
    }

    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push(b'>');
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }

    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.extend_from_slice(b"/>");
    }

    fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.start_tag(name, attrs);
        self.out.push(b'>');
        escape_text(text, &mut self.out);
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }

    fn opt_leaf(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, &[], t);
        }
    }

    fn texts(&mut self, name: &str, texts: &[LocalizedText]) {
        for t in texts {
            match &t.lang {
                Some(l) => self.leaf(name, &[("lang", l)], &t.value),
                None => self.leaf(name, &[], &t.value),
            }
        }
    }

    // --- rim:Slot forms ------------------------------------------------------------------

    fn typed_slot(&mut self, name: &str, ty: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.open("rim:Slot", &[("name", name)]);
            self.open("rim:SlotValue", &[("xsi:type", ty)]);
            self.leaf("rim:Value", &[], v);
            self.close("rim:SlotValue");
            self.close("rim:Slot");
        }
    }

    fn string_slot(&mut self, name: &str, value: Option<&str>) {
        self.typed_slot(name, "rim:StringValueType", value);
    }

    fn bool_slot(&mut self, name: &str, value: Option<bool>) {
        let v = value.map(|b| if b { "true" } else { "false" });
        self.typed_slot(name, "rim:BooleanValueType", v);
    }

    fn localized_slot(&mut self, name: &str, texts: &[LocalizedText]) {
        self.open("rim:Slot", &[("name", name)]);
        self.open(
            "rim:SlotValue",
            &[("xsi:type", "rim:InternationalStringValueType")],
        );
        self.open("rim:Value", &[]);
        for t in texts {
            match &t.lang {
                Some(l) => self.empty(
                    "rim:LocalizedString",
                    &[("xml:lang", l), ("value", &t.value)],
                ),
                None => self.empty("rim:LocalizedString", &[("value", &t.value)]),
            }
        }
        self.close("rim:Value");
        self.close("rim:SlotValue");
        self.close("rim:Slot");
    }

    fn any_open(&mut self, name: &str) {
        self.open("rim:Slot", &[("name", name)]);
        self.open("rim:SlotValue", &[("xsi:type", "rim:AnyValueType")]);
    }

    fn any_close(&mut self) {
        self.close("rim:SlotValue");
        self.close("rim:Slot");
    }

    fn collection_open(&mut self, name: &str, with_set: bool) {
        self.open("rim:Slot", &[("name", name)]);
        if with_set {
            self.open(
                "rim:SlotValue",
                &[
                    ("xsi:type", "rim:CollectionValueType"),
                    ("collectionType", COLLECTION_SET),
                ],
            );
        } else {
            self.open("rim:SlotValue", &[("xsi:type", "rim:CollectionValueType")]);
        }
    }

    fn collection_close(&mut self) {
        self.any_close();
    }

    fn element_open(&mut self) {
        self.open("rim:Element", &[("xsi:type", "rim:AnyValueType")]);
    }

    fn element_close(&mut self) {
        self.close("rim:Element");
    }

    // --- sdg: content --------------------------------------------------------------------

    fn identifier(&mut self, name: &str, id: &Identifier) {
        match &id.scheme_id {
            Some(s) => self.leaf(name, &[("schemeID", s)], &id.value),
            None => self.leaf(name, &[], &id.value),
        }
    }

    fn agent(&mut self, name: &str, a: &Agent) {
        self.open(name, &[]);
        self.identifier("sdg:Identifier", &a.identifier);
        self.texts("sdg:Name", &a.names);
        if let Some(ad) = &a.address {
            self.address("sdg:Address", ad);
        }
        self.opt_leaf("sdg:Classification", a.classification.as_deref());
        self.close(name);
    }

    fn address(&mut self, name: &str, a: &Address) {
        self.open(name, &[]);
        self.opt_leaf("sdg:FullAddress", a.full_address.as_deref());
        self.opt_leaf("sdg:Thoroughfare", a.thoroughfare.as_deref());
        self.opt_leaf("sdg:LocatorDesignator", a.locator_designator.as_deref());
        self.opt_leaf("sdg:PostCode", a.post_code.as_deref());
        self.opt_leaf("sdg:PostCityName", a.post_city_name.as_deref());
        self.opt_leaf("sdg:AdminUnitLevel1", a.admin_unit_level1.as_deref());
        self.opt_leaf("sdg:AdminUnitLevel2", a.admin_unit_level2.as_deref());
        self.close(name);
    }

    fn natural_person(&mut self, name: &str, p: &NaturalPerson) {
        self.open(name, &[]);
        self.opt_leaf("sdg:LevelOfAssurance", p.level_of_assurance.as_deref());
        if let Some(id) = &p.identifier {
            self.identifier("sdg:Identifier", id);
        }
        self.opt_leaf("sdg:FamilyName", p.family_name.as_deref());
        self.opt_leaf("sdg:GivenName", p.given_name.as_deref());
        self.opt_leaf("sdg:DateOfBirth", p.date_of_birth.as_deref());
        self.opt_leaf("sdg:BirthName", p.birth_name.as_deref());
        self.opt_leaf("sdg:PlaceOfBirth", p.place_of_birth.as_deref());
        if let Some(a) = &p.current_address {
            self.address("sdg:CurrentAddress", a);
        }
        self.opt_leaf("sdg:Gender", p.gender.as_deref());
        self.close(name);
    }

    fn legal_person(&mut self, name: &str, p: &LegalPerson) {
        self.open(name, &[]);
        self.opt_leaf("sdg:LevelOfAssurance", p.level_of_assurance.as_deref());
        if let Some(id) = &p.legal_person_identifier {
            self.identifier("sdg:LegalPersonIdentifier", id);
        }
        for id in &p.identifiers {
            self.identifier("sdg:Identifier", id);
        }
        self.texts("sdg:LegalName", &p.legal_names);
        if let Some(a) = &p.registered_address {
            self.address("sdg:RegisteredAddress", a);
        }
        self.close(name);
    }

    fn distribution(&mut self, name: &str, d: &Distribution) {
        self.open(name, &[]);
        self.opt_leaf("sdg:Format", d.format.as_deref());
        self.opt_leaf("sdg:ConformsTo", d.conforms_to.as_deref());
        self.opt_leaf("sdg:Transformation", d.transformation.as_deref());
        self.opt_leaf("sdg:Language", d.language.as_deref());
        self.close(name);
    }

    fn evidence(&mut self, e: &Evidence) {
        self.open(
            "rim:RegistryObject",
            &[("xsi:type", "rim:ExtrinsicObjectType"), ("id", &e.id)],
        );
        if let Some(m) = &e.metadata {
            self.any_open("EvidenceMetadata");
            self.open("sdg:Evidence", &[]);
            self.opt_leaf("sdg:Identifier", m.identifier.as_deref());
            match &m.is_about {
                Some(Subject::NaturalPerson(p)) => {
                    self.open("sdg:IsAbout", &[]);
                    self.natural_person("sdg:NaturalPerson", p);
                    self.close("sdg:IsAbout");
                }
                Some(Subject::LegalPerson(p)) => {
                    self.open("sdg:IsAbout", &[]);
                    self.legal_person("sdg:LegalPerson", p);
                    self.close("sdg:IsAbout");
                }
                None => {}
            }
            if let Some(a) = &m.issuing_authority {
                self.agent("sdg:IssuingAuthority", a);
            }
            if let Some(c) = &m.is_conformant_to {
                self.open("sdg:IsConformantTo", &[]);
                self.opt_leaf(
                    "sdg:EvidenceTypeClassification",
                    c.evidence_type_classification.as_deref(),
                );
                self.texts("sdg:Title", &c.titles);
                self.texts("sdg:Description", &c.descriptions);
                self.close("sdg:IsConformantTo");
            }
            self.opt_leaf("sdg:IssuingDate", m.issuing_date.as_deref());
            for d in &m.distributions {
                self.distribution("sdg:Distribution", d);
            }
            if let Some(v) = &m.validity_period {
                self.open("sdg:ValidityPeriod", &[]);
                self.opt_leaf("sdg:StartDate", v.start_date.as_deref());
                self.opt_leaf("sdg:EndDate", v.end_date.as_deref());
                self.close("sdg:ValidityPeriod");
            }
            self.close("sdg:Evidence");
            self.any_close();
        }
        for c in &e.classifications {
            let mut attrs: Vec<(&str, &str)> = Vec::new();
            if let Some(id) = &c.id {
                attrs.push(("id", id));
            }
            attrs.push(("classificationScheme", &c.scheme));
            attrs.push(("classificationNode", &c.node));
            self.empty("rim:Classification", &attrs);
        }
        if let Some(p) = &e.part {
            let mut attrs: Vec<(&str, &str)> = vec![("xlink:href", &p.href)];
            if let Some(t) = &p.title {
                attrs.push(("xlink:title", t));
            }
            self.empty("rim:RepositoryItemRef", &attrs);
        }
        self.close("rim:RegistryObject");
    }

    fn exception(&mut self, ex: &EdmException) {
        let ty = if ex.exception_type == "QueryExceptionType" {
            format!("query:{}", ex.exception_type)
        } else {
            format!("rs:{}", ex.exception_type)
        };
        let mut attrs: Vec<(&str, &str)> = vec![("xsi:type", &ty)];
        if let Some(m) = &ex.message {
            attrs.push(("message", m));
        }
        if let Some(s) = &ex.severity {
            attrs.push(("severity", s));
        }
        if let Some(c) = &ex.code {
            attrs.push(("code", c));
        }
        if let Some(d) = &ex.detail {
            attrs.push(("detail", d));
        }
        self.open("rs:Exception", &attrs);
        self.typed_slot(
            "Timestamp",
            "rim:DateTimeValueType",
            ex.timestamp.as_deref(),
        );
        self.string_slot("PreviewLocation", ex.preview_location.as_deref());
        if !ex.preview_description.is_empty() {
            self.localized_slot("PreviewDescription", &ex.preview_description);
        }
        self.string_slot("PreviewMethod", ex.preview_method.as_deref());
        self.close("rs:Exception");
    }
}

//! `eb:Messaging` to XML, with the conventional prefixes `eb`, `S12`, `wsu`, `ebbp`, `ds`, `ec`.
//!
//! The block carries `S12:mustUnderstand="true"` ([EBMS3] §5.2.1, digest §2.7) and, when the
//! model has one, `wsu:Id` so the signature can reference it ([AS4] §5.1.4(b)). Elements come in
//! XSD order (SignalMessages before the UserMessage). No insignificant white space is written, so
//! what is signed is exactly what is sent.

use base64::Engine;

use super::model::*;
use crate::ns;
use crate::xml::{escape_attr, escape_text};

struct W<'a> {
    out: &'a mut Vec<u8>,
}

impl W<'_> {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }
    fn attr(&mut self, name: &str, value: &str) {
        self.raw(" ");
        self.raw(name);
        self.raw("=\"");
        escape_attr(value, self.out);
        self.raw("\"");
    }
    fn opt_attr(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.attr(name, v);
        }
    }
    /// `<name attrs>text</name>`.
    fn text_el(&mut self, name: &str, attrs: &[(&str, Option<&str>)], text: &str) {
        self.raw("<");
        self.raw(name);
        for (k, v) in attrs {
            self.opt_attr(k, *v);
        }
        self.raw(">");
        escape_text(text, self.out);
        self.raw("</");
        self.raw(name);
        self.raw(">");
    }
}

/// Serializes `m` as a standalone `eb:Messaging` element (SOAP 1.2 flavour).
pub fn write_messaging(m: &Messaging, out: &mut Vec<u8>) {
    let mut w = W { out };
    w.raw("<eb:Messaging");
    w.attr("xmlns:eb", ns::EB);
    w.attr("xmlns:S12", ns::S12);
    if m.id.is_some() {
        w.attr("xmlns:wsu", ns::WSU);
    }
    w.attr("S12:mustUnderstand", "true");
    w.opt_attr("wsu:Id", m.id.as_deref());
    w.raw(">");
    for s in &m.signal_messages {
        signal_message(&mut w, s);
    }
    if let Some(u) = &m.user_message {
        user_message(&mut w, u);
    }
    w.raw("</eb:Messaging>");
}

impl Messaging {
    /// The `eb:Messaging` element as a string (see [`write_messaging`]).
    pub fn to_xml(&self) -> String {
        let mut out = Vec::new();
        write_messaging(self, &mut out);
        // Only UTF-8 strings and escapes were written.
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn message_info(w: &mut W<'_>, mi: &MessageInfo) {
    w.raw("<eb:MessageInfo>");
    w.text_el("eb:Timestamp", &[], &mi.timestamp.to_xml());
    w.text_el("eb:MessageId", &[], mi.message_id.as_str());
    if let Some(r) = &mi.ref_to_message_id {
        w.text_el("eb:RefToMessageId", &[], r.as_str());
    }
    w.raw("</eb:MessageInfo>");
}

fn user_message(w: &mut W<'_>, u: &UserMessage) {
    w.raw("<eb:UserMessage");
    w.opt_attr("mpc", u.mpc.as_deref());
    w.raw(">");
    message_info(w, &u.message_info);
    w.raw("<eb:PartyInfo>");
    party(w, "eb:From", &u.party_info.from);
    party(w, "eb:To", &u.party_info.to);
    w.raw("</eb:PartyInfo>");
    let c = &u.collaboration_info;
    w.raw("<eb:CollaborationInfo>");
    if let Some(a) = &c.agreement_ref {
        w.text_el(
            "eb:AgreementRef",
            &[("type", a.type_.as_deref()), ("pmode", a.pmode.as_deref())],
            &a.value,
        );
    }
    w.text_el(
        "eb:Service",
        &[("type", c.service.type_.as_deref())],
        &c.service.value,
    );
    w.text_el("eb:Action", &[], &c.action);
    w.text_el("eb:ConversationId", &[], &c.conversation_id);
    w.raw("</eb:CollaborationInfo>");
    if !u.message_properties.is_empty() {
        properties(w, "eb:MessageProperties", &u.message_properties);
    }
    if !u.payload_info.is_empty() {
        w.raw("<eb:PayloadInfo>");
        for p in &u.payload_info {
            part_info(w, p);
        }
        w.raw("</eb:PayloadInfo>");
    }
    w.raw("</eb:UserMessage>");
}

fn party(w: &mut W<'_>, name: &str, p: &Party) {
    w.raw("<");
    w.raw(name);
    w.raw(">");
    for id in &p.party_ids {
        w.text_el("eb:PartyId", &[("type", id.type_.as_deref())], &id.value);
    }
    w.text_el("eb:Role", &[], &p.role);
    w.raw("</");
    w.raw(name);
    w.raw(">");
}

fn properties(w: &mut W<'_>, container: &str, props: &[Property]) {
    w.raw("<");
    w.raw(container);
    w.raw(">");
    for p in props {
        w.text_el(
            "eb:Property",
            &[("name", Some(&p.name)), ("type", p.type_.as_deref())],
            &p.value,
        );
    }
    w.raw("</");
    w.raw(container);
    w.raw(">");
}

fn description(w: &mut W<'_>, d: &Description) {
    w.text_el("eb:Description", &[("xml:lang", Some(&d.lang))], &d.text);
}

fn part_info(w: &mut W<'_>, p: &PartInfo) {
    w.raw("<eb:PartInfo");
    w.opt_attr("href", p.href.as_deref());
    w.raw(">");
    for s in &p.schemas {
        w.raw("<eb:Schema");
        w.opt_attr("location", s.location.as_deref());
        w.opt_attr("version", s.version.as_deref());
        w.opt_attr("namespace", s.namespace.as_deref());
        w.raw("/>");
    }
    if let Some(d) = &p.description {
        description(w, d);
    }
    if !p.part_properties.is_empty() {
        properties(w, "eb:PartProperties", &p.part_properties);
    }
    w.raw("</eb:PartInfo>");
}

fn signal_message(w: &mut W<'_>, s: &SignalMessage) {
    w.raw("<eb:SignalMessage>");
    message_info(w, &s.message_info);
    match &s.signal {
        Signal::PullRequest(p) => {
            w.raw("<eb:PullRequest");
            w.opt_attr("mpc", p.mpc.as_deref());
            w.raw("/>");
        }
        Signal::Receipt(r) => receipt(w, r),
        Signal::Errors(errors) => {
            for e in errors {
                signal_error(w, e);
            }
        }
    }
    w.raw("</eb:SignalMessage>");
}

fn receipt(w: &mut W<'_>, r: &Receipt) {
    w.raw("<eb:Receipt>");
    if let Some(parts) = &r.non_repudiation {
        w.raw("<ebbp:NonRepudiationInformation");
        w.attr("xmlns:ebbp", ns::EBBP);
        w.attr("xmlns:ds", ns::DS);
        w.raw(">");
        for p in parts {
            w.raw("<ebbp:MessagePartNRInformation>");
            if let Some(id) = &p.part_identifier {
                w.text_el("ebbp:MessagePartIdentifier", &[], id);
            }
            ds_reference(w, &p.reference);
            w.raw("</ebbp:MessagePartNRInformation>");
        }
        w.raw("</ebbp:NonRepudiationInformation>");
    }
    for x in &r.other {
        w.raw(x.as_str());
    }
    w.raw("</eb:Receipt>");
}

fn ds_reference(w: &mut W<'_>, r: &DsReference) {
    w.raw("<ds:Reference");
    w.attr("URI", &r.uri);
    w.raw(">");
    if !r.transforms.is_empty() {
        w.raw("<ds:Transforms>");
        for t in &r.transforms {
            w.raw("<ds:Transform");
            w.attr("Algorithm", &t.algorithm);
            match &t.inclusive_prefixes {
                None => w.raw("/>"),
                Some(list) => {
                    w.raw("><ec:InclusiveNamespaces");
                    w.attr("xmlns:ec", ns::EXC_C14N);
                    w.attr("PrefixList", &list.join(" "));
                    w.raw("/></ds:Transform>");
                }
            }
        }
        w.raw("</ds:Transforms>");
    }
    w.raw("<ds:DigestMethod");
    w.attr("Algorithm", &r.digest_method);
    w.raw("/>");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&r.digest_value);
    w.text_el("ds:DigestValue", &[], &b64);
    w.raw("</ds:Reference>");
}

fn signal_error(w: &mut W<'_>, e: &SignalError) {
    w.raw("<eb:Error");
    w.opt_attr("category", e.category.as_deref());
    w.opt_attr("errorCode", Some(e.error_code.as_str()));
    w.opt_attr("origin", e.origin.as_deref());
    w.opt_attr("refToMessageInError", e.ref_to_message_in_error.as_deref());
    w.opt_attr("severity", Some(e.severity.as_str()));
    w.opt_attr("shortDescription", e.short_description.as_deref());
    if e.description.is_none() && e.error_detail.is_none() {
        w.raw("/>");
        return;
    }
    w.raw(">");
    if let Some(d) = &e.description {
        description(w, d);
    }
    if let Some(d) = &e.error_detail {
        w.text_el("eb:ErrorDetail", &[], d);
    }
    w.raw("</eb:Error>");
}

// ---------------------------------------------------------------------------------------------
// Signal constructors

impl Messaging {
    /// An NRR Receipt for `receipted` ([AS4] §5.1.8, digest §2.5): `references` are complete
    /// copies of the received message's `ds:SignedInfo` references (digest §12.2), in order.
    pub fn nrr_receipt(
        id: Option<String>,
        message_id: MessageId,
        timestamp: Timestamp,
        receipted: &MessageId,
        references: Vec<DsReference>,
    ) -> Messaging {
        Messaging {
            id,
            user_message: None,
            signal_messages: vec![SignalMessage {
                message_info: MessageInfo {
                    timestamp,
                    message_id,
                    ref_to_message_id: Some(receipted.clone()),
                },
                signal: Signal::Receipt(Receipt::nrr(
                    references
                        .into_iter()
                        .map(|reference| MessagePartNrInformation {
                            part_identifier: None,
                            reference,
                        })
                        .collect(),
                )),
            }],
        }
    }

    /// An Error signal ([EBMS3] §6.2–6.3): `ref_to` is the message the errors are about, or
    /// `None` when they concern no particular message (e.g. it could not be parsed).
    pub fn error_signal(
        id: Option<String>,
        message_id: MessageId,
        timestamp: Timestamp,
        ref_to: Option<&MessageId>,
        errors: Vec<SignalError>,
    ) -> Messaging {
        Messaging {
            id,
            user_message: None,
            signal_messages: vec![SignalMessage {
                message_info: MessageInfo {
                    timestamp,
                    message_id,
                    ref_to_message_id: ref_to.cloned(),
                },
                signal: Signal::Errors(errors),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebms::codes::EbmsCode;

    fn ts() -> Timestamp {
        Timestamp::parse("2026-01-02T03:04:05.5Z").unwrap()
    }

    #[test]
    fn receipt_round_trip_and_shape() {
        let r = DsReference {
            uri: "#_m".into(),
            transforms: vec![Transform {
                algorithm: ns::ALG_EXC_C14N.into(),
                inclusive_prefixes: Some(vec!["S12".into()]),
            }],
            digest_method: ns::ALG_SHA256.into(),
            digest_value: vec![1, 2, 3, 0xff],
        };
        let m = Messaging::nrr_receipt(
            Some("_msg".into()),
            MessageId::new_rfc2822("r@gw").unwrap(),
            ts(),
            &MessageId::new_rfc2822("u@gw").unwrap(),
            vec![r],
        );
        let xml = m.to_xml();
        assert!(xml.starts_with("<eb:Messaging xmlns:eb="), "{xml}");
        assert!(
            xml.contains(r#"S12:mustUnderstand="true" wsu:Id="_msg""#),
            "{xml}"
        );
        assert!(
            xml.contains("<ds:DigestValue>AQID/w==</ds:DigestValue>"),
            "{xml}"
        );
        assert!(xml.contains(r#"PrefixList="S12""#), "{xml}");
        assert_eq!(Messaging::parse(xml.as_bytes()).unwrap(), m);
    }

    #[test]
    fn error_round_trip_and_escaping() {
        let e = SignalError::from_code(EbmsCode::InvalidHeader)
            .referring_to(
                &MessageId::parse("x<y").unwrap_or_else(|_| MessageId::parse("x&y").unwrap()),
            )
            .with_detail("a < b & \"c\"");
        let m = Messaging::error_signal(
            None,
            MessageId::new_rfc2822("e@gw").unwrap(),
            ts(),
            None,
            vec![e],
        );
        let xml = m.to_xml();
        assert!(xml.contains("refToMessageInError=\"x&amp;y\""), "{xml}");
        assert!(
            xml.contains("<eb:ErrorDetail>a &lt; b &amp; \"c\"</eb:ErrorDetail>"),
            "{xml}"
        );
        assert!(!xml.contains("xmlns:wsu"), "{xml}");
        assert_eq!(Messaging::parse(xml.as_bytes()).unwrap(), m);
    }
}

//! Locating the parts of a SOAP envelope that security processing relies on, and resolving
//! `wsse:SecurityTokenReference`s to certificates.
//!
//! Wrapping defence starts here: the envelope must have at most one Header, exactly one Body,
//! at most one `eb:Messaging` header block and at most one `wsse:Security` header; the nodes found
//! here are *the* nodes later compared (by node identity) with what each reference selects.

use crate::ns;
use crate::pki::{Certificate, TrustStore};
use crate::xml::{Document, Node};

use super::xmlw::unb64;
use super::{OwnKey, SecurityError};

/// The nodes of one envelope.
pub(crate) struct Located<'d> {
    pub body: Node<'d>,
    pub messaging: Option<Node<'d>>,
    pub security: Option<Node<'d>>,
}

pub(crate) fn locate(doc: &Document) -> Result<Located<'_>, SecurityError> {
    let root = doc.root();
    let soap_ns = if root.is(ns::S12, "Envelope") {
        ns::S12
    } else if root.is(ns::S11, "Envelope") {
        ns::S11
    } else {
        return Err(SecurityError::NotSoap(
            "root element is not a SOAP Envelope".into(),
        ));
    };
    // One pass over the Envelope's children (no vectors: this runs for every message).
    let (mut header, mut headers, mut body, mut bodies, mut elements) = (None, 0, None, 0, 0);
    for c in root.child_elements() {
        elements += 1;
        if c.is(soap_ns, "Header") {
            headers += 1;
            header = header.or(Some(c));
        } else if c.is(soap_ns, "Body") {
            bodies += 1;
            body = body.or(Some(c));
        }
    }
    let body = match body {
        Some(b) if headers <= 1 && bodies == 1 => b,
        _ => {
            return Err(SecurityError::Wrapping(format!(
                "envelope has {headers} Header and {bodies} Body elements"
            )))
        }
    };
    if elements != headers + 1 {
        return Err(SecurityError::NotSoap(
            "unexpected child element of the SOAP Envelope".into(),
        ));
    }
    let (messaging, security) = match header {
        None => (None, None),
        Some(h) => (
            the_one(
                h,
                ns::EB,
                "Messaging",
                "more than one eb:Messaging header block",
            )?,
            the_one(
                h,
                ns::WSSE,
                "Security",
                "more than one wsse:Security header",
            )?,
        ),
    };
    Ok(Located {
        body,
        messaging,
        security,
    })
}

/// The child element `ns:local` of `parent` if there is one; two are a wrapping attempt.
pub(crate) fn the_one<'d>(
    parent: Node<'d>,
    ns: &'static str,
    local: &'static str,
    two: &str,
) -> Result<Option<Node<'d>>, SecurityError> {
    let mut found = parent.children_named(ns, local);
    let first = found.next();
    if found.next().is_some() {
        return Err(SecurityError::Wrapping(two.into()));
    }
    Ok(first)
}

/// The `cid:` hrefs of `eb:PayloadInfo/eb:PartInfo` in order (without the `cid:` prefix).
pub(crate) fn payload_cids(messaging: Option<Node<'_>>) -> Vec<String> {
    let Some(m) = messaging else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for um in m.children_named(ns::EB, "UserMessage") {
        for pi in um.children_named(ns::EB, "PayloadInfo") {
            for part in pi.children_named(ns::EB, "PartInfo") {
                if let Some(h) = part.attr(None, "href") {
                    if let Some(c) = h.strip_prefix("cid:") {
                        out.push(c.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The one element with this id, or why not (0 → missing, >1 → duplicate ids = wrapping).
pub(crate) fn unique_by_id<'d>(doc: &'d Document, id: &'d str) -> Result<Node<'d>, SecurityError> {
    let found = doc.elements_by_id(id);
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(SecurityError::ReferenceUnresolved {
            uri: format!("#{id}"),
            reason: "no element has this id".into(),
        }),
        _ => Err(SecurityError::Wrapping(format!(
            "{} elements carry id {id:?}",
            found.len()
        ))),
    }
}

/// What a SecurityTokenReference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenRef {
    /// `wsse:Reference URI="#id"` to a BinarySecurityToken.
    Bst(String),
    /// SKI bytes.
    Ski(Vec<u8>),
    /// Issuer DN and decimal serial.
    IssuerSerial(String, String),
}

/// Reads the single reference inside a `wsse:SecurityTokenReference` (or a `ds:KeyInfo` holding one).
pub(crate) fn read_token_ref(node: Node<'_>) -> Result<TokenRef, SecurityError> {
    let str_node = if node.is(ns::WSSE, "SecurityTokenReference") {
        node
    } else {
        let mut strs = node.children_named(ns::WSSE, "SecurityTokenReference");
        match (strs.next(), strs.next()) {
            (Some(one), None) => one,
            _ => {
                // ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial directly (no STR) is also allowed.
                if let Some(x) = node.child(ns::DS, "X509Data") {
                    return issuer_serial(x);
                }
                return Err(SecurityError::Malformed(
                    "KeyInfo must hold exactly one SecurityTokenReference".into(),
                ));
            }
        }
    };
    let mut kids = str_node.child_elements();
    let (Some(one), None) = (kids.next(), kids.next()) else {
        return Err(SecurityError::Malformed(
            "SecurityTokenReference must hold exactly one reference".into(),
        ));
    };
    if one.is(ns::WSSE, "Reference") {
        let uri = one.attr(None, "URI").unwrap_or("");
        let id = uri.strip_prefix('#').ok_or_else(|| {
            SecurityError::Malformed(format!("token reference {uri:?} is not same-document"))
        })?;
        Ok(TokenRef::Bst(id.to_string()))
    } else if one.is(ns::WSSE, "KeyIdentifier") {
        let vt = one.attr(None, "ValueType").unwrap_or("");
        if vt != ns::WSS_X509_SKI {
            return Err(SecurityError::Malformed(format!(
                "unsupported KeyIdentifier ValueType {vt:?}"
            )));
        }
        let ski = unb64(&one.text())
            .ok_or_else(|| SecurityError::Malformed("KeyIdentifier is not base64".into()))?;
        Ok(TokenRef::Ski(ski))
    } else if one.is(ns::DS, "X509Data") {
        issuer_serial(one)
    } else {
        Err(SecurityError::Malformed(format!(
            "unsupported token reference {}",
            one.local_name()
        )))
    }
}

fn issuer_serial(x509data: Node<'_>) -> Result<TokenRef, SecurityError> {
    let is = x509data
        .child(ns::DS, "X509IssuerSerial")
        .ok_or_else(|| SecurityError::Malformed("X509Data without X509IssuerSerial".into()))?;
    let name = is
        .child(ns::DS, "X509IssuerName")
        .map(|n| n.text().trim().to_string());
    let serial = is
        .child(ns::DS, "X509SerialNumber")
        .map(|n| n.text().trim().to_string());
    match (name, serial) {
        (Some(n), Some(s)) if !n.is_empty() && !s.is_empty() => Ok(TokenRef::IssuerSerial(n, s)),
        _ => Err(SecurityError::Malformed(
            "incomplete X509IssuerSerial".into(),
        )),
    }
}

/// Decodes the BinarySecurityToken with this id (it must be unique and inside the Security
/// header): returns the leaf and the rest of the chain.
pub(crate) fn read_bst(
    doc: &Document,
    security: Node<'_>,
    id: &str,
) -> Result<(Certificate, Vec<Certificate>), SecurityError> {
    let node = unique_by_id(doc, id).map_err(|e| match e {
        SecurityError::ReferenceUnresolved { .. } => {
            SecurityError::KeyNotFound(format!("no token with id {id:?}"))
        }
        other => other,
    })?;
    if !node.is(ns::WSSE, "BinarySecurityToken")
        || node.parent().map(|p| p.id()) != Some(security.id())
    {
        return Err(SecurityError::Wrapping(format!(
            "token reference #{id} does not point at a BinarySecurityToken of the Security header"
        )));
    }
    let text = node.text();
    let vt = node.attr(None, "ValueType").unwrap_or("");
    if let Some(hit) = recent_token(vt, &text) {
        return Ok(hit);
    }
    let decoded = decode_bst(vt, &text)?;
    remember_token(vt, &text, &decoded);
    Ok(decoded)
}

/// A decoded BinarySecurityToken: the leaf and the rest of the chain.
type Token = (Certificate, Vec<Certificate>);

/// How many token texts [`recent_token`] remembers (each at most 16 KB).
const RECENT_TOKENS: usize = 16;

/// Token texts seen recently and what they decoded to. A partner sends the same token in every
/// message, and finding its text here (a length compare, then one `memcmp`) is cheaper than
/// base64-decoding ~1 KB and hashing the DER for [`Certificate::from_der_cached`]; the result
/// is the same, since decoding is a function of the text and the value type.
static TOKENS: std::sync::Mutex<Vec<(String, String, Token)>> = std::sync::Mutex::new(Vec::new());

fn recent_token(value_type: &str, text: &str) -> Option<Token> {
    let seen = TOKENS.lock().ok()?;
    seen.iter()
        .find(|(vt, t, _)| t.len() == text.len() && t == text && vt == value_type)
        .map(|(_, _, token)| token.clone())
}

fn remember_token(value_type: &str, text: &str, token: &Token) {
    // A certificate with a chain is a few KB; bound what sixteen entries can hold.
    if text.len() > 16 * 1024 {
        return;
    }
    if let Ok(mut seen) = TOKENS.lock() {
        if seen.len() >= RECENT_TOKENS {
            seen.remove(0);
        }
        seen.push((value_type.to_string(), text.to_string(), token.clone()));
    }
}

fn decode_bst(vt: &str, text: &str) -> Result<Token, SecurityError> {
    let der = unb64(text)
        .ok_or_else(|| SecurityError::Malformed("BinarySecurityToken is not base64".into()))?;
    let bad =
        |e: crate::pki::PkiError| SecurityError::KeyNotFound(format!("BinarySecurityToken: {e}"));
    match vt {
        v if v == ns::WSS_X509V3 => {
            Ok((Certificate::from_der_cached(&der).map_err(bad)?, Vec::new()))
        }
        v if v == ns::WSS_X509_PKIPATH => {
            // PkiPath (RFC 3280 / WSS X.509 profile): SEQUENCE OF Certificate, the leaf last.
            let (outer, _) = crate::pki::der::read_tlv(&der)
                .filter(|(t, _)| t.tag == 0x30)
                .ok_or_else(|| SecurityError::Malformed("PkiPath is not a SEQUENCE".into()))?;
            let items = crate::pki::der::read_all(outer.value)
                .ok_or_else(|| SecurityError::Malformed("PkiPath is malformed".into()))?;
            let mut certs = items
                .iter()
                .map(|t| Certificate::from_der_cached(t.raw))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            let leaf = certs
                .pop()
                .ok_or_else(|| SecurityError::Malformed("empty PkiPath".into()))?;
            certs.reverse();
            Ok((leaf, certs))
        }
        other => Err(SecurityError::Malformed(format!(
            "unsupported BinarySecurityToken ValueType {other:?}"
        ))),
    }
}

/// Resolves a signer token reference to a certificate (+ presented chain).
pub(crate) fn resolve_signer(
    doc: &Document,
    security: Node<'_>,
    r: &TokenRef,
    trust: &TrustStore,
    partners: &[Certificate],
) -> Result<(Certificate, Vec<Certificate>), SecurityError> {
    match r {
        TokenRef::Bst(id) => read_bst(doc, security, id),
        TokenRef::Ski(ski) => partners
            .iter()
            .chain(trust.known_certificates())
            .find(|c| c.ski() == ski.as_slice())
            .map(|c| (c.clone(), Vec::new()))
            .ok_or_else(|| {
                SecurityError::KeyNotFound(format!(
                    "no known certificate with SKI {}",
                    hex::encode(ski)
                ))
            }),
        TokenRef::IssuerSerial(issuer, serial) => partners
            .iter()
            .chain(trust.known_certificates())
            .find(|c| c.matches_issuer_serial(issuer, serial))
            .map(|c| (c.clone(), Vec::new()))
            .ok_or_else(|| {
                SecurityError::KeyNotFound(format!(
                    "no known certificate issued by {issuer:?} with serial {serial}"
                ))
            }),
    }
}

/// Finds which of our keys a recipient token reference designates.
pub(crate) fn resolve_own<'k>(
    doc: &Document,
    security: Node<'_>,
    r: &TokenRef,
    keys: &'k [OwnKey],
) -> Option<&'k OwnKey> {
    match r {
        TokenRef::Ski(ski) => keys.iter().find(|k| k.cert.ski() == ski.as_slice()),
        TokenRef::IssuerSerial(i, s) => keys.iter().find(|k| k.cert.matches_issuer_serial(i, s)),
        TokenRef::Bst(id) => {
            let (leaf, _) = read_bst(doc, security, id).ok()?;
            keys.iter()
                .find(|k| k.cert.sha256_fingerprint() == leaf.sha256_fingerprint())
        }
    }
}

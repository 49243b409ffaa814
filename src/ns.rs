//! Every namespace and algorithm URI the gateway uses, in one place.
//!
//! Values are exact copies from the spec digest (`../shared/spec/as4-oots-digest.md`); the
//! section of the digest and the primary source are given per group.

// --- Namespaces (digest §2.1) -------------------------------------------------------------

/// SOAP 1.2 envelope [EBMS3], [ED115].
pub const S12: &str = "http://www.w3.org/2003/05/soap-envelope";
/// SOAP 1.1 envelope (parsed for interop samples; eDelivery sends SOAP 1.2 only).
pub const S11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// ebMS 3.0 core header [EBMS3] §5.1.3.1.
pub const EB: &str = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/";
/// ebBP signals (NRR receipt content) [EBMS3] §5.3.4.
pub const EBBP: &str = "http://docs.oasis-open.org/ebxml-bp/ebbp-signals-2.0";
/// WS-Security 1.0 secext.
pub const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WS-Security 1.1 secext.
pub const WSSE11: &str = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd";
/// WS-Security utility (wsu:Id).
pub const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// XML-DSig.
pub const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML-DSig 1.1.
pub const DSIG11: &str = "http://www.w3.org/2009/xmldsig11#";
/// XML-Enc.
pub const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
/// XML-Enc 1.1.
pub const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
/// RFC 9231 xmldsig-more (2021): eddsa-ed25519, x25519, hkdf and the HKDFParams element.
pub const DSIG_MORE_2021: &str = "http://www.w3.org/2021/04/xmldsig-more#";
/// Exclusive C14N (also the namespace of `ec:InclusiveNamespaces`).
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The `xml:` prefix namespace (fixed by XML Namespaces 1.0).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// The `xmlns:` prefix namespace (fixed by XML Namespaces 1.0).
pub const XMLNS: &str = "http://www.w3.org/2000/xmlns/";
/// XML Schema instance.
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

// --- ebMS 3.0 defaults (digest §2.3, §2.4, §2.10) ---------------------------------------------

/// Default MPC [EBMS3] §3.4.
pub const DEFAULT_MPC: &str =
    "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/defaultMPC";
/// Default role [EBMS3] §5.2.2.3.
pub const DEFAULT_ROLE: &str =
    "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/defaultRole";
/// Test service [EBMS3] §5.2.2.8: never delivered to a backend.
pub const TEST_SERVICE: &str =
    "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/service";
/// Test action [EBMS3] §5.2.2.9.
pub const TEST_ACTION: &str = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/test";
/// One-way MEP [ED115] §3.2.1.
pub const MEP_ONE_WAY: &str =
    "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/oneWay";
/// Two-way MEP [ED115] §3.2.1.
pub const MEP_TWO_WAY: &str =
    "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/twoWay";
/// Push binding.
pub const MEP_BINDING_PUSH: &str =
    "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/push";
/// Push-and-push binding.
pub const MEP_BINDING_PUSH_AND_PUSH: &str =
    "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/pushAndPush";

// --- MIME (digest §2.2, §2.9) ----------------------------------------------------------------

/// SOAP 1.2 media type [EBMS3] §5.1.4.
pub const MEDIA_SOAP12: &str = "application/soap+xml";
/// gzip compression type [AS4] §3.1.
pub const MEDIA_GZIP: &str = "application/gzip";

// --- Algorithms (digest §5) ------------------------------------------------------------------

pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ALG_ED25519: &str = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519";
pub const ALG_ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const ALG_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ALG_EXC_C14N_WITH_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
pub const SWA_CONTENT_SIGNATURE_TRANSFORM: &str =
    "http://docs.oasis-open.org/wss/oasis-wss-SwAProfile-1.1#Attachment-Content-Signature-Transform";
pub const SWA_CIPHERTEXT_TRANSFORM: &str =
    "http://docs.oasis-open.org/wss/oasis-wss-SwAProfile-1.1#Attachment-Ciphertext-Transform";
pub const SWA_CONTENT_ONLY: &str =
    "http://docs.oasis-open.org/wss/oasis-wss-SwAProfile-1.1#Attachment-Content-Only";
pub const ALG_AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
pub const ALG_RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
pub const ALG_MGF1_SHA256: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha256";
pub const ALG_RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
pub const ALG_X25519: &str = "http://www.w3.org/2021/04/xmldsig-more#x25519";
pub const ALG_ECDH_ES: &str = "http://www.w3.org/2009/xmlenc11#ECDH-ES";
pub const ALG_HKDF: &str = "http://www.w3.org/2021/04/xmldsig-more#hkdf";
pub const ALG_HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";
pub const ALG_KW_AES128: &str = "http://www.w3.org/2001/04/xmlenc#kw-aes128";

// --- WS-Security token profile (digest §3.2, §5) ----------------------------------------------

pub const WSS_X509V3: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
pub const WSS_X509_PKIPATH: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509PKIPathv1";
pub const WSS_X509_SKI: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier";
pub const WSS_BASE64_BINARY: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
pub const WSS_TOKEN_ENCRYPTED_KEY: &str =
    "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey";

// --- OOTS (digest §6.3) ----------------------------------------------------------------------

/// OOTS service type (ebRS/ebMS binding) [TDD1-SMP], [SK-POC].
pub const OOTS_SERVICE_TYPE: &str = "urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0";
/// OOTS service [TDD1-SMP].
pub const OOTS_SERVICE: &str = "QueryManager";
/// OOTS gateway role, used for both From and To [TDD1-SMP], [OOTS-FR].
pub const OOTS_ROLE: &str = "http://sdg.europa.eu/edelivery/gateway";

//! The ebMS 3.0 message model (`eb:Messaging` with UserMessage and SignalMessage), its XML
//! codec, the SOAP envelope around it, and the EBMS error-code table.
//!
//! No I/O and no crypto: bytes in, values out; values in, bytes out. See `docs/ebms.md` for the
//! model and the table of which structural fault maps to which EBMS code.
//!
//! Public API (what the security, pmode and msh rooms build on):
//!
//! - model ([`model`]): [`Messaging`], [`UserMessage`], [`SignalMessage`] / [`Signal`]
//!   ([`Receipt`], [`SignalError`], [`PullRequest`]), [`MessageInfo`], [`PartyInfo`],
//!   [`Party`], [`PartyId`], [`CollaborationInfo`], [`Service`], [`AgreementRef`],
//!   [`Property`], [`PartInfo`], [`Schema`], [`Description`], [`MessagePartNrInformation`],
//!   [`DsReference`], [`Transform`], [`RawXml`], [`ErrorCode`]; validated scalars
//!   [`MessageId`] (`parse`, `new_rfc2822`, `generate`, `is_rfc2822`) and [`Timestamp`].
//! - parsing ([`parse`]): [`Messaging::parse`] (a document whose root is `eb:Messaging`),
//!   [`Messaging::from_node`], [`UserMessage::from_node`], [`SignalMessage::from_node`];
//!   errors are [`ParseError`] (`kind`, `path`, `code()` → [`EbmsCode`]).
//! - writing ([`write`]): [`Messaging::to_xml`] / [`write_messaging`]; constructors
//!   [`Messaging::nrr_receipt`] and [`Messaging::error_signal`].
//! - profile checks ([`validate`]): [`validate::validate_messaging`] →
//!   `Vec<`[`validate::Issue`]`>` (eDelivery/ebMS rules that real partners break, kept out of the
//!   parser so those messages still parse and the MSH picks what to report).
//! - SOAP ([`soap`]): [`soap::parse_envelope`] → [`soap::Envelope`] (the parsed
//!   [`crate::xml::Document`] with node ids of Header, Body, eb:Messaging, wsse:Security, the
//!   Messaging model, a SOAP Fault if any); [`soap::build_envelope`] for outgoing SOAP 1.2
//!   messages with a pre-serialized wsse:Security slot and `wsu:Id`s on Messaging and Body.

pub mod codes;
pub mod model;
pub mod parse;
pub mod soap;
pub mod validate;
pub mod write;

pub use codes::{Category, EbmsCode, Origin, Severity};
pub use model::{
    AgreementRef, CollaborationInfo, Description, DsReference, ErrorCode, MessageId,
    MessageIdError, MessageInfo, MessagePartNrInformation, Messaging, PartInfo, Party, PartyId,
    PartyInfo, Property, PullRequest, RawXml, Receipt, Schema, Service, Signal, SignalError,
    SignalMessage, Timestamp, TimestampError, Transform, UserMessage,
};
pub use parse::{ParseError, ParseErrorKind};
pub use write::write_messaging;

//! RFC 9457 problem documents: the one error shape of the REST API.
//!
//! Every refusal names a stable `type` (a path under `/errors/`, resolved against the API's
//! base URL), a human `title`, the HTTP `status`, a `detail` for this occurrence and — when one
//! field of the request is to blame — that `field` (a JSON-pointer-like path into the metadata
//! such as `properties/0/value`, or a header / query parameter name). Backends branch on `type`
//! and `field`, never on the wording of `detail`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::msh::api::SubmitError;
use crate::store::StoreError;

/// Media type of problem documents (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Retry-After` (seconds) on 503 answers: long enough for an operator's alert to fire, short
/// enough that a backend's queue does not stall for long once space is back.
pub const RETRY_AFTER_SECS: u32 = 30;

/// The problem types this API answers with. The enum keeps the list closed so that
/// `docs/backend.md` and the OpenAPI document can enumerate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// 400: the request cannot be read (not multipart, metadata not JSON, bad query value).
    InvalidRequest,
    /// 415: `POST /messages` without `multipart/form-data`.
    UnsupportedMediaType,
    /// 401: no, malformed or unknown bearer token.
    Unauthorized,
    /// 403: the backend may not use this P-Mode / these parties, or read this message.
    Forbidden,
    /// 404: no such message, payload or receipt.
    NotFound,
    /// 413: a payload, the metadata or the number of parts exceeds the API limits.
    PayloadTooLarge,
    /// 422: a metadata field is malformed (see `field`).
    InvalidField,
    /// 422: no P-Mode with this id or none matching service/action/parties.
    UnknownPmode,
    /// 409: several P-Modes match; name one.
    AmbiguousPmode,
    /// 422: a message property the P-Mode requires is missing or invalid.
    MissingProperty,
    /// 422: the P-Mode's payload profile refuses a payload (type, size, count).
    PayloadNotAllowed,
    /// 409: the MessageId was already used by another submission.
    DuplicateMessageId,
    /// 409: the MessageId exists both inbound and outbound; pass `direction`.
    AmbiguousMessageId,
    /// 409: the message is not in a state that allows this (e.g. ack of an outbound message).
    InvalidState,
    /// 410: the contents were removed by the P-Mode's retention (the metadata is still there).
    Purged,
    /// 500: the gateway failed; nothing was acknowledged.
    Internal,
    /// 503: the message store cannot take writes (disk full, read-only); nothing was
    /// acknowledged; repeat the request after `Retry-After` seconds.
    StoreUnavailable,
}

impl ProblemType {
    /// Every problem type (documentation, tests).
    pub const ALL: &'static [ProblemType] = &[
        ProblemType::InvalidRequest,
        ProblemType::UnsupportedMediaType,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::PayloadTooLarge,
        ProblemType::InvalidField,
        ProblemType::UnknownPmode,
        ProblemType::AmbiguousPmode,
        ProblemType::MissingProperty,
        ProblemType::PayloadNotAllowed,
        ProblemType::DuplicateMessageId,
        ProblemType::AmbiguousMessageId,
        ProblemType::InvalidState,
        ProblemType::Purged,
        ProblemType::Internal,
        ProblemType::StoreUnavailable,
    ];

    /// The `type` URI reference.
    pub fn uri(self) -> &'static str {
        match self {
            ProblemType::InvalidRequest => "/errors/invalid-request",
            ProblemType::UnsupportedMediaType => "/errors/unsupported-media-type",
            ProblemType::Unauthorized => "/errors/unauthorized",
            ProblemType::Forbidden => "/errors/forbidden",
            ProblemType::NotFound => "/errors/not-found",
            ProblemType::PayloadTooLarge => "/errors/payload-too-large",
            ProblemType::InvalidField => "/errors/invalid-field",
            ProblemType::UnknownPmode => "/errors/unknown-pmode",
            ProblemType::AmbiguousPmode => "/errors/ambiguous-pmode",
            ProblemType::MissingProperty => "/errors/missing-property",
            ProblemType::PayloadNotAllowed => "/errors/payload-not-allowed",
            ProblemType::DuplicateMessageId => "/errors/duplicate-message-id",
            ProblemType::AmbiguousMessageId => "/errors/ambiguous-message-id",
            ProblemType::InvalidState => "/errors/invalid-state",
            ProblemType::Purged => "/errors/purged",
            ProblemType::Internal => "/errors/internal",
            ProblemType::StoreUnavailable => "/errors/store-unavailable",
        }
    }

    /// The `title`: the same for every occurrence of the type (RFC 9457 §3.1.3).
    pub fn title(self) -> &'static str {
        match self {
            ProblemType::InvalidRequest => "Request cannot be read",
            ProblemType::UnsupportedMediaType => "Unsupported media type",
            ProblemType::Unauthorized => "Missing or unknown bearer token",
            ProblemType::Forbidden => "Not allowed for this backend",
            ProblemType::NotFound => "Not found",
            ProblemType::PayloadTooLarge => "Too large",
            ProblemType::InvalidField => "Invalid field",
            ProblemType::UnknownPmode => "No matching P-Mode",
            ProblemType::AmbiguousPmode => "More than one P-Mode matches",
            ProblemType::MissingProperty => "Required message property missing or invalid",
            ProblemType::PayloadNotAllowed => "Payload not allowed by the P-Mode",
            ProblemType::DuplicateMessageId => "MessageId already used",
            ProblemType::AmbiguousMessageId => "MessageId is both inbound and outbound",
            ProblemType::InvalidState => "Not possible in the message's state",
            ProblemType::Purged => "Removed by the retention policy",
            ProblemType::Internal => "Internal error",
            ProblemType::StoreUnavailable => "Message store cannot take writes; retry later",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemType::InvalidRequest => StatusCode::BAD_REQUEST,
            ProblemType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemType::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemType::Forbidden => StatusCode::FORBIDDEN,
            ProblemType::NotFound => StatusCode::NOT_FOUND,
            ProblemType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemType::InvalidField
            | ProblemType::UnknownPmode
            | ProblemType::MissingProperty
            | ProblemType::PayloadNotAllowed => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemType::AmbiguousPmode
            | ProblemType::DuplicateMessageId
            | ProblemType::AmbiguousMessageId
            | ProblemType::InvalidState => StatusCode::CONFLICT,
            ProblemType::Purged => StatusCode::GONE,
            ProblemType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemType::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "/errors/missing-property",
    "title": "Required message property missing or invalid",
    "status": 422,
    "detail": "required message property finalRecipient missing or invalid: absent",
    "field": "properties/finalRecipient"
}))]
pub struct Problem {
    /// A URI reference naming the problem type, e.g. `/errors/unknown-pmode`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The offending request field (metadata path, header or query parameter), if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem of type `t` with this occurrence's `detail`.
    pub fn new(t: ProblemType, detail: impl Into<String>) -> Problem {
        Problem {
            type_: t.uri().to_string(),
            title: t.title().to_string(),
            status: t.status().as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// Names the offending field.
    pub fn field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    /// 500 with a detail that does not leak internals beyond the error text.
    pub fn internal(e: impl std::fmt::Display) -> Problem {
        tracing::error!(error = %e, "backend API internal error");
        Problem::new(ProblemType::Internal, e.to_string())
    }
}

impl Problem {
    /// 503: the store cannot take writes; logged at error level because an operator has to act
    /// (free space, remount), while the backend only has to repeat the request.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        let detail = detail.into();
        tracing::error!(detail = %detail, "message store cannot take writes: answering 503");
        Problem::new(ProblemType::StoreUnavailable, detail)
    }
}

impl From<SubmitError> for Problem {
    fn from(e: SubmitError) -> Problem {
        let detail = e.to_string();
        match e {
            SubmitError::Invalid { field, .. } => {
                Problem::new(ProblemType::InvalidField, detail).field(field)
            }
            SubmitError::UnknownPmode(_) => {
                Problem::new(ProblemType::UnknownPmode, detail).field("pmode")
            }
            SubmitError::AmbiguousPmode(_) => {
                Problem::new(ProblemType::AmbiguousPmode, detail).field("pmode")
            }
            SubmitError::MissingProperty { name, .. } => {
                Problem::new(ProblemType::MissingProperty, detail)
                    .field(format!("properties/{name}"))
            }
            SubmitError::PayloadNotAllowed { part, .. } => {
                Problem::new(ProblemType::PayloadNotAllowed, detail)
                    .field(format!("payloads/{part}"))
            }
            SubmitError::Forbidden(_) => Problem::new(ProblemType::Forbidden, detail),
            SubmitError::DuplicateMessageId(_) => {
                Problem::new(ProblemType::DuplicateMessageId, detail).field("messageId")
            }
            SubmitError::Internal(m) => Problem::internal(m),
            SubmitError::Unavailable(m) => Problem::unavailable(m),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::NotFound(what) => Problem::new(ProblemType::NotFound, what),
            StoreError::InvalidTransition { .. } => {
                Problem::new(ProblemType::InvalidState, e.to_string())
            }
            StoreError::TooLarge(_) => Problem::new(ProblemType::PayloadTooLarge, e.to_string()),
            other => match other.unavailable() {
                Some(u) => Problem::unavailable(format!("{u}: {other}")),
                None => Problem::internal(other),
            },
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"as4gw\""),
            );
        }
        resp
    }
}

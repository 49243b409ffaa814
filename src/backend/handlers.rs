//! Route handlers. Each one authenticates through the [`Caller`] extractor before anything
//! else, and answers errors as [`Problem`]s.

use std::str::FromStr;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::io::ReaderStream;
use utoipa::ToSchema;

use super::auth::{log_forbidden, Caller};
use super::model::{
    event_view, find_payload, message_view, Accepted, AckResult, DirectionQuery, Health,
    HealthCheck, ListQuery, MessageList, MessageView, SubmitMetadata,
};
use super::problem::{Problem, ProblemType};
use super::{openapi_json as openapi_text, AppState};
use crate::store::{Cursor, Direction, Filter, MessageRecord, State as MsgState, StoreError};

/// Largest page of `GET /messages`.
const MAX_PAGE: usize = 500;
/// Store pages scanned per list request while skipping messages the caller may not read;
/// after that the page is returned short, with a cursor to continue.
const MAX_SCAN_PAGES: usize = 20;

/// The multipart form of `POST /api/v1/messages` (documentation only).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SubmitForm {
    /// JSON metadata; must be the first part.
    metadata: SubmitMetadata,
    /// One further part per payload, named as in `metadata.payloads[].part` (the name
    /// `payload` here stands for any of them), streamed to disk.
    #[schema(value_type = Option<String>, format = Binary)]
    payload: Option<Vec<u8>>,
}

/// Binary content (documentation only).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(crate) struct BinaryContent(Vec<u8>);

fn parse_direction(s: &str, field: &str) -> Result<Direction, Problem> {
    Direction::from_str(s).map_err(|_| {
        Problem::new(
            ProblemType::InvalidRequest,
            format!("{field} must be IN or OUT, not {s:?}"),
        )
        .field(field)
    })
}

fn parse_time(s: &str, field: &str) -> Result<OffsetDateTime, Problem> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        Problem::new(
            ProblemType::InvalidRequest,
            format!("{field} is not an RFC 3339 time: {e}"),
        )
        .field(field)
    })
}

/// Finds the message a backend means by an ebMS MessageId.
///
/// A MessageId names one message per direction. Without `direction` both are looked up; if
/// the caller may read messages with this id in both directions (a gateway that talks to
/// itself) the answer is 409 `ambiguous-message-id` and the caller repeats with `direction`.
pub(crate) async fn resolve(
    state: &AppState,
    caller: &Caller,
    message_id: &str,
    direction: Option<Direction>,
) -> Result<MessageRecord, Problem> {
    let dirs: &[Direction] = match direction {
        Some(Direction::Outbound) => &[Direction::Outbound],
        Some(Direction::Inbound) => &[Direction::Inbound],
        None => &[Direction::Outbound, Direction::Inbound],
    };
    let mut found = Vec::new();
    for d in dirs {
        if let Some(rec) = state.store.get_by_message_id(*d, message_id).await? {
            found.push(rec);
        }
    }
    let any_found = !found.is_empty();
    let mut visible: Vec<MessageRecord> = found
        .into_iter()
        .filter(|r| {
            caller
                .0
                .may_read(r, state.routed_to(&r.pmode_id).as_deref())
        })
        .collect();
    match visible.len() {
        1 => Ok(visible.remove(0)),
        0 if any_found => {
            let p = Problem::new(
                ProblemType::Forbidden,
                format!(
                    "backend {} may not read message {message_id}",
                    caller.0.name
                ),
            );
            log_forbidden(&caller.0, "read", &p);
            Err(p)
        }
        0 => Err(Problem::new(
            ProblemType::NotFound,
            format!("no message {message_id}"),
        )),
        _ => Err(Problem::new(
            ProblemType::AmbiguousMessageId,
            format!("{message_id} exists inbound and outbound; pass direction=IN or direction=OUT"),
        )
        .field("direction")),
    }
}

fn direction_of(q: &DirectionQuery) -> Result<Option<Direction>, Problem> {
    q.direction
        .as_deref()
        .map(|d| parse_direction(d, "direction"))
        .transpose()
}

/// Submit a message.
///
/// A `multipart/form-data` body: first the `metadata` part (JSON), then one part per payload,
/// named as declared in `metadata.payloads`. Payloads are streamed to disk. The answer 202
/// means the message is durably recorded (state SUBMITTED); the gateway sends it and retries
/// on its own. A refused submission leaves nothing behind.
#[utoipa::path(
    post,
    path = "/api/v1/messages",
    tag = "messages",
    operation_id = "submitMessage",
    params(
        ("Idempotency-Key" = Option<String>, Header,
         description = "Repeating a submission with the same key returns the first message (created = false) instead of sending twice.")
    ),
    request_body(content = SubmitForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Accepted and durable", body = Accepted,
         headers(("Location" = String, description = "Path of the message"))),
        (status = 400, description = "Unreadable request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "P-Mode or party not allowed for this backend", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate MessageId or ambiguous P-Mode", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Payload, metadata or part count over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid metadata, unknown P-Mode, missing property, payload not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error; nothing acknowledged", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The message store cannot take writes (disk full, read-only); nothing stored, repeat later", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u32, description = "Seconds to wait before repeating the submission"))),
    )
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let accepted: Accepted = super::submit::handle(&state, &caller.0, &headers, body).await?;
    let mut resp = (StatusCode::ACCEPTED, Json(&accepted)).into_response();
    if let Ok(v) = HeaderValue::from_str(&accepted.location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// List messages, newest first.
///
/// Only messages the backend may read are listed. Pages are keyset-based: pass `nextCursor`
/// as `cursor`; new messages never shift later pages. A page may hold fewer than `limit`
/// items while `nextCursor` is still present.
#[utoipa::path(
    get,
    path = "/api/v1/messages",
    tag = "messages",
    operation_id = "listMessages",
    params(ListQuery),
    responses(
        (status = 200, body = MessageList),
        (status = 400, description = "Bad filter value", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "P-Mode filter not allowed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessageList>, Problem> {
    let Query(q) = query
        .map_err(|e| Problem::new(ProblemType::InvalidRequest, e.body_text()).field("query"))?;
    let mut filter = Filter::default();
    if let Some(d) = &q.direction {
        filter.direction = Some(parse_direction(d, "direction")?);
    }
    if let Some(s) = &q.state {
        filter.state = Some(MsgState::from_str(s).map_err(|_| {
            Problem::new(ProblemType::InvalidRequest, format!("unknown state {s:?}")).field("state")
        })?);
    }
    if let Some(p) = &q.pmode {
        let allowed = caller.0.allowed_pmodes.iter().any(|a| a == p)
            || state.routed_to(p).as_deref() == Some(caller.0.name.as_str());
        if !allowed {
            let pr = Problem::new(
                ProblemType::Forbidden,
                format!("backend {} may not read P-Mode {p}", caller.0.name),
            )
            .field("pmode");
            log_forbidden(&caller.0, "list", &pr);
            return Err(pr);
        }
        filter.pmode_id = Some(p.clone());
    }
    filter.conversation_id = q.conversation_id.clone();
    if let Some(p) = &q.property {
        let (n, v) = p.split_once(':').ok_or_else(|| {
            Problem::new(ProblemType::InvalidRequest, "property must be name:value")
                .field("property")
        })?;
        filter.property = Some((n.to_string(), v.to_string()));
    }
    if let Some(t) = &q.from {
        filter.created_from = Some(parse_time(t, "from")?);
    }
    if let Some(t) = &q.to {
        filter.created_before = Some(parse_time(t, "to")?);
    }
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::new(
            ProblemType::InvalidRequest,
            format!("limit must be 1..={MAX_PAGE}"),
        )
        .field("limit"));
    }
    let mut cursor: Option<Cursor> = match &q.cursor {
        Some(c) => Some(Cursor::from_str(c).map_err(|_| {
            Problem::new(ProblemType::InvalidRequest, format!("bad cursor {c:?}")).field("cursor")
        })?),
        None => None,
    };

    let mut items: Vec<MessageView> = Vec::new();
    let mut next: Option<Cursor> = None;
    'pages: for _ in 0..MAX_SCAN_PAGES {
        let page = state.store.list(filter.clone(), cursor, limit).await?;
        let n = page.items.len();
        for (i, rec) in page.items.iter().enumerate() {
            if caller
                .0
                .may_read(rec, state.routed_to(&rec.pmode_id).as_deref())
            {
                items.push(message_view(rec));
            }
            if items.len() == limit {
                let last_of_all = i + 1 == n && page.next.is_none();
                next = if last_of_all {
                    None
                } else {
                    // The store's cursor is its keyset position (`c<store id>`).
                    Cursor::from_str(&format!("c{}", rec.id.0)).ok()
                };
                break 'pages;
            }
        }
        match page.next {
            Some(c) => {
                cursor = Some(c);
                next = Some(c);
            }
            None => {
                next = None;
                break;
            }
        }
    }
    Ok(Json(MessageList {
        items,
        next_cursor: next.map(|c| c.to_string()),
    }))
}

/// One message by its ebMS MessageId, with its state history.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}",
    tag = "messages",
    operation_id = "getMessage",
    params(("id" = String, Path, description = "ebMS MessageId"), DirectionQuery),
    responses(
        (status = 200, body = MessageView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "MessageId exists in both directions", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DirectionQuery>,
) -> Result<Json<MessageView>, Problem> {
    let rec = resolve(&state, &caller, &id, direction_of(&q)?).await?;
    let mut view = message_view(&rec);
    let events = state.store.events(rec.id).await?;
    view.events = Some(events.iter().map(event_view).collect());
    view.has_receipt = Some(state.store.receipt(rec.id).await?.is_some());
    Ok(Json(view))
}

/// Download a payload (streamed, with its MIME type). Reading never changes the state.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}/payloads/{name}",
    tag = "messages",
    operation_id = "getPayload",
    params(
        ("id" = String, Path, description = "ebMS MessageId"),
        ("name" = String, Path, description = "Payload name (payloads[].name of the message view) or its Content-ID"),
        DirectionQuery
    ),
    responses(
        (status = 200, description = "The payload bytes, Content-Type as declared; `Repr-Digest` carries the SHA-256", body = BinaryContent, content_type = "application/octet-stream"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The payload was removed by the P-Mode's retention (`/errors/purged`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_payload(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<DirectionQuery>,
) -> Result<Response, Problem> {
    let rec = resolve(&state, &caller, &id, direction_of(&q)?).await?;
    let p = find_payload(&rec.payloads, &name).ok_or_else(|| {
        Problem::new(
            ProblemType::NotFound,
            format!("message {id} has no payload {name:?}"),
        )
        .field("name")
    })?;
    if let Some(at) = rec.payloads_purged_at {
        return Err(Problem::new(
            ProblemType::Purged,
            format!(
                "payload {name:?} of {id} was removed by the retention of P-Mode {} at {}",
                rec.pmode_id,
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        ));
    }
    let file = state
        .store
        .spool()
        .open_reader(&p.file)
        .await
        .map_err(|e| match e {
            StoreError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => Problem::internal(
                format!("payload file of {id}/{name} is missing from the spool"),
            ),
            other => Problem::from(other),
        })?;
    let mut resp = Response::new(Body::from_stream(ReaderStream::with_capacity(
        file,
        256 * 1024,
    )));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&p.mime_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(p.file.size()));
    let digest = base64::engine::general_purpose::STANDARD.encode(p.file.sha256());
    if let Ok(v) = HeaderValue::from_str(&format!("sha-256=:{digest}:")) {
        h.insert("repr-digest", v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// The signed receipt (XML) of a message: received from the partner (outbound) or sent to it
/// (inbound). Non-repudiation evidence.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}/receipt",
    tag = "messages",
    operation_id = "getReceipt",
    params(("id" = String, Path, description = "ebMS MessageId"), DirectionQuery),
    responses(
        (status = 200, description = "The stored signed receipt", body = String, content_type = "application/xml"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message, or no receipt yet", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_receipt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DirectionQuery>,
) -> Result<Response, Problem> {
    let rec = resolve(&state, &caller, &id, direction_of(&q)?).await?;
    let r = state.store.receipt(rec.id).await?.ok_or_else(|| {
        Problem::new(
            ProblemType::NotFound,
            format!("message {id} ({}) has no receipt yet", rec.state),
        )
    })?;
    let mut resp = Response::new(Body::from(r.bytes));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(&super::model::rfc3339(r.at)) {
        resp.headers_mut().insert("x-as4gw-receipt-time", v);
    }
    Ok(resp)
}

/// Acknowledge an inbound message: RECEIVED → DELIVERED. Idempotent.
///
/// The backend calls this after it has stored the message (fetched by GET or pushed by the
/// webhook). Reading never marks a message delivered.
#[utoipa::path(
    post,
    path = "/api/v1/messages/{id}/ack",
    tag = "messages",
    operation_id = "ackMessage",
    params(("id" = String, Path, description = "ebMS MessageId of an inbound message")),
    responses(
        (status = 200, body = AckResult),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not an inbound message in RECEIVED/DELIVERED", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn ack_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AckResult>, Problem> {
    // Only inbound messages can be acknowledged, so only the inbound one is looked up.
    let rec = match resolve(&state, &caller, &id, Some(Direction::Inbound)).await {
        Ok(rec) => rec,
        Err(p) if p.status == 404 => {
            // Say why when the id is an outbound message of this backend.
            if resolve(&state, &caller, &id, Some(Direction::Outbound))
                .await
                .is_ok()
            {
                return Err(Problem::new(
                    ProblemType::InvalidState,
                    format!("{id} is an outbound message; only inbound messages are acknowledged"),
                ));
            }
            return Err(p);
        }
        Err(p) => return Err(p),
    };
    let done = |changed| {
        Json(AckResult {
            message_id: id.clone(),
            state: MsgState::Delivered.as_str().to_string(),
            changed,
        })
    };
    match rec.state {
        MsgState::Delivered => Ok(done(false)),
        MsgState::Received => {
            let detail = format!("acknowledged by backend {}", caller.0.name);
            match state
                .store
                .mark_delivered(rec.id, OffsetDateTime::now_utc(), &detail)
                .await
            {
                Ok(()) => {
                    crate::telemetry::message_state(
                        crate::store::Direction::Inbound,
                        MsgState::Delivered,
                        Some(rec.created_at),
                    );
                    let span = crate::telemetry::message_span(
                        crate::telemetry::Stage::Deliver,
                        &rec.message_id,
                        &rec.conversation_id,
                        &rec.pmode_id,
                    );
                    span.in_scope(|| tracing::info!(backend = %caller.0.name, "inbound message acknowledged (DELIVERED)"));
                    Ok(done(true))
                }
                // A concurrent ack (or the webhook) got there first.
                Err(StoreError::InvalidTransition {
                    state: MsgState::Delivered,
                    ..
                }) => Ok(done(false)),
                Err(e) => Err(e.into()),
            }
        }
        other => Err(Problem::new(
            ProblemType::InvalidState,
            format!("{id} is {other}; only RECEIVED messages can be acknowledged"),
        )),
    }
}

/// Liveness and readiness. 200 when ready, 503 (same document) when a check fails.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "service",
    operation_id = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Alive but not ready", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>, _caller: Caller) -> Response {
    let mut checks = vec![match state.store.list(Filter::default(), None, 1).await {
        Ok(_) => HealthCheck {
            name: "store".into(),
            ok: true,
            detail: "answers queries".into(),
        },
        Err(e) => HealthCheck {
            name: "store".into(),
            ok: false,
            detail: e.to_string(),
        },
    }];
    checks.extend(state.readiness.check().await);
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let h = Health {
        live: true,
        ready,
        status: if ready { "ok" } else { "degraded" }.into(),
        checks,
    };
    (status, Json(h)).into_response()
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "service",
    operation_id = "openapi",
    responses(
        (status = 200, description = "OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn openapi_json(_caller: Caller) -> Response {
    let mut resp = Response::new(Body::from(openapi_text()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Unknown routes: 404 as a problem document.
pub(crate) async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(ProblemType::NotFound, format!("no route {}", uri.path()))
}

//! Spans per message stage.
//!
//! Every stage of a message's way through the gateway runs inside a span named `message` that
//! carries `message_id`, `conversation_id` and `pmode`, so every event logged inside it (from
//! any room) inherits them: in JSON output they appear in the line's `span` / `spans`
//! objects, in text output before the message. Stage spans are created at ERROR level so they
//! stay enabled under any filter that lets an event through: a `RUST_LOG=warn` deployment
//! still gets the ids on its warnings. Span fields are ids and names only, never payloads,
//! tokens or keys.

use std::time::Instant;

use tracing::field::Empty;
use tracing::Span;

/// The stages a message goes through (outbound: submit → pack → send → receipt → store;
/// inbound: receive → verify → store → deliver; webhook pushes in both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A backend's submission is checked and recorded (SUBMITTED).
    Submit,
    /// UserMessage → gzip → sign → encrypt → wire file.
    Pack,
    /// The HTTPS POST to the partner and its synchronous answer.
    Send,
    /// Checking the partner's receipt against what was sent.
    Receipt,
    /// An AS4 request on our listener, from the first byte to the answer.
    Receive,
    /// Decrypting and verifying an inbound message, P-Mode match.
    Verify,
    /// Recording a state change durably.
    Store,
    /// Handing an inbound message to the backend (ack through the API).
    Deliver,
    /// One webhook push (delivery or status).
    Webhook,
}

impl Stage {
    /// Every stage (metric label values).
    pub const ALL: &'static [Stage] = &[
        Stage::Submit,
        Stage::Pack,
        Stage::Send,
        Stage::Receipt,
        Stage::Receive,
        Stage::Verify,
        Stage::Store,
        Stage::Deliver,
        Stage::Webhook,
    ];

    /// The `stage` field and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Submit => "submit",
            Stage::Pack => "sign_encrypt",
            Stage::Send => "send",
            Stage::Receipt => "receipt",
            Stage::Receive => "receive",
            Stage::Verify => "verify_decrypt",
            Stage::Store => "store",
            Stage::Deliver => "deliver",
            Stage::Webhook => "webhook_push",
        }
    }
}

/// The span of one stage of a message whose ids are known.
pub fn message_span(stage: Stage, message_id: &str, conversation_id: &str, pmode: &str) -> Span {
    tracing::error_span!(
        "message",
        stage = stage.as_str(),
        message_id,
        conversation_id,
        pmode
    )
}

/// The span of a stage that learns the message's ids on the way (an inbound request before
/// its header is verified, a webhook item before its message is read); fill it in with
/// [`record_ids`].
pub fn pending_span(stage: Stage) -> Span {
    tracing::error_span!(
        "message",
        stage = stage.as_str(),
        message_id = Empty,
        conversation_id = Empty,
        pmode = Empty
    )
}

/// Records the ids on a span made by [`pending_span`] (no effect on other spans).
pub fn record_ids(span: &Span, message_id: &str, conversation_id: &str, pmode: &str) {
    span.record("message_id", message_id);
    span.record("conversation_id", conversation_id);
    span.record("pmode", pmode);
}

/// A sub-stage inside a message span (its events inherit the ids of the enclosing span).
pub fn stage_span(stage: Stage) -> Span {
    tracing::error_span!("stage", stage = stage.as_str())
}

/// Observes the duration of a stage in `as4gw_stage_seconds` when dropped.
#[derive(Debug)]
pub struct StageTimer {
    stage: Stage,
    start: Instant,
}

impl StageTimer {
    pub fn start(stage: Stage) -> StageTimer {
        StageTimer {
            stage,
            start: Instant::now(),
        }
    }
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        super::global()
            .metrics
            .observe_stage(self.stage, self.start.elapsed().as_secs_f64());
    }
}

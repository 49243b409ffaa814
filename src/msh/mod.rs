//! The message service handler: the outbound and inbound pipelines, the retry scheduler and
//! the duplicate policy, as functions and small state machines over the other rooms.
//!
//! * [`outbound`] — sans-io: a backend submission → a validated `eb:UserMessage` (digest §2.3,
//!   §3.5); packing (gzip, sign, encrypt, MIME: digest §2.2, §2.9, §3.2); the verdict on the
//!   partner's synchronous answer (digest §2.5, §2.8) and the retry schedule.
//! * [`inbound`] — sans-io: MIME parts in → decrypted, verified, P-Mode-matched, validated,
//!   decompressed message and its signed NRR receipt, or the one EBMS error to answer with.
//! * [`signals`] — ebMS error signals with a SOAP Fault (digest §2.5, §2.6).
//! * [`engine`] — the async driver: [`engine::Msh`] implements [`api::Submitter`], runs the
//!   scheduler (lease → pack once → POST → verdict → store) and the inbound handler
//!   (stream → spool → process → record → receipt). I/O lives here and in [`transport`].
//!
//! See `docs/msh.md` for the pipelines, the error table and the retry semantics.

pub mod api;
pub mod clock;
pub mod compress;
pub mod edm;
pub mod engine;
pub mod inbound;
pub mod keys;
pub mod outbound;
pub mod retention;
pub mod signals;
pub mod transport;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{InboundReply, Msh, MshSettings};
pub use keys::Keyring;
pub use transport::{HttpsTransport, SendError, Transport, WireRequest, WireResponse};

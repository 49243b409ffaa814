//! The message service handler: the outbound and inbound pipelines, the retry scheduler and
//! the duplicate policy, as functions and small state machines over the other rooms.

pub mod api;

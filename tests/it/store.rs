//! Integration tests: store (SQLite implementation behind the `MessageStore` trait).
//!
//! Time is always passed in, so lease expiry and duplicate windows are tested with a fake
//! clock, never with sleeps.

mod crash;
mod inline;
mod lifecycle;
mod queries;
mod retention;

use as4gw::store::{FileRef, NewOutbound, Payload, SqliteStore};
use time::{Duration, OffsetDateTime};

/// A fixed base time plus `secs`.
pub fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("valid base time")
        + Duration::seconds(secs)
}

/// A fresh store in a temporary directory (kept alive by the returned guard).
pub async fn open_temp() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).await.expect("open store");
    (dir, store)
}

/// A minimal outbound submission with one spooled payload.
pub async fn outbound(store: &SqliteStore, message_id: &str) -> NewOutbound {
    use as4gw::store::MessageStore;
    let file: FileRef = store
        .spool()
        .write_bytes(message_id.as_bytes())
        .await
        .expect("spool");
    NewOutbound {
        message_id: message_id.to_string(),
        conversation_id: "conv-1".into(),
        pmode_id: "oots-request".into(),
        properties: vec![(
            "finalRecipient".into(),
            "urn:oasis:names:tc:ebcore:partyid-type:unregistered:C4".into(),
        )],
        payloads: vec![Payload {
            part_id: "cid:payload-1".into(),
            mime_type: "application/xml".into(),
            file,
        }],
        ..Default::default()
    }
}

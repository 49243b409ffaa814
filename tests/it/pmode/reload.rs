//! Hot reload: a broken edit keeps the old set; a valid one is used for the next match; a
//! message in flight keeps the P-Mode it started with.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use as4gw::pmode::matching::{match_inbound, MessageKey};
use as4gw::pmode::model::{PartyId, Service};
use as4gw::pmode::{Registry, SetContext};
use time::OffsetDateTime;

fn copy_presets(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["oots-red-blue.toml", "oots-blue-red.toml"] {
        let text = std::fs::read_to_string(root.join("pmodes").join(f)).unwrap();
        let text = text.replace("\"../certs/", &format!("\"{}/certs/", root.display()));
        std::fs::write(to.join(f), text).unwrap();
    }
}

fn request() -> MessageKey {
    let pt = Some("urn:oasis:names:tc:ebcore:partyid-type:unregistered:oots".to_string());
    MessageKey {
        from: PartyId {
            id: "red_gw".into(),
            id_type: pt.clone(),
        },
        from_role: "http://sdg.europa.eu/edelivery/gateway".into(),
        to: PartyId {
            id: "blue_gw".into(),
            id_type: pt,
        },
        to_role: "http://sdg.europa.eu/edelivery/gateway".into(),
        service: Service {
            value: "QueryManager".into(),
            service_type: Some("urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0".into()),
        },
        action: "ExecuteQueryRequest".into(),
        agreement: None,
    }
}

fn edit(dir: &Path, f: impl Fn(String) -> String) {
    let p = dir.join("oots-red-blue.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, f(text)).unwrap();
}

#[test]
fn reload_keeps_old_set_on_error_and_swaps_on_success() {
    let tmp = tempfile::tempdir().unwrap();
    copy_presets(tmp.path());
    let now = OffsetDateTime::now_utc();
    let reg = Registry::load(tmp.path(), SetContext::default(), now).unwrap();
    let in_flight = match_inbound(&reg.current(), &request()).unwrap();
    assert_eq!(in_flight.pmode.reception_awareness.retry.attempts, 4);

    // Broken: http endpoint. Refused; the old set stays.
    edit(tmp.path(), |t| {
        t.replace("https://127.0.0.1:9443/as4", "http://127.0.0.1:9443/as4")
            .replace("attempts = 4", "attempts = 9")
    });
    let err = reg.reload(now).unwrap_err();
    assert!(err.to_string().contains("is not an https URL"), "{err}");
    assert_eq!(
        match_inbound(&reg.current(), &request())
            .unwrap()
            .pmode
            .reception_awareness
            .retry
            .attempts,
        4
    );

    // Valid: the next match uses the new set.
    edit(tmp.path(), |t| {
        t.replace("http://127.0.0.1:9443/as4", "https://127.0.0.1:9443/as4")
    });
    reg.reload(now).unwrap();
    assert_eq!(
        match_inbound(&reg.current(), &request())
            .unwrap()
            .pmode
            .reception_awareness
            .retry
            .attempts,
        9
    );
    // The message that started before the reload still sees its P-Mode.
    assert_eq!(in_flight.pmode.reception_awareness.retry.attempts, 4);
}

#[tokio::test]
async fn watcher_picks_up_file_changes() {
    let tmp = tempfile::tempdir().unwrap();
    copy_presets(tmp.path());
    let reg = Arc::new(
        Registry::load(tmp.path(), SetContext::default(), OffsetDateTime::now_utc()).unwrap(),
    );
    let task = reg.spawn_watcher(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(120)).await;

    edit(tmp.path(), |t| {
        t.replace("attempts = 4", "attempts = 77   ")
    });
    let mut seen = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = match_inbound(&reg.current(), &request())
            .unwrap()
            .pmode
            .reception_awareness
            .retry
            .attempts;
        if seen == 77 {
            break;
        }
    }
    task.abort();
    assert_eq!(seen, 77);
}

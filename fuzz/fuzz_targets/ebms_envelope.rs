//! ebMS header and SOAP envelope parser (`as4gw::ebms`).
//!
//! The input is parsed as a SOAP envelope (`soap::parse_envelope`) and as a bare `eb:Messaging`
//! document (`Messaging::parse`); what parses is checked with `validate::validate_messaging`
//! and must round-trip: written (`Messaging::to_xml`, and inside `soap::build_envelope`) and
//! re-parsed, it gives the same model.
#![no_main]

use as4gw::ebms::{soap, validate, Messaging};
use as4gw::pmode::MessageKey;
use libfuzzer_sys::fuzz_target;

fn round_trip(m: &Messaging) {
    let _ = validate::validate_messaging(m);
    if let Some(u) = &m.user_message {
        let _ = validate::validate_user_message(u);
    }
    let xml = m.to_xml();
    let again = match Messaging::parse(xml.as_bytes()) {
        Ok(a) => a,
        Err(e) => panic!("written header does not re-parse: {e}\n{xml}\nmodel: {m:?}"),
    };
    assert_eq!(&again, m, "round trip changed the model\n{xml}");
    let env = soap::build_envelope(m, "_body", None);
    let parsed = match soap::parse_envelope(&env) {
        Ok(p) => p,
        Err(e) => panic!(
            "built envelope does not re-parse: {e}\n{}",
            String::from_utf8_lossy(&env)
        ),
    };
    assert_eq!(parsed.body_id(), Some("_body"));
    let mb = parsed.messaging.expect("built envelope has eb:Messaging");
    assert_eq!(&mb.messaging, m, "envelope round trip changed the model");
    assert!(mb.must_understand);
}

fuzz_target!(|data: &[u8]| {
    match soap::parse_envelope(data) {
        Ok(env) => {
            let _ = env.body_id();
            let _ = env.body_has_content();
            if let Some(mb) = &env.messaging {
                round_trip(&mb.messaging);
            }
        }
        Err(e) => {
            let _ = e.ebms_code();
            let _ = e.soap_fault_code();
            let _ = e.to_string();
        }
    }
    match Messaging::parse(data) {
        Ok(m) => round_trip(&m),
        Err(e) => {
            let _ = e.code();
            let _ = e.to_string();
        }
    }
    // The P-Mode matcher's key extraction reads the same envelope.
    let _ = MessageKey::from_envelope(data);
});

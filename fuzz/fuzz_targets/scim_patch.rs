//! Any bytes as a PATCH body: parsed, applied to a user and to a group, and
//! the result re-validated. Errors are SCIM errors with a 4xx status; nothing
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::scim::patch::{self, MemberChange};
use portcullis::scim::resource::{self, Mode};
use portcullis::scim::schema::{Kind, Schemas};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let ops = match patch::parse_request(&body) {
        Ok(ops) => ops,
        Err(e) => {
            assert!(e.status.is_client_error());
            return;
        }
    };
    for (kind, doc) in [
        (
            Kind::User,
            serde_json::json!({"userName": "a@b.c", "emails": [{"value": "a@b.c", "type": "work"}],
                               "name": {"givenName": "A"}, "active": true}),
        ),
        (Kind::Group, serde_json::json!({"displayName": "G"})),
    ] {
        let serde_json::Value::Object(mut doc) = doc else { return };
        let mut members = MemberChange::default();
        match patch::apply(&Schemas::default(), kind, "self", &mut doc, &ops, &mut members) {
            Ok(()) => {
                if let Err(e) = resource::normalize(&Schemas::default(), kind, &serde_json::Value::Object(doc), Mode::Patched) {
                    assert!(e.status.is_client_error());
                }
            }
            Err(e) => assert!(e.status.is_client_error()),
        }
    }
});

//! Any string: the filter parser returns an AST or `invalidFilter`, never
//! panics; an AST evaluates against a user and yields a pushdown (or none)
//! without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::scim::filter;
use portcullis::scim::schema::{Kind, Schemas};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match filter::parse(text) {
        Ok(f) => {
            let user = serde_json::json!({
                "id": "1", "userName": "a@b.c", "active": true,
                "emails": [{"value": "a@b.c", "type": "work", "primary": true}],
                "name": {"givenName": "A"},
                "meta": {"created": "2024-01-01T00:00:00Z"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x"}
            });
            let _ = filter::eval(&f, &user, &Schemas::default(), Kind::User);
            let _ = filter::indexed(&f, Kind::User);
            let _ = filter::indexed(&f, Kind::Group);
        }
        Err(e) => assert_eq!(e.scim_type, Some("invalidFilter")),
    }
    let _ = filter::parse_value_filter(text);
});

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn user() -> Value {
    json!({
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "Abc-123",
        "userName": "Bjensen@Example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "meta": {"resourceType": "User", "created": "2024-01-23T04:56:22Z",
                 "lastModified": "2024-05-13T04:42:34Z"},
        schema::ENTERPRISE: {"department": "Tour Operations", "manager": {"value": "26118915"}}
    })
}

fn matches(f: &str) -> bool {
    eval(
        &parse(f).unwrap_or_else(|e| panic!("{f}: {e}")),
        &user(),
        &Schemas::default(),
        Kind::User,
    )
}

#[test]
fn rfc_examples_and_operators() {
    for (f, want) in [
        (r#"userName eq "bjensen@example.com""#, true),
        (r#"USERNAME EQ "BJENSEN@EXAMPLE.COM""#, true),
        (r#"name.familyName co "ens""#, true),
        (r#"userName sw "bj""#, true),
        (r#"userName ew ".com""#, true),
        ("title pr", false),
        ("name pr", true),
        (r#"meta.lastModified gt "2024-05-01T00:00:00Z""#, true),
        (r#"meta.lastModified lt "2024-05-01T00:00:00+02:00""#, false),
        (r#"meta.created ge "2024-01-23T04:56:22Z""#, true),
        (r#"emails co "example.com""#, true),
        (
            r#"emails[type eq "work" and value co "@example.com"]"#,
            true,
        ),
        (
            r#"emails[type eq "home" and value co "@example.com"]"#,
            false,
        ),
        (
            r#"emails[type eq "work"].value eq "bjensen@example.com""#,
            true,
        ),
        (
            r#"emails[type eq "work"].value eq "babs@jensen.org""#,
            false,
        ),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            false,
        ),
        (r#"userName eq "x" or not (active eq false)"#, true),
        ("active eq true", true),
        (r#"active eq "True""#, true),
        (r#"active ne true"#, false),
        // externalId is case-exact; Entra sometimes leaves it unquoted.
        (r#"externalId eq "Abc-123""#, true),
        (r#"externalId eq "abc-123""#, false),
        ("externalId eq Abc-123", true),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "B""#,
            true,
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
            true,
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
            true,
        ),
        (r#"userName ne "nobody""#, true),
        ("nickName eq null", true),
        (r#"userName gt "a" and userName lt "c""#, true),
        // `_` and `%` are not wildcards.
        (r#"userName co "%""#, false),
        (r#"userName sw "_""#, false),
    ] {
        assert_eq!(matches(f), want, "{f}");
    }
}

#[test]
fn precedence_not_and_or() {
    // and binds tighter than or.
    assert!(matches(
        r#"userName eq "x" and active eq true or active eq true"#
    ));
    assert!(!matches(
        r#"userName eq "x" and (active eq true or active eq true)"#
    ));
    assert_eq!(
        parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap(),
        Filter::Or(
            Box::new(parse(r#"a eq "1""#).unwrap()),
            Box::new(parse(r#"b eq "2" and c eq "3""#).unwrap())
        )
    );
}

#[test]
fn malformed_and_hostile_filters_are_invalid_filter() {
    let deep = format!("{}userName pr{}", "(".repeat(200), ")".repeat(200));
    let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
    for f in [
        "",
        "   ",
        "userName",
        "userName eq",
        "userName xx \"a\"",
        "userName eq \"unterminated",
        "(userName pr",
        "userName pr)",
        "emails[type eq \"work\"",
        "emails[emails[type pr]]",
        "emails[urn:x:y:type pr]",
        "not userName pr",
        "userName eq \"a\" and",
        "userName eq \"a\" or or",
        "1bad eq \"a\"",
        "user;Name eq \"a\"",
        "userName eq \"a\"; DROP TABLE scim_users; --",
        "userName eq \"\\uZZZZ\"",
        deep.as_str(),
        long.as_str(),
    ] {
        let e = parse(f).expect_err(f);
        assert_eq!(e.scim_type, Some("invalidFilter"), "{f}");
        assert_eq!(e.status, 400);
    }
}

#[test]
fn injection_like_strings_are_just_values() {
    let f = parse(r#"userName eq "x' OR '1'='1""#).unwrap();
    assert!(!eval(&f, &user(), &Schemas::default(), Kind::User));
    assert_eq!(
        indexed(&f, Kind::User),
        Some((ScimIndex::Name, "x' OR '1'='1".into()))
    );
}

#[test]
fn indexed_conjuncts() {
    let i = |f: &str, k| indexed(&parse(f).unwrap(), k);
    assert_eq!(
        i(r#"userName eq "A""#, Kind::User),
        Some((ScimIndex::Name, "A".into()))
    );
    assert_eq!(
        i(r#"active eq true and externalId eq "E""#, Kind::User),
        Some((ScimIndex::ExternalId, "E".into()))
    );
    assert_eq!(
        i(r#"displayName eq "G""#, Kind::Group),
        Some((ScimIndex::Name, "G".into()))
    );
    assert_eq!(
        i(r#"id eq "1" and members.value eq "2""#, Kind::Group),
        Some((ScimIndex::Id, "1".into()))
    );
    assert_eq!(i(r#"userName eq "A" or userName eq "B""#, Kind::User), None);
    assert_eq!(i(r#"not (userName eq "A")"#, Kind::User), None);
    assert_eq!(i(r#"userName co "A""#, Kind::User), None);
    assert_eq!(i(r#"displayName eq "G""#, Kind::User), None);
}

// ---- property tests -------------------------------------------------------

fn print_path(p: &AttrPath) -> String {
    let mut s = String::new();
    if let Some(u) = &p.urn {
        s.push_str(u);
        s.push(':');
    }
    s.push_str(&p.name);
    if let Some(sub) = &p.sub {
        s.push('.');
        s.push_str(sub);
    }
    s
}

fn print_value(v: &CompValue) -> String {
    match v {
        CompValue::Str(s) => serde_json::to_string(s).unwrap(),
        CompValue::Num(n) => format!("{n:?}"),
        CompValue::Bool(b) => b.to_string(),
        CompValue::Null => "null".into(),
    }
}

fn print_op(o: Op) -> &'static str {
    match o {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Co => "co",
        Op::Sw => "sw",
        Op::Ew => "ew",
        Op::Gt => "gt",
        Op::Ge => "ge",
        Op::Lt => "lt",
        Op::Le => "le",
    }
}

/// Fully parenthesised, so printing is unambiguous.
fn print(f: &Filter) -> String {
    match f {
        Filter::And(a, b) => format!("({}) and ({})", print(a), print(b)),
        Filter::Or(a, b) => format!("({}) or ({})", print(a), print(b)),
        Filter::Not(a) => format!("not ({})", print(a)),
        Filter::Present(p) => format!("{} pr", print_path(p)),
        Filter::Compare(p, o, v) => {
            format!("{} {} {}", print_path(p), print_op(*o), print_value(v))
        }
        Filter::ValuePath(p, inner) => format!("{}[{}]", print_path(p), print(inner)),
    }
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,8}".prop_filter("keyword", |s| {
        !["and", "or", "not", "pr"].contains(&s.to_ascii_lowercase().as_str())
    })
}

fn value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        any::<String>().prop_map(CompValue::Str),
        (-1_000_000i64..1_000_000).prop_map(|n| CompValue::Num(n as f64)),
        any::<bool>().prop_map(CompValue::Bool),
        Just(CompValue::Null),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Eq),
        Just(Op::Ne),
        Just(Op::Co),
        Just(Op::Sw),
        Just(Op::Ew),
        Just(Op::Gt),
        Just(Op::Ge),
        Just(Op::Lt),
        Just(Op::Le)
    ]
}

fn path(allow_urn: bool) -> impl Strategy<Value = AttrPath> {
    let urn = if allow_urn {
        prop_oneof![
            Just(None),
            Just(Some(schema::USER.to_owned())),
            Just(Some(schema::ENTERPRISE.to_owned()))
        ]
        .boxed()
    } else {
        Just(None).boxed()
    };
    let sub = if allow_urn {
        proptest::option::of(name()).boxed()
    } else {
        Just(None).boxed()
    };
    (urn, name(), sub).prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
}

fn leaf(top: bool) -> impl Strategy<Value = Filter> {
    prop_oneof![
        path(top).prop_map(Filter::Present),
        (path(top), op_strategy(), value()).prop_map(|(p, o, v)| Filter::Compare(p, o, v)),
    ]
}

fn logical(leaf: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    let value_path = (name(), logical(leaf(false).boxed()))
        .prop_map(|(n, f)| {
            Filter::ValuePath(
                AttrPath {
                    urn: None,
                    name: n,
                    sub: None,
                },
                Box::new(f),
            )
        })
        .boxed();
    logical(prop_oneof![leaf(true), value_path].boxed())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Printing any AST and parsing it back gives the same AST.
    #[test]
    fn print_parse_round_trip(f in filter()) {
        let text = print(&f);
        prop_assert_eq!(parse(&text).unwrap(), f, "{}", text);
    }

    /// Arbitrary input never panics; it parses or is `invalidFilter`.
    #[test]
    fn arbitrary_input_is_ok_or_invalid_filter(s in any::<String>()) {
        if let Err(e) = parse(&s) {
            prop_assert_eq!(e.scim_type, Some("invalidFilter"));
        }
    }

    /// Token soup from the grammar's own alphabet never panics either.
    #[test]
    fn token_soup(words in proptest::collection::vec(prop_oneof![
        Just("("), Just(")"), Just("["), Just("]"), Just("and"), Just("or"), Just("not"),
        Just("eq"), Just("pr"), Just("userName"), Just("emails"), Just("\"x\""), Just(".value"),
        Just("true"), Just("12")
    ], 0..40)) {
        let s = words.join(" ");
        if let Ok(f) = parse(&s) {
            let _ = eval(&f, &user(), &Schemas::default(), Kind::User);
        }
    }

    /// A pushed-down lookup never drops a match: whenever the filter
    /// matches a user, the indexed conjunct (if any) matches it too.
    #[test]
    fn pushdown_is_sound(f in filter()) {
        let u = user();
        if eval(&f, &u, &Schemas::default(), Kind::User)
            && let Some((index, v)) = indexed(&f, Kind::User)
        {
            let ok = match index {
                ScimIndex::Name => v.to_lowercase() == "bjensen@example.com",
                ScimIndex::ExternalId => v == "Abc-123",
                ScimIndex::Id => v == "2819c223-7f76-453a-919d-413861904646",
            };
            prop_assert!(ok);
        }
    }
}

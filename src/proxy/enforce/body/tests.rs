use super::*;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn email() -> FieldSpec {
    FieldSpec::new(None, None)
}

async fn value(ct: Option<&str>, body: &str, f: &FieldSpec) -> Result<String, Refusal> {
    email_value(ct, None, Bytes::from(body.to_owned()), f).await
}

fn multipart(parts: &[(&str, &str)]) -> (String, String) {
    let mut body = String::new();
    for (disposition, v) in parts {
        body.push_str(&format!(
            "--XyZ\r\nContent-Disposition: form-data; {disposition}\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str("--XyZ--\r\n");
    ("multipart/form-data; boundary=XyZ".into(), body)
}

#[tokio::test]
async fn reads_one_email_from_every_supported_shape() {
    let f = email();
    assert_eq!(
        value(Some(FORM), "email=a%40acme.com&password=x", &f).await,
        Ok("a@acme.com".into())
    );
    assert_eq!(
        value(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            "EMAIL=a@acme.com",
            &f
        )
        .await,
        Ok("a@acme.com".into())
    );
    assert_eq!(
        value(Some(JSON), r#"{"Email":"c@acme.com","password":"x"}"#, &f).await,
        Ok("c@acme.com".into())
    );
    assert_eq!(
        value(
            Some("application/vnd.api+json"),
            r#"{"email":"c@acme.com"}"#,
            &f
        )
        .await,
        Ok("c@acme.com".into())
    );
    let (ct, body) = multipart(&[("name=\"email\"", "m@acme.com"), ("name=\"password\"", "x")]);
    assert_eq!(value(Some(&ct), &body, &f).await, Ok("m@acme.com".into()));

    let nested = FieldSpec::new(None, Some("/user/email"));
    assert_eq!(
        value(Some(JSON), r#"{"user":{"email":"d@acme.com"}}"#, &nested).await,
        Ok("d@acme.com".into())
    );
    // The same endpoint posted as a Rails-style form.
    assert_eq!(
        value(Some(FORM), "user%5Bemail%5D=d@acme.com", &nested).await,
        Ok("d@acme.com".into())
    );
    let custom = FieldSpec::new(Some("login"), None);
    assert_eq!(
        value(Some(FORM), "login=b@acme.com", &custom).await,
        Ok("b@acme.com".into())
    );
    assert_eq!(
        value(Some(JSON), r#"{"login":"b@acme.com"}"#, &custom).await,
        Ok("b@acme.com".into())
    );
}

#[tokio::test]
async fn refuses_what_another_parser_could_read_differently() {
    let f = email();
    let (mp_dup_ct, mp_dup) = multipart(&[
        ("name=\"email\"", "a@free.com"),
        ("name=\"EMAIL\"", "b@acme.com"),
    ]);
    let (mp_anon_ct, mp_anon) = multipart(&[("name*=utf-8''email", "b@acme.com")]);
    let cases: Vec<(Option<&str>, &str, Refusal)> = vec![
        (
            Some(FORM),
            "email=a@free.com&email=b@acme.com",
            Refusal::Duplicate,
        ),
        (
            Some(FORM),
            "email=a@free.com&x=1;email=b@acme.com",
            Refusal::Duplicate,
        ),
        (
            Some(FORM),
            "email=a@free.com&Email=b@acme.com",
            Refusal::Duplicate,
        ),
        (Some(FORM), "email[]=b@acme.com", Refusal::Duplicate),
        (Some(FORM), "email[0]=b@acme.com", Refusal::Duplicate),
        (Some(FORM), "password=x", Refusal::NoEmail),
        (Some(FORM), "email=%ff", Refusal::Unparseable),
        (
            Some("application/x-www-form-urlencoded; charset=utf-16"),
            "email=a@acme.com",
            Refusal::ContentType,
        ),
        (
            Some(JSON),
            r#"{"email":"a@free.com","email":"b@acme.com"}"#,
            Refusal::Duplicate,
        ),
        (
            Some(JSON),
            r#"{"email":"a@free.com","EMAIL":"b@acme.com"}"#,
            Refusal::Duplicate,
        ),
        (
            Some(JSON),
            r#"{"email":["b@acme.com"]}"#,
            Refusal::Duplicate,
        ),
        (Some(JSON), r#"{"email":5}"#, Refusal::NotAnEmail),
        (
            Some(JSON),
            r#"{"x":{"a":1,"a":2},"email":"a@free.com"}"#,
            Refusal::Duplicate,
        ),
        (Some(JSON), r#"{not json"#, Refusal::Unparseable),
        (
            Some(JSON),
            r#"{"email":"a@free.com"} trailing"#,
            Refusal::Unparseable,
        ),
        (
            Some(JSON),
            "\u{feff}{\"email\":\"a@free.com\"}",
            Refusal::Unparseable,
        ),
        (
            Some("text/plain"),
            r#"{"email":"b@acme.com"}"#,
            Refusal::ContentType,
        ),
        (
            Some("application/xml"),
            "<email>b@acme.com</email>",
            Refusal::ContentType,
        ),
        (Some("garbage"), "email=b@acme.com", Refusal::ContentType),
        (None, "email=b@acme.com", Refusal::ContentType),
        (None, "", Refusal::NoEmail),
        (Some(&mp_dup_ct), &mp_dup, Refusal::Duplicate),
        (Some(&mp_anon_ct), &mp_anon, Refusal::Unparseable),
        (
            Some("multipart/form-data; boundary=XyZ"),
            "--XyZ\r\nbroken",
            Refusal::Unparseable,
        ),
        (Some("multipart/form-data"), "", Refusal::Unparseable),
    ];
    for (ct, body, want) in cases {
        assert_eq!(value(ct, body, &f).await, Err(want), "{ct:?} {body:?}");
    }
    // Duplicate JSON keys are refused whatever the depth: `wanted` is the
    // duplicate deep in the structure.
    assert_eq!(
        email_value(
            Some(FORM),
            Some("gzip"),
            Bytes::from_static(b"email=a@acme.com"),
            &f
        )
        .await,
        Err(Refusal::ContentEncoding)
    );
}

#[test]
fn query_credentials() {
    let f = email();
    let pw = FieldSpec::new(Some("password"), None);
    assert_eq!(query_names("next=/x", &[&f, &pw]), Ok(false));
    assert_eq!(query_names("EMAIL=a@acme.com", &[&f, &pw]), Ok(true));
    assert_eq!(query_names("x=1;password=y", &[&f, &pw]), Ok(true));
    assert_eq!(
        query_names("e.mail=1", &[&FieldSpec::new(Some("e_mail"), None)]),
        Ok(true)
    );
    assert_eq!(query_names("a=%ff", &[&f]), Err(Refusal::Unparseable));
}

/// The labels are the `reason` of the enforcement-refusal metric and of
/// the log line.
#[test]
fn refusal_labels_are_stable() {
    use Refusal::*;
    assert_eq!(
        [
            Unparseable,
            ContentType,
            ContentEncoding,
            NoEmail,
            Duplicate,
            NotAnEmail,
            QueryCredentials,
            TooLarge,
        ]
        .map(Refusal::label),
        [
            "unparseable",
            "content_type",
            "content_encoding",
            "no_email",
            "duplicate_email",
            "not_an_email",
            "query_credentials",
            "too_large",
        ]
    );
}

/// A JSON pointer walks arrays by index, as RFC 6901 says.
#[tokio::test]
async fn json_pointers_index_arrays() {
    let f = FieldSpec::new(None, Some("/users/0/email"));
    let body = r#"{"users":[{"email":"e@acme.com"},{"email":"f@acme.com"}]}"#;
    assert_eq!(value(Some(JSON), body, &f).await, Ok("e@acme.com".into()));
    for missing in ["/users/2/email", "/users/x/email"] {
        let f = FieldSpec::new(None, Some(missing));
        assert_eq!(value(Some(JSON), body, &f).await, Err(Refusal::NoEmail));
    }
}

#[tokio::test]
async fn identity_is_no_content_encoding() {
    let r = email_value(
        Some(FORM),
        Some(" Identity "),
        Bytes::from_static(b"email=a@acme.com"),
        &email(),
    )
    .await;
    assert_eq!(r, Ok("a@acme.com".into()));
}

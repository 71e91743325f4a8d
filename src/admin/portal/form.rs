//! Form bodies: read once, bounded, before the access layers (which check
//! the CSRF field), as `application/x-www-form-urlencoded` or
//! `multipart/form-data` (an uploaded metadata file arrives as a field's
//! text).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::message;

/// More fields than any portal form has, by far: a bound on work, not a
/// feature.
const MAX_FIELDS: usize = 256;

/// A form's fields in order (names may repeat: the role mapping's rows).
#[derive(Clone, Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The first value of `name`, trimmed, if not empty.
    pub fn opt(&self, name: &str) -> Option<String> {
        let v = self.get(name).trim();
        (!v.is_empty()).then(|| v.to_owned())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FormError {
    Malformed,
}

/// Parses a body by its content type.
pub(crate) async fn parse(content_type: &str, body: bytes::Bytes) -> Result<Fields, FormError> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut fields = Vec::new();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => {
            for (k, v) in form_urlencoded::parse(&body) {
                if fields.len() == MAX_FIELDS {
                    return Err(FormError::Malformed);
                }
                fields.push((k.into_owned(), v.into_owned()));
            }
        }
        "multipart/form-data" => {
            let boundary =
                multer::parse_boundary(content_type).map_err(|_| FormError::Malformed)?;
            let stream =
                futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
            let mut mp = multer::Multipart::new(stream, boundary);
            while let Some(field) = mp.next_field().await.map_err(|_| FormError::Malformed)? {
                if fields.len() == MAX_FIELDS {
                    return Err(FormError::Malformed);
                }
                let name = field.name().unwrap_or("").to_owned();
                let text = field.text().await.map_err(|_| FormError::Malformed)?;
                fields.push((name, text));
            }
        }
        _ => return Err(FormError::Malformed),
    }
    Ok(Fields(fields))
}

/// Reads a POST's form (at most `limit` bytes) into a [`Fields`]
/// extension; a body over the limit or one that doesn't parse is answered
/// here.
pub(crate) async fn read_form(State(limit): State<usize>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                &format!(
                    "The form was larger than {} KiB. Give a metadata URL instead of the file, or ask the operator to raise the limit.",
                    limit / 1024
                ),
            );
        }
    };
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    match parse(&ct, bytes).await {
        Ok(fields) => {
            parts.extensions.insert(fields);
            next.run(Request::from_parts(parts, axum::body::Body::empty()))
                .await
        }
        Err(_) => message(
            StatusCode::BAD_REQUEST,
            "Form not understood",
            "The form could not be read. Go back, reload the page and try again.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urlencoded_and_multipart_forms_parse_and_are_bounded() {
        let f = parse(
            "application/x-www-form-urlencoded",
            "a=1&b=x+y&a=2&c=%3Cscript%3E".into(),
        )
        .await
        .unwrap();
        assert_eq!(f.get("a"), "1");
        assert_eq!(f.all("a"), ["1", "2"]);
        assert_eq!(f.get("b"), "x y");
        assert_eq!(f.get("c"), "<script>");
        assert_eq!(f.get("missing"), "");
        assert_eq!(f.opt("missing"), None);
        let body = "--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.xml\"\r\nContent-Type: text/xml\r\n\r\n<x/>\r\n--XX--\r\n";
        let f = parse("multipart/form-data; boundary=XX", body.into())
            .await
            .unwrap();
        assert_eq!(f.get("csrf"), "tok");
        assert_eq!(f.get("file"), "<x/>");
        assert_eq!(
            parse("multipart/form-data", body.into()).await.unwrap_err(),
            FormError::Malformed
        );
        assert_eq!(
            parse("application/json", "{}".into()).await.unwrap_err(),
            FormError::Malformed
        );
        let many = vec!["a=1"; MAX_FIELDS + 1].join("&");
        assert_eq!(
            parse("application/x-www-form-urlencoded", many.into())
                .await
                .unwrap_err(),
            FormError::Malformed
        );
    }
}

//! `${NAME}` interpolation, so secrets live in the environment rather than in
//! a file that ends up in version control. A missing variable is an error:
//! silently substituting an empty session key would be a security bug.

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error("environment variable `{0}` is not set")]
    Missing(String),
    #[error("unterminated `${{` (write `$${{` for a literal `${{`)")]
    Unterminated,
    #[error("`{0}` is not a valid environment variable name")]
    BadName(String),
}

/// Replaces each `${NAME}` using `lookup`; `$${` yields a literal `${`.
pub fn interpolate(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(InterpolateError::Unterminated)?;
            let name = &tail[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(InterpolateError::BadName(name.to_owned()));
            }
            let value = lookup(name).ok_or_else(|| InterpolateError::Missing(name.to_owned()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_variables_anywhere_in_the_string() {
        assert_eq!(
            interpolate("a${KEY}b${KEY}", &env).unwrap(),
            "as3cretbs3cret"
        );
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(interpolate("no dollars", &env).unwrap(), "no dollars");
        assert_eq!(interpolate("cost $5", &env).unwrap(), "cost $5");
    }

    #[test]
    fn escapes_and_errors() {
        assert_eq!(interpolate("$${KEY}", &env).unwrap(), "${KEY}");
        assert_eq!(
            interpolate("${NOPE}", &env),
            Err(InterpolateError::Missing("NOPE".into()))
        );
        assert_eq!(
            interpolate("${KEY", &env),
            Err(InterpolateError::Unterminated)
        );
        assert_eq!(
            interpolate("${1X}", &env),
            Err(InterpolateError::BadName("1X".into()))
        );
        assert_eq!(
            interpolate("${a-b}", &env),
            Err(InterpolateError::BadName("a-b".into()))
        );
    }
}

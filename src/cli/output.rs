//! What a command prints, and how listings write times.

/// A command's text: `stdout` is the result (what a script captures),
/// `stderr` notes and warnings for the person at the terminal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// `text` on stdout, ending with a newline.
    pub fn text(text: impl Into<String>) -> Self {
        let mut stdout = text.into();
        if !stdout.is_empty() && !stdout.ends_with('\n') {
            stdout.push('\n');
        }
        Self {
            stdout,
            stderr: String::new(),
        }
    }

    /// Adds `line` to stderr.
    pub fn note(mut self, line: impl AsRef<str>) -> Self {
        self.stderr.push_str(line.as_ref());
        self.stderr.push('\n');
        self
    }

    pub(super) fn print(&self) {
        print!("{}", self.stdout);
        eprint!("{}", self.stderr);
    }
}

/// Unix seconds as RFC 3339 in UTC (`2026-01-31T09:30:00Z`): every listing
/// writes times this way, so they sort as text and paste into any tool.
/// A value outside chrono's range (not a real time) stays a number.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn rfc3339_extremes_do_not_panic() {
        assert_eq!(rfc3339(i64::MAX / 2), (i64::MAX / 2).to_string());
        assert_eq!(rfc3339(i64::MIN / 2), (i64::MIN / 2).to_string());
    }

    #[test]
    fn text_ends_with_a_newline() {
        assert_eq!(Output::text("ok").stdout, "ok\n");
        assert_eq!(Output::text("ok\n").stdout, "ok\n");
        assert_eq!(Output::text("").stdout, "");
        assert_eq!(Output::text("ok").note("careful").stderr, "careful\n");
    }
}

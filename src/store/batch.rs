//! Multi-row statements for writes that come in batches (a transaction's
//! webhook events, a SCIM Bulk request's new users). With SQLite every
//! statement is a hand-off to sqlx's connection thread and back, so one
//! statement per row costs more in thread wake-ups than in SQL.
//!
//! Batches are cut into powers of two up to [`MAX_ROWS`], so a table has at
//! most seven distinct statements (prepared-statement caches stay small)
//! and every statement stays far below both backends' bound-parameter
//! limits.

/// Rows per statement at most.
pub(super) const MAX_ROWS: usize = 64;

/// How many of `remaining` rows the next statement takes: the largest power
/// of two not above it, capped at [`MAX_ROWS`]. `remaining` must be > 0.
pub(super) fn next_size(remaining: usize) -> usize {
    debug_assert!(remaining > 0);
    let pow = 1usize << (usize::BITS - 1 - remaining.max(1).leading_zeros());
    pow.min(MAX_ROWS)
}

/// `head` followed by `rows` copies of `row`, comma-separated, where `?N`
/// in `row` (1-based, up to `per_row`) becomes that row's `$` parameter:
/// `?1` of the second row of a 3-parameter row is `$4`.
pub(super) fn values_sql(head: &str, row: &str, per_row: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 8));
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let mut chars = row.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '?' {
                sql.push(c);
                continue;
            }
            let start = i + 1;
            let mut end = start;
            while let Some((j, d)) = chars.peek().copied() {
                if !d.is_ascii_digit() {
                    break;
                }
                end = j + 1;
                chars.next();
            }
            let n: usize = row[start..end].parse().unwrap_or(0);
            debug_assert!((1..=per_row).contains(&n), "bad parameter in {row}");
            sql.push('$');
            sql.push_str(&(r * per_row + n).to_string());
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_two_that_add_up() {
        for total in 1..300 {
            let mut left = total;
            let mut seen = std::collections::BTreeSet::new();
            while left > 0 {
                let n = next_size(left);
                assert!(n.is_power_of_two() && n <= MAX_ROWS && n <= left);
                seen.insert(n);
                left -= n;
            }
            assert!(seen.len() <= 7);
        }
        assert_eq!(next_size(100), 64);
        assert_eq!(next_size(36), 32);
        assert_eq!(next_size(1), 1);
    }

    #[test]
    fn parameters_are_numbered_per_row() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b, c) VALUES ", "(?1, 'x', ?2, ?2)", 2, 3),
            "INSERT INTO t (a, b, c) VALUES ($1, 'x', $2, $2), ($3, 'x', $4, $4), ($5, 'x', $6, $6)"
        );
        assert_eq!(values_sql("", "(?10, ?1)", 10, 2), "($10, $1), ($20, $11)");
    }
}

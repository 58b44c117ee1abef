//! Entry ids in Redis form, `<timestamp ms>-<seq_num>`: both parts grow with every
//! record of an S2 stream, so ids order the way seq_nums do, and the seq_num part alone
//! finds a record.

use crate::api::ApiError;

/// Formats a record's id.
pub fn entry_id(timestamp: u64, seq_num: u64) -> String {
    format!("{timestamp}-{seq_num}")
}

/// Where a range bound falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `-` or `+`.
    Open,
    /// A full id: at this seq_num.
    Seq(u64),
    /// A timestamp alone: the first record at or after it (start), the last at or
    /// before it (end).
    Time(u64),
}

/// A range bound, `(` marking it exclusive (as in `XRANGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeBound {
    pub at: Bound,
    pub exclusive: bool,
}

/// Parses `<ms>-<seq>` (the seq_num).
pub fn parse_id(text: &str) -> Result<u64, ApiError> {
    let (ms, seq) = text.split_once('-').ok_or_else(|| bad_id(text))?;
    ms.parse::<u64>().map_err(|_| bad_id(text))?;
    seq.parse().map_err(|_| bad_id(text))
}

/// Parses a range bound: `-`, `+`, `<ms>-<seq>`, `<ms>`, each optionally `(`-prefixed.
pub fn parse_bound(text: &str, open: &str) -> Result<RangeBound, ApiError> {
    let (exclusive, rest) = match text.strip_prefix('(') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let at = if rest == open {
        if exclusive {
            return Err(bad_id(text));
        }
        Bound::Open
    } else if rest.contains('-') {
        Bound::Seq(parse_id(rest)?)
    } else {
        Bound::Time(rest.parse().map_err(|_| bad_id(text))?)
    };
    Ok(RangeBound { at, exclusive })
}

/// A range's two bounds as given (`-` and `+` when absent).
pub fn parse_range(
    start: Option<&str>,
    end: Option<&str>,
) -> Result<(RangeBound, RangeBound), ApiError> {
    Ok((
        parse_bound(start.unwrap_or("-"), "-")?,
        parse_bound(end.unwrap_or("+"), "+")?,
    ))
}

fn bad_id(text: &str) -> ApiError {
    ApiError::bad_query(format!(
        "invalid entry id `{text}`: expected `<ms>-<seq>`, `<ms>`, `-` or `+`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_bounds_parse() {
        assert_eq!(entry_id(1700, 5), "1700-5");
        assert_eq!(parse_id("1700-5").unwrap(), 5);
        for bad in ["", "5", "a-1", "1-b", "-1", "1-"] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
        let b = |t: &str, open: &str| parse_bound(t, open).unwrap();
        assert_eq!(b("-", "-").at, Bound::Open);
        assert_eq!(b("+", "+").at, Bound::Open);
        assert_eq!(
            b("(1700-5", "-"),
            RangeBound {
                at: Bound::Seq(5),
                exclusive: true
            }
        );
        assert_eq!(b("1700", "+").at, Bound::Time(1700));
        assert!(parse_bound("(-", "-").is_err());
        assert!(parse_bound("+", "-").is_err());
        assert!(parse_bound("x", "-").is_err());
    }
}

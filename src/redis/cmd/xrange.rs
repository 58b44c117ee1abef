//! `XRANGE key start end [COUNT n]` and `XREVRANGE key end start [COUNT n]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::{EntryId, interval_bound};

#[derive(Debug, Clone, PartialEq)]
pub struct Xrange {
    pub key: Bytes,
    /// Inclusive bounds, exclusive `(` ones already stepped; `start > end` is an empty range.
    pub start: EntryId,
    pub end: EntryId,
    /// `COUNT`; a negative count is 0 (an empty reply), as Redis.
    pub count: Option<u64>,
    /// `XREVRANGE`: newest first.
    pub rev: bool,
}

impl Xrange {
    /// `rev`: the arguments are `end start` (`XREVRANGE`).
    pub fn parse(args: &Args, rev: bool) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -4)?;
        let all = args.all();
        let (start, end) = if rev {
            (&all[2], &all[1])
        } else {
            (&all[1], &all[2])
        };
        let start = interval_bound(start, 0, true)?;
        let end = interval_bound(end, u64::MAX, false)?;
        let mut count = None;
        let mut j = 3;
        while j < all.len() {
            if super::is(&all[j], "COUNT") && j + 1 < all.len() {
                count = Some(super::integer(&all[j + 1])?.max(0) as u64);
                j += 2;
            } else {
                return Err(RedisError::syntax());
            }
        }
        Ok(Self {
            key: all[0].clone(),
            start,
            end,
            count,
            rev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};

    fn xrange(words: &[&str]) -> Xrange {
        match ok(words) {
            Command::Xrange(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bounds_and_count() {
        assert_eq!(
            xrange(&["XRANGE", "s", "-", "+"]),
            Xrange {
                key: b("s"),
                start: EntryId::ZERO,
                end: EntryId::MAX,
                count: None,
                rev: false
            }
        );
        let bounds = |words: &[&str]| {
            let c = xrange(words);
            (c.start, c.end)
        };
        // A missing seq is 0 for a start, u64::MAX for an end.
        assert_eq!(
            bounds(&["XRANGE", "s", "5", "7"]),
            (EntryId::new(5, 0), EntryId::new(7, u64::MAX))
        );
        // Exclusive bounds are stepped (after the missing seq is filled in).
        assert_eq!(
            bounds(&["XRANGE", "s", "(1-1", "(3-5"]),
            (EntryId::new(1, 2), EntryId::new(3, 4))
        );
        assert_eq!(
            bounds(&["XRANGE", "s", "(1", "(3"]),
            (EntryId::new(1, 1), EntryId::new(3, u64::MAX - 1))
        );
        assert_eq!(
            bounds(&["XRANGE", "s", "(5-18446744073709551615", "(6-0"]),
            (EntryId::new(6, 0), EntryId::new(5, u64::MAX))
        );
        assert_eq!(
            bounds(&["XRANGE", "s", "-\0", "+"]),
            (EntryId::ZERO, EntryId::MAX)
        );
        // XREVRANGE takes `end start`.
        let c = xrange(&["XREVRANGE", "s", "(3-5", "-", "COUNT", "1"]);
        assert_eq!(
            (c.start, c.end, c.count, c.rev),
            (EntryId::ZERO, EntryId::new(3, 4), Some(1), true)
        );
        // `start > end` is no error.
        assert_eq!(
            bounds(&["XRANGE", "s", "+", "-"]),
            (EntryId::MAX, EntryId::ZERO)
        );
        let count = |words: &[&str]| xrange(words).count;
        // The last COUNT wins; 0 and negative counts are 0 (Redis replies a null array).
        assert_eq!(
            count(&["XRANGE", "s", "-", "+", "COUNT", "1", "count", "2"]),
            Some(2)
        );
        assert_eq!(count(&["XRANGE", "s", "-", "+", "COUNT", "0"]), Some(0));
        assert_eq!(count(&["XRANGE", "s", "-", "+", "COUNT", "-1"]), Some(0));
        assert_eq!(count(&["XRANGE", "s", "-", "+", "COUNT\0", "3"]), Some(3));
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XRANGE", "s", "-"]),
            "ERR wrong number of arguments for 'xrange' command"
        );
        assert_eq!(err(&["XRANGE", "s", "-", "+", "COUNT"]), "ERR syntax error");
        assert_eq!(
            err(&["XRANGE", "s", "-", "+", "count", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err(&["XRANGE", "s", "-", "+", "foo"]), "ERR syntax error");
        assert_eq!(
            err(&["XRANGE", "s", "(", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "(-", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "-", "(+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&[
                "XRANGE",
                "s",
                "(18446744073709551615-18446744073709551615",
                "+"
            ]),
            "ERR invalid start ID for the interval"
        );
        assert_eq!(
            err(&["XRANGE", "s", "-", "(0-0"]),
            "ERR invalid end ID for the interval"
        );
        assert_eq!(
            err(&["XRANGE", "s", "x", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "x", "y"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "-", "y"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&[
                "XRANGE",
                "s",
                "(18446744073709551615-18446744073709551615",
                "y"
            ]),
            "ERR invalid start ID for the interval"
        );
        assert_eq!(
            err(&["XRANGE", "s", "5-*", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "((1", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "(1-*", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "-", "+", "COUNT", "1", "extra"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XRANGE", "s", "-", "+", "COUNT", " 1"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XRANGE", "nokey", "x", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "nokey", "-", "+", "COUNT", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&[
                "XREVRANGE",
                "s",
                "(0-0",
                "(18446744073709551615-18446744073709551615"
            ]),
            "ERR invalid start ID for the interval"
        );
        assert_eq!(
            err(&["XREVRANGE", "s", "(+", "x"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XREVRANGE", "s", "x", "(+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XREVRANGE", "s"]),
            "ERR wrong number of arguments for 'xrevrange' command"
        );
        assert_eq!(
            err(&["XRANGE", "s", "(\0", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XRANGE", "s", "-", "+", "COUNT", "1\0"]),
            "ERR value is not an integer or out of range"
        );
    }
}

//! `XPENDING key group [[IDLE ms] start end count [consumer]]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::{EntryId, interval_bound};

#[derive(Debug, Clone, PartialEq)]
pub struct Xpending {
    pub key: Bytes,
    pub group: Bytes,
    /// The extended form; `None` is the summary.
    pub range: Option<PendingRange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingRange {
    pub min_idle_ms: Option<u64>,
    /// Inclusive, exclusive `(` bounds already stepped.
    pub start: EntryId,
    pub end: EntryId,
    /// A negative count is 0.
    pub count: u64,
    pub consumer: Option<Bytes>,
}

impl Xpending {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -3)?;
        let all = args.all();
        let argc = all.len() + 1;
        if argc != 3 && !(6..=9).contains(&argc) {
            return Err(RedisError::syntax());
        }
        let mut range = None;
        if argc >= 6 {
            let mut start = 2;
            let mut min_idle_ms = None;
            if super::is(&all[2], "IDLE") {
                let idle = super::integer(&all[3])?;
                if argc < 8 {
                    return Err(RedisError::syntax());
                }
                min_idle_ms = (idle > 0).then_some(idle as u64);
                start += 2;
            }
            let count = super::integer(&all[start + 2])?.max(0) as u64;
            let lo = interval_bound(&all[start], 0, true)?;
            let hi = interval_bound(&all[start + 1], u64::MAX, false)?;
            range = Some(PendingRange {
                min_idle_ms,
                start: lo,
                end: hi,
                count,
                consumer: all.get(start + 3).cloned(),
            });
        }
        Ok(Self {
            key: all[0].clone(),
            group: all[1].clone(),
            range,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};

    fn range(words: &[&str]) -> Option<PendingRange> {
        match ok(words) {
            Command::Xpending(c) => {
                assert_eq!((c.key, c.group), (b("s"), b("g")));
                c.range
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn summary_and_extended() {
        assert_eq!(range(&["XPENDING", "s", "g"]), None);
        assert_eq!(
            range(&["XPENDING", "s", "g", "-", "+", "10"]),
            Some(PendingRange {
                min_idle_ms: None,
                start: EntryId::ZERO,
                end: EntryId::MAX,
                count: 10,
                consumer: None,
            })
        );
        assert_eq!(
            range(&["XPENDING", "s", "g", "idle", "5", "(1", "(3", "-5", "c"]),
            Some(PendingRange {
                min_idle_ms: Some(5),
                start: EntryId::new(1, 1),
                end: EntryId::new(3, u64::MAX - 1),
                count: 0,
                consumer: Some(b("c")),
            })
        );
        // Without IDLE, arguments after the consumer are ignored (up to 9 in all).
        let r = range(&["XPENDING", "s", "g", "-", "+", "10", "c", "extra", "more"]).unwrap();
        assert_eq!(r.consumer, Some(b("c")));
        // IDLE 0 or negative filters nothing.
        let r = range(&["XPENDING", "s", "g", "IDLE", "-5", "-", "+", "10"]).unwrap();
        assert!(r.min_idle_ms.unwrap_or(0) == 0);
        assert!(range(&["XPENDING", "s", "g", "IDLE\0", "5", "-", "+", "1"]).is_some());
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XPENDING", "s"]),
            "ERR wrong number of arguments for 'xpending' command"
        );
        assert_eq!(err(&["XPENDING", "s", "g", "x"]), "ERR syntax error");
        assert_eq!(err(&["XPENDING", "s", "g", "-", "+"]), "ERR syntax error");
        assert_eq!(
            err(&["XPENDING", "s", "g", "-", "+", "10", "c", "e", "f", "g"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "IDLE", "5", "-", "+"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "IDLE", "5", "-"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "IDLE", "x", "-"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "IDLE", "x", "-", "+", "10"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "IDLE", "-", "+", "10"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "IDLE", "5", "-", "+", "10", "c", "x"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "IDLE", "5", "-", "+", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "-", "+", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "x", "+", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "x", "+", "10"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "-", "x", "10"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&[
                "XPENDING",
                "s",
                "g",
                "(18446744073709551615-18446744073709551615",
                "x",
                "10"
            ]),
            "ERR invalid start ID for the interval"
        );
        assert_eq!(
            err(&["XPENDING", "s", "g", "-", "(0-0", "10"]),
            "ERR invalid end ID for the interval"
        );
        assert_eq!(
            err(&["XPENDING", "nokey", "g", "x", "+", "10"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XPENDING", "s", "nog", "x", "+", "10"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
    }
}

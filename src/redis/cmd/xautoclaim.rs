//! `XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::{EntryId, interval_bound};

#[derive(Debug, Clone, PartialEq)]
pub struct Xautoclaim {
    pub key: Bytes,
    pub group: Bytes,
    pub consumer: Bytes,
    pub min_idle_ms: u64,
    /// Inclusive (a `(` start already stepped).
    pub start: EntryId,
    /// Default 100.
    pub count: u64,
    pub justid: bool,
}

impl Xautoclaim {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -6)?;
        let all = args.all();
        let min_idle = super::integer_or(&all[3], "Invalid min-idle-time argument for XAUTOCLAIM")?;
        let start = interval_bound(&all[4], 0, true)?;
        let (mut count, mut justid) = (100u64, false);
        let mut j = 5;
        while j < all.len() {
            let more = all.len() - 1 - j;
            if super::is(&all[j], "COUNT") && more > 0 {
                let max = (i64::MAX / 16) as u64;
                count = match super::integer_or(&all[j + 1], "COUNT must be > 0") {
                    Ok(n) if n >= 1 && (n as u64) <= max => n as u64,
                    _ => return Err(RedisError::err("COUNT must be > 0")),
                };
                j += 1;
            } else if super::is(&all[j], "JUSTID") {
                justid = true;
            } else {
                return Err(RedisError::syntax());
            }
            j += 1;
        }
        Ok(Self {
            key: all[0].clone(),
            group: all[1].clone(),
            consumer: all[2].clone(),
            min_idle_ms: min_idle.max(0) as u64,
            start,
            count,
            justid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};

    fn xautoclaim(words: &[&str]) -> Xautoclaim {
        match ok(words) {
            Command::Xautoclaim(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            xautoclaim(&["XAUTOCLAIM", "s", "g", "c", "10", "0"]),
            Xautoclaim {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
                min_idle_ms: 10,
                start: EntryId::ZERO,
                count: 100,
                justid: false,
            }
        );
        let c = xautoclaim(&[
            "XAUTOCLAIM",
            "s",
            "g",
            "c",
            "-9",
            "(1-1",
            "justid",
            "COUNT",
            "5",
            "COUNT",
            "6",
        ]);
        assert_eq!(
            (c.min_idle_ms, c.start, c.count, c.justid),
            (0, EntryId::new(1, 2), 6, true)
        );
        assert_eq!(
            xautoclaim(&["XAUTOCLAIM", "s", "g", "c", "0", "+"]).start,
            EntryId::MAX
        );
        assert_eq!(
            xautoclaim(&["XAUTOCLAIM", "s", "g", "c", "0", "-"]).start,
            EntryId::ZERO
        );
        assert_eq!(
            xautoclaim(&[
                "XAUTOCLAIM",
                "s",
                "g",
                "c",
                "0",
                "0",
                "COUNT",
                "576460752303423487"
            ])
            .count,
            576460752303423487
        );
    }

    /// Every error checked against redis-server 7.0.15 (they come before the group check).
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", "0"]),
            "ERR wrong number of arguments for 'xautoclaim' command"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", "x", "0"]),
            "ERR Invalid min-idle-time argument for XAUTOCLAIM"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "nokey", "g", "c", "x", "0"]),
            "ERR Invalid min-idle-time argument for XAUTOCLAIM"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "nokey", "g", "c", "0", "x"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "nokey", "g", "c", "0", "0", "FOO"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&[
                "XAUTOCLAIM",
                "s",
                "g",
                "c",
                "0",
                "(18446744073709551615-18446744073709551615"
            ]),
            "ERR invalid start ID for the interval"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", "0", "(+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT", "0"]),
            "ERR COUNT must be > 0"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT", "x"]),
            "ERR COUNT must be > 0"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT", "-1"]),
            "ERR COUNT must be > 0"
        );
        assert_eq!(
            err(&[
                "XAUTOCLAIM",
                "s",
                "g",
                "c",
                "0",
                "0",
                "COUNT",
                "576460752303423488"
            ]),
            "ERR COUNT must be > 0"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "nog", "c", "0", "0", "COUNT", "0"]),
            "ERR COUNT must be > 0"
        );
        assert_eq!(
            err(&["XAUTOCLAIM", "s", "g", "c", " 5", "0"]),
            "ERR Invalid min-idle-time argument for XAUTOCLAIM"
        );
    }
}

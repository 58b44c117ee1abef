//! `XCLAIM key group consumer min-idle-time id … [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::{engine::ClaimTime, redis::ids::EntryId};

#[derive(Debug, Clone, PartialEq)]
pub struct Xclaim {
    pub key: Bytes,
    pub group: Bytes,
    pub consumer: Bytes,
    pub min_idle_ms: u64,
    pub ids: Vec<EntryId>,
    /// The delivery time `IDLE` (as `now - idle`, `Idle`) or `TIME` sets, the last given.
    pub time: Option<ClaimTime>,
    /// `RETRYCOUNT`; a negative count is as if not given.
    pub retry_count: Option<u64>,
    pub force: bool,
    pub justid: bool,
    pub last_id: Option<EntryId>,
    /// An argument Redis refuses, reported after the group is found (as Redis orders it).
    pub late_error: Option<RedisError>,
}

impl Xclaim {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -6)?;
        let all = args.all();
        let mut c = Self {
            key: all[0].clone(),
            group: all[1].clone(),
            consumer: all[2].clone(),
            min_idle_ms: 0,
            ids: Vec::new(),
            time: None,
            retry_count: None,
            force: false,
            justid: false,
            last_id: None,
            late_error: None,
        };
        if let Err(e) = c.parse_rest(&all[3..]) {
            c.late_error = Some(e);
        }
        Ok(c)
    }

    /// Everything after `key group consumer`, which Redis reads after finding the group.
    fn parse_rest(&mut self, rest: &[Bytes]) -> RedisResult<()> {
        let min_idle = super::integer_or(&rest[0], "Invalid min-idle-time argument for XCLAIM")?;
        self.min_idle_ms = min_idle.max(0) as u64;
        let mut j = 1;
        while j < rest.len() {
            match crate::redis::ids::strict_id(&rest[j]) {
                Ok(id) => self.ids.push(id),
                Err(_) => break,
            }
            j += 1;
        }
        while j < rest.len() {
            let more = rest.len() - 1 - j;
            let opt = &rest[j][..];
            if super::is(opt, "FORCE") {
                self.force = true;
            } else if super::is(opt, "JUSTID") {
                self.justid = true;
            } else if super::is(opt, "IDLE") && more > 0 {
                j += 1;
                let ms = super::integer_or(&rest[j], "Invalid IDLE option argument for XCLAIM")?;
                self.time = Some(ClaimTime::Idle(ms));
            } else if super::is(opt, "TIME") && more > 0 {
                j += 1;
                let ms = super::integer_or(&rest[j], "Invalid TIME option argument for XCLAIM")?;
                self.time = Some(ClaimTime::Time(ms));
            } else if super::is(opt, "RETRYCOUNT") && more > 0 {
                j += 1;
                let n =
                    super::integer_or(&rest[j], "Invalid RETRYCOUNT option argument for XCLAIM")?;
                self.retry_count = (n >= 0).then_some(n as u64);
            } else if super::is(opt, "LASTID") && more > 0 {
                j += 1;
                self.last_id = Some(crate::redis::ids::strict_id(&rest[j])?);
            } else {
                return Err(RedisError::err(format!(
                    "Unrecognized XCLAIM option '{}'",
                    super::shown(opt, usize::MAX)
                )));
            }
            j += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};

    fn xclaim(words: &[&str]) -> Xclaim {
        match ok(words) {
            Command::Xclaim(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// The error Redis gives once the group is found.
    fn late(words: &[&str]) -> String {
        match xclaim(words).late_error {
            Some(RedisError::Reply(text)) => text,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    #[test]
    fn accepted_forms() {
        let c = xclaim(&[
            "XCLAIM",
            "s",
            "g",
            "c",
            "10",
            "1-1",
            "2",
            "IDLE",
            "5",
            "RETRYCOUNT",
            "2",
            "FORCE",
            "JUSTID",
            "LASTID",
            "3-5",
        ]);
        assert_eq!((c.key, c.group, c.consumer), (b("s"), b("g"), b("c")));
        assert_eq!(c.min_idle_ms, 10);
        assert_eq!(c.ids, vec![EntryId::new(1, 1), EntryId::new(2, 0)]);
        assert_eq!(c.time, Some(ClaimTime::Idle(5)));
        assert_eq!(c.retry_count, Some(2));
        assert!(c.force && c.justid);
        assert_eq!(c.last_id, Some(EntryId::new(3, 5)));
        assert_eq!(c.late_error, None);
        // IDLE and TIME set the same thing: the last one counts.
        assert_eq!(
            xclaim(&[
                "XCLAIM", "s", "g", "c", "0", "1-1", "IDLE", "5", "TIME", "6"
            ])
            .time,
            Some(ClaimTime::Time(6))
        );
        assert_eq!(
            xclaim(&[
                "XCLAIM", "s", "g", "c", "0", "1-1", "TIME", "6", "idle", "5"
            ])
            .time,
            Some(ClaimTime::Idle(5))
        );
        // A negative min-idle-time is 0, a negative RETRYCOUNT as if not given.
        let c = xclaim(&[
            "XCLAIM",
            "s",
            "g",
            "c",
            "-5",
            "1-1",
            "RETRYCOUNT",
            "-1",
            "JUSTID",
        ]);
        assert_eq!((c.min_idle_ms, c.retry_count, c.justid), (0, None, true));
        // No ids at all is fine; option words compare as C strings.
        let c = xclaim(&["XCLAIM", "s", "g", "c", "0", "JUSTID\0"]);
        assert!(c.ids.is_empty() && c.justid && c.late_error.is_none());
    }

    /// Redis checks the key and group first, then reads the rest.
    #[test]
    fn errors_as_redis_after_the_group() {
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "x", "1-1"]),
            "ERR Invalid min-idle-time argument for XCLAIM"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", " 0", "1-1", "JUSTID"]),
            "ERR Invalid min-idle-time argument for XCLAIM"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "FOO"]),
            "ERR Unrecognized XCLAIM option 'FOO'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "FORCE", "2-0"]),
            "ERR Unrecognized XCLAIM option '2-0'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "-"]),
            "ERR Unrecognized XCLAIM option '-'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "(1", "JUSTID"]),
            "ERR Unrecognized XCLAIM option '(1'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "IDLE"]),
            "ERR Unrecognized XCLAIM option 'IDLE'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "LASTID"]),
            "ERR Unrecognized XCLAIM option 'LASTID'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "FOO\0bar"]),
            "ERR Unrecognized XCLAIM option 'FOO'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "a\r\nb"]),
            "ERR Unrecognized XCLAIM option 'a  b'"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "IDLE", "x"]),
            "ERR Invalid IDLE option argument for XCLAIM"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "TIME", "x"]),
            "ERR Invalid TIME option argument for XCLAIM"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "RETRYCOUNT", "x"]),
            "ERR Invalid RETRYCOUNT option argument for XCLAIM"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "LASTID", "x"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            late(&["XCLAIM", "s", "g", "c", "0", "1-1", "LASTID", "-"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
    }

    #[test]
    fn arity() {
        assert_eq!(
            err(&["XCLAIM", "s", "g", "c", "0"]),
            "ERR wrong number of arguments for 'xclaim' command"
        );
    }
}

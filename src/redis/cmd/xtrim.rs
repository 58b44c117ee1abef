//! `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`

use bytes::Bytes;

use super::Args;
use super::TrimSpec;
use crate::redis::error::{RedisError, RedisResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Xtrim {
    pub key: Bytes,
    pub trim: TrimSpec,
}

impl Xtrim {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -4)?;
        let all = args.all();
        let (trim, _, _, _) = super::add_or_trim(&all[1..], false)?;
        Ok(Self {
            key: all[0].clone(),
            trim: trim.ok_or_else(RedisError::syntax)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::testing::{b, err, ok};
    use crate::redis::cmd::{Command, TrimBy};
    use crate::redis::ids::EntryId;

    fn trim(words: &[&str]) -> TrimSpec {
        match ok(words) {
            Command::Xtrim(c) => {
                assert_eq!(c.key, b("s"));
                c.trim
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepted_forms() {
        let spec = |by, approximate, limit| TrimSpec {
            by,
            approximate,
            limit,
        };
        assert_eq!(
            trim(&["XTRIM", "s", "MAXLEN", "10"]),
            spec(TrimBy::MaxLen(10), false, None)
        );
        assert_eq!(
            trim(&["XTRIM", "s", "maxlen", "=", "10"]),
            spec(TrimBy::MaxLen(10), false, None)
        );
        assert_eq!(
            trim(&["XTRIM", "s", "MAXLEN", "~", "10"]),
            spec(TrimBy::MaxLen(10), true, None)
        );
        assert_eq!(
            trim(&["XTRIM", "s", "LIMIT", "5", "MAXLEN", "~", "10"]),
            spec(TrimBy::MaxLen(10), true, Some(5))
        );
        assert_eq!(
            trim(&["XTRIM", "s", "MAXLEN", "~", "5", "LIMIT", "0"]),
            spec(TrimBy::MaxLen(5), true, Some(0))
        );
        assert_eq!(
            trim(&["XTRIM", "s", "MINID", "2"]),
            spec(TrimBy::MinId(EntryId::new(2, 0)), false, None)
        );
        assert_eq!(
            trim(&["XTRIM", "s", "MINID", "~", "2-1"]),
            spec(TrimBy::MinId(EntryId::new(2, 1)), true, None)
        );
        assert_eq!(
            trim(&["XTRIM", "s", "MAXLEN", "0"]),
            spec(TrimBy::MaxLen(0), false, None)
        );
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN"]),
            "ERR wrong number of arguments for 'xtrim' command"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "~"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "10", "extra"]),
            "ERR syntax error"
        );
        assert_eq!(err(&["XTRIM", "s", "foo", "bar"]), "ERR syntax error");
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "5", "MAXLEN", "10"]),
            "ERR syntax error, LIMIT cannot be used without the special ~ option"
        );
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "0", "x", "y"]),
            "ERR syntax error"
        );
        assert_eq!(err(&["XTRIM", "s", "LIMIT", "0", "x"]), "ERR syntax error");
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "1", "LIMIT", "0"]),
            "ERR syntax error, XTRIM must be called with a trimming strategy"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "1", "MAXLEN", "2"]),
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MINID", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MINID", "-"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MINID", "(5"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MINID", "="]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MINID", "=", "5-"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "~", "-1"]),
            "ERR The MAXLEN argument must be >= 0."
        );
        assert_eq!(
            err(&["XTRIM", "s", "NOMKSTREAM", "MAXLEN", "1"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "*"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "5", "LIMIT"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "=", "5", "LIMIT", "9"]),
            "ERR syntax error, LIMIT cannot be used without the special ~ option"
        );
        assert_eq!(
            err(&["XTRIM", "nokey", "MINID", "x"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XTRIM", "s", "maxlen", "5", "maxlen"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "1", "foo"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "0", "foo"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "="]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XTRIM", "s", "MINID", "5-*"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "0"]),
            "ERR syntax error, XTRIM must be called with a trimming strategy"
        );
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "5"]),
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
        );
        assert_eq!(
            err(&["XTRIM", "s", "LIMIT", "-5"]),
            "ERR The LIMIT argument must be >= 0."
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "-1"]),
            "ERR The MAXLEN argument must be >= 0."
        );
        assert_eq!(
            err(&["XTRIM", "s", "MAXLEN", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XTRIM", "s"]),
            "ERR wrong number of arguments for 'xtrim' command"
        );
    }
}

//! `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value …`

use bytes::Bytes;

use super::Args;
use super::TrimSpec;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::AddId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xadd {
    pub key: Bytes,
    pub nomkstream: bool,
    pub trim: Option<TrimSpec>,
    pub id: AddId,
    /// At least one pair, in the order given.
    pub fields: Vec<(Bytes, Bytes)>,
}

impl Xadd {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -5)?;
        let all = args.all();
        let (key, rest) = (all[0].clone(), &all[1..]);
        let (trim, nomkstream, id, at) = super::add_or_trim(rest, true)?;
        let fields = &rest[(at + 1).min(rest.len())..];
        if at >= rest.len() || fields.is_empty() || fields.len() % 2 == 1 {
            return Err(RedisError::arity(args.name));
        }
        let id = id.unwrap_or(AddId::Auto);
        if id == AddId::Exact(crate::redis::ids::EntryId::ZERO) {
            return Err(RedisError::err(
                "The ID specified in XADD must be greater than 0-0",
            ));
        }
        Ok(Self {
            key,
            nomkstream,
            trim,
            id,
            fields: fields
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::testing::{b, err, ok};
    use crate::redis::cmd::{Command, TrimBy};
    use crate::redis::ids::EntryId;

    fn xadd(words: &[&str]) -> Xadd {
        match ok(words) {
            Command::Xadd(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepted_forms() {
        let c = xadd(&["XADD", "k", "*", "f", "v", "g", "w"]);
        assert_eq!(
            c,
            Xadd {
                key: b("k"),
                nomkstream: false,
                trim: None,
                id: AddId::Auto,
                fields: vec![(b("f"), b("v")), (b("g"), b("w"))],
            }
        );
        let id = |w: &str| xadd(&["XADD", "k", w, "f", "v"]).id;
        assert_eq!(id("5-*"), AddId::AutoSeq(5));
        assert_eq!(id("0-*"), AddId::AutoSeq(0));
        assert_eq!(id("5"), AddId::Exact(EntryId::new(5, 0)));
        assert_eq!(id("5-3"), AddId::Exact(EntryId::new(5, 3)));
        // strtoull's leniency, as redis-server 7.0.15 accepts it.
        assert_eq!(id(" 7"), AddId::Exact(EntryId::new(7, 0)));
        assert_eq!(id("08"), AddId::Exact(EntryId::new(8, 0)));
        assert_eq!(id("+9"), AddId::Exact(EntryId::new(9, 0)));
        assert_eq!(id("11-+3"), AddId::Exact(EntryId::new(11, 3)));
        assert_eq!(id("5--05"), AddId::Exact(EntryId::new(5, u64::MAX - 4)));
        assert_eq!(id("5- -1"), AddId::Exact(EntryId::new(5, u64::MAX)));
        assert_eq!(id("5--0"), AddId::Exact(EntryId::new(5, 0)));
        assert_eq!(id("007-*"), AddId::AutoSeq(7));
        assert_eq!(id("5\0junk"), AddId::Exact(EntryId::new(5, 0)));
        assert_eq!(id("*\0junk"), AddId::Auto);
        assert_eq!(
            id("18446744073709551615-18446744073709551615"),
            AddId::Exact(EntryId::MAX)
        );

        let c = xadd(&[
            "XADD",
            "k",
            "nomkstream",
            "MAXLEN",
            "~",
            "1000",
            "LIMIT",
            "100",
            "*",
            "f",
            "v",
        ]);
        assert!(c.nomkstream);
        assert_eq!(
            c.trim,
            Some(TrimSpec {
                by: TrimBy::MaxLen(1000),
                approximate: true,
                limit: Some(100)
            })
        );
        // Options in any order before the id; the last NOMKSTREAM/LIMIT wins.
        let c = xadd(&[
            "XADD",
            "k",
            "LIMIT",
            "7",
            "MINID",
            "~",
            "5",
            "NOMKSTREAM",
            "NOMKSTREAM",
            "9-1",
            "f",
            "v",
        ]);
        assert!(c.nomkstream);
        assert_eq!(
            c.trim,
            Some(TrimSpec {
                by: TrimBy::MinId(EntryId::new(5, 0)),
                approximate: true,
                limit: Some(7)
            })
        );
        assert_eq!(c.id, AddId::Exact(EntryId::new(9, 1)));
        let trim = |words: &[&str]| xadd(words).trim;
        assert_eq!(
            trim(&["XADD", "k", "MAXLEN", "=", "5", "*", "f", "v"]),
            Some(TrimSpec {
                by: TrimBy::MaxLen(5),
                approximate: false,
                limit: None
            })
        );
        assert_eq!(
            trim(&["XADD", "k", "MAXLEN", "~", "5", "*", "f", "v"]),
            Some(TrimSpec {
                by: TrimBy::MaxLen(5),
                approximate: true,
                limit: None
            })
        );
        assert_eq!(
            trim(&["XADD", "k", "MAXLEN", "~", "1", "LIMIT", "0", "*", "f", "v"]),
            Some(TrimSpec {
                by: TrimBy::MaxLen(1),
                approximate: true,
                limit: Some(0)
            })
        );
        assert_eq!(
            trim(&["XADD", "k", "MINID", "=", "5-1", "*", "f", "v"]),
            Some(TrimSpec {
                by: TrimBy::MinId(EntryId::new(5, 1)),
                approximate: false,
                limit: None
            })
        );
        // `~` and `=` compare as C strings.
        assert_eq!(
            trim(&["XADD", "k", "maxlen\0", "~\0", "5", "*", "f", "v"]),
            Some(TrimSpec {
                by: TrimBy::MaxLen(5),
                approximate: true,
                limit: None
            })
        );
        // An option word is the id when nothing follows it... and then there are no fields.
        assert_eq!(
            xadd(&["XADD", "k", "MAXLEN", "1", "1-1", "f", "v"]).id,
            AddId::Exact(EntryId::new(1, 1))
        );
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XADD"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "*"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "*", "f"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "*", "f", "v", "g"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "0", "f", "v"]),
            "ERR The ID specified in XADD must be greater than 0-0"
        );
        assert_eq!(
            err(&["XADD", "k", "0-0", "f", "v"]),
            "ERR The ID specified in XADD must be greater than 0-0"
        );
        assert_eq!(
            err(&["XADD", "k", "-", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "+", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "a", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "LIMIT", "5", "*", "f", "v"]),
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
        );
        assert_eq!(
            err(&["XADD", "k", "LIMIT", "0", "*", "f", "v"]),
            "ERR syntax error, LIMIT cannot be used without the special ~ option"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "5", "LIMIT", "5", "*", "f", "v"]),
            "ERR syntax error, LIMIT cannot be used without the special ~ option"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "-1", "*", "f", "v"]),
            "ERR The MAXLEN argument must be >= 0."
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "5", "MINID", "5", "*", "f", "v"]),
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
        );
        assert_eq!(
            err(&["XADD", "k", "MINID", "5", "MAXLEN", "5", "*", "f", "v"]),
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
        );
        assert_eq!(
            err(&["XADD", "k", "MINID", "-", "*", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "MINID", "~", "5-x", "*", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "MINID", "5-*", "*", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "LIMIT", "-1", "*", "f", "v"]),
            "ERR The LIMIT argument must be >= 0."
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "1", "LIMIT", "-1", "*", "f", "v"]),
            "ERR The LIMIT argument must be >= 0."
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "1", "LIMIT", "0", "*", "f", "v"]),
            "ERR syntax error, LIMIT cannot be used without the special ~ option"
        );
        assert_eq!(
            err(&["XADD", "k", "NOMKSTREAM", "MAXLEN", "5", "NOMKSTREAM"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "NOMKSTREAM", "f", "v", "w"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "maxlen", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "maxlen", "~", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "maxlen", "=", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "maxlen", "~", "~", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "maxlen", "5"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "5-*x", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "5-**", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "*-5", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "-010", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "12-", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "5-+", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "18446744073709551616", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "1-18446744073709551616", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "5--18446744073709551616", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "-0", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "0x10", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "5.5", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "1", "1-1", "f", "v", "w"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "*x", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "5-3-1", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "007", "*", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", " 7", "*", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "9223372036854775808", "*", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "LIMIT", "x", "MAXLEN", "~", "5", "*", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "~", "5", "LIMIT", "*", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "~", "5", "LIMIT"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "k", "MAXLEN", "LIMIT", "5", "*", "f", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XADD", "k", "limit"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "f", "v", "LIMIT"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XADD", "n", "9-\0x", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&[
                "XADD",
                "k",
                "11111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111",
                "f",
                "v"
            ]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&[
                "XADD",
                "k",
                "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
                "f",
                "v"
            ]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["xadd", "k"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XaDd", "k", "*", "f"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["XADD", "k", "5-é", "f", "v"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
    }
}

//! `XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key … id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::GroupFrom;

#[derive(Debug, Clone, PartialEq)]
pub struct Xreadgroup {
    pub group: Bytes,
    pub consumer: Bytes,
    pub count: Option<u64>,
    pub block_ms: Option<u64>,
    pub noack: bool,
    pub keys: Vec<Bytes>,
    /// One per key; an id Redis refuses is an error reported when that key is reached
    /// (after the keys before it, and its own group, are found), as Redis orders them.
    pub from: Vec<RedisResult<GroupFrom>>,
}

impl Xreadgroup {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -7)?;
        let read = super::xread::read_args(args, true)?;
        let Some((group, consumer)) = read.group else {
            return Err(RedisError::err("Missing GROUP option for XREADGROUP"));
        };
        let from = read
            .ids
            .iter()
            .map(|id| match super::cstr(id) {
                b">" => Ok(GroupFrom::New),
                b"$" => Err(RedisError::err(
                    "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                )),
                _ => crate::redis::ids::strict_id(id).map(GroupFrom::After),
            })
            .collect();
        Ok(Self {
            group,
            consumer,
            count: read.count,
            block_ms: read.block_ms,
            noack: read.noack,
            keys: read.keys.to_vec(),
            from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};
    use crate::redis::ids::EntryId;

    fn xreadgroup(words: &[&str]) -> Xreadgroup {
        match ok(words) {
            Command::Xreadgroup(c) => c,
            other => panic!("{other:?}"),
        }
    }

    const DOLLAR: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";

    #[test]
    fn accepted_forms() {
        assert_eq!(
            xreadgroup(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "1",
                "BLOCK",
                "5",
                "NOACK",
                "STREAMS",
                "a",
                "b",
                ">",
                "0-1"
            ]),
            Xreadgroup {
                group: b("g"),
                consumer: b("c"),
                count: Some(1),
                block_ms: Some(5),
                noack: true,
                keys: vec![b("a"), b("b")],
                from: vec![Ok(GroupFrom::New), Ok(GroupFrom::After(EntryId::new(0, 1)))],
            }
        );
        // Options in any order, repeated; the last GROUP wins.
        let c = xreadgroup(&[
            "XREADGROUP",
            "NOACK",
            "GROUP",
            "a",
            "b",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "-5",
            "NOACK",
            "STREAMS",
            "s",
            "1",
        ]);
        assert_eq!(
            (c.group, c.consumer, c.count, c.noack),
            (b("g"), b("c"), Some(0), true)
        );
        assert_eq!(c.from, vec![Ok(GroupFrom::After(EntryId::new(1, 0)))]);
        assert_eq!(
            xreadgroup(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">\0"]).from,
            vec![Ok(GroupFrom::New)]
        );
    }

    /// Bad ids are errors Redis reports only on reaching their key (after checking its group).
    #[test]
    fn id_errors_wait_for_their_key() {
        let from = |words: &[&str]| xreadgroup(words).from;
        let invalid = || Err(RedisError::invalid_id());
        let dollar = || Err(RedisError::Reply(DOLLAR.into()));
        assert_eq!(
            from(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "$"]),
            vec![dollar()]
        );
        assert_eq!(
            from(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "$\0"]),
            vec![dollar()]
        );
        for bad in ["x", "+", "-", "(1", "1-*"] {
            assert_eq!(
                from(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", bad]),
                vec![invalid()],
                "{bad}"
            );
        }
        assert_eq!(
            from(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "STREAMS",
                "s",
                "t",
                "x",
                "$"
            ]),
            vec![invalid(), dollar()]
        );
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s"]),
            "ERR wrong number of arguments for 'xreadgroup' command"
        );
        assert_eq!(
            err(&["XREADGROUP", "STREAMS", "s", ">", "a", "b"]),
            "ERR wrong number of arguments for 'xreadgroup' command"
        );
        assert_eq!(
            err(&["XREADGROUP", "COUNT", "1", "STREAMS", "s", ">"]),
            "ERR wrong number of arguments for 'xreadgroup' command"
        );
        assert_eq!(
            err(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "-1",
                "STREAMS",
                "s",
                ">"
            ]),
            "ERR timeout is negative"
        );
        assert_eq!(
            err(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "x",
                "STREAMS",
                "s",
                ">"
            ]),
            "ERR timeout is not an integer or out of range"
        );
        assert_eq!(
            err(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "x",
                "STREAMS",
                "s",
                ">"
            ]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XREADGROUP", "GROUP", "g", "STREAMS", "s", ">", "x"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XREADGROUP", "GROUP", "g", "c", "FOO", "STREAMS", "s", "0"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XREADGROUP", "COUNT", "1", "NOACK", "STREAMS", "s", ">"]),
            "ERR Missing GROUP option for XREADGROUP"
        );
        assert_eq!(
            err(&[
                "XREADGROUP",
                "COUNT",
                "1",
                "NOACK",
                "STREAMS",
                "s",
                ">",
                "t"
            ]),
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
        );
        assert_eq!(
            err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">", "t"]),
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
        );
    }
}

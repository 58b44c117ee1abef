//! `XINFO STREAM key [FULL [COUNT n]]`, `XINFO GROUPS key`, `XINFO CONSUMERS key group`, `XINFO HELP`

use bytes::Bytes;

use super::Args;
use crate::redis::error::RedisResult;

#[derive(Debug, Clone, PartialEq)]
pub enum Xinfo {
    Stream {
        key: Bytes,
        /// `FULL`, with its `COUNT` (default 10; 0 = everything); options Redis refuses
        /// are an error reported after the key is found, as Redis orders them.
        full: RedisResult<Option<u64>>,
    },
    Groups {
        key: Bytes,
    },
    Consumers {
        key: Bytes,
        group: Bytes,
    },
    Help,
}

/// `XINFO HELP`'s reply, line by line, as redis-server 7.0.15 gives it.
pub const HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

impl Xinfo {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -2)?;
        let all = args.all();
        let sub = &all[0];
        let arity = |n: i32| {
            super::check_arity(
                &format!(
                    "xinfo|{}",
                    String::from_utf8_lossy(sub).to_ascii_lowercase()
                ),
                all.len() + 1,
                n,
            )
        };
        if sub.eq_ignore_ascii_case(b"HELP") {
            arity(2)?;
            return Ok(Self::Help);
        }
        if sub.eq_ignore_ascii_case(b"STREAM") {
            arity(-3)?;
            let opts = &all[2..];
            let full = match opts {
                [] => Ok(None),
                [full] if super::is(full, "FULL") => Ok(Some(10)),
                [full, count, n] if super::is(full, "FULL") && super::is(count, "COUNT") => {
                    super::integer(n).map(|n| Some(if n < 0 { 10 } else { n as u64 }))
                }
                _ => Err(super::subcommand_syntax("XINFO", sub)),
            };
            return Ok(Self::Stream {
                key: all[1].clone(),
                full,
            });
        }
        if sub.eq_ignore_ascii_case(b"GROUPS") {
            arity(3)?;
            return Ok(Self::Groups {
                key: all[1].clone(),
            });
        }
        if sub.eq_ignore_ascii_case(b"CONSUMERS") {
            arity(4)?;
            return Ok(Self::Consumers {
                key: all[1].clone(),
                group: all[2].clone(),
            });
        }
        Err(super::unknown_subcommand("XINFO", sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};
    use crate::redis::error::RedisError;

    fn xinfo(words: &[&str]) -> Xinfo {
        match ok(words) {
            Command::Xinfo(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn full(words: &[&str]) -> RedisResult<Option<u64>> {
        match xinfo(words) {
            Xinfo::Stream { key, full } => {
                assert_eq!(key, b("s"));
                full
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subcommands() {
        assert_eq!(xinfo(&["XINFO", "help"]), Xinfo::Help);
        assert_eq!(
            xinfo(&["xinfo", "Groups", "s"]),
            Xinfo::Groups { key: b("s") }
        );
        assert_eq!(
            xinfo(&["XINFO", "CONSUMERS", "s", "g"]),
            Xinfo::Consumers {
                key: b("s"),
                group: b("g")
            }
        );
        assert_eq!(full(&["XINFO", "STREAM", "s"]), Ok(None));
        assert_eq!(full(&["XINFO", "STREAM", "s", "full"]), Ok(Some(10)));
        assert_eq!(full(&["XINFO", "STREAM", "s", "FULL\0"]), Ok(Some(10)));
        assert_eq!(
            full(&["XINFO", "STREAM", "s", "FULL", "COUNT", "0"]),
            Ok(Some(0))
        );
        assert_eq!(
            full(&["XINFO", "STREAM", "s", "FULL", "COUNT", "5"]),
            Ok(Some(5))
        );
        assert_eq!(
            full(&["XINFO", "STREAM", "s", "FULL", "COUNT", "-1"]),
            Ok(Some(10))
        );
        assert_eq!(HELP.len(), 9);
        assert_eq!(
            HELP[0],
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
        );
        assert_eq!(HELP[8], "    Prints this help.");
    }

    /// Redis reads STREAM's options after finding the key ("ERR no such key" first).
    #[test]
    fn stream_option_errors_wait_for_the_key() {
        let syntax = |sub: &str| {
            Err(RedisError::err(format!(
                "unknown subcommand or wrong number of arguments for '{sub}'. Try XINFO HELP."
            )))
        };
        assert_eq!(
            full(&["XINFO", "STREAM", "s", "FULL", "COUNT"]),
            syntax("STREAM")
        );
        assert_eq!(
            full(&["XINFO", "STREAM", "s", "FULL", "x"]),
            syntax("STREAM")
        );
        assert_eq!(full(&["XINFO", "STREAM", "s", "FOO"]), syntax("STREAM"));
        assert_eq!(full(&["xinfo", "stream", "s", "foo"]), syntax("stream"));
        assert_eq!(
            full(&["XINFO", "StReAm", "s", "full", "count", "5", "x"]),
            syntax("StReAm")
        );
        assert_eq!(
            full(&["XINFO", "stream", "s", "full", "5"]),
            syntax("stream")
        );
        assert_eq!(
            full(&["XINFO", "STREAM", "s", "full", "count", "x"]),
            Err(RedisError::not_an_integer())
        );
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XINFO"]),
            "ERR wrong number of arguments for 'xinfo' command"
        );
        assert_eq!(
            err(&["XINFO", "help", "x"]),
            "ERR wrong number of arguments for 'xinfo|help' command"
        );
        assert_eq!(
            err(&["XINFO", "foo"]),
            "ERR unknown subcommand 'foo'. Try XINFO HELP."
        );
        assert_eq!(
            err(&["XINFO", "foo", "bar"]),
            "ERR unknown subcommand 'foo'. Try XINFO HELP."
        );
        assert_eq!(
            err(&["XINFO", "STREAM"]),
            "ERR wrong number of arguments for 'xinfo|stream' command"
        );
        assert_eq!(
            err(&["XINFO", "GROUPS"]),
            "ERR wrong number of arguments for 'xinfo|groups' command"
        );
        assert_eq!(
            err(&["XINFO", "GROUPS", "s", "x"]),
            "ERR wrong number of arguments for 'xinfo|groups' command"
        );
        assert_eq!(
            err(&["XINFO", "CONSUMERS", "s"]),
            "ERR wrong number of arguments for 'xinfo|consumers' command"
        );
        assert_eq!(
            err(&["XINFO", "CONSUMERS", "s", "g", "x"]),
            "ERR wrong number of arguments for 'xinfo|consumers' command"
        );
        assert_eq!(
            err(&["XINFO", "STREAM\0", "s"]),
            "ERR unknown subcommand 'STREAM'. Try XINFO HELP."
        );
        assert_eq!(
            err(&["XINFO", "a\r\nb"]),
            "ERR unknown subcommand 'a  b'. Try XINFO HELP."
        );
        assert_eq!(
            err(&[
                "XINFO",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            ]),
            "ERR unknown subcommand 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'. Try XINFO HELP."
        );
        assert_eq!(
            err(&["XINFO", "Stream"]),
            "ERR wrong number of arguments for 'xinfo|stream' command"
        );
    }
}

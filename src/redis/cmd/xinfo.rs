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
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
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

    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Self::Stream { key, .. } | Self::Groups { key } | Self::Consumers { key, .. } => {
                Some(key)
            }
            Self::Help => None,
        }
    }
}

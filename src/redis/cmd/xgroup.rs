//! `XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::GroupStart;

#[derive(Debug, Clone, PartialEq)]
pub enum Xgroup {
    /// `CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]`
    Create {
        key: Bytes,
        group: Bytes,
        /// An id Redis refuses is an error reported after the key is found.
        start: RedisResult<GroupStart>,
        mkstream: bool,
        entries_read: Option<i64>,
    },
    /// `SETID key group id|$ [ENTRIESREAD n]`
    SetId {
        key: Bytes,
        group: Bytes,
        /// An id Redis refuses is an error reported after the group is found.
        start: RedisResult<GroupStart>,
        entries_read: Option<i64>,
    },
    Destroy {
        key: Bytes,
        group: Bytes,
    },
    CreateConsumer {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
    },
    DelConsumer {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
    },
    Help,
}

/// `XGROUP HELP`'s reply, line by line, as redis-server 7.0.15 gives it.
pub const HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

impl Xgroup {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -2)?;
        let all = args.all();
        let sub = &all[0];
        let argc = all.len() + 1;
        let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
        let arity = |n: i32| super::check_arity(&format!("xgroup|{lower}"), argc, n);
        let known = [
            "create",
            "setid",
            "destroy",
            "createconsumer",
            "delconsumer",
            "help",
        ];
        if !known.contains(&lower.as_str()) {
            return Err(super::unknown_subcommand("XGROUP", sub));
        }
        match lower.as_str() {
            "help" => arity(2)?,
            "create" | "setid" => arity(-5)?,
            "destroy" => arity(4)?,
            _ => arity(5)?,
        }
        let syntax = || super::subcommand_syntax("XGROUP", sub);
        let (create, setid) = (lower == "create", lower == "setid");
        // Options come after `key group id` (argv[5] on), read before the key is looked at.
        let (mut mkstream, mut entries_read) = (false, None);
        if argc >= 4 {
            let mut i = 4;
            while i < all.len() {
                if create && super::is(&all[i], "MKSTREAM") {
                    mkstream = true;
                    i += 1;
                } else if (create || setid)
                    && super::is(&all[i], "ENTRIESREAD")
                    && i + 1 < all.len()
                {
                    let n = super::integer(&all[i + 1])?;
                    if n < 0 && n != -1 {
                        return Err(RedisError::err(
                            "value for ENTRIESREAD must be positive or -1",
                        ));
                    }
                    entries_read = (n >= 0).then_some(n);
                    i += 2;
                } else {
                    return Err(syntax());
                }
            }
        }
        let start = |arg: &Bytes, strict: bool| -> RedisResult<GroupStart> {
            if super::cstr(arg) == b"$" {
                return Ok(GroupStart::Last);
            }
            crate::redis::ids::parse_id(arg, 0, strict, false).map(|(id, _)| GroupStart::Id(id))
        };
        Ok(match lower.as_str() {
            "help" => Self::Help,
            // Too many arguments is a syntax error Redis finds after the key (and for
            // SETID the group) checks, where it would read the id.
            "create" => Self::Create {
                key: all[1].clone(),
                group: all[2].clone(),
                start: if argc <= 8 {
                    start(&all[3], true)
                } else {
                    Err(syntax())
                },
                mkstream,
                entries_read,
            },
            "setid" => Self::SetId {
                key: all[1].clone(),
                group: all[2].clone(),
                start: if argc == 5 || argc == 7 {
                    start(&all[3], false)
                } else {
                    Err(syntax())
                },
                entries_read,
            },
            "destroy" => Self::Destroy {
                key: all[1].clone(),
                group: all[2].clone(),
            },
            "createconsumer" => Self::CreateConsumer {
                key: all[1].clone(),
                group: all[2].clone(),
                consumer: all[3].clone(),
            },
            "delconsumer" => Self::DelConsumer {
                key: all[1].clone(),
                group: all[2].clone(),
                consumer: all[3].clone(),
            },
            _ => return Err(syntax()),
        })
    }

    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Self::Create { key, .. }
            | Self::SetId { key, .. }
            | Self::Destroy { key, .. }
            | Self::CreateConsumer { key, .. }
            | Self::DelConsumer { key, .. } => Some(key),
            Self::Help => None,
        }
    }
}

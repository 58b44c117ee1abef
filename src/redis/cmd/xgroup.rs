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
    pub fn parse(args: &Args) -> RedisResult<Self> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};
    use crate::redis::ids::EntryId;

    fn xgroup(words: &[&str]) -> Xgroup {
        match ok(words) {
            Command::Xgroup(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn start(words: &[&str]) -> RedisResult<GroupStart> {
        match xgroup(words) {
            Xgroup::Create { start, .. } | Xgroup::SetId { start, .. } => start,
            other => panic!("{other:?}"),
        }
    }

    fn syntax(sub: &str) -> RedisError {
        RedisError::err(format!(
            "unknown subcommand or wrong number of arguments for '{sub}'. Try XGROUP HELP."
        ))
    }

    #[test]
    fn subcommands() {
        assert_eq!(xgroup(&["XGROUP", "help"]), Xgroup::Help);
        assert_eq!(
            xgroup(&[
                "XGROUP",
                "CREATE",
                "s",
                "g",
                "$",
                "MKSTREAM",
                "ENTRIESREAD",
                "3"
            ]),
            Xgroup::Create {
                key: b("s"),
                group: b("g"),
                start: Ok(GroupStart::Last),
                mkstream: true,
                entries_read: Some(3),
            }
        );
        assert_eq!(
            xgroup(&[
                "xgroup",
                "create",
                "s",
                "g",
                "0",
                "ENTRIESREAD",
                "-1",
                "mkstream"
            ]),
            Xgroup::Create {
                key: b("s"),
                group: b("g"),
                start: Ok(GroupStart::Id(EntryId::ZERO)),
                mkstream: true,
                entries_read: None,
            }
        );
        assert_eq!(
            xgroup(&["XGROUP", "setId", "s", "g", "5", "ENTRIESREAD", "7"]),
            Xgroup::SetId {
                key: b("s"),
                group: b("g"),
                start: Ok(GroupStart::Id(EntryId::new(5, 0))),
                entries_read: Some(7),
            }
        );
        assert_eq!(
            xgroup(&["XGROUP", "DESTROY", "s", "g"]),
            Xgroup::Destroy {
                key: b("s"),
                group: b("g")
            }
        );
        assert_eq!(
            xgroup(&["XGROUP", "CREATECONSUMER", "s", "g", "c"]),
            Xgroup::CreateConsumer {
                key: b("s"),
                group: b("g"),
                consumer: b("c")
            }
        );
        assert_eq!(
            xgroup(&["XGROUP", "DELCONSUMER", "s", "g", "c"]),
            Xgroup::DelConsumer {
                key: b("s"),
                group: b("g"),
                consumer: b("c")
            }
        );
        assert!(matches!(
            xgroup(&[
                "XGROUP", "CREATE", "s", "g", "0", "MKSTREAM", "MKSTREAM", "MKSTREAM"
            ]),
            Xgroup::Create { mkstream: true, .. }
        ));
        assert!(matches!(
            xgroup(&["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM\0"]),
            Xgroup::Create { mkstream: true, .. }
        ));
        assert_eq!(HELP.len(), 17);
        assert_eq!(
            HELP[0],
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
        );
        assert_eq!(HELP[16], "    Prints this help.");
    }

    /// The id is read after the key (and for SETID the group) checks: its errors wait.
    #[test]
    fn id_errors_wait_for_the_key() {
        // CREATE is strict; SETID takes `-` and `+` too.
        assert_eq!(
            start(&["XGROUP", "CREATE", "s", "g", "$\0"]),
            Ok(GroupStart::Last)
        );
        for bad in ["x", "-", "+", "(1", "5-*"] {
            assert_eq!(
                start(&["XGROUP", "CREATE", "s", "g", bad]),
                Err(RedisError::invalid_id()),
                "{bad}"
            );
        }
        assert_eq!(
            start(&["XGROUP", "SETID", "s", "g", "-"]),
            Ok(GroupStart::Id(EntryId::ZERO))
        );
        assert_eq!(
            start(&["XGROUP", "SETID", "s", "g", "+"]),
            Ok(GroupStart::Id(EntryId::MAX))
        );
        assert_eq!(
            start(&["XGROUP", "SETID", "s", "g", "$"]),
            Ok(GroupStart::Last)
        );
        for bad in ["x", "(1"] {
            assert_eq!(
                start(&["XGROUP", "SETID", "s", "g", bad]),
                Err(RedisError::invalid_id()),
                "{bad}"
            );
        }
        // Too many (well-formed) options: a syntax error after those checks too.
        assert_eq!(
            start(&[
                "XGROUP",
                "CREATE",
                "nokey",
                "g",
                "0",
                "ENTRIESREAD",
                "1",
                "ENTRIESREAD",
                "2"
            ]),
            Err(syntax("CREATE"))
        );
        assert_eq!(
            start(&[
                "XGROUP",
                "SETID",
                "s",
                "nog",
                "0",
                "ENTRIESREAD",
                "5",
                "ENTRIESREAD",
                "6"
            ]),
            Err(syntax("SETID"))
        );
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XGROUP"]),
            "ERR wrong number of arguments for 'xgroup' command"
        );
        assert_eq!(
            err(&["XGROUP", "foo"]),
            "ERR unknown subcommand 'foo'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "foo", "bar", "baz"]),
            "ERR unknown subcommand 'foo'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "help", "x"]),
            "ERR wrong number of arguments for 'xgroup|help' command"
        );
        assert_eq!(
            err(&["XGROUP", "CREATE", "s"]),
            "ERR wrong number of arguments for 'xgroup|create' command"
        );
        assert_eq!(
            err(&["XGROUP", "CREATE", "s", "g"]),
            "ERR wrong number of arguments for 'xgroup|create' command"
        );
        assert_eq!(
            err(&["XGROUP", "create", "s", "g3", "0", "FOO"]),
            "ERR unknown subcommand or wrong number of arguments for 'create'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "create", "nokey", "g3", "0", "FOO"]),
            "ERR unknown subcommand or wrong number of arguments for 'create'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "create", "s", "g3", "0", "ENTRIESREAD"]),
            "ERR unknown subcommand or wrong number of arguments for 'create'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "create", "s", "g3", "0", "ENTRIESREAD", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XGROUP", "create", "s", "g3", "0", "ENTRIESREAD", "-2"]),
            "ERR value for ENTRIESREAD must be positive or -1"
        );
        assert_eq!(
            err(&["XGROUP", "create", "nokey", "g3", "0", "ENTRIESREAD", "-2"]),
            "ERR value for ENTRIESREAD must be positive or -1"
        );
        assert_eq!(
            err(&[
                "XGROUP", "create", "s", "g5", "0", "MKSTREAM", "MKSTREAM", "MKSTREAM", "MKSTREAM",
                "x"
            ]),
            "ERR unknown subcommand or wrong number of arguments for 'create'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "SETID", "s", "g"]),
            "ERR wrong number of arguments for 'xgroup|setid' command"
        );
        assert_eq!(
            err(&["XGROUP", "SETID", "s", "g", "0", "MKSTREAM"]),
            "ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD"]),
            "ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD", "-5"]),
            "ERR value for ENTRIESREAD must be positive or -1"
        );
        assert_eq!(
            err(&["XGROUP", "SETID", "s", "g", "5", "x", "y"]),
            "ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "DESTROY", "s"]),
            "ERR wrong number of arguments for 'xgroup|destroy' command"
        );
        assert_eq!(
            err(&["XGROUP", "DESTROY", "s", "g", "x"]),
            "ERR wrong number of arguments for 'xgroup|destroy' command"
        );
        assert_eq!(
            err(&["XGROUP", "CREATECONSUMER", "s", "g"]),
            "ERR wrong number of arguments for 'xgroup|createconsumer' command"
        );
        assert_eq!(
            err(&["XGROUP", "CREATECONSUMER", "s", "g", "c", "x"]),
            "ERR wrong number of arguments for 'xgroup|createconsumer' command"
        );
        assert_eq!(
            err(&["XGROUP", "DELCONSUMER", "s", "g", "c", "x"]),
            "ERR wrong number of arguments for 'xgroup|delconsumer' command"
        );
        assert_eq!(
            err(&["XGROUP", "a\r\nb"]),
            "ERR unknown subcommand 'a  b'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "CREATE\0", "s", "g", "0"]),
            "ERR unknown subcommand 'CREATE'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "CREATE", "s", "gz2", "0", "FOO\r\n"]),
            "ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["XGROUP", "CrEaTe", "s", "gz2", "0", "FOO"]),
            "ERR unknown subcommand or wrong number of arguments for 'CrEaTe'. Try XGROUP HELP."
        );
        assert_eq!(
            err(&["xgroup", "CREATE", "s"]),
            "ERR wrong number of arguments for 'xgroup|create' command"
        );
    }
}

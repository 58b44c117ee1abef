//! The commands the RESP listener serves, as `COMMAND`, `COMMAND INFO`, `COMMAND DOCS` and
//! `COMMAND COUNT` describe them: name, arity, flags, the legacy key range, ACL categories,
//! and the docs' summary, since and group — Redis 7.0.15's own values for each. Redis's key
//! specs, tips and argument lists are left empty: clients use the legacy key range and
//! `redis-cli` only needs the docs' shape. The same table gives the existence and arity
//! checks Redis makes before `NOAUTH` ([`lookup`]).

use crate::redis::Reply;

/// One command (or subcommand) of the table.
#[derive(Debug)]
pub struct Spec {
    /// Lower case; a subcommand's is `container|sub`.
    pub name: &'static str,
    /// Redis's arity: exact when positive, a minimum when negative (the name included).
    pub arity: i32,
    pub flags: &'static [&'static str],
    /// First key, last key, step (Redis's legacy range; 0 0 0 for none or movable keys).
    pub keys: (i64, i64, i64),
    pub categories: &'static [&'static str],
    pub summary: &'static str,
    pub since: &'static str,
    pub group: &'static str,
    pub subcommands: &'static [Spec],
}

/// One row of [`COMMANDS`]; positional, so that the table keeps a command to a line.
#[allow(clippy::too_many_arguments)]
const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    categories: &'static [&'static str],
    summary: &'static str,
    since: &'static str,
    group: &'static str,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        categories,
        summary,
        since,
        group,
        subcommands: &[],
    }
}

const fn container(
    name: &'static str,
    summary: &'static str,
    since: &'static str,
    group: &'static str,
    categories: &'static [&'static str],
    subcommands: &'static [Spec],
) -> Spec {
    Spec {
        name,
        arity: -2,
        flags: &[],
        keys: (0, 0, 0),
        categories,
        summary,
        since,
        group,
        subcommands,
    }
}

const KEY1: (i64, i64, i64) = (1, 1, 1);
const KEY2: (i64, i64, i64) = (2, 2, 1);
const NONE: (i64, i64, i64) = (0, 0, 0);
const RD: &[&str] = &["@read", "@stream", "@slow"];
const RD_FAST: &[&str] = &["@read", "@stream", "@fast"];
const WR: &[&str] = &["@write", "@stream", "@slow"];
const WR_FAST: &[&str] = &["@write", "@stream", "@fast"];
const CONN_FAST: &[&str] = &["@fast", "@connection"];
const CONN_SLOW: &[&str] = &["@slow", "@connection"];
const NO_AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];
const HELP_SUMMARY: &str = "Show helpful text about the different subcommands";

/// Every command served, in Redis's lower-case names.
#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    spec("xadd", -5, &["write", "denyoom", "fast"], KEY1, WR_FAST, "Appends a new entry to a stream", "5.0.0", "stream"),
    spec("xlen", 2, &["readonly", "fast"], KEY1, RD_FAST, "Return the number of entries in a stream", "5.0.0", "stream"),
    spec("xrange", -4, &["readonly"], KEY1, RD, "Return a range of elements in a stream, with IDs matching the specified IDs interval", "5.0.0", "stream"),
    spec("xrevrange", -4, &["readonly"], KEY1, RD, "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE", "5.0.0", "stream"),
    spec("xread", -4, &["readonly", "blocking", "movablekeys"], NONE, &["@read", "@stream", "@slow", "@blocking"], "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block.", "5.0.0", "stream"),
    spec("xtrim", -4, &["write"], KEY1, WR, "Trims the stream to (approximately if '~' is passed) a certain size", "5.0.0", "stream"),
    spec("xdel", -3, &["write", "fast"], KEY1, WR_FAST, "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist.", "5.0.0", "stream"),
    container("xinfo", "A container for stream introspection commands", "5.0.0", "stream", &["@slow"], &[
        spec("xinfo|consumers", 4, &["readonly"], KEY2, RD, "List the consumers in a consumer group", "5.0.0", "stream"),
        spec("xinfo|groups", 3, &["readonly"], KEY2, RD, "List the consumer groups of a stream", "5.0.0", "stream"),
        spec("xinfo|help", 2, &["loading", "stale"], NONE, &["@stream", "@slow"], HELP_SUMMARY, "5.0.0", "stream"),
        spec("xinfo|stream", -3, &["readonly"], KEY2, RD, "Get information about a stream", "5.0.0", "stream"),
    ]),
    container("xgroup", "A container for consumer groups commands", "5.0.0", "stream", &["@slow"], &[
        spec("xgroup|create", -5, &["write", "denyoom"], KEY2, WR, "Create a consumer group.", "5.0.0", "stream"),
        spec("xgroup|createconsumer", 5, &["write", "denyoom"], KEY2, WR, "Create a consumer in a consumer group.", "6.2.0", "stream"),
        spec("xgroup|delconsumer", 5, &["write"], KEY2, WR, "Delete a consumer from a consumer group.", "5.0.0", "stream"),
        spec("xgroup|destroy", 4, &["write"], KEY2, WR, "Destroy a consumer group.", "5.0.0", "stream"),
        spec("xgroup|help", 2, &["loading", "stale"], NONE, &["@stream", "@slow"], HELP_SUMMARY, "5.0.0", "stream"),
        spec("xgroup|setid", -5, &["write"], KEY2, WR, "Set a consumer group to an arbitrary last delivered ID value.", "5.0.0", "stream"),
    ]),
    spec("xreadgroup", -7, &["write", "blocking", "movablekeys"], NONE, &["@write", "@stream", "@slow", "@blocking"], "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block.", "5.0.0", "stream"),
    spec("xack", -4, &["write", "fast"], KEY1, WR_FAST, "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL.", "5.0.0", "stream"),
    spec("xpending", -3, &["readonly"], KEY1, RD, "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged.", "5.0.0", "stream"),
    spec("xclaim", -6, &["write", "fast"], KEY1, WR_FAST, "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer.", "5.0.0", "stream"),
    spec("xautoclaim", -6, &["write", "fast"], KEY1, WR_FAST, "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer.", "6.2.0", "stream"),
    spec("auth", -2, NO_AUTH, NONE, CONN_FAST, "Authenticate to the server", "1.0.0", "connection"),
    container("client", "A container for client connection commands", "2.4.0", "connection", &["@slow"], &[
        spec("client|getname", 2, &["noscript", "loading", "stale"], NONE, CONN_SLOW, "Get the current connection name", "2.6.9", "connection"),
        spec("client|help", 2, &["loading", "stale"], NONE, CONN_SLOW, HELP_SUMMARY, "5.0.0", "connection"),
        spec("client|id", 2, &["noscript", "loading", "stale"], NONE, CONN_SLOW, "Returns the client ID for the current connection", "5.0.0", "connection"),
        spec("client|setinfo", 4, &["noscript", "loading", "stale"], NONE, CONN_SLOW, "Set client or connection specific info", "7.2.0", "connection"),
        spec("client|setname", 3, &["noscript", "loading", "stale"], NONE, CONN_SLOW, "Set the current connection name", "2.6.9", "connection"),
    ]),
    container("command", "Get array of Redis command details", "2.8.13", "server", CONN_SLOW, &[
        spec("command|count", 2, &["loading", "stale"], NONE, CONN_SLOW, "Get total number of Redis commands", "2.8.13", "server"),
        spec("command|docs", -2, &["loading", "stale"], NONE, CONN_SLOW, "Get array of specific Redis command documentation", "7.0.0", "server"),
        spec("command|help", 2, &["loading", "stale"], NONE, CONN_SLOW, HELP_SUMMARY, "5.0.0", "server"),
        spec("command|info", -2, &["loading", "stale"], NONE, CONN_SLOW, "Get array of specific Redis command details, or all when no argument is given.", "2.8.13", "server"),
        spec("command|list", -2, &["loading", "stale"], NONE, CONN_SLOW, "Get an array of Redis command names", "7.0.0", "server"),
    ]),
    spec("echo", 2, &["loading", "stale", "fast"], NONE, CONN_FAST, "Echo the given string", "1.0.0", "connection"),
    spec("hello", -1, NO_AUTH, NONE, CONN_FAST, "Handshake with Redis", "6.0.0", "connection"),
    spec("info", -1, &["loading", "stale"], NONE, &["@slow", "@dangerous"], "Get information and statistics about the server", "1.0.0", "server"),
    spec("ping", -1, &["fast"], NONE, CONN_FAST, "Ping the server", "1.0.0", "connection"),
    spec("quit", -1, NO_AUTH, NONE, CONN_FAST, "Close the connection", "1.0.0", "connection"),
    spec("reset", 1, NO_AUTH, NONE, CONN_FAST, "Reset the connection", "6.2.0", "connection"),
    spec("select", 2, &["loading", "stale", "fast"], NONE, CONN_FAST, "Change the selected database for the current connection", "1.0.0", "connection"),
];

/// A top-level command by name, any case.
pub fn find(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// A command or subcommand by the name `COMMAND INFO|DOCS` take (`xinfo|stream` too).
pub fn find_by_full_name(name: &[u8]) -> Option<&'static Spec> {
    let text = String::from_utf8_lossy(name).to_ascii_lowercase();
    match text.split_once('|') {
        None => find(name),
        Some((top, _)) => find(top.as_bytes())?
            .subcommands
            .iter()
            .find(|s| s.name == text),
    }
}

/// Redis's checks before a command runs (`commandCheckExistence`, `commandCheckArity`):
/// the command (or, for a container, its subcommand) must exist and have its arity. The
/// error text, without the leading `-`, if not.
pub fn lookup(argv: &[bytes::Bytes]) -> Result<&'static Spec, String> {
    let Some(top) = find(&argv[0]) else {
        return Err(unknown_command(argv));
    };
    let spec = match (top.subcommands.is_empty(), argv.get(1)) {
        (false, Some(sub)) => {
            let full = format!("{}|{}", top.name, String::from_utf8_lossy(sub));
            match top
                .subcommands
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&full))
            {
                Some(s) => s,
                None => {
                    return Err(format!(
                        "ERR unknown subcommand '{}'. Try {} HELP.",
                        shown(sub, 128),
                        top.name.to_ascii_uppercase()
                    ));
                }
            }
        }
        _ => top,
    };
    let argc = argv.len();
    let ok = if spec.arity >= 0 {
        argc == spec.arity as usize
    } else {
        argc >= spec.arity.unsigned_abs() as usize
    };
    if ok {
        Ok(spec)
    } else {
        Err(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        ))
    }
}

/// `ERR unknown command '<name>', with args beginning with: '<a1>' '<a2>' …` as Redis 7.0
/// words it: the name up to 128 bytes, arguments quoted while the list is under 128
/// bytes (the last one cut to fit), CR and LF as spaces.
pub fn unknown_command(argv: &[bytes::Bytes]) -> String {
    let mut args: Vec<u8> = Vec::new();
    for arg in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let arg = crate::redis::cmd::cstr(arg);
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(&arg[..arg.len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        shown(&argv[0], 128),
        String::from_utf8_lossy(&args)
    )
    .replace(['\r', '\n'], " ")
}

fn shown(arg: &[u8], max: usize) -> String {
    crate::redis::cmd::shown(arg, max)
}

/// `COMMAND INFO`'s array for one command: name, arity, flags, first key, last key, step,
/// categories, tips, key specs, subcommands.
pub fn info(spec: &Spec) -> Reply {
    let statuses =
        |words: &[&'static str]| Reply::Set(words.iter().map(|w| Reply::Simple(w)).collect());
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Int(spec.arity.into()),
        statuses(spec.flags),
        Reply::Int(spec.keys.0),
        Reply::Int(spec.keys.1),
        Reply::Int(spec.keys.2),
        statuses(spec.categories),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        if spec.subcommands.is_empty() {
            Reply::Set(vec![])
        } else {
            Reply::Array(spec.subcommands.iter().map(info).collect())
        },
    ])
}

/// `COMMAND DOCS`'s map for one command: summary, since, group, and subcommands.
pub fn docs(spec: &Spec) -> Reply {
    let mut fields = vec![
        ("summary", Reply::text(spec.summary)),
        ("since", Reply::text(spec.since)),
        ("group", Reply::text(spec.group)),
    ];
    if !spec.subcommands.is_empty() {
        fields.push((
            "subcommands",
            Reply::map(spec.subcommands.iter().map(|s| (s.name, docs(s)))),
        ));
    }
    Reply::map(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn lookups_fail_as_redis_does() {
        assert_eq!(
            lookup(&argv(&["GET", "a", "b"])).unwrap_err(),
            "ERR unknown command 'GET', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            lookup(&argv(&["nope"])).unwrap_err(),
            "ERR unknown command 'nope', with args beginning with: "
        );
        let long = "x".repeat(200);
        assert_eq!(
            lookup(&argv(&["GET", &long, "b"])).unwrap_err(),
            format!(
                "ERR unknown command 'GET', with args beginning with: '{}' ",
                &long[..128]
            )
        );
        assert_eq!(
            lookup(&argv(&["client", "List"])).unwrap_err(),
            "ERR unknown subcommand 'List'. Try CLIENT HELP."
        );
        assert_eq!(
            lookup(&argv(&["CLIENT", "SETNAME"])).unwrap_err(),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            lookup(&argv(&["client"])).unwrap_err(),
            "ERR wrong number of arguments for 'client' command"
        );
        assert_eq!(
            lookup(&argv(&["XADD", "k"])).unwrap_err(),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            lookup(&argv(&["xinfo", "STREAM", "k"])).unwrap().name,
            "xinfo|stream"
        );
    }

    #[test]
    fn every_stream_command_is_described() {
        for name in crate::redis::cmd::NAMES {
            assert!(find(name.as_bytes()).is_some(), "{name}");
        }
        assert_eq!(
            find_by_full_name(b"XGROUP|Create").unwrap().name,
            "xgroup|create"
        );
    }
}

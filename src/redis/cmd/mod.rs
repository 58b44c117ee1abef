//! The stream commands, one file each: its typed form, how it is parsed from a command's
//! arguments (with every option Redis 7 accepts and Redis's error texts), and how it is
//! applied to a key space. Front doors turn requests into argument lists and replies into
//! their own encoding; nothing here knows HTTP or RESP.

pub(crate) mod xack;
pub(crate) mod xadd;
pub(crate) mod xautoclaim;
pub(crate) mod xclaim;
pub(crate) mod xdel;
pub(crate) mod xgroup;
pub(crate) mod xinfo;
pub(crate) mod xlen;
pub(crate) mod xpending;
pub(crate) mod xrange;
pub(crate) mod xread;
pub(crate) mod xreadgroup;
pub(crate) mod xtrim;

use bytes::Bytes;

use super::{
    error::{RedisError, RedisResult},
    ids::EntryId,
};

/// A parsed stream command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Xadd(xadd::Xadd),
    Xlen(xlen::Xlen),
    Xrange(xrange::Xrange),
    Xread(xread::Xread),
    Xtrim(xtrim::Xtrim),
    Xdel(xdel::Xdel),
    Xinfo(xinfo::Xinfo),
    Xgroup(xgroup::Xgroup),
    Xreadgroup(xreadgroup::Xreadgroup),
    Xack(xack::Xack),
    Xpending(xpending::Xpending),
    Xclaim(xclaim::Xclaim),
    Xautoclaim(xautoclaim::Xautoclaim),
}

/// The stream commands, in upper case.
pub const NAMES: [&str; 14] = [
    "XADD",
    "XLEN",
    "XRANGE",
    "XREVRANGE",
    "XREAD",
    "XTRIM",
    "XDEL",
    "XINFO",
    "XGROUP",
    "XREADGROUP",
    "XACK",
    "XPENDING",
    "XCLAIM",
    "XAUTOCLAIM",
];

/// Parses a command: `argv[0]` is its name (any case), the rest its arguments. A name
/// outside [`NAMES`] is [`RedisError::Unsupported`].
pub fn parse(argv: &[Bytes]) -> RedisResult<Command> {
    let Some(name) = argv.first() else {
        return Err(RedisError::Unsupported("no command given".into()));
    };
    let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
    let args = Args::new(&upper, &argv[1..]);
    Ok(match upper.as_str() {
        "XADD" => Command::Xadd(xadd::Xadd::parse(&args)?),
        "XLEN" => Command::Xlen(xlen::Xlen::parse(&args)?),
        "XRANGE" => Command::Xrange(xrange::Xrange::parse(&args, false)?),
        "XREVRANGE" => Command::Xrange(xrange::Xrange::parse(&args, true)?),
        "XREAD" => Command::Xread(xread::Xread::parse(&args)?),
        "XTRIM" => Command::Xtrim(xtrim::Xtrim::parse(&args)?),
        "XDEL" => Command::Xdel(xdel::Xdel::parse(&args)?),
        "XINFO" => Command::Xinfo(xinfo::Xinfo::parse(&args)?),
        "XGROUP" => Command::Xgroup(xgroup::Xgroup::parse(&args)?),
        "XREADGROUP" => Command::Xreadgroup(xreadgroup::Xreadgroup::parse(&args)?),
        "XACK" => Command::Xack(xack::Xack::parse(&args)?),
        "XPENDING" => Command::Xpending(xpending::Xpending::parse(&args)?),
        "XCLAIM" => Command::Xclaim(xclaim::Xclaim::parse(&args)?),
        "XAUTOCLAIM" => Command::Xautoclaim(xautoclaim::Xautoclaim::parse(&args)?),
        _ => {
            return Err(RedisError::Unsupported(format!(
                "unsupported command '{}'; allowed: {}",
                String::from_utf8_lossy(name),
                NAMES.join(" ")
            )));
        }
    })
}

/// A command's arguments (without its name) and its name, for arity errors. Parsers
/// index [`Args::all`] after checking the arity Redis's command table gives.
pub struct Args<'a> {
    /// The command's name in upper case.
    pub name: &'a str,
    args: &'a [Bytes],
}

impl<'a> Args<'a> {
    pub fn new(name: &'a str, args: &'a [Bytes]) -> Self {
        Self { name, args }
    }

    pub fn all(&self) -> &'a [Bytes] {
        self.args
    }
}

/// Parses a Redis integer argument (`string2ll`); anything else is
/// `ERR value is not an integer or out of range`.
pub fn integer(arg: &[u8]) -> RedisResult<i64> {
    crate::redis::ids::canonical_i64(arg).ok_or_else(RedisError::not_an_integer)
}

/// Like [`integer`], with the message Redis gives for this argument.
pub fn integer_or(arg: &[u8], message: &str) -> RedisResult<i64> {
    crate::redis::ids::canonical_i64(arg).ok_or_else(|| RedisError::err(message))
}

/// Whether `arg` is `word`, in any case, compared as C's `strcasecmp` does (up to a NUL).
pub fn is(arg: &[u8], word: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(word.as_bytes())
}

pub use crate::redis::ids::cstr;

/// An argument as Redis's `%s` shows it in an error: up to a NUL, at most `max` bytes,
/// CR and LF as spaces (Redis keeps error replies on one line).
pub fn shown(arg: &[u8], max: usize) -> String {
    let arg = cstr(arg);
    String::from_utf8_lossy(&arg[..arg.len().min(max)]).replace(['\r', '\n'], " ")
}

/// Redis's arity check: `arity` as its command table has it (negative: at least).
pub fn check_arity(name: &str, argc: usize, arity: i32) -> RedisResult<()> {
    let ok = if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= (-arity) as usize
    };
    if ok {
        Ok(())
    } else {
        Err(RedisError::arity(name))
    }
}

/// `MAXLEN|MINID [=|~] threshold [LIMIT count]`, `NOMKSTREAM` and (`XADD`) the id, as
/// `streamParseAddOrTrimArgsOrReply` reads them from `args` (after the key). Returns the
/// trim, `NOMKSTREAM`, the id (`None`: `*`) and the index of the first argument after it.
pub fn add_or_trim(
    args: &[Bytes],
    xadd: bool,
) -> RedisResult<(
    Option<TrimSpec>,
    bool,
    Option<crate::redis::ids::AddId>,
    usize,
)> {
    use crate::redis::ids::{self, AddId};
    let mut trim: Option<TrimSpec> = None;
    let (mut nomkstream, mut limit, mut limit_given) = (false, 0i64, false);
    let mut id = None;
    let mut i = 0;
    let both = || {
        RedisError::err(
            "syntax error, MAXLEN and MINID options at the same time are not compatible",
        )
    };
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i][..];
        if xadd && cstr(opt) == b"*" {
            break;
        } else if is(opt, "maxlen") && more > 0 {
            if trim.is_some() {
                return Err(both());
            }
            let next = cstr(&args[i + 1]);
            let mut approximate = false;
            if more >= 2 && (next == b"~" || next == b"=") {
                approximate = next == b"~";
                i += 1;
            }
            let n = integer(&args[i + 1])?;
            if n < 0 {
                return Err(RedisError::err("The MAXLEN argument must be >= 0."));
            }
            i += 1;
            trim = Some(TrimSpec {
                by: TrimBy::MaxLen(n as u64),
                approximate,
                limit: None,
            });
        } else if is(opt, "minid") && more > 0 {
            if trim.is_some() {
                return Err(both());
            }
            let next = cstr(&args[i + 1]);
            let mut approximate = false;
            if more >= 2 && (next == b"~" || next == b"=") {
                approximate = next == b"~";
                i += 1;
            }
            let min = ids::strict_id(&args[i + 1])?;
            i += 1;
            trim = Some(TrimSpec {
                by: TrimBy::MinId(min),
                approximate,
                limit: None,
            });
        } else if is(opt, "limit") && more > 0 {
            limit = integer(&args[i + 1])?;
            if limit < 0 {
                return Err(RedisError::err("The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            nomkstream = true;
        } else if xadd {
            let (parsed, seq_given) = ids::parse_id(opt, 0, true, true)?;
            id = Some(if seq_given {
                AddId::Exact(parsed)
            } else {
                AddId::AutoSeq(parsed.ms)
            });
            break;
        } else {
            return Err(RedisError::syntax());
        }
        i += 1;
    }
    if limit != 0 && trim.is_none() {
        return Err(RedisError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && trim.is_none() {
        return Err(RedisError::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    // `LIMIT` needs `~`, even as `LIMIT 0` with no strategy at all (`XADD k LIMIT 0 * f v`).
    let approximate = trim.is_some_and(|t| t.approximate);
    if limit_given && !approximate {
        return Err(RedisError::err(
            "syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    if let Some(t) = trim.as_mut() {
        t.limit = limit_given.then_some(limit as u64);
    }
    Ok((trim, nomkstream, id, i))
}

/// `STREAMS key … id …`: the keys and their raw ids, or Redis's unbalanced-list error.
pub fn streams_list<'a>(
    _name: &str,
    rest: &'a [Bytes],
    _symbol: char,
) -> RedisResult<(&'a [Bytes], &'a [Bytes])> {
    if !rest.len().is_multiple_of(2) {
        // 7.0.15 says `XREAD` and `'$'` for XREADGROUP too.
        return Err(RedisError::err(
            "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
        ));
    }
    Ok(rest.split_at(rest.len() / 2))
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> RedisError {
    RedisError::err(format!(
        "unknown subcommand '{}'. Try {cmd} HELP.",
        shown(sub, 128)
    ))
}

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try <CMD> HELP.`
pub fn subcommand_syntax(cmd: &str, sub: &[u8]) -> RedisError {
    RedisError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try {cmd} HELP.",
        shown(sub, 128)
    ))
}

/// How `XADD` and `XTRIM` trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimBy {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Remove entries with ids below this one.
    MinId(EntryId),
}

/// A trim request: `MAXLEN|MINID [=|~] threshold [LIMIT count]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimSpec {
    pub by: TrimBy,
    /// `~`: only whole nodes go (see `keyspace` for Sluice's nodes).
    pub approximate: bool,
    /// `LIMIT`: at most this many entries removed (approximate only; 0 = no limit).
    /// `None` when not given (Redis then uses 100 × its node size for `~`).
    pub limit: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn commands_parse_to_their_typed_form() {
        let Command::Xadd(add) = parse(&argv(&[
            "xadd", "k", "MAXLEN", "~", "5", "LIMIT", "9", "7-*", "f", "v",
        ]))
        .unwrap() else {
            panic!("not an XADD");
        };
        assert_eq!(add.id, crate::redis::ids::AddId::AutoSeq(7));
        assert_eq!(
            add.trim,
            Some(TrimSpec {
                by: TrimBy::MaxLen(5),
                approximate: true,
                limit: Some(9)
            })
        );
        assert_eq!(
            parse(&argv(&["XADD", "k", "0-0", "f", "v"])),
            Err(RedisError::err(
                "The ID specified in XADD must be greater than 0-0"
            ))
        );
        assert_eq!(
            parse(&argv(&["XADD", "k", "*", "f"])),
            Err(RedisError::arity("XADD"))
        );
        assert_eq!(
            parse(&argv(&["XTRIM", "k", "MAXLEN", "5", "LIMIT", "1"])),
            Err(RedisError::err(
                "syntax error, LIMIT cannot be used without the special ~ option"
            ))
        );
        assert_eq!(
            parse(&argv(&["XGROUP", "nope", "k", "g"])),
            Err(RedisError::err(
                "unknown subcommand 'nope'. Try XGROUP HELP."
            ))
        );
        assert_eq!(
            parse(&argv(&["XGROUP", "CREATE", "k"])),
            Err(RedisError::arity("xgroup|create"))
        );
        assert!(matches!(
            parse(&argv(&["GET", "k"])),
            Err(RedisError::Unsupported(_))
        ));
    }
}

#[cfg(test)]
mod fuzz;

/// Helpers for the commands' tests: parse a command line given as words.
#[cfg(test)]
pub(crate) mod testing {
    use bytes::Bytes;

    use super::{Command, parse};
    use crate::redis::error::{RedisError, RedisResult};

    pub fn run(words: &[&str]) -> RedisResult<Command> {
        let argv: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        parse(&argv)
    }

    /// The command a line parses to; panics on an error.
    pub fn ok(words: &[&str]) -> Command {
        run(words).unwrap_or_else(|e| panic!("{words:?}: {e:?}"))
    }

    /// The full text of the Redis error a line is refused with; panics otherwise.
    pub fn err(words: &[&str]) -> String {
        match run(words) {
            Err(RedisError::Reply(text)) => text,
            other => panic!("{words:?}: expected an error reply, got {other:?}"),
        }
    }

    pub fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }
}

#[cfg(test)]
mod helper_tests {
    use super::testing::{err, run};
    use super::*;

    #[test]
    fn integers_are_string2ll() {
        assert_eq!(integer(b"0"), Ok(0));
        assert_eq!(integer(b"-5"), Ok(-5));
        assert_eq!(integer(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(integer(b"-9223372036854775808"), Ok(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"007",
            b"+5",
            b" 5",
            b"5 ",
            b"5\0",
            b"1.5",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"0x10",
        ] {
            assert_eq!(integer(bad), Err(RedisError::not_an_integer()), "{bad:?}");
        }
        assert_eq!(
            integer_or(b"x", "Invalid min-idle-time argument for XCLAIM"),
            Err(RedisError::err("Invalid min-idle-time argument for XCLAIM"))
        );
    }

    #[test]
    fn words_compare_as_c_strings() {
        assert!(is(b"count", "COUNT"));
        assert!(is(b"COUNT\0x", "COUNT"));
        assert!(!is(b"COUN", "COUNT"));
        assert_eq!(shown(b"a\r\nb", 128), "a  b");
        assert_eq!(shown(b"FOO\0bar", 128), "FOO");
        assert_eq!(shown(&[b'x'; 200], 128).len(), 128);
        // Subcommands are looked up whole, shown up to a NUL, CR/LF as spaces, 128 bytes.
        assert_eq!(
            err(&["XINFO", "STREAM\0", "s"]),
            "ERR unknown subcommand 'STREAM'. Try XINFO HELP."
        );
        assert_eq!(
            err(&["XGROUP", "a\r\nb"]),
            "ERR unknown subcommand 'a  b'. Try XGROUP HELP."
        );
        let long = "x".repeat(200);
        assert_eq!(
            err(&["XINFO", &long]),
            format!("ERR unknown subcommand '{}'. Try XINFO HELP.", &long[..128])
        );
    }

    #[test]
    fn names_in_any_case() {
        assert!(matches!(run(&[]), Err(RedisError::Unsupported(_))));
        assert_eq!(
            err(&["xAdD", "k"]),
            "ERR wrong number of arguments for 'xadd' command"
        );
        assert_eq!(
            err(&["xgroup", "CREATE", "s"]),
            "ERR wrong number of arguments for 'xgroup|create' command"
        );
    }
}

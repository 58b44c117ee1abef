//! The stream commands, one file each: its typed form, how it is parsed from a command's
//! arguments (with every option Redis 7 accepts and Redis's error texts), and how it is
//! applied to a key space. Front doors turn requests into argument lists and replies into
//! their own encoding; nothing here knows HTTP or RESP.

pub mod xack;
pub mod xadd;
pub mod xautoclaim;
pub mod xclaim;
pub mod xdel;
pub mod xgroup;
pub mod xinfo;
pub mod xlen;
pub mod xpending;
pub mod xrange;
pub mod xread;
pub mod xreadgroup;
pub mod xtrim;

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
    let mut args = Args::new(&upper, &argv[1..]);
    Ok(match upper.as_str() {
        "XADD" => Command::Xadd(xadd::Xadd::parse(&mut args)?),
        "XLEN" => Command::Xlen(xlen::Xlen::parse(&mut args)?),
        "XRANGE" => Command::Xrange(xrange::Xrange::parse(&mut args, false)?),
        "XREVRANGE" => Command::Xrange(xrange::Xrange::parse(&mut args, true)?),
        "XREAD" => Command::Xread(xread::Xread::parse(&mut args)?),
        "XTRIM" => Command::Xtrim(xtrim::Xtrim::parse(&mut args)?),
        "XDEL" => Command::Xdel(xdel::Xdel::parse(&mut args)?),
        "XINFO" => Command::Xinfo(xinfo::Xinfo::parse(&mut args)?),
        "XGROUP" => Command::Xgroup(xgroup::Xgroup::parse(&mut args)?),
        "XREADGROUP" => Command::Xreadgroup(xreadgroup::Xreadgroup::parse(&mut args)?),
        "XACK" => Command::Xack(xack::Xack::parse(&mut args)?),
        "XPENDING" => Command::Xpending(xpending::Xpending::parse(&mut args)?),
        "XCLAIM" => Command::Xclaim(xclaim::Xclaim::parse(&mut args)?),
        "XAUTOCLAIM" => Command::Xautoclaim(xautoclaim::Xautoclaim::parse(&mut args)?),
        _ => {
            return Err(RedisError::Unsupported(format!(
                "unsupported command '{}'; allowed: {}",
                String::from_utf8_lossy(name),
                NAMES.join(" ")
            )));
        }
    })
}

/// A command's arguments (without its name), read front to back.
pub struct Args<'a> {
    /// The command's name in upper case, for arity errors.
    pub name: &'a str,
    args: &'a [Bytes],
    at: usize,
}

impl<'a> Args<'a> {
    pub fn new(name: &'a str, args: &'a [Bytes]) -> Self {
        Self { name, args, at: 0 }
    }

    /// Arguments not yet taken.
    pub fn remaining(&self) -> usize {
        self.args.len() - self.at
    }

    /// All arguments, taken or not.
    pub fn all(&self) -> &'a [Bytes] {
        self.args
    }

    /// The next argument without taking it.
    pub fn peek(&self) -> Option<&'a Bytes> {
        self.args.get(self.at)
    }

    /// Takes the next argument.
    pub fn next(&mut self) -> Option<&'a Bytes> {
        let arg = self.args.get(self.at);
        if arg.is_some() {
            self.at += 1;
        }
        arg
    }

    /// Takes the next argument; none left is Redis's arity error.
    pub fn required(&mut self) -> RedisResult<&'a Bytes> {
        self.next().ok_or_else(|| RedisError::arity(self.name))
    }

    /// Whether the next argument is `word` (any case); takes it if so.
    pub fn eat(&mut self, word: &str) -> bool {
        if self.peek().is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes())) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Takes the rest.
    pub fn rest(&mut self) -> &'a [Bytes] {
        let rest = &self.args[self.at..];
        self.at = self.args.len();
        rest
    }
}

/// Parses a Redis integer argument (as `string2ll`: optional `-`, digits, no spaces or
/// `+`, no leading zeros except `0` itself); anything else is
/// `ERR value is not an integer or out of range`.
pub fn integer(arg: &[u8]) -> RedisResult<i64> {
    let text = std::str::from_utf8(arg).map_err(|_| RedisError::not_an_integer())?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return Err(RedisError::not_an_integer());
    }
    text.parse().map_err(|_| RedisError::not_an_integer())
}

/// The key arguments of `cmd`, for authorization and routing.
pub fn keys(cmd: &Command) -> Vec<&Bytes> {
    match cmd {
        Command::Xadd(c) => vec![&c.key],
        Command::Xlen(c) => vec![&c.key],
        Command::Xrange(c) => vec![&c.key],
        Command::Xread(c) => c.keys.iter().collect(),
        Command::Xtrim(c) => vec![&c.key],
        Command::Xdel(c) => vec![&c.key],
        Command::Xinfo(c) => c.key().into_iter().collect(),
        Command::Xgroup(c) => c.key().into_iter().collect(),
        Command::Xreadgroup(c) => c.keys.iter().collect(),
        Command::Xack(c) => vec![&c.key],
        Command::Xpending(c) => vec![&c.key],
        Command::Xclaim(c) => vec![&c.key],
        Command::Xautoclaim(c) => vec![&c.key],
    }
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

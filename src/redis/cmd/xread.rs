//! `XREAD [COUNT n] [BLOCK ms] STREAMS key … id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::ReadFrom;

#[derive(Debug, Clone, PartialEq)]
pub struct Xread {
    pub count: Option<u64>,
    /// `BLOCK` in ms; 0 waits without end (a front door may cap it).
    pub block_ms: Option<u64>,
    pub keys: Vec<Bytes>,
    /// One per key.
    pub from: Vec<ReadFrom>,
}

/// What `XREAD` and `XREADGROUP` share: their options before `STREAMS`, and the keys
/// and raw ids after it.
pub struct ReadArgs<'a> {
    pub count: Option<u64>,
    pub block_ms: Option<u64>,
    pub noack: bool,
    pub group: Option<(Bytes, Bytes)>,
    pub keys: &'a [Bytes],
    pub ids: &'a [Bytes],
}

/// Parses as `xreadCommand` does, up to the ids (which each command reads its own way).
pub fn read_args<'a>(args: &Args<'a>, xreadgroup: bool) -> RedisResult<ReadArgs<'a>> {
    let all = args.all();
    let mut out = ReadArgs {
        count: None,
        block_ms: None,
        noack: false,
        group: None,
        keys: &[],
        ids: &[],
    };
    let mut streams = None;
    let mut i = 0;
    while i < all.len() {
        let more = all.len() - i - 1;
        let o = &all[i][..];
        if super::is(o, "BLOCK") && more > 0 {
            i += 1;
            let ms = super::integer_or(&all[i], "timeout is not an integer or out of range")?;
            if ms < 0 {
                return Err(RedisError::err("timeout is negative"));
            }
            out.block_ms = Some(ms as u64);
        } else if super::is(o, "COUNT") && more > 0 {
            i += 1;
            out.count = Some(super::integer(&all[i])?.max(0) as u64);
        } else if super::is(o, "STREAMS") && more > 0 {
            let symbol = if xreadgroup { '>' } else { '$' };
            streams = Some(super::streams_list(args.name, &all[i + 1..], symbol)?);
            break;
        } else if super::is(o, "GROUP") && more >= 2 {
            if !xreadgroup {
                return Err(RedisError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            out.group = Some((all[i + 1].clone(), all[i + 2].clone()));
            i += 2;
        } else if super::is(o, "NOACK") {
            if !xreadgroup {
                return Err(RedisError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            out.noack = true;
        } else {
            return Err(RedisError::syntax());
        }
        i += 1;
    }
    let Some((keys, ids)) = streams else {
        return Err(RedisError::syntax());
    };
    if xreadgroup && out.group.is_none() {
        return Err(RedisError::err("Missing GROUP option for XREADGROUP"));
    }
    (out.keys, out.ids) = (keys, ids);
    Ok(out)
}

impl Xread {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -4)?;
        let read = read_args(args, false)?;
        let from = read
            .ids
            .iter()
            .map(|id| match super::cstr(id) {
                b"$" => Ok(ReadFrom::Last),
                b">" => Err(RedisError::err(
                    "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                )),
                _ => crate::redis::ids::strict_id(id).map(ReadFrom::After),
            })
            .collect::<RedisResult<_>>()?;
        Ok(Self {
            count: read.count,
            block_ms: read.block_ms,
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

    fn xread(words: &[&str]) -> Xread {
        match ok(words) {
            Command::Xread(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            xread(&[
                "XREAD", "COUNT", "2", "BLOCK", "0", "STREAMS", "a", "b", "$", "5"
            ]),
            Xread {
                count: Some(2),
                block_ms: Some(0),
                keys: vec![b("a"), b("b")],
                from: vec![ReadFrom::Last, ReadFrom::After(EntryId::new(5, 0))],
            }
        );
        let c = xread(&["xread", "streams", "s", "1-1"]);
        assert_eq!((c.count, c.block_ms), (None, None));
        assert_eq!(c.from, vec![ReadFrom::After(EntryId::new(1, 1))]);
        // The last COUNT wins; a negative COUNT is 0 (no limit, as for Redis).
        assert_eq!(
            xread(&["XREAD", "COUNT", "1", "COUNT", "2", "STREAMS", "s", "0"]).count,
            Some(2)
        );
        assert_eq!(
            xread(&["XREAD", "COUNT", "-1", "STREAMS", "s", "0"]).count,
            Some(0)
        );
        assert_eq!(
            xread(&["XREAD", "BLOCK", "9223372036854775807", "STREAMS", "s", "0"]).block_ms,
            Some(i64::MAX as u64)
        );
        // `$` compares as a C string; STREAMS may name a key STREAMS.
        assert_eq!(
            xread(&["XREAD", "STREAMS", "s", "$\0"]).from,
            vec![ReadFrom::Last]
        );
        let c = xread(&["XREAD", "STREAMS", "STREAMS", "0"]);
        assert_eq!(
            (c.keys, c.from),
            (vec![b("STREAMS")], vec![ReadFrom::After(EntryId::ZERO)])
        );
    }

    /// Every error checked against redis-server 7.0.15.
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XREAD", "STREAMS", "s"]),
            "ERR wrong number of arguments for 'xread' command"
        );
        assert_eq!(err(&["XREAD", "COUNT", "1", "STREAMS"]), "ERR syntax error");
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "t", "0"]),
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
        );
        assert_eq!(
            err(&["XREAD", "COUNT", "1", "STREAMS", "s"]),
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
        );
        assert_eq!(
            err(&["XREAD", "BLOCK", "-1", "STREAMS", "s", "0"]),
            "ERR timeout is negative"
        );
        assert_eq!(
            err(&["XREAD", "BLOCK", "x", "STREAMS", "s", "0"]),
            "ERR timeout is not an integer or out of range"
        );
        assert_eq!(
            err(&["XREAD", "BLOCK", "9223372036854775808", "STREAMS", "s", "0"]),
            "ERR timeout is not an integer or out of range"
        );
        assert_eq!(
            err(&["XREAD", "COUNT", "x", "STREAMS", "s", "0"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["XREAD", "GROUP", "g", "c", "STREAMS", "s", "0"]),
            "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
        );
        assert_eq!(
            err(&["XREAD", "NOACK", "STREAMS", "s", "0"]),
            "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", ">"]),
            "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "+"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "-"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "x"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XREAD", "FOO", "STREAMS", "s", "0"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "(1-1"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "1-*"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(err(&["XREAD", "COUNT", "1", "s", "0"]), "ERR syntax error");
        assert_eq!(err(&["XREAD", "COUNT", "1", "BLOCK"]), "ERR syntax error");
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "s", "0", ">"]),
            "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", "s", "x", ">"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "STREAMS", "s", "0"]),
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "nokey", "x"]),
            "ERR Invalid stream ID specified as stream command argument"
        );
        assert_eq!(
            err(&[
                "XREAD", "BLOCK", "1", "GROUP", "g", "c", "STREAMS", "s", "0"
            ]),
            "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
        );
        assert_eq!(
            err(&["XREAD", "BLOCK", "-1", "COUNT", "x", "STREAMS", "s", "0"]),
            "ERR timeout is negative"
        );
        assert_eq!(
            err(&["XREAD", "GROUP", "g", "STREAMS", "s", "0"]),
            "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
        );
        assert_eq!(
            err(&["XREAD", "STREAMS", "s", ">\0"]),
            "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
        );
        assert_eq!(
            err(&["XREAD", "COUNT", "\t5", "STREAMS", "s", "0"]),
            "ERR value is not an integer or out of range"
        );
    }
}

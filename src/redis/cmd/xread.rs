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
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
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

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
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
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

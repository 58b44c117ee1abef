//! `XRANGE key start end [COUNT n]` and `XREVRANGE key end start [COUNT n]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xrange {
    pub key: Bytes,
    /// Inclusive bounds, exclusive `(` ones already stepped; `start > end` is an empty range.
    pub start: EntryId,
    pub end: EntryId,
    /// `COUNT`; a negative count is 0 (an empty reply), as Redis.
    pub count: Option<u64>,
    /// `XREVRANGE`: newest first.
    pub rev: bool,
}

impl Xrange {
    /// `rev`: the arguments are `end start` (`XREVRANGE`).
    pub fn parse(args: &mut Args, rev: bool) -> RedisResult<Self> {
        let _ = (args, rev);
        Err(RedisError::syntax())
    }
}

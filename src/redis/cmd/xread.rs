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

impl Xread {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

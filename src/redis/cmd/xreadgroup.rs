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
    /// One per key.
    pub from: Vec<GroupFrom>,
}

impl Xreadgroup {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

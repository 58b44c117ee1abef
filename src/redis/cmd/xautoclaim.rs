//! `XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xautoclaim {
    pub key: Bytes,
    pub group: Bytes,
    pub consumer: Bytes,
    pub min_idle_ms: u64,
    /// Inclusive (a `(` start already stepped).
    pub start: EntryId,
    /// Default 100.
    pub count: u64,
    pub justid: bool,
}

impl Xautoclaim {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

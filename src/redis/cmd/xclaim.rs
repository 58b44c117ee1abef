//! `XCLAIM key group consumer min-idle-time id … [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xclaim {
    pub key: Bytes,
    pub group: Bytes,
    pub consumer: Bytes,
    pub min_idle_ms: u64,
    pub ids: Vec<EntryId>,
    /// `IDLE`: the claimed entries' idle time is set to this.
    pub idle_ms: Option<u64>,
    /// `TIME`: their delivery time is set to this (unix ms).
    pub time_ms: Option<u64>,
    pub retry_count: Option<u64>,
    pub force: bool,
    pub justid: bool,
    pub last_id: Option<EntryId>,
}

impl Xclaim {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

//! `XPENDING key group [[IDLE ms] start end count [consumer]]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xpending {
    pub key: Bytes,
    pub group: Bytes,
    /// The extended form; `None` is the summary.
    pub range: Option<PendingRange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingRange {
    pub min_idle_ms: Option<u64>,
    /// Inclusive, exclusive `(` bounds already stepped.
    pub start: EntryId,
    pub end: EntryId,
    /// A negative count is 0.
    pub count: u64,
    pub consumer: Option<Bytes>,
}

impl Xpending {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

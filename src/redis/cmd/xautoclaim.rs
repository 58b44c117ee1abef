//! `XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::{EntryId, interval_bound};

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
        super::check_arity(args.name, args.all().len() + 1, -6)?;
        let all = args.all();
        let min_idle = super::integer_or(&all[3], "Invalid min-idle-time argument for XAUTOCLAIM")?;
        let start = interval_bound(&all[4], 0, true)?;
        let (mut count, mut justid) = (100u64, false);
        let mut j = 5;
        while j < all.len() {
            let more = all.len() - 1 - j;
            if super::is(&all[j], "COUNT") && more > 0 {
                let max = (i64::MAX / 16) as u64;
                count = match super::integer_or(&all[j + 1], "COUNT must be > 0") {
                    Ok(n) if n >= 1 && (n as u64) <= max => n as u64,
                    _ => return Err(RedisError::err("COUNT must be > 0")),
                };
                j += 1;
            } else if super::is(&all[j], "JUSTID") {
                justid = true;
            } else {
                return Err(RedisError::syntax());
            }
            j += 1;
        }
        Ok(Self {
            key: all[0].clone(),
            group: all[1].clone(),
            consumer: all[2].clone(),
            min_idle_ms: min_idle.max(0) as u64,
            start,
            count,
            justid,
        })
    }
}

//! `XPENDING key group [[IDLE ms] start end count [consumer]]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::{EntryId, interval_bound};

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
        super::check_arity(args.name, args.all().len() + 1, -3)?;
        let all = args.all();
        let argc = all.len() + 1;
        if argc != 3 && !(6..=9).contains(&argc) {
            return Err(RedisError::syntax());
        }
        let mut range = None;
        if argc >= 6 {
            let mut start = 2;
            let mut min_idle_ms = None;
            if super::is(&all[2], "IDLE") {
                let idle = super::integer(&all[3])?;
                if argc < 8 {
                    return Err(RedisError::syntax());
                }
                min_idle_ms = (idle > 0).then_some(idle as u64);
                start += 2;
            }
            let count = super::integer(&all[start + 2])?.max(0) as u64;
            let lo = interval_bound(&all[start], 0, true)?;
            let hi = interval_bound(&all[start + 1], u64::MAX, false)?;
            range = Some(PendingRange {
                min_idle_ms,
                start: lo,
                end: hi,
                count,
                consumer: all.get(start + 3).cloned(),
            });
        }
        Ok(Self {
            key: all[0].clone(),
            group: all[1].clone(),
            range,
        })
    }
}

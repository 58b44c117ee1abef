//! `XRANGE key start end [COUNT n]` and `XREVRANGE key end start [COUNT n]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::{EntryId, interval_bound};

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
        super::check_arity(args.name, args.all().len() + 1, -4)?;
        let all = args.all();
        let (start, end) = if rev {
            (&all[2], &all[1])
        } else {
            (&all[1], &all[2])
        };
        let start = interval_bound(start, 0, true)?;
        let end = interval_bound(end, u64::MAX, false)?;
        let mut count = None;
        let mut j = 3;
        while j < all.len() {
            if super::is(&all[j], "COUNT") && j + 1 < all.len() {
                count = Some(super::integer(&all[j + 1])?.max(0) as u64);
                j += 2;
            } else {
                return Err(RedisError::syntax());
            }
        }
        Ok(Self {
            key: all[0].clone(),
            start,
            end,
            count,
            rev,
        })
    }
}

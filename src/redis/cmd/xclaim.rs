//! `XCLAIM key group consumer min-idle-time id … [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::{engine::group_state::ClaimTime, redis::ids::EntryId};

#[derive(Debug, Clone, PartialEq)]
pub struct Xclaim {
    pub key: Bytes,
    pub group: Bytes,
    pub consumer: Bytes,
    pub min_idle_ms: u64,
    pub ids: Vec<EntryId>,
    /// The delivery time `IDLE` (as `now - idle`, `Idle`) or `TIME` sets, the last given.
    pub time: Option<ClaimTime>,
    /// `RETRYCOUNT`; a negative count is as if not given.
    pub retry_count: Option<u64>,
    pub force: bool,
    pub justid: bool,
    pub last_id: Option<EntryId>,
    /// An argument Redis refuses, reported after the group is found (as Redis orders it).
    pub late_error: Option<RedisError>,
}

impl Xclaim {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -6)?;
        let all = args.all();
        let mut c = Self {
            key: all[0].clone(),
            group: all[1].clone(),
            consumer: all[2].clone(),
            min_idle_ms: 0,
            ids: Vec::new(),
            time: None,
            retry_count: None,
            force: false,
            justid: false,
            last_id: None,
            late_error: None,
        };
        if let Err(e) = c.parse_rest(&all[3..]) {
            c.late_error = Some(e);
        }
        Ok(c)
    }

    /// Everything after `key group consumer`, which Redis reads after finding the group.
    fn parse_rest(&mut self, rest: &[Bytes]) -> RedisResult<()> {
        let min_idle = super::integer_or(&rest[0], "Invalid min-idle-time argument for XCLAIM")?;
        self.min_idle_ms = min_idle.max(0) as u64;
        let mut j = 1;
        while j < rest.len() {
            match crate::redis::ids::strict_id(&rest[j]) {
                Ok(id) => self.ids.push(id),
                Err(_) => break,
            }
            j += 1;
        }
        while j < rest.len() {
            let more = rest.len() - 1 - j;
            let opt = &rest[j][..];
            if super::is(opt, "FORCE") {
                self.force = true;
            } else if super::is(opt, "JUSTID") {
                self.justid = true;
            } else if super::is(opt, "IDLE") && more > 0 {
                j += 1;
                let ms = super::integer_or(&rest[j], "Invalid IDLE option argument for XCLAIM")?;
                self.time = Some(ClaimTime::Idle(ms));
            } else if super::is(opt, "TIME") && more > 0 {
                j += 1;
                let ms = super::integer_or(&rest[j], "Invalid TIME option argument for XCLAIM")?;
                self.time = Some(ClaimTime::Time(ms));
            } else if super::is(opt, "RETRYCOUNT") && more > 0 {
                j += 1;
                let n =
                    super::integer_or(&rest[j], "Invalid RETRYCOUNT option argument for XCLAIM")?;
                self.retry_count = (n >= 0).then_some(n as u64);
            } else if super::is(opt, "LASTID") && more > 0 {
                j += 1;
                self.last_id = Some(crate::redis::ids::strict_id(&rest[j])?);
            } else {
                return Err(RedisError::err(format!(
                    "Unrecognized XCLAIM option '{}'",
                    super::shown(opt, usize::MAX)
                )));
            }
            j += 1;
        }
        Ok(())
    }
}

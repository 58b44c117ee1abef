//! `XACK key group id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::RedisResult;
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xack {
    pub key: Bytes,
    pub group: Bytes,
    /// Ids Redis refuses are an error reported only when the key and group exist.
    pub ids: RedisResult<Vec<EntryId>>,
}

impl Xack {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -4)?;
        let all = args.all();
        let ids = all[2..]
            .iter()
            .map(|a| crate::redis::ids::strict_id(a))
            .collect::<RedisResult<_>>();
        Ok(Self {
            key: all[0].clone(),
            group: all[1].clone(),
            ids,
        })
    }
}

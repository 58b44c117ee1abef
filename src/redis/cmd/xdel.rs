//! `XDEL key id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::RedisResult;
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xdel {
    pub key: Bytes,
    pub ids: Vec<EntryId>,
}

impl Xdel {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -3)?;
        let all = args.all();
        let ids = all[1..]
            .iter()
            .map(|a| crate::redis::ids::strict_id(a))
            .collect::<RedisResult<_>>()?;
        Ok(Self {
            key: all[0].clone(),
            ids,
        })
    }
}

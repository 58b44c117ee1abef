//! `XDEL key id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xdel {
    pub key: Bytes,
    pub ids: Vec<EntryId>,
}

impl Xdel {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

//! `XACK key group id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xack {
    pub key: Bytes,
    pub group: Bytes,
    pub ids: Vec<EntryId>,
}

impl Xack {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

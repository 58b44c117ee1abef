//! `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use super::TrimSpec;
use crate::redis::ids::AddId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xadd {
    pub key: Bytes,
    pub nomkstream: bool,
    pub trim: Option<TrimSpec>,
    pub id: AddId,
    /// At least one pair, in the order given.
    pub fields: Vec<(Bytes, Bytes)>,
}

impl Xadd {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

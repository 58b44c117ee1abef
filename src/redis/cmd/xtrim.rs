//! `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use super::TrimSpec;

#[derive(Debug, Clone, PartialEq)]
pub struct Xtrim {
    pub key: Bytes,
    pub trim: TrimSpec,
}

impl Xtrim {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

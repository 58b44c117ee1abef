//! `XLEN key`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Xlen {
    pub key: Bytes,
}

impl Xlen {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }
}

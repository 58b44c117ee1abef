//! `XLEN key`

use bytes::Bytes;

use super::Args;
use crate::redis::error::RedisResult;

#[derive(Debug, Clone, PartialEq)]
pub struct Xlen {
    pub key: Bytes,
}

impl Xlen {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, 2)?;
        Ok(Self {
            key: args.required()?.clone(),
        })
    }
}

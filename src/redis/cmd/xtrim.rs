//! `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`

use bytes::Bytes;

use super::Args;
use super::TrimSpec;
use crate::redis::error::{RedisError, RedisResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Xtrim {
    pub key: Bytes,
    pub trim: TrimSpec,
}

impl Xtrim {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -4)?;
        let all = args.all();
        let (trim, _, _, _) = super::add_or_trim(&all[1..], false)?;
        Ok(Self {
            key: all[0].clone(),
            trim: trim.ok_or_else(RedisError::syntax)?,
        })
    }
}

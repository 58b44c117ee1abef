//! `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value …`

use bytes::Bytes;

use super::Args;
use super::TrimSpec;
use crate::redis::error::{RedisError, RedisResult};
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
        super::check_arity(args.name, args.all().len() + 1, -5)?;
        let all = args.all();
        let (key, rest) = (all[0].clone(), &all[1..]);
        let (trim, nomkstream, id, at) = super::add_or_trim(rest, true)?;
        let fields = &rest[(at + 1).min(rest.len())..];
        if at >= rest.len() || fields.is_empty() || fields.len() % 2 == 1 {
            return Err(RedisError::arity(args.name));
        }
        let id = id.unwrap_or(AddId::Auto);
        if id == AddId::Exact(crate::redis::ids::EntryId::ZERO) {
            return Err(RedisError::err(
                "The ID specified in XADD must be greater than 0-0",
            ));
        }
        Ok(Self {
            key,
            nomkstream,
            trim,
            id,
            fields: fields
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        })
    }
}

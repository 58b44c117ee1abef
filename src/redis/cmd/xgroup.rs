//! `XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};
use crate::redis::ids::GroupStart;

#[derive(Debug, Clone, PartialEq)]
pub enum Xgroup {
    /// `CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]`
    Create {
        key: Bytes,
        group: Bytes,
        start: GroupStart,
        mkstream: bool,
        entries_read: Option<i64>,
    },
    /// `SETID key group id|$ [ENTRIESREAD n]`
    SetId {
        key: Bytes,
        group: Bytes,
        start: GroupStart,
        entries_read: Option<i64>,
    },
    Destroy {
        key: Bytes,
        group: Bytes,
    },
    CreateConsumer {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
    },
    DelConsumer {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
    },
    Help,
}

impl Xgroup {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }

    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Self::Create { key, .. }
            | Self::SetId { key, .. }
            | Self::Destroy { key, .. }
            | Self::CreateConsumer { key, .. }
            | Self::DelConsumer { key, .. } => Some(key),
            Self::Help => None,
        }
    }
}

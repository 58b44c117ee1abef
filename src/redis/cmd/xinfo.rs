//! `XINFO STREAM key [FULL [COUNT n]]`, `XINFO GROUPS key`, `XINFO CONSUMERS key group`, `XINFO HELP`

use bytes::Bytes;

use super::Args;
use crate::redis::error::{RedisError, RedisResult};

#[derive(Debug, Clone, PartialEq)]
pub enum Xinfo {
    Stream {
        key: Bytes,
        /// `FULL`, with its `COUNT` (default 10; 0 = everything).
        full: Option<u64>,
    },
    Groups {
        key: Bytes,
    },
    Consumers {
        key: Bytes,
        group: Bytes,
    },
    Help,
}

impl Xinfo {
    pub fn parse(args: &mut Args) -> RedisResult<Self> {
        let _ = args;
        Err(RedisError::syntax())
    }

    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Self::Stream { key, .. } | Self::Groups { key } | Self::Consumers { key, .. } => {
                Some(key)
            }
            Self::Help => None,
        }
    }
}

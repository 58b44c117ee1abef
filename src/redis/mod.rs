//! The Redis stream commands over the engine's streams: a key is a stream of a plate
//! (basin), an entry is a record (fields as headers, ids as in [`crate::engine::entries`]).
//! [`cmd`] parses and applies each command; [`reply`] types what it answers; front doors
//! (the plate HTTP surface, a RESP listener) only translate.

pub mod cmd;
pub mod error;
pub mod ids;
pub mod reply;

pub use error::{RedisError, RedisResult};
pub use reply::Reply;

use std::time::Duration;

use bytes::Bytes;

use crate::{api::auth::Caller, engine::Engine};

/// What a command runs with: the engine, who asks, and on which plate.
#[derive(Clone)]
pub struct Context {
    pub engine: Engine,
    pub caller: Caller,
    /// The basin whose streams are this plate's keys.
    pub plate: String,
    /// The longest a `BLOCK` waits (`BLOCK 0` included); `None` waits without end. After
    /// it a blocked read answers nil.
    pub max_block: Option<Duration>,
}

/// Parses and runs one command (`argv[0]` is its name).
pub async fn execute(ctx: &Context, argv: &[Bytes]) -> RedisResult<Reply> {
    let command = cmd::parse(argv)?;
    let _ = (ctx, command);
    Err(RedisError::Unsupported("not applied yet".into()))
}

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

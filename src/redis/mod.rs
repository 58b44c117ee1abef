//! The Redis stream commands over the engine's streams: a key is a stream of a plate
//! (basin), an entry is a record (fields as headers, ids as in [`crate::engine::entries`]).
//! Front doors turn requests into argument lists and replies into their encoding; the
//! commands themselves know neither HTTP nor RESP.
//!
//! | file | role | called by |
//! |---|---|---|
//! | `mod.rs` | [`Context`] (engine, caller, plate) and [`execute`]: parse, then apply | front doors |
//! | `cmd/` | one file per command: its typed form and its parser (Redis 7.0's options and error texts) | [`execute`] |
//! | `ids.rs` | the id forms commands accept (`*`, `<ms>-*`, `(` bounds …) | `cmd/` |
//! | `streams.rs` | applying `XADD`, `XLEN`, `XRANGE`, `XREAD`, `XTRIM`, `XDEL`, `XINFO STREAM`; blocking | [`execute`] |
//! | `groups.rs` | applying the group commands around [`crate::engine::group_state`], through `group_commit.rs` | [`execute`] |
//! | `group_commit.rs` | a node's concurrent changes to one group as one log record write | `groups.rs` |
//! | `keyspace.rs` | keys as Redis sees them: opening with access checks, snapshots, entries by id (binary search over seq_nums) | `streams.rs`, `groups.rs` |
//! | `seek_hints.rs` | where recently read entries sit, bounding the binary search of later seeks | `keyspace.rs` |
//! | `homes/` | with `--peers`, each key's home node: commands that change a key run there | [`execute`], `server.rs` |
//! | `reply.rs` | typed replies and their JSON form | everything above, front doors |
//! | `error.rs` | Redis's error replies and the service's errors | everything above, front doors |
//! | `http/` | the plate HTTP surface (`/{plate}/streams/…`): bodies to argument lists, the envelope | `server.rs` |
//! | `resp/` | the RESP listener (`--redis-port`): RESP2/RESP3 framing, connection commands, limits | `server.rs` |

pub(crate) mod cmd;
pub(crate) mod error;
mod group_commit;
mod groups;
pub mod homes;
pub(crate) mod http;
pub(crate) mod ids;
mod keyspace;
pub(crate) mod reply;
pub mod resp;
mod seek_hints;
mod streams;

pub use error::{RedisError, RedisResult};
pub use homes::Homes;
pub use reply::Reply;
pub use streams::Started;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use crate::{engine::Engine, http::auth::Caller};

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
    /// With `--peers`: where each key's commands run ([`homes`]); `None` runs every
    /// command here.
    pub homes: Option<Arc<Homes>>,
    /// The `Authorization` the caller presented, which a command forwarded to its key's
    /// home carries there.
    pub credential: Option<::http::HeaderValue>,
}

/// Parses and runs one command (`argv[0]` is its name).
pub async fn execute(ctx: &Context, argv: &[Bytes]) -> RedisResult<Reply> {
    use cmd::Command as C;
    let command = cmd::parse(argv)?;
    if let Some(homes) = &ctx.homes
        && let Some(answered) = homes.run_at_home(ctx, &command, argv).await
    {
        return answered;
    }
    match command {
        C::Xadd(c) => streams::xadd(ctx, &c).await,
        C::Xlen(c) => streams::xlen(ctx, &c.key).await,
        C::Xrange(c) => streams::xrange(ctx, &c).await,
        C::Xread(c) => streams::xread(ctx, &c).await,
        C::Xtrim(c) => streams::xtrim(ctx, &c.key, c.trim).await,
        C::Xdel(c) => streams::xdel(ctx, &c).await,
        C::Xgroup(c) => groups::xgroup(ctx, &c).await,
        C::Xreadgroup(c) => groups::xreadgroup(ctx, &c).await,
        C::Xack(c) => groups::xack(ctx, &c).await,
        C::Xpending(c) => groups::xpending(ctx, &c).await,
        C::Xclaim(c) => groups::xclaim(ctx, &c).await,
        C::Xautoclaim(c) => groups::xautoclaim(ctx, &c).await,
        C::Xinfo(c) => xinfo(ctx, &c).await,
    }
}

/// Begins a command that a connection may overlap with the ones after it, because its
/// effect is fixed once begun (see [`streams::xadd_start`]); a later command that reads
/// must still wait for its reply. `None`, before anything is done, for a command that
/// must run alone through [`execute`].
pub async fn start(ctx: &Context, argv: &[Bytes]) -> Option<RedisResult<Started>> {
    match cmd::parse(argv) {
        Ok(cmd::Command::Xadd(c))
            if ctx
                .homes
                .as_ref()
                .is_some_and(|h| h.is_elsewhere(&ctx.plate, &c.key)) =>
        {
            None
        }
        Ok(cmd::Command::Xadd(c)) => streams::xadd_start(ctx, &c).await,
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

async fn xinfo(ctx: &Context, c: &cmd::xinfo::Xinfo) -> RedisResult<Reply> {
    use cmd::xinfo::Xinfo;
    match c {
        Xinfo::Help => Ok(Reply::Array(
            cmd::xinfo::HELP.iter().map(Reply::text).collect(),
        )),
        Xinfo::Stream { key, full } => {
            let key = open_existing(ctx, key).await?;
            let full = full.clone()?;
            let groups = groups::stream_groups(ctx, &key, full).await?;
            streams::xinfo_stream(ctx, &key, full, groups).await
        }
        Xinfo::Groups { key } => groups::xinfo_groups(ctx, &open_existing(ctx, key).await?).await,
        Xinfo::Consumers { key: name, group } => {
            groups::xinfo_consumers(ctx, &open_existing(ctx, name).await?, name, group).await
        }
    }
}

/// The key, which must exist (`ERR no such key`).
async fn open_existing(ctx: &Context, name: &Bytes) -> RedisResult<keyspace::Key> {
    ctx.open(name, s2_common::access::Operation::Read)
        .await?
        .ok_or_else(|| RedisError::err("no such key"))
}

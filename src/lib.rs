//! Sluice: durable streams with the S2 API, kept entirely in object storage.
//!
//! Layers, top to bottom (nothing below reaches up, and no surface imports another):
//! - [`server`]: the process: listeners, the HTTP app composed of both surfaces' routes
//!   under their shared layers, background tasks, shutdown;
//! - [`api`]: the S2 HTTP surface (routing, content negotiation, S2 error codes);
//! - [`redis`]: the Redis stream commands over the engine, and their plate HTTP surface
//!   ([`redis::http`], replies as JSON);
//! - [`dashboard`]: the web dashboard's embedded page, a browser client of the S2 surface;
//! - [`peers`]: nodes telling each other of commits (an internal route and a client);
//! - [`http`]: plumbing both HTTP surfaces share (app state, access-token auth, draining);
//! - [`engine`]: the log (catalog, appenders, readers, manifests, chunks, caches);
//! - [`storage`]: object storage behind one small trait.
//!
//! [`metrics`] (histograms, the Prometheus text format) and [`limits`] (what a node
//! admits, the flags' values) are leaves any layer may use.

pub(crate) mod api;
pub(crate) mod dashboard;
pub mod engine;
#[cfg(test)]
mod fuzzing;
pub mod http;
pub mod limits;
pub(crate) mod metrics;
pub mod peers;
pub(crate) mod redis;
pub mod server;
pub mod storage;

/// Formats and keys reachable from outside the crate only for `benches/hot_paths.rs`
/// (the hot paths it measures) and the integration tests that damage a bucket on purpose.
#[doc(hidden)]
pub mod internals {
    pub use crate::{
        api::s2s::{batch_frame, regular_frame},
        engine::{
            chunk::{Chunk, ChunkBuilder},
            manifest::{ChunkRef, MAX_MANIFEST_CHUNKS, Manifest},
            reader::{ChunkSlice, ReadBatch},
            record::{RecordBatch, parse_append_input},
        },
    };

    /// Every object's key ([`crate::engine`]'s `layout.rs`).
    pub mod layout {
        pub use crate::engine::layout::*;
    }
}

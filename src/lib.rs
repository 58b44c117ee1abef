//! Sluice: durable streams with the S2 API, kept entirely in object storage.
//!
//! Layers, top to bottom (nothing below reaches up):
//! - [`api`]: the S2 HTTP surface (routing, content negotiation, S2 error codes, access
//!   tokens), which also mounts [`redis`], a Redis-Streams-style surface over the engine;
//! - [`engine`]: the log (catalog, appenders, readers, manifests, chunks, caches);
//! - [`storage`]: object storage behind one small trait.
//!
//! [`metrics`] (histograms, the Prometheus text format) is a leaf any layer may use.

pub mod api;
pub mod engine;
pub mod metrics;
pub mod redis;
pub mod server;
pub mod storage;

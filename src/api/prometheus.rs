//! `GET /metrics`: this node's counters and histograms in the Prometheus text format.

use axum::{
    Extension,
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, header};

use crate::http::AppState;
use crate::metrics::Exposition;
use crate::redis::http::KeyHomes;

/// Exposed latencies are in seconds; histograms observe microseconds.
const MICROS_PER_SECOND: f64 = 1e6;

pub async fn prometheus(
    State(state): State<AppState>,
    homes: Option<Extension<KeyHomes>>,
) -> Response {
    let counters = state.engine.store_counters();
    let c = counters.snapshot();
    let latency = &counters.latency;
    let engine = state.engine.metrics();
    let mut e = Exposition::default();
    e.counter(
        "sluice_store_requests_total",
        "Object-store requests made by this node.",
        &[
            ("op=\"get\"", c.gets),
            ("op=\"put\"", c.puts),
            ("op=\"list\"", c.lists),
            ("op=\"delete\"", c.deletes),
        ],
    );
    e.counter(
        "sluice_store_bytes_total",
        "Object-store payload bytes moved by this node.",
        &[
            ("direction=\"read\"", c.bytes_read),
            ("direction=\"written\"", c.bytes_written),
        ],
    );
    e.histogram(
        "sluice_store_request_duration_seconds",
        "How long this node's object-store requests took, failed ones included.",
        MICROS_PER_SECOND,
        &[
            ("op=\"get\"", &latency.get),
            ("op=\"put\"", &latency.put),
            ("op=\"list\"", &latency.list),
            ("op=\"delete\"", &latency.delete),
        ],
    );
    e.histogram(
        "sluice_append_ack_duration_seconds",
        "From an append reaching this node's engine to its ack, for appends applied.",
        MICROS_PER_SECOND,
        &[
            ("storage_class=\"express\"", &engine.ack_express),
            ("storage_class=\"standard\"", &engine.ack_standard),
        ],
    );
    e.histogram(
        "sluice_commit_bytes",
        "Size of each commit's chunk that landed; the count is this node's commits.",
        1.0,
        &[("", &engine.commit_bytes)],
    );
    e.counter(
        "sluice_commit_conflicts_total",
        "Conditional manifest writes of this node's commits that found the manifest changed.",
        &[("", engine.conflicts())],
    );
    let (from_memory, from_store) = engine.chunk_reads();
    e.counter(
        "sluice_read_chunks_total",
        "Chunks readers on this node found in memory, and ones they waited for from the store.",
        &[
            ("source=\"memory\"", from_memory),
            ("source=\"store\"", from_store),
        ],
    );
    let notices = state.engine.notices().counts();
    e.counter(
        "sluice_peer_notices_total",
        "Peers' states of followed streams this node took as newer, and ones it had already.",
        &[
            ("outcome=\"adopted\"", notices.adopted),
            ("outcome=\"not_newer\"", notices.not_newer),
        ],
    );
    e.counter(
        "sluice_peer_watches_total",
        "Watches of peers that failed, and peers' watches this node answered with a newer state.",
        &[
            ("result=\"failed\"", notices.watch_errors),
            ("result=\"answered\"", notices.watches_answered),
        ],
    );
    if let Some(Extension(KeyHomes(Some(homes)))) = homes {
        let (forwarded, ran_here) = homes.counts();
        e.counter(
            "sluice_redis_key_homes_total",
            "Redis commands this node sent to their key's home node, and ones it ran itself because the home could not be reached.",
            &[
                ("outcome=\"forwarded\"", forwarded),
                ("outcome=\"ran_here\"", ran_here),
            ],
        );
    }
    e.gauge(
        "sluice_cache_chunk_bytes",
        "Bytes of chunks held in this node's cache.",
        state.engine.cached_chunk_bytes(),
    );
    e.gauge(
        "sluice_append_inflight_bytes",
        "Bytes of appends admitted on this node and not yet answered (--append-inflight-bytes bounds it).",
        state.budget.in_flight() as u64,
    );
    e.counter(
        "sluice_append_admission_refused_total",
        "Appends refused unapplied after waiting --append-admission-timeout for admission.",
        &[("", state.budget.refused())],
    );
    e.gauge(
        "sluice_read_buffered_bytes",
        "Bytes read sessions on this node hold ready for clients that have not taken them yet.",
        state.send_buffers.buffered() as u64,
    );
    e.counter(
        "sluice_read_sessions_cut_off_total",
        "Read sessions ended because their client took nothing for --slow-reader-timeout.",
        &[("", state.send_buffers.cut_off())],
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        e.finish(),
    )
        .into_response()
}

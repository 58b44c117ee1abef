//! Server-sent events: `batch` events with `id: <last seq>,<count>,<bytes>` (cumulative
//! over the session and any sessions it resumes), `ping` events with the tail, an `error`
//! event if the read fails, and a final `data: [DONE]` when it ends normally. Events are
//! produced ahead of the client through the session's send buffer
//! ([`crate::http::send_buffer`]), which cuts off a client that stops taking them.

use std::{convert::Infallible, sync::Arc};

use axum::response::{
    IntoResponse, Response,
    sse::{Event, Sse},
};
use futures::StreamExt;
use http::{HeaderValue, header};
use s2_api::{
    data::Format,
    v1::stream::sse::{LastEventId, PingEventData},
};

use super::{
    error::ApiError,
    wire::{json_batch, position},
};
use crate::engine::{Clock, EngineError, ReadOutput, ReadSession, StreamHandle};
use crate::http::{AppState, send_buffer};

struct SseState {
    session: Option<ReadSession>,
    _handle: Arc<StreamHandle>,
    delivered_count: usize,
    delivered_bytes: usize,
    format: Format,
    draining: crate::http::Draining,
    clock: Clock,
    done_sent: bool,
}

pub fn read_events(
    state: AppState,
    handle: Arc<StreamHandle>,
    session: ReadSession,
    format: Format,
    resumed_from: Option<LastEventId>,
) -> Response {
    let init = SseState {
        session: Some(session),
        _handle: handle,
        delivered_count: resumed_from.map_or(0, |id| id.count),
        delivered_bytes: resumed_from.map_or(0, |id| id.bytes),
        format,
        draining: state.draining.clone(),
        clock: state.engine.clock(),
        done_sent: false,
    };
    let events = futures::stream::unfold(init, |mut st| async move {
        let Some(session) = st.session.as_mut() else {
            if st.done_sent {
                return None;
            }
            st.done_sent = true;
            return Some((Ok::<_, Infallible>(Event::default().data("[DONE]")), st));
        };
        let output = tokio::select! {
            out = session.next() => out,
            () = st.draining.started() => Some(Err(EngineError::Draining)),
        };
        let event = match output {
            None => {
                st.session = None;
                st.done_sent = true;
                Event::default().data("[DONE]")
            }
            Some(Ok(ReadOutput::Batch(batch))) => {
                st.delivered_count += batch.count;
                st.delivered_bytes += batch.metered_bytes;
                let id = LastEventId {
                    seq_num: batch.last_seq_num().unwrap_or_default(),
                    count: st.delivered_count,
                    bytes: st.delivered_bytes,
                };
                Event::default()
                    .event("batch")
                    .id(id.to_string())
                    .json_data(json_batch(&batch, st.format))
                    .expect("batches serialize")
            }
            Some(Ok(ReadOutput::Heartbeat(tail))) => Event::default()
                .event("ping")
                .json_data(PingEventData {
                    timestamp: st.clock.now_ms(),
                    tail: position(tail),
                })
                .expect("pings serialize"),
            Some(Err(e)) => {
                st.session = None;
                st.done_sent = true;
                let (_, body) = ApiError::from(e).to_parts();
                Event::default().event("error").data(body)
            }
        };
        Some((Ok(event), st))
    });
    let (parts, body) = Sse::new(events.boxed()).into_response().into_parts();
    // Event bodies never fail: their events are infallible.
    let items = body
        .into_data_stream()
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(|item| std::future::ready(item.ok()));
    let body = send_buffer::buffered(items, &state.limits, state.send_buffers.clone());
    let mut response = Response::from_parts(parts, body);
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

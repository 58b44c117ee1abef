//! S2S sessions: length-prefixed protobuf frames over a streaming HTTP body.
//!
//! Frame: 3-byte big-endian length L (flag byte + payload, 1 ≤ L ≤ 2 MiB), a flag byte
//! (bit 7 terminal; bits 6–5 compression: none, zstd, gzip), the payload. A terminal
//! frame carries a 2-byte HTTP status and a JSON error body and ends the session.
//!
//! The codec is written here rather than taken from `s2-api` because that one decodes
//! straight into owned protobuf messages; Sluice scans append input in place and writes
//! read batches from cached chunk bytes.

use std::{
    collections::VecDeque,
    convert::Infallible,
    io::{Read, Write},
    sync::Arc,
};

use axum::{body::Body, response::Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use prost::Message;
use s2_api::v1::{
    error::ErrorCode,
    stream::{
        proto,
        s2s::{CompressionAlgorithm, SessionMessage},
    },
};
use tokio::{
    sync::{mpsc, oneshot},
    time::{Duration, Instant},
};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    error::ApiError,
    wire::{encode_proto_batch, proto_ack, proto_batch_len, proto_batch_parts, proto_position},
};
use crate::engine::{
    Ack, AppendInput, Encryption, EngineResult, InputError, ReadBatch, ReadOutput, ReadSession,
    SessionGate, StreamHandle, parse_append_input,
};
use crate::http::{
    AppState,
    auth::Caller,
    budget::{AppendPermit, Refused},
    send_buffer,
};

/// Largest value of the length field.
pub const MAX_FRAME_LEN: usize = 2 * 1024 * 1024;
const MAX_PAYLOAD_LEN: usize = MAX_FRAME_LEN - 1;
const COMPRESSION_THRESHOLD: usize = 1024;
const FLAG_TERMINAL: u8 = 0x80;
const FLAG_COMPRESSION_MASK: u8 = 0x60;
const FLAG_COMPRESSION_SHIFT: u8 = 5;

/// Unacknowledged input an append session accepts before it stops reading.
const MAX_UNACKED_BYTES: usize = 32 * 1024 * 1024;
const MAX_UNACKED_INPUTS: usize = 1024;

fn session_response(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("s2s/proto"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A regular frame carrying `payload`, compressed with `compression` if it is large
/// enough to be worth it.
pub fn regular_frame(payload: &[u8], compression: CompressionAlgorithm) -> Bytes {
    let compressed = if payload.len() >= COMPRESSION_THRESHOLD {
        match compression {
            CompressionAlgorithm::None => None,
            CompressionAlgorithm::Zstd => zstd::bulk::compress(payload, 1)
                .ok()
                .map(|c| (c, CompressionAlgorithm::Zstd)),
            CompressionAlgorithm::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(payload.len() / 2),
                    flate2::Compression::fast(),
                );
                enc.write_all(payload)
                    .and_then(|()| enc.finish())
                    .ok()
                    .map(|c| (c, CompressionAlgorithm::Gzip))
            }
        }
    } else {
        None
    };
    let (body, algo): (&[u8], CompressionAlgorithm) = match &compressed {
        Some((c, a)) if c.len() < payload.len() => (c, *a),
        _ => (payload, CompressionAlgorithm::None),
    };
    assert!(body.len() <= MAX_PAYLOAD_LEN, "frame payload over 2 MiB");
    let mut buf = BytesMut::with_capacity(4 + body.len());
    buf.put_uint((body.len() + 1) as u64, 3);
    buf.put_u8(((algo as u8) << FLAG_COMPRESSION_SHIFT) & FLAG_COMPRESSION_MASK);
    buf.put_slice(body);
    buf.freeze()
}

/// A frame carrying a `ReadBatch`, as pieces to send in order. Uncompressed, large runs
/// of records go out as the cached chunks' own bytes and the rest is copied once
/// ([`proto_batch_parts`]).
pub fn batch_frame(batch: &ReadBatch, compression: CompressionAlgorithm) -> Vec<Bytes> {
    let len = proto_batch_len(batch);
    if compression != CompressionAlgorithm::None && len >= COMPRESSION_THRESHOLD {
        return vec![regular_frame(&encode_proto_batch(batch), compression)];
    }
    assert!(len <= MAX_PAYLOAD_LEN, "frame payload over 2 MiB");
    let length = ((len + 1) as u32).to_be_bytes();
    let prefix = [length[1], length[2], length[3], 0];
    proto_batch_parts(&prefix, batch)
}

pub fn terminal_frame(error: &ApiError) -> Bytes {
    SessionMessage::Terminal(error.to_terminal()).encode()
}

#[derive(Debug)]
enum FrameError {
    /// The peer sent something that is not a valid frame.
    Bad(String),
    /// A frame begun did not arrive whole within the timeout.
    TooSlow(Duration),
    /// The request body failed (the peer went away).
    Transport,
}

/// Reads frames from a request body. A session may sit idle between frames for as long
/// as it likes, but once a frame's first byte has arrived the rest must follow within
/// `timeout` (`--body-read-timeout`): a frame trickled a byte at a time cannot hold its
/// partial buffer (up to 2 MiB) forever.
struct FrameReader {
    body: Body,
    buf: BytesMut,
    ended: bool,
    timeout: Duration,
    /// When the first byte of the frame being read arrived.
    started: Option<Instant>,
}

impl FrameReader {
    fn new(body: Body) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            ended: false,
            timeout: crate::limits::Limits::default().body_read_timeout,
            started: None,
        }
    }

    fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The next regular frame's decompressed payload; `None` at a clean end of input.
    /// Cancel-safe: what has arrived stays buffered for the next call.
    async fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some(payload) = self.try_decode()? {
                // Bytes left over begin the next frame, which starts its clock now.
                self.started = (!self.buf.is_empty()).then(Instant::now);
                return Ok(Some(payload));
            }
            if self.ended {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Bad("input ended inside a frame".into()))
                };
            }
            let frame = match self.started {
                None => self.body.frame().await,
                Some(started) => {
                    match tokio::time::timeout_at(started + self.timeout, self.body.frame()).await {
                        Ok(frame) => frame,
                        Err(_) => return Err(FrameError::TooSlow(self.timeout)),
                    }
                }
            };
            match frame {
                None => self.ended = true,
                Some(Err(_)) => return Err(FrameError::Transport),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        if self.buf.is_empty() {
                            self.started = Some(Instant::now());
                        }
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    fn try_decode(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < 3 {
            return Ok(None);
        }
        let len = (usize::from(self.buf[0]) << 16)
            | (usize::from(self.buf[1]) << 8)
            | usize::from(self.buf[2]);
        if len == 0 {
            return Err(FrameError::Bad("zero-length frame".into()));
        }
        if len > MAX_FRAME_LEN {
            return Err(FrameError::Bad(format!(
                "frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit"
            )));
        }
        if self.buf.len() < 3 + len {
            return Ok(None);
        }
        self.buf.advance(3);
        let mut frame = self.buf.split_to(len).freeze();
        let flag = frame.get_u8();
        if flag & FLAG_TERMINAL != 0 {
            return Err(FrameError::Bad("terminal frame from the client".into()));
        }
        let payload = match (flag & FLAG_COMPRESSION_MASK) >> FLAG_COMPRESSION_SHIFT {
            0 => frame,
            1 => zstd::bulk::decompress(&frame, MAX_PAYLOAD_LEN)
                .map(Bytes::from)
                .map_err(|e| FrameError::Bad(format!("zstd: {e}")))?,
            2 => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&frame[..])
                    .take(MAX_PAYLOAD_LEN as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| FrameError::Bad(format!("gzip: {e}")))?;
                if out.len() > MAX_PAYLOAD_LEN {
                    return Err(FrameError::Bad("decompressed payload over 2 MiB".into()));
                }
                Bytes::from(out)
            }
            _ => return Err(FrameError::Bad("invalid compression bits".into())),
        };
        Ok(Some(payload))
    }
}

/// Starts an append session: answers 200 at once, then acks each input frame in order.
/// Each input's command records are checked against `caller`'s permissions, and each
/// input is admitted against the node's in-flight append bytes before it reaches the
/// engine: while it waits, the session reads no further (the client meets flow control)
/// but keeps sending the acks it owes, which give bytes back. An input not admitted
/// within `--append-admission-timeout` ends the session, after the acks owed, with a
/// terminal 429 `rate_limited`; it and everything after it are unapplied.
/// An append session on `stream`, its inputs sealed with the request's encryption.
pub fn append_session(
    state: AppState,
    caller: Caller,
    stream: (Arc<StreamHandle>, Encryption),
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let compression = CompressionAlgorithm::from_accept_encoding(headers);
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(run_append_session(
        state,
        caller,
        stream,
        body,
        tx,
        compression,
    ));
    session_response(Body::from_stream(ReceiverStream::new(rx)))
}

/// An input handed to the engine: where its outcome arrives, its size, and its admitted
/// bytes, held until its ack is sent.
type PendingAck = (oneshot::Receiver<EngineResult<Ack>>, usize, AppendPermit);

type Admission = std::pin::Pin<
    Box<dyn Future<Output = (Result<AppendPermit, Refused>, AppendInput, usize)> + Send>,
>;

async fn run_append_session(
    state: AppState,
    caller: Caller,
    (handle, encryption): (Arc<StreamHandle>, Encryption),
    body: Body,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    compression: CompressionAlgorithm,
) {
    let gate = Arc::new(SessionGate::default());
    let mut reader = FrameReader::new(body).with_timeout(state.limits.body_read_timeout);
    let mut pending: VecDeque<PendingAck> = VecDeque::new();
    // The input waiting to be admitted, if any; nothing more is read meanwhile.
    let mut admission: Option<Admission> = None;
    let mut unacked_bytes = 0usize;
    let mut input_done = false;
    // Set when the session must end after the acks already owed are sent.
    let mut closing: Option<ApiError> = None;
    let draining = state.draining.clone();

    loop {
        if closing.is_some() {
            // An input still waiting for admission is dropped unapplied.
            admission = None;
        }
        if pending.is_empty() && (input_done || closing.is_some()) {
            if let Some(e) = closing {
                let _ = tx.send(Ok(terminal_frame(&e))).await;
            }
            return;
        }
        let reading = !input_done
            && closing.is_none()
            && admission.is_none()
            && unacked_bytes < MAX_UNACKED_BYTES
            && pending.len() < MAX_UNACKED_INPUTS;
        let event = tokio::select! {
            biased;
            ack = async { (&mut pending.front_mut().expect("guarded").0).await }, if !pending.is_empty() => {
                SessionEvent::Ack(ack)
            }
            admitted = async { admission.as_mut().expect("guarded").await }, if admission.is_some() => {
                admission = None;
                SessionEvent::Admitted(admitted)
            }
            frame = reader.next(), if reading => SessionEvent::Input(frame),
            () = draining.started(), if closing.is_none() && !input_done => SessionEvent::Draining,
            () = tx.closed() => SessionEvent::ClientGone,
        };
        match event {
            SessionEvent::Ack(ack) => {
                // The permit goes once the ack is on its way.
                let (_, size, _permit) = pending.pop_front().expect("non-empty");
                unacked_bytes -= size;
                let frame = match ack {
                    Ok(Ok(ack)) => regular_frame(&proto_ack(&ack).encode_to_vec(), compression),
                    Ok(Err(e)) => terminal_frame(&e.into()),
                    Err(_) => {
                        terminal_frame(&ApiError::new(ErrorCode::Other, "append outcome unknown"))
                    }
                };
                let terminal = frame[3] & FLAG_TERMINAL != 0;
                if tx.send(Ok(frame)).await.is_err() || terminal {
                    return;
                }
            }
            SessionEvent::Input(Ok(Some(payload))) => match parse_append_input(&payload) {
                Ok(input) => match caller.may_run_commands(&input.batch) {
                    Ok(()) => {
                        let size = payload.len();
                        let budget = state.budget.clone();
                        admission =
                            Some(Box::pin(
                                async move { (budget.admit(size).await, input, size) },
                            ));
                    }
                    Err(e) => closing = Some(e.into()),
                },
                Err(InputError::Malformed(m)) => {
                    closing = Some(ApiError::bad_frame(format!("undecodable AppendInput: {m}")));
                }
                Err(InputError::Invalid(m)) => closing = Some(ApiError::invalid(m)),
            },
            SessionEvent::Input(Ok(None)) | SessionEvent::Input(Err(FrameError::Transport)) => {
                input_done = true;
            }
            SessionEvent::Admitted((Ok(permit), input, size)) => {
                match state
                    .engine
                    .submit(&handle, encryption.seal(input), Some(gate.clone()))
                    .await
                {
                    Ok(rx) => {
                        unacked_bytes += size;
                        pending.push_back((rx, size, permit));
                    }
                    Err(e) => closing = Some(e.into()),
                }
            }
            SessionEvent::Admitted((Err(refused), _, _)) => {
                closing = Some(ApiError::admission_refused(refused));
            }
            SessionEvent::Input(Err(FrameError::Bad(m))) => closing = Some(ApiError::bad_frame(m)),
            SessionEvent::Input(Err(FrameError::TooSlow(after))) => {
                closing = Some(ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!(
                        "an input frame did not arrive whole within {after:?} of its first byte \
                         (--body-read-timeout)"
                    ),
                ));
            }
            SessionEvent::Draining => {
                closing = Some(ApiError::new(
                    ErrorCode::ServerDraining,
                    "server is shutting down; reconnect",
                ));
            }
            SessionEvent::ClientGone => return,
        }
    }
}

enum SessionEvent {
    Ack(Result<EngineResult<Ack>, oneshot::error::RecvError>),
    Admitted((Result<AppendPermit, Refused>, AppendInput, usize)),
    Input(Result<Option<Bytes>, FrameError>),
    Draining,
    ClientGone,
}

/// Serves a read session as S2S frames: batches, heartbeats, and a terminal frame if it
/// fails; produced ahead of the client through its send buffer ([`send_buffer`]), which
/// cuts off a client that stops taking them.
pub fn read_session(
    state: AppState,
    handle: Arc<StreamHandle>,
    session: ReadSession,
    headers: &HeaderMap,
) -> Response {
    let compression = CompressionAlgorithm::from_accept_encoding(headers);
    let draining = state.draining.clone();
    let frames = futures::stream::unfold(
        (Some(session), handle, draining),
        move |(session, handle, draining)| async move {
            let mut session = session?;
            let output = tokio::select! {
                out = session.next() => out,
                () = draining.started() => Some(Err(crate::engine::EngineError::Draining)),
            };
            let frame = match output? {
                Ok(ReadOutput::Batch(batch)) => batch_frame(&batch, compression),
                Ok(ReadOutput::Heartbeat(tail)) => {
                    let hb = proto::ReadBatch {
                        records: vec![],
                        tail: Some(proto_position(tail)),
                    };
                    vec![regular_frame(&hb.encode_to_vec(), compression)]
                }
                Err(e) => return Some((vec![terminal_frame(&e.into())], (None, handle, draining))),
            };
            Some((frame, (Some(session), handle, draining)))
        },
    )
    .flat_map(futures::stream::iter);
    let limits = state.limits.clone();
    session_response(send_buffer::buffered(
        frames,
        &limits,
        state.send_buffers.clone(),
    ))
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{chunk::chunk_of_bodies, reader::ChunkSlice};

    fn reader_over(bytes: Vec<u8>) -> FrameReader {
        FrameReader::new(Body::from(bytes))
    }

    #[tokio::test]
    async fn frames_round_trip_with_every_compression() {
        let payload: Vec<u8> = (0..5000u32).flat_map(|i| (i % 7).to_be_bytes()).collect();
        for algo in [
            CompressionAlgorithm::None,
            CompressionAlgorithm::Zstd,
            CompressionAlgorithm::Gzip,
        ] {
            let frame = regular_frame(&payload, algo);
            let mut r = reader_over(frame.to_vec());
            assert_eq!(
                r.next().await.unwrap().unwrap(),
                Bytes::from(payload.clone())
            );
            assert!(r.next().await.unwrap().is_none());
        }
    }

    /// A read batch of 40 records of 1 KiB in one chunk: long enough to be sent from the
    /// chunk's own bytes uncompressed, and to be compressed when asked.
    fn sample_batch() -> ReadBatch {
        let bodies: Vec<[u8; 1024]> = (0..40u8).map(|i| [i; 1024]).collect();
        let chunk = Arc::new(chunk_of_bodies(0, bodies.iter().map(|b| &b[..])));
        ReadBatch {
            count: 40,
            metered_bytes: (0..40).map(|i| chunk.record(i).metered).sum(),
            slices: vec![ChunkSlice::new(chunk, 0..40)],
            tail: None,
        }
    }

    #[tokio::test]
    async fn batch_frames_carry_the_encoded_batch_with_every_compression() {
        let batch = sample_batch();
        for algo in [
            CompressionAlgorithm::None,
            CompressionAlgorithm::Zstd,
            CompressionAlgorithm::Gzip,
        ] {
            let parts = batch_frame(&batch, algo);
            if algo == CompressionAlgorithm::None {
                assert!(parts.len() > 1, "uncompressed records are not copied");
            }
            let mut r = reader_over(parts.concat());
            assert_eq!(
                r.next().await.unwrap().unwrap(),
                encode_proto_batch(&batch),
                "{algo:?}"
            );
            assert!(r.next().await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn rejects_bad_frames() {
        for bytes in [
            vec![0, 0, 0],               // zero length
            vec![0, 0, 2, 0x60, 1],      // compression bits 11
            vec![0, 0, 3, 0x80, 1, 144], // terminal from client
            vec![0x20, 0, 1, 0],         // over 2 MiB
            vec![0, 0, 5, 0, 1],         // truncated
        ] {
            let mut r = reader_over(bytes.clone());
            assert!(
                matches!(r.next().await, Err(FrameError::Bad(_))),
                "{bytes:?}"
            );
        }
    }
}

//! Records: check-tail, append and read, dispatched by content negotiation to unary JSON,
//! unary protobuf, SSE and S2S sessions.

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Request, State},
    response::{IntoResponse, Response},
};
use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderValue, header};
use http_body::{Frame, SizeHint};
use prost::Message;
use s2_api::{
    data::Format,
    mime::{self, JsonOrProto},
    v1::{
        config::StreamConfigHeader,
        stream::{
            AppendAck as JsonAppendAck, AppendInput as JsonAppendInput, Header as JsonHeader,
            ReadBatch as JsonReadBatch, ReadEnd as ApiReadEnd, ReadStart as ApiReadStart,
            SequencedRecord as JsonRecord, StreamPosition, TailResponse, proto, sse::LastEventId,
        },
    },
};
use s2_common::{
    access::Operation,
    config::OptionalStreamConfig,
    stream::{ReadEnd, ReadStart},
};

use super::{
    error::ApiError,
    extract::{BasinHeader, JsonBody, QueryOf, StreamPath, optional_header},
    s2s, sse,
};
use crate::engine::{
    Ack, AppendInput, AutoCreate, Position, ReadBatch,
    record::{RecordBatchBuilder, parse_append_input},
};
use crate::http::{AppState, auth::Caller};

pub fn position(p: Position) -> StreamPosition {
    StreamPosition {
        seq_num: p.seq_num,
        timestamp: p.timestamp,
    }
}

pub fn proto_position(p: Position) -> proto::StreamPosition {
    proto::StreamPosition {
        seq_num: p.seq_num,
        timestamp: p.timestamp,
    }
}

pub fn proto_ack(ack: &Ack) -> proto::AppendAck {
    proto::AppendAck {
        start: Some(proto_position(ack.start)),
        end: Some(proto_position(ack.end)),
        tail: Some(proto_position(ack.tail)),
    }
}

/// The `s2-stream-config` patch applied if the request creates the stream.
fn stream_config_patch(headers: &HeaderMap) -> Result<OptionalStreamConfig, ApiError> {
    Ok(optional_header::<StreamConfigHeader>(headers)?
        .map(|h| h.0)
        .unwrap_or_default())
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    Ok(optional_header::<Format>(headers)?.unwrap_or_default())
}

fn response_mime(headers: &HeaderMap) -> JsonOrProto {
    mime::accept(headers)
        .as_ref()
        .and_then(JsonOrProto::from_mime)
        .unwrap_or(JsonOrProto::Json)
}

pub async fn check_tail(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
) -> Result<axum::Json<TailResponse>, ApiError> {
    let stream = caller.may_on_stream(Operation::CheckTail, &basin, &stream)?;
    let handle = state
        .engine
        .open(
            &basin,
            &stream,
            AutoCreate::OnRead(OptionalStreamConfig::default()),
        )
        .await?;
    let tail = state.engine.check_tail(&handle).await?;
    Ok(axum::Json(TailResponse {
        tail: position(tail),
    }))
}

// ---- append ----

/// Decodes a JSON `AppendInput` whose strings are encoded per `s2-format`.
fn decode_json_input(input: JsonAppendInput, format: Format) -> Result<AppendInput, ApiError> {
    let mut builder = RecordBatchBuilder::with_capacity(input.records.len(), 0);
    let mut headers: Vec<(Bytes, Bytes)> = Vec::new();
    for record in input.records {
        headers.clear();
        for JsonHeader(name, value) in record.headers {
            headers.push((format.decode(name)?, format.decode(value)?));
        }
        let body = format.decode(record.body)?;
        builder.push(
            record.timestamp,
            headers.iter().map(|(n, v)| (&n[..], &v[..])),
            &body,
        )?;
    }
    Ok(AppendInput {
        batch: builder.finish()?,
        match_seq_num: input.match_seq_num,
        fencing_token: input.fencing_token.map(|t| t.to_string()),
    })
}

pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    request: Request,
) -> Result<Response, ApiError> {
    let stream = caller.may_on_stream(Operation::Append, &basin, &stream)?;
    let headers = request.headers().clone();
    let patch = stream_config_patch(&headers)?;
    let content_type = mime::content_type(&headers);
    if content_type.as_ref().is_some_and(mime::is_s2s_proto) {
        let handle = state
            .engine
            .open(&basin, &stream, AutoCreate::OnAppend(patch))
            .await?;
        return Ok(s2s::append_session(
            state,
            caller,
            handle,
            &headers,
            request.into_body(),
        ));
    }
    let is_proto = content_type
        .as_ref()
        .and_then(JsonOrProto::from_mime)
        .is_some_and(|m| matches!(m, JsonOrProto::Proto));
    let input = if is_proto {
        let body = Bytes::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_proto(e.body_text()))?;
        parse_append_input(&body)?
    } else {
        let format = format_of(&headers)?;
        let JsonBody(input) = JsonBody::<JsonAppendInput>::from_request(request, &state).await?;
        decode_json_input(input, format)?
    };
    caller.may_run_commands(&input.batch)?;
    let handle = state
        .engine
        .open(&basin, &stream, AutoCreate::OnAppend(patch))
        .await?;
    let ack = state.engine.append(&handle, input, None).await?;
    Ok(match response_mime(&headers) {
        JsonOrProto::Proto => proto_response(proto_ack(&ack).encode_to_vec().into()),
        JsonOrProto::Json => axum::Json(JsonAppendAck {
            start: position(ack.start),
            end: position(ack.end),
            tail: position(ack.tail),
        })
        .into_response(),
    })
}

fn proto_response(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/protobuf"),
        )],
        body,
    )
        .into_response()
}

// ---- read ----

/// A protobuf `ReadBatch` response sent as [`proto_batch_parts`], so large runs of
/// records are not copied.
fn proto_batch_response(batch: &ReadBatch) -> Response {
    let parts = PartsBody::new(proto_batch_parts(&[], batch));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/protobuf"),
        )],
        Body::new(parts),
    )
        .into_response()
}

/// A body of pieces sent in order, whose length is known up front (an HTTP/1.1 response
/// keeps its `content-length`).
struct PartsBody {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl PartsBody {
    fn new(parts: Vec<Bytes>) -> Self {
        Self {
            remaining: parts.iter().map(|p| p.len() as u64).sum(),
            parts: parts.into(),
        }
    }
}

impl http_body::Body for PartsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let part = self.parts.pop_front();
        if let Some(part) = &part {
            self.remaining -= part.len() as u64;
        }
        Poll::Ready(part.map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A protobuf `ReadBatch`: the records' stored bytes, then the tail if known.
pub fn encode_proto_batch(batch: &ReadBatch) -> Bytes {
    let mut buf = BytesMut::with_capacity(proto_batch_len(batch));
    put_proto_batch(batch, &mut buf);
    buf.freeze()
}

/// Size of [`encode_proto_batch`]'s output.
pub fn proto_batch_len(batch: &ReadBatch) -> usize {
    let records: usize = batch.slices.iter().map(|s| s.encoded_len()).sum();
    records
        + batch
            .tail
            .map_or(0, |t| 2 + proto_position(t).encoded_len())
}

/// Writes [`encode_proto_batch`]'s output into `buf`, copying each record's bytes once.
fn put_proto_batch(batch: &ReadBatch, buf: &mut BytesMut) {
    for slice in &batch.slices {
        buf.put_slice(slice.encoded_slice());
    }
    put_proto_tail(batch, buf);
}

fn put_proto_tail(batch: &ReadBatch, buf: &mut BytesMut) {
    if let Some(tail) = batch.tail {
        let tail = proto_position(tail);
        buf.put_u8(0x12);
        prost::encoding::encode_varint(tail.encoded_len() as u64, buf);
        tail.encode(buf).expect("BytesMut grows");
    }
}

/// Runs of records at least this long are sent as slices of the cached chunks; shorter
/// ones are copied. A slice earns its own HTTP/2 DATA frames only if it fills one (16 KiB
/// by default): a batch of many tiny slices would otherwise cost the client a frame each.
pub const SHARED_SLICE_MIN_BYTES: usize = 16 * 1024;

/// `prefix` followed by [`encode_proto_batch`]'s output, as pieces to send in order.
/// Runs of records of at least [`SHARED_SLICE_MIN_BYTES`] are the cached chunks' own
/// bytes, not copies; the prefix, shorter runs and the tail are copied into one buffer
/// shared by the pieces between them.
pub fn proto_batch_parts(prefix: &[u8], batch: &ReadBatch) -> Vec<Bytes> {
    let copied: usize = batch
        .slices
        .iter()
        .map(|s| s.encoded_len())
        .filter(|&len| len < SHARED_SLICE_MIN_BYTES)
        .sum();
    let mut buf = BytesMut::with_capacity(prefix.len() + copied + MAX_TAIL_LEN);
    let mut parts = Vec::new();
    buf.put_slice(prefix);
    for slice in &batch.slices {
        if slice.encoded_len() < SHARED_SLICE_MIN_BYTES {
            buf.put_slice(slice.encoded_slice());
            continue;
        }
        if !buf.is_empty() {
            parts.push(buf.split().freeze());
        }
        parts.push(slice.encoded());
    }
    put_proto_tail(batch, &mut buf);
    if !buf.is_empty() {
        parts.push(buf.freeze());
    }
    parts
}

/// Upper bound of [`put_proto_tail`]'s output: tag, length, and two varint fields.
const MAX_TAIL_LEN: usize = 2 + 2 * 11;

/// A JSON `ReadBatch` with record data encoded per `s2-format`.
pub fn json_batch(batch: &ReadBatch, format: Format) -> JsonReadBatch {
    let records = batch
        .records()
        .map(|r| {
            let view = r.view();
            let (headers, body) = view.parts().expect("validated on decode");
            JsonRecord {
                seq_num: r.seq_num,
                timestamp: r.timestamp,
                headers: headers
                    .into_iter()
                    .map(|(n, v)| JsonHeader(format.encode(n), format.encode(v)))
                    .collect(),
                body: format.encode(body),
            }
        })
        .collect();
    JsonReadBatch {
        records,
        tail: batch.tail.map(position),
    }
}

pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    QueryOf(start): QueryOf<ApiReadStart>,
    QueryOf(end): QueryOf<ApiReadEnd>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stream = caller.may_on_stream(Operation::Read, &basin, &stream)?;
    let mut start: ReadStart = start.try_into()?;
    let mut end_api = end;
    let patch = stream_config_patch(&headers)?;
    let is_s2s = mime::content_type(&headers)
        .as_ref()
        .is_some_and(mime::is_s2s_proto);
    let accept = mime::accept(&headers);

    if is_s2s {
        let end: ReadEnd = end_api.into();
        let handle = state
            .engine
            .open(&basin, &stream, AutoCreate::OnRead(patch))
            .await?;
        let session = state.engine.read(&handle, start, end, false).await?;
        return Ok(s2s::read_session(state, handle, session, &headers));
    }

    let format = format_of(&headers)?;
    if accept.as_ref().is_some_and(mime::is_event_stream) {
        let last_event_id = optional_header::<LastEventId>(&headers)?;
        if let Some(id) = last_event_id {
            start.from = s2_common::stream::ReadFrom::SeqNum(id.seq_num.saturating_add(1));
            end_api.count = end_api.count.map(|c| c.saturating_sub(id.count));
            end_api.bytes = end_api.bytes.map(|b| b.saturating_sub(id.bytes));
        }
        let end: ReadEnd = end_api.into();
        let handle = state
            .engine
            .open(&basin, &stream, AutoCreate::OnRead(patch))
            .await?;
        let session = state.engine.read(&handle, start, end, false).await?;
        return Ok(sse::read_events(
            state,
            handle,
            session,
            format,
            last_event_id,
        ));
    }

    let end: ReadEnd = end_api.into();
    let handle = state
        .engine
        .open(&basin, &stream, AutoCreate::OnRead(patch))
        .await?;
    let session = state.engine.read(&handle, start, end, true).await?;
    let batch = crate::engine::reader::read_unary(session).await?;
    Ok(match response_mime(&headers) {
        JsonOrProto::Proto => proto_batch_response(&batch),
        JsonOrProto::Json => axum::Json(json_batch(&batch, format)).into_response(),
    })
}

#[cfg(test)]
mod tests {
    use std::{ops::Range, sync::Arc};

    use prost::Message;
    use s2_api::v1::stream::proto;

    use super::*;
    use crate::engine::{
        chunk::{Chunk, chunk_of_bodies},
        error::Position,
        reader::ChunkSlice,
    };

    /// A chunk from `first_seq` of `n` records whose bodies are `size` bytes.
    fn chunk(first_seq: u64, n: usize, size: usize) -> Arc<Chunk> {
        let bodies: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; size]).collect();
        Arc::new(chunk_of_bodies(first_seq, bodies.iter().map(|b| &b[..])))
    }

    fn batch(slices: Vec<(Arc<Chunk>, Range<usize>)>, tail: Option<Position>) -> ReadBatch {
        let slices: Vec<_> = slices
            .into_iter()
            .map(|(c, r)| ChunkSlice::new(c, r))
            .collect();
        ReadBatch {
            count: slices.iter().map(|s| s.records().count()).sum(),
            metered_bytes: slices
                .iter()
                .flat_map(|s| s.records())
                .map(|r| r.metered)
                .sum(),
            slices,
            tail,
        }
    }

    fn seq_nums(encoded: &[u8]) -> Vec<u64> {
        let batch = proto::ReadBatch::decode(encoded).unwrap();
        batch.records.iter().map(|r| r.seq_num).collect()
    }

    #[test]
    fn batch_parts_send_large_runs_from_the_chunk_and_copy_the_rest() {
        let large = chunk(3, 4, 8192);
        let tail = Position {
            seq_num: 12,
            timestamp: 7,
        };
        let batch = batch(
            vec![
                (chunk(0, 3, 100), 0..3),
                (large.clone(), 0..4),
                (chunk(7, 3, 100), 0..2),
            ],
            Some(tail),
        );

        let parts = proto_batch_parts(b"pre", &batch);

        assert_eq!(
            parts.len(),
            3,
            "copied run, shared run, copied run and tail"
        );
        let shared = ChunkSlice::new(large, 0..4).encoded();
        assert_eq!(
            parts[1].as_ptr(),
            shared.as_ptr(),
            "the large run is not copied"
        );
        let joined = parts.concat();
        assert_eq!(&joined[..3], b"pre");
        assert_eq!(&joined[3..], &encode_proto_batch(&batch)[..]);
        assert_eq!(seq_nums(&joined[3..]), (0..9).collect::<Vec<_>>());
        let decoded = proto::ReadBatch::decode(&joined[3..]).unwrap();
        assert_eq!(decoded.tail.map(|t| t.seq_num), Some(12));
    }

    #[test]
    fn batch_parts_of_short_runs_are_one_buffer() {
        let slices = (0..10).map(|i| (chunk(i, 1, 1024), 0..1)).collect();
        let batch = batch(slices, None);

        let parts = proto_batch_parts(&[9], &batch);

        assert_eq!(parts.len(), 1);
        assert_eq!(&parts[0][1..], &encode_proto_batch(&batch)[..]);
        assert_eq!(seq_nums(&parts[0][1..]), (0..10).collect::<Vec<_>>());
    }
}

//! Records: check-tail, append and read, dispatched by content negotiation to unary JSON,
//! unary protobuf, SSE and S2S sessions.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State},
    response::{IntoResponse, Response},
};
use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderValue, header};
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
    config::OptionalStreamConfig,
    stream::{ReadEnd, ReadStart},
};

use super::{
    AppState,
    error::ApiError,
    extract::{BasinHeader, JsonBody, QueryOf, StreamPath, optional_header},
    s2s, sse,
};
use crate::engine::{
    Ack, AppendInput, AutoCreate, Position, ReadBatch,
    record::{RecordBatchBuilder, parse_append_input},
};

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
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
) -> Result<axum::Json<TailResponse>, ApiError> {
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
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    request: Request,
) -> Result<Response, ApiError> {
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
pub fn put_proto_batch(batch: &ReadBatch, buf: &mut BytesMut) {
    for slice in &batch.slices {
        buf.put_slice(&slice.encoded());
    }
    if let Some(tail) = batch.tail {
        let tail = proto_position(tail);
        buf.put_u8(0x12);
        prost::encoding::encode_varint(tail.encoded_len() as u64, buf);
        tail.encode(buf).expect("BytesMut grows");
    }
}

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
    BasinHeader(basin): BasinHeader,
    StreamPath(stream): StreamPath,
    QueryOf(start): QueryOf<ApiReadStart>,
    QueryOf(end): QueryOf<ApiReadEnd>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
        JsonOrProto::Proto => proto_response(encode_proto_batch(&batch)),
        JsonOrProto::Json => axum::Json(json_batch(&batch, format)).into_response(),
    })
}

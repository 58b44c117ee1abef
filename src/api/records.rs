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
            ReadEnd as ApiReadEnd, ReadStart as ApiReadStart, TailResponse, sse::LastEventId,
        },
    },
};
use s2_common::{
    access::Operation,
    config::OptionalStreamConfig,
    encryption::EncryptionKey,
    stream::{ReadEnd, ReadStart},
};

use super::{
    error::ApiError,
    extract::{BasinHeader, JsonBody, QueryOf, StreamPath, optional_header},
    s2s, sse,
    wire::{json_batch, position, proto_ack, proto_batch_parts},
};
use crate::engine::{
    AppendInput, AutoCreate, Encryption, ReadBatch, RecordBatchBuilder, StreamHandle,
    parse_append_input, read_unary,
};
use crate::http::{
    AppState,
    auth::Caller,
    body::{announced_len, check_announced, discard_for_http1, read_body},
};

/// The `s2-stream-config` patch applied if the request creates the stream.
fn stream_config_patch(headers: &HeaderMap) -> Result<OptionalStreamConfig, ApiError> {
    Ok(optional_header::<StreamConfigHeader>(headers)?
        .map(|h| h.0)
        .unwrap_or_default())
}

/// The request's `s2-encryption-key`, if any; what it may do is resolved against the
/// stream's cipher ([`StreamHandle::encryption`]).
fn encryption_key(headers: &HeaderMap) -> Result<Option<EncryptionKey>, ApiError> {
    optional_header::<EncryptionKey>(headers)
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
    let key = encryption_key(&headers)?;
    let content_type = mime::content_type(&headers);
    if content_type.as_ref().is_some_and(mime::is_s2s_proto) {
        let handle = state
            .engine
            .open(&basin, &stream, AutoCreate::OnAppend(patch))
            .await?;
        let encryption = handle.encryption(key)?;
        return Ok(s2s::append_session(
            state,
            caller,
            (handle, encryption),
            &headers,
            request.into_body(),
        ));
    }
    let is_proto = content_type
        .as_ref()
        .and_then(JsonOrProto::from_mime)
        .is_some_and(|m| matches!(m, JsonOrProto::Proto));
    let format = (!is_proto).then(|| format_of(&headers)).transpose()?;
    // Admitted before any of the body is read, for its announced length (or the largest
    // body allowed, given back once the body turns out smaller); held until answered.
    let limits = &state.limits;
    let bad = if is_proto {
        ApiError::bad_proto
    } else {
        ApiError::bad_json
    };
    check_announced(&headers, limits).map_err(|e| ApiError::body(e, bad))?;
    let (parts, body) = request.into_parts();
    let expected = announced_len(&headers).unwrap_or(limits.max_body_bytes);
    let mut permit = match state.budget.admit(expected).await {
        Ok(permit) => permit,
        Err(refused) => {
            discard_for_http1(parts.version, body, limits).await;
            return Err(ApiError::admission_refused(refused));
        }
    };
    let body = read_body(body, limits)
        .await
        .map_err(|e| ApiError::body(e, bad))?;
    permit.shrink_to(body.len());
    let input = if is_proto {
        parse_append_input(&body)?
    } else {
        let request = Request::from_parts(parts, Body::from(body));
        let JsonBody(input) = JsonBody::<JsonAppendInput>::from_request(request, &state).await?;
        decode_json_input(input, format.unwrap_or_default())?
    };
    caller.may_run_commands(&input.batch)?;
    let handle = state
        .engine
        .open(&basin, &stream, AutoCreate::OnAppend(patch))
        .await?;
    let input = handle.encryption(key)?.seal(input);
    let ack = state.engine.append(&handle, input, None).await?;
    drop(permit);
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

/// The stream (created if the basin creates streams on read) and what the request's key
/// may do with it: `bad_header` before anything is read when the key does not fit.
async fn open_for_read(
    state: &AppState,
    basin: &str,
    stream: &str,
    patch: OptionalStreamConfig,
    key: Option<EncryptionKey>,
) -> Result<(std::sync::Arc<StreamHandle>, Encryption), ApiError> {
    let handle = state
        .engine
        .open(basin, stream, AutoCreate::OnRead(patch))
        .await?;
    let encryption = handle.encryption(key)?;
    Ok((handle, encryption))
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
    let key = encryption_key(&headers)?;
    let is_s2s = mime::content_type(&headers)
        .as_ref()
        .is_some_and(mime::is_s2s_proto);
    let accept = mime::accept(&headers);

    if is_s2s {
        let end: ReadEnd = end_api.into();
        let (handle, encryption) = open_for_read(&state, &basin, &stream, patch, key).await?;
        let session = state
            .engine
            .read(&handle, start, end, false)
            .await?
            .decrypting(encryption);
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
        let (handle, encryption) = open_for_read(&state, &basin, &stream, patch, key).await?;
        let session = state
            .engine
            .read(&handle, start, end, false)
            .await?
            .decrypting(encryption);
        return Ok(sse::read_events(
            state,
            handle,
            session,
            format,
            last_event_id,
        ));
    }

    let end: ReadEnd = end_api.into();
    let (handle, encryption) = open_for_read(&state, &basin, &stream, patch, key).await?;
    let session = state
        .engine
        .read(&handle, start, end, true)
        .await?
        .decrypting(encryption);
    let batch = read_unary(session).await?;
    Ok(match response_mime(&headers) {
        JsonOrProto::Proto => proto_batch_response(&batch),
        JsonOrProto::Json => axum::Json(json_batch(&batch, format)).into_response(),
    })
}

#[cfg(test)]
mod fuzz;

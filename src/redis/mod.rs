//! A Redis-Streams-style HTTP API over the same streams: `XADD`, `XRANGE`, `XREVRANGE`,
//! `XREAD`, `XLEN`, `XTRIM`, `XINFO STREAM` and consumer groups (`XGROUP`, `XREADGROUP`, `XACK`, `XPENDING`, `XCLAIM`,
//! `XAUTOCLAIM`, `XINFO`). A key is a stream of a basin; an entry is a record whose
//! headers are its fields; its id is `<timestamp ms>-<seq_num>` ([`ids`]). Consumer
//! groups live in the engine ([`crate::engine::groups`]), so any node serves any
//! consumer. Each command is one route, `/redis/v1/{basin}/{key}/{command}`; the table is
//! in README ("Redis-Streams API"). It shares the S2 surface's plumbing (state, access
//! tokens, extractors, S2 errors) and reaches storage only through the engine.

mod groups;
pub mod ids;
mod streams;

use std::time::Duration;

use axum::{
    Router,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http::StatusCode;
use s2_common::{
    access::Operation,
    config::OptionalStreamConfig,
    read_extent::ReadLimit,
    stream::{ReadEnd, ReadFrom, ReadStart},
};
use serde::{Deserialize, Serialize};

use crate::{
    api::{ApiError, AppState, auth::Caller},
    engine::{
        AutoCreate, Engine, EngineError, reader::read_unary, record::InputError,
        stream::StreamHandle,
    },
};

pub fn routes() -> Router<AppState> {
    let commands = Router::new()
        .route("/xadd", post(streams::xadd))
        .route("/xrange", get(streams::xrange))
        .route("/xrevrange", get(streams::xrevrange))
        .route("/xtrim", post(streams::xtrim))
        .route("/xinfo/stream", get(streams::xinfo_stream))
        .route("/xread", get(streams::xread))
        .route("/xlen", get(streams::xlen))
        .route("/xgroup/create", post(groups::create))
        .route("/xgroup/destroy", post(groups::destroy))
        .route("/xgroup/delconsumer", post(groups::delete_consumer))
        .route("/xreadgroup", post(groups::read))
        .route("/xack", post(groups::ack))
        .route("/xpending", get(groups::pending))
        .route("/xclaim", post(groups::claim))
        .route("/xautoclaim", post(groups::autoclaim))
        .route("/xinfo/groups", get(groups::info))
        .route("/xinfo/consumers", get(groups::consumers));
    Router::new().nest("/{basin}/{key}", commands)
}

/// An error: S2's (`{code, message}` with its status) or a Redis one (`NOGROUP`,
/// `BUSYGROUP`) in the same shape.
#[derive(Debug)]
pub enum RedisError {
    Api(ApiError),
    Redis {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl RedisError {
    fn no_group(group: &str) -> Self {
        Self::Redis {
            status: StatusCode::NOT_FOUND,
            code: "NOGROUP",
            message: format!("no consumer group `{group}` for this key"),
        }
    }
}

impl From<ApiError> for RedisError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<EngineError> for RedisError {
    fn from(e: EngineError) -> Self {
        Self::Api(e.into())
    }
}

impl From<InputError> for RedisError {
    fn from(e: InputError) -> Self {
        Self::Api(e.into())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for RedisError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::Redis {
                status,
                code,
                message,
            } => (
                status,
                axum::Json(ErrorBody {
                    code,
                    message: &message,
                }),
            )
                .into_response(),
        }
    }
}

pub type RedisResult<T> = Result<T, RedisError>;

/// `{basin}/{key}` of every route.
#[derive(Deserialize)]
struct KeyPath {
    basin: String,
    key: String,
}

/// The stream a key names, opened if `op` is granted on it.
async fn open(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    path: &KeyPath,
) -> RedisResult<std::sync::Arc<StreamHandle>> {
    let stream = key_stream(caller, op, path)?;
    Ok(state
        .engine
        .open(&path.basin, &stream, AutoCreate::No)
        .await?)
}

/// Like [`open`], creating the stream first (with the basin's defaults) if it does not
/// exist, which needs `create-stream` too.
async fn open_or_create(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    path: &KeyPath,
) -> RedisResult<std::sync::Arc<StreamHandle>> {
    let stream = key_stream(caller, op, path)?;
    match state
        .engine
        .open(&path.basin, &stream, AutoCreate::No)
        .await
    {
        Err(EngineError::StreamNotFound(_)) => {}
        opened => return Ok(opened?),
    }
    caller.may_on_stream(Operation::CreateStream, &path.basin, &path.key)?;
    match state
        .engine
        .create_stream(&path.basin, &stream, OptionalStreamConfig::default(), None)
        .await
    {
        Ok(_) | Err(EngineError::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(state
        .engine
        .open(&path.basin, &stream, AutoCreate::No)
        .await?)
}

/// The stream name a key maps to, if `op` is granted on it.
fn key_stream(caller: &Caller, op: Operation, path: &KeyPath) -> RedisResult<String> {
    path.basin
        .parse::<s2_common::basin::BasinName>()
        .map_err(|e| ApiError::bad_path(e.to_string()))?;
    path.key
        .parse::<s2_common::stream::StreamName>()
        .map_err(|e| ApiError::bad_path(e.to_string()))?;
    Ok(caller.may_on_stream(op, &path.basin, &path.key)?)
}

/// A record shown as an entry.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: String,
    /// `null` for an id that is pending but whose record is gone (trimmed).
    pub fields: Option<Vec<(String, String)>>,
    /// A record appended through the S2 API may have a body; entries added here do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip)]
    pub seq_num: u64,
    #[serde(skip)]
    pub timestamp: u64,
}

/// What a read found.
struct Found {
    entries: Vec<Entry>,
    /// The seq_num after the last record looked at, command records included.
    next_seq: Option<u64>,
}

/// Where a read stops: after seq_num `last_seq`, before timestamp `until`.
#[derive(Clone, Copy, Default)]
struct Stop {
    last_seq: Option<u64>,
    until: Option<u64>,
}

/// Reads up to `max` entries from `from` to `stop`, waiting up to `wait` when there are
/// none yet. Command records (fence, trim) are passed, never entries.
async fn read_entries(
    engine: &Engine,
    stream: &StreamHandle,
    mut from: ReadFrom,
    max: usize,
    stop: Stop,
    mut wait: Option<Duration>,
) -> RedisResult<Found> {
    let mut found = Found {
        entries: Vec::new(),
        next_seq: None,
    };
    while found.entries.len() < max {
        if let (ReadFrom::Timestamp(ts), Some(until)) = (from, stop.until)
            && ts >= until
        {
            break;
        }
        let end = ReadEnd {
            limit: ReadLimit::Count(max - found.entries.len()),
            until: stop.until.into(),
            wait,
        };
        let start = ReadStart { from, clamp: true };
        let batch = match engine.read(stream, start, end, true).await {
            Ok(session) => read_unary(session).await?,
            Err(EngineError::Unwritten(_)) => break,
            Err(e) => return Err(e.into()),
        };
        if batch.count == 0 {
            break;
        }
        for record in batch.records() {
            if stop.last_seq.is_some_and(|l| record.seq_num > l) {
                return Ok(found);
            }
            found.next_seq = Some(record.seq_num + 1);
            let view = record.view();
            let (headers, body) = view
                .parts()
                .map_err(|e| EngineError::Corrupt(format!("{e:?}")))?;
            if headers.len() == 1 && headers[0].0.is_empty() {
                continue;
            }
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            found.entries.push(Entry {
                id: ids::entry_id(record.timestamp, record.seq_num),
                fields: Some(headers.iter().map(|(n, v)| (text(n), text(v))).collect()),
                body: (!body.is_empty()).then(|| text(body)),
                seq_num: record.seq_num,
                timestamp: record.timestamp,
            });
        }
        from = ReadFrom::SeqNum(found.next_seq.expect("a record was looked at"));
        wait = None;
    }
    Ok(found)
}

/// The entry at `seq_num`, if its record is still there and is not a command.
async fn entry_at(
    engine: &Engine,
    stream: &StreamHandle,
    seq_num: u64,
) -> RedisResult<Option<Entry>> {
    let stop = Stop {
        last_seq: Some(seq_num),
        until: None,
    };
    let found = read_entries(engine, stream, ReadFrom::SeqNum(seq_num), 1, stop, None).await?;
    Ok(found.entries.into_iter().find(|e| e.seq_num == seq_num))
}

/// Blocking time as asked: absent is none, 0 is as long as a read may wait (60 s).
fn block_for(block_ms: Option<u64>) -> Option<Duration> {
    block_ms.map(|ms| match ms {
        0 => Duration::from_secs(60),
        ms => Duration::from_millis(ms),
    })
}

fn now_ms() -> u64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64
}

/// `COUNT` as asked, at most [`MAX_COUNT`]; [`DEFAULT_COUNT`] when absent.
fn count_of(count: Option<usize>) -> RedisResult<usize> {
    match count {
        None => Ok(DEFAULT_COUNT),
        Some(0) => Err(ApiError::bad_query("`count` must be at least 1").into()),
        Some(c) => Ok(c.min(MAX_COUNT)),
    }
}

/// Entries a call returns when it gives no count.
const DEFAULT_COUNT: usize = 100;
/// The most entries one call returns; page with exclusive ids for more.
const MAX_COUNT: usize = 1000;

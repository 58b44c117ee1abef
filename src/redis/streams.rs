//! Plain stream commands: `XADD`, `XRANGE`, `XREAD`, `XLEN`.

use axum::extract::{Path, State};
use s2_common::{access::Operation, stream::ReadFrom};
use serde::{Deserialize, Serialize};

use super::{
    Entry, KeyPath, RedisResult, Stop, block_for, count_of,
    ids::{Bound, entry_id, parse_bound, parse_id},
    open, open_or_create, read_entries,
};
use crate::{
    api::{
        ApiError, AppState,
        auth::Caller,
        extract::{JsonBody, QueryOf},
    },
    engine::{AppendInput, record::RecordBatchBuilder},
};

#[derive(Deserialize)]
pub struct AddRequest {
    /// Field-value pairs in order; names must not be empty.
    fields: Vec<(String, String)>,
    /// Do not create a missing key.
    #[serde(default)]
    nomkstream: bool,
}

#[derive(Serialize)]
pub struct Added {
    id: String,
}

#[derive(Serialize)]
pub struct Entries {
    pub entries: Vec<Entry>,
}

/// `XADD key * field value …`: one record whose headers are the fields. Creates the key
/// (a stream) unless `nomkstream`.
pub async fn xadd(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<AddRequest>,
) -> RedisResult<axum::Json<Added>> {
    if request.fields.is_empty() {
        return Err(ApiError::invalid("an entry needs at least one field").into());
    }
    if request.fields.iter().any(|(name, _)| name.is_empty()) {
        return Err(ApiError::invalid("field names must not be empty").into());
    }
    let stream = if request.nomkstream {
        open(&state, &caller, Operation::Append, &path).await?
    } else {
        open_or_create(&state, &caller, Operation::Append, &path).await?
    };
    let mut builder = RecordBatchBuilder::with_capacity(1, 0);
    builder.push(
        None,
        request
            .fields
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        &[],
    )?;
    let input = AppendInput {
        batch: builder.finish()?,
        match_seq_num: None,
        fencing_token: None,
    };
    let ack = state.engine.append(&stream, input, None).await?;
    Ok(axum::Json(Added {
        id: entry_id(ack.start.timestamp, ack.start.seq_num),
    }))
}

#[derive(Deserialize)]
pub struct RangeQuery {
    start: Option<String>,
    end: Option<String>,
    count: Option<usize>,
}

/// `XRANGE key start end [COUNT n]`: ids from `start` to `end` (`-`, `+`, `<ms>-<seq>`,
/// `<ms>`; `(` for exclusive), at most `count`.
pub async fn xrange(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    QueryOf(query): QueryOf<RangeQuery>,
) -> RedisResult<axum::Json<Entries>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let start = parse_bound(query.start.as_deref().unwrap_or("-"), "-")?;
    let end = parse_bound(query.end.as_deref().unwrap_or("+"), "+")?;
    let count = count_of(query.count)?;
    let skip = u64::from(start.exclusive);
    let from = match start.at {
        Bound::Open => ReadFrom::SeqNum(0),
        Bound::Seq(seq) => ReadFrom::SeqNum(seq.saturating_add(skip)),
        Bound::Time(ms) => ReadFrom::Timestamp(ms.saturating_add(skip)),
    };
    let stop = match (end.at, end.exclusive) {
        (Bound::Open, _) => Stop::default(),
        (Bound::Seq(0), true) => return Ok(axum::Json(Entries { entries: vec![] })),
        (Bound::Seq(seq), exclusive) => Stop {
            last_seq: Some(seq - u64::from(exclusive)),
            until: None,
        },
        (Bound::Time(ms), exclusive) => Stop {
            last_seq: None,
            until: Some(if exclusive { ms } else { ms.saturating_add(1) }),
        },
    };
    let found = read_entries(&state.engine, &stream, from, count, stop, None).await?;
    Ok(axum::Json(Entries {
        entries: found.entries,
    }))
}

#[derive(Deserialize)]
pub struct ReadQuery {
    /// Entries after this id; `$` for only those added from now on.
    id: String,
    count: Option<usize>,
    /// Wait up to this long for an entry when there is none (0: as long as possible).
    block_ms: Option<u64>,
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS key id`, for one key.
pub async fn xread(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    QueryOf(query): QueryOf<ReadQuery>,
) -> RedisResult<axum::Json<Entries>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let from = match query.id.as_str() {
        "$" => ReadFrom::TailOffset(0),
        id => ReadFrom::SeqNum(parse_id(id)?.saturating_add(1)),
    };
    let count = count_of(query.count)?;
    let found = read_entries(
        &state.engine,
        &stream,
        from,
        count,
        Stop::default(),
        block_for(query.block_ms),
    )
    .await?;
    Ok(axum::Json(Entries {
        entries: found.entries,
    }))
}

#[derive(Serialize)]
pub struct Length {
    length: u64,
}

/// `XLEN key`: records retained (after trims and retention), command records included.
pub async fn xlen(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
) -> RedisResult<axum::Json<Length>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let (first, tail) = state.engine.retained(&stream).await?;
    Ok(axum::Json(Length {
        length: tail.seq_num.saturating_sub(first),
    }))
}

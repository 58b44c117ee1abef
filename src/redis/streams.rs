//! Plain stream commands: `XADD`, `XRANGE`, `XREAD`, `XLEN`.

use axum::extract::{Path, State};
use s2_common::{access::Operation, stream::ReadFrom};
use serde::{Deserialize, Serialize};

use super::{
    Entry, KeyPath, RedisResult, Stop, block_for, count_of,
    ids::{Bound, RangeBound, entry_id, parse_id, parse_range},
    open, open_or_create, read_entries,
};
use crate::{
    api::{
        ApiError, AppState,
        auth::Caller,
        extract::{JsonBody, QueryOf},
    },
    engine::{AppendInput, record::RecordBatchBuilder, stream::StreamHandle},
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
    let (start, end) = parse_range(query.start.as_deref(), query.end.as_deref())?;
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

/// `XREVRANGE key end start [COUNT n]`: as [`xrange`], newest first.
pub async fn xrevrange(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    QueryOf(query): QueryOf<RangeQuery>,
) -> RedisResult<axum::Json<Entries>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let (start, end) = parse_range(query.start.as_deref(), query.end.as_deref())?;
    let count = count_of(query.count)?;
    let entries = newest_first(&state, &stream, start, end, count).await?;
    Ok(axum::Json(Entries { entries }))
}

/// Entries from `end` down to `start`, at most `count`: windows read backwards from the
/// newest, each as large as the entries still wanted (command records make some come
/// back short).
async fn newest_first(
    state: &AppState,
    stream: &StreamHandle,
    start: RangeBound,
    end: RangeBound,
    count: usize,
) -> RedisResult<Vec<Entry>> {
    let (first, tail) = state.engine.retained(stream).await?;
    let skip = u64::from(end.exclusive);
    let top = match end.at {
        Bound::Open => tail.seq_num.checked_sub(1),
        Bound::Seq(seq) => seq.checked_sub(skip),
        Bound::Time(ms) => {
            // The newest record at (or before, if exclusive) `ms`: just before the first after.
            let after = ReadFrom::Timestamp(ms.saturating_add(1 - skip));
            let found =
                read_entries(&state.engine, stream, after, 1, Stop::default(), None).await?;
            match found.entries.first() {
                Some(e) => e.seq_num.checked_sub(1),
                None => tail.seq_num.checked_sub(1),
            }
        }
    };
    let Some(mut top) = top.map(|t| t.min(tail.seq_num.saturating_sub(1))) else {
        return Ok(Vec::new());
    };
    let skip = u64::from(start.exclusive);
    let (low, low_ms) = match start.at {
        Bound::Open => (first, 0),
        Bound::Seq(seq) => (seq.saturating_add(skip).max(first), 0),
        Bound::Time(ms) => (first, ms.saturating_add(skip)),
    };
    let mut out = Vec::new();
    while out.len() < count && top >= low {
        let want = (count - out.len()) as u64;
        let bottom = top.saturating_sub(want - 1).max(low);
        let stop = Stop {
            last_seq: Some(top),
            until: None,
        };
        let window = (top - bottom + 1) as usize;
        let found = read_entries(
            &state.engine,
            stream,
            ReadFrom::SeqNum(bottom),
            window,
            stop,
            None,
        )
        .await?;
        let before = out.len();
        out.extend(
            found
                .entries
                .into_iter()
                .rev()
                .filter(|e| e.timestamp >= low_ms),
        );
        if bottom == low || (out.len() == before && low_ms > 0) {
            break;
        }
        top = bottom - 1;
    }
    out.truncate(count);
    Ok(out)
}

#[derive(Deserialize)]
pub struct TrimRequest {
    /// Remove entries with ids below this one.
    minid: Option<String>,
    /// Keep at most this many records.
    maxlen: Option<u64>,
}

#[derive(Serialize)]
pub struct Trimmed {
    trimmed: u64,
}

/// `XTRIM key MINID id` or `XTRIM key MAXLEN n`: an S2 trim command record, so the
/// records go as S2 trims them (at once for reads, from storage later). Returns how many
/// records it cuts off, command records included.
pub async fn xtrim(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
    JsonBody(request): JsonBody<TrimRequest>,
) -> RedisResult<axum::Json<Trimmed>> {
    let stream = open(&state, &caller, Operation::Trim, &path).await?;
    let (first, tail) = state.engine.retained(&stream).await?;
    let point = match (request.minid, request.maxlen) {
        (Some(id), None) => parse_id(&id)?,
        (None, Some(max)) => tail.seq_num.saturating_sub(max),
        _ => return Err(ApiError::invalid("give exactly one of `minid` and `maxlen`").into()),
    };
    let point = point.min(tail.seq_num);
    if point <= first {
        return Ok(axum::Json(Trimmed { trimmed: 0 }));
    }
    let mut builder = RecordBatchBuilder::with_capacity(1, 0);
    builder.push(
        None,
        [(&b""[..], &b"trim"[..])].into_iter(),
        &point.to_be_bytes(),
    )?;
    let input = AppendInput {
        batch: builder.finish()?,
        match_seq_num: None,
        fencing_token: None,
    };
    state.engine.append(&stream, input, None).await?;
    Ok(axum::Json(Trimmed {
        trimmed: point - first,
    }))
}

#[derive(Serialize)]
pub struct StreamInfo {
    length: u64,
    groups: usize,
    first_entry: Option<Entry>,
    last_entry: Option<Entry>,
    /// The id of the newest record, command records included.
    last_generated_id: String,
}

/// `XINFO STREAM key`.
pub async fn xinfo_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
) -> RedisResult<axum::Json<StreamInfo>> {
    let stream = open(&state, &caller, Operation::Read, &path).await?;
    let (first, tail) = state.engine.retained(&stream).await?;
    let oldest = read_entries(
        &state.engine,
        &stream,
        ReadFrom::SeqNum(first),
        1,
        Stop::default(),
        None,
    )
    .await?;
    let open_bound = RangeBound {
        at: Bound::Open,
        exclusive: false,
    };
    let newest = newest_first(&state, &stream, open_bound, open_bound, 1).await?;
    Ok(axum::Json(StreamInfo {
        length: tail.seq_num.saturating_sub(first),
        groups: state.engine.groups(&stream).await?.len(),
        first_entry: oldest.entries.into_iter().next(),
        last_entry: newest.into_iter().next(),
        last_generated_id: match tail.seq_num {
            0 => "0-0".to_owned(),
            n => entry_id(tail.timestamp, n - 1),
        },
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

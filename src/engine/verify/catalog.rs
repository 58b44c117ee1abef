//! The catalog's part of `verify`: basin, stream and access-token entries.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{
    Ctx, list_all,
    report::{Findings, Kind},
};
use crate::{
    engine::{
        EngineResult,
        catalog::{AccessTokenEntry, BasinEntry, StreamEntry},
        layout,
    },
    storage::ListedObject,
};

/// A stream catalog entry, as the data walk needs it.
#[derive(Debug, Clone)]
pub(super) struct StreamRef {
    pub key: String,
    pub deleted: bool,
}

/// The stream entries by the data directory they name.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    pub streams: HashMap<String, Vec<StreamRef>>,
}

/// Reads every object under `prefix` with its bytes (`None`: gone since the listing), in
/// key order, several at once.
async fn fetch_all(
    ctx: &Ctx<'_>,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> EngineResult<Vec<(ListedObject, Option<Bytes>)>> {
    let mut listed = list_all(ctx.store, prefix).await?;
    listed.retain(|o| keep(&o.key));
    futures::stream::iter(listed)
        .map(|o| async move {
            let bytes = ctx.get(&o.key).await?;
            Ok::<_, crate::engine::EngineError>((o, bytes))
        })
        .buffered(ctx.options.concurrency)
        .try_collect()
        .await
}

fn parse<T: DeserializeOwned>(f: &mut Findings, key: &str, kind: Kind, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            f.problem(key, kind, format!("does not parse: {e}"));
            None
        }
    }
}

fn ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}

/// A deletion under way since `deleted_at`: a note while within the grace, a problem
/// after (its deletion stalled).
fn pending_deletion(
    ctx: &Ctx<'_>,
    f: &mut Findings,
    key: &str,
    kind: Kind,
    deleted_at: OffsetDateTime,
) {
    let since = std::time::Duration::from_millis(ctx.options.now_ms.saturating_sub(ms(deleted_at)));
    let ago = super::duration(since);
    if since >= ctx.options.grace {
        f.problem(
            key,
            kind,
            format!(
                "deletion started {ago} ago and has not finished (upkeep finishes stalled stream \
                 deletions, a starting node stalled basin deletions)"
            ),
        );
    } else {
        f.note(key, format!("deletion under way, started {ago} ago"));
    }
}

/// Checks every catalog entry and returns the stream entries by id.
pub(super) async fn walk(ctx: &Ctx<'_>) -> EngineResult<(Catalog, Findings)> {
    let mut f = Findings::default();
    let mut basins: BTreeMap<String, bool> = BTreeMap::new();
    for (o, bytes) in fetch_all(ctx, layout::basins_dir(), |_| true).await? {
        let key = o.key.as_str();
        let Some(bytes) = bytes else { continue };
        let Some(name) = key
            .strip_prefix(layout::basins_dir())
            .and_then(layout::decode_name)
        else {
            f.problem(key, Kind::Other, "under basins/ but encodes no basin name");
            continue;
        };
        f.counts.add(Kind::Basin, 1);
        let Some(entry) = parse::<BasinEntry>(&mut f, key, Kind::Basin, &bytes) else {
            basins.insert(name, false);
            continue;
        };
        if entry.name != name {
            f.problem(
                key,
                Kind::Basin,
                format!("names basin {:?}, its key {name:?}", entry.name),
            );
        }
        if let Err(e) = s2_common::config::BasinConfig::try_from(entry.config.clone()) {
            f.problem(key, Kind::Basin, format!("invalid config: {e}"));
        }
        if let Some(deleted_at) = entry.deleted_at {
            f.counts.basins_being_deleted += 1;
            pending_deletion(ctx, &mut f, key, Kind::Basin, deleted_at);
        }
        basins.insert(name, entry.deleted_at.is_some());
    }

    let mut catalog = Catalog::default();
    // Listing markers are empty objects that only ever speed up listings.
    for (o, bytes) in fetch_all(ctx, "streams/", |k| !layout::is_stream_marker(k)).await? {
        let key = o.key.as_str();
        let Some(bytes) = bytes else { continue };
        let parsed = key
            .strip_prefix("streams/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(basin, encoded)| Some((basin, layout::decode_name(encoded)?)));
        let Some((basin, name)) = parsed else {
            f.problem(
                key,
                Kind::Other,
                "under streams/ but encodes no basin and stream name",
            );
            continue;
        };
        f.counts.add(Kind::Stream, 1);
        let Some(entry) = parse::<StreamEntry>(&mut f, key, Kind::Stream, &bytes) else {
            continue;
        };
        if entry.name != name {
            f.problem(
                key,
                Kind::Stream,
                format!("names stream {:?}, its key {name:?}", entry.name),
            );
        }
        if !basins.contains_key(basin) {
            f.problem(
                key,
                Kind::Stream,
                format!(
                    "its basin {basin:?} has no catalog entry ({})",
                    layout::basin_key(basin)
                ),
            );
        }
        if entry.id.is_empty() || entry.id.contains('/') {
            f.problem(
                key,
                Kind::Stream,
                format!("invalid stream id {:?}", entry.id),
            );
            continue;
        }
        if let Some(deleted_at) = entry.deleted_at {
            f.counts.streams_being_deleted += 1;
            pending_deletion(ctx, &mut f, key, Kind::Stream, deleted_at);
        }
        catalog
            .streams
            .entry(entry.id)
            .or_default()
            .push(StreamRef {
                key: key.to_owned(),
                deleted: entry.deleted_at.is_some(),
            });
    }
    for (id, refs) in &catalog.streams {
        if refs.len() > 1 {
            let keys: Vec<&str> = refs.iter().map(|r| r.key.as_str()).collect();
            for r in refs {
                f.problem(
                    &r.key,
                    Kind::Stream,
                    format!(
                        "stream id {id} is named by {} entries ({}): ids are never shared",
                        refs.len(),
                        keys.join(", ")
                    ),
                );
            }
        }
    }

    for (o, bytes) in fetch_all(ctx, layout::access_tokens_dir(), |_| true).await? {
        let key = o.key.as_str();
        let Some(bytes) = bytes else { continue };
        let Some(id) = key
            .strip_prefix(layout::access_tokens_dir())
            .and_then(layout::decode_name)
        else {
            f.problem(
                key,
                Kind::Other,
                "under access-tokens/ but encodes no token id",
            );
            continue;
        };
        f.counts.add(Kind::AccessToken, 1);
        let Some(entry) = parse::<AccessTokenEntry>(&mut f, key, Kind::AccessToken, &bytes) else {
            continue;
        };
        let named: &str = entry.info.id.as_ref();
        if named != id {
            f.problem(
                key,
                Kind::AccessToken,
                format!("names token {named:?}, its key {id:?}"),
            );
        }
        let digest = &entry.secret_sha256;
        if digest.len() != 64
            || !digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            f.problem(
                key,
                Kind::AccessToken,
                "secret digest is not a SHA-256 in lowercase hex",
            );
        }
    }
    Ok((catalog, f))
}

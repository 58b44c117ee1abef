//! A usage object: one node's counts over one period (an hour of minutes, or a day of
//! hours), as JSON.
//!
//! Invariants:
//! - every bucket key is the start of a bucket (a multiple of `bucket_secs`) inside
//!   `[start, start + period)`;
//! - counts only grow while the node holds the object, and two objects never hold the same
//!   event: a node writes only its own keys, and an event goes to the objects of its own
//!   minute's hour and day;
//! - a stream's storage samples are in the order they were taken, and the first one of an
//!   object may predate it: a new object starts with the node's latest sample of every
//!   stream it knows, so the object alone tells the storage at any time it covers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format of usage objects.
pub const FORMAT: u32 = 1;

/// Counts of one stream over one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Append operations on `express` streams ...
    #[serde(default, rename = "ae", skip_serializing_if = "is_zero")]
    pub append_express: u64,
    /// ... and on `standard` ones.
    #[serde(default, rename = "as", skip_serializing_if = "is_zero")]
    pub append_standard: u64,
    /// Metered bytes appended.
    #[serde(default, rename = "ab", skip_serializing_if = "is_zero")]
    pub append_bytes: u64,
    #[serde(default, rename = "ru", skip_serializing_if = "is_zero")]
    pub read_unary: u64,
    #[serde(default, rename = "rs", skip_serializing_if = "is_zero")]
    pub read_streaming: u64,
    /// Metered bytes read.
    #[serde(default, rename = "rb", skip_serializing_if = "is_zero")]
    pub read_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.append_express += other.append_express;
        self.append_standard += other.append_standard;
        self.append_bytes += other.append_bytes;
        self.read_unary += other.read_unary;
        self.read_streaming += other.read_streaming;
        self.read_bytes += other.read_bytes;
    }
}

/// A stream's stored bytes as a node saw them: the metered bytes its manifest indexes at
/// manifest `version` (`u64::MAX` and 0 bytes once deleted), at `at` (epoch seconds), of
/// the stream created at `created_ms`. Of two samples the one of the later stream, then of
/// the later version, is the truer ([`Self::rank`]), whichever node took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub at: u32,
    #[serde(rename = "c")]
    pub created_ms: u64,
    #[serde(rename = "v")]
    pub version: u64,
    #[serde(rename = "b")]
    pub bytes: u64,
}

#[cfg(test)]
impl Sample {
    /// A sample of a stream created at 0 (tests).
    pub fn of_first_stream(at: u32, version: u64, bytes: u64) -> Self {
        Self {
            at,
            created_ms: 0,
            version,
            bytes,
        }
    }
}

/// The version of a deleted stream's samples.
pub const DELETED: u64 = u64::MAX;

impl Sample {
    /// Samples compare by this: a stream recreated under the same name supersedes the
    /// deleted one, a later manifest an earlier one.
    pub fn rank(&self) -> (u64, u64, u64) {
        (self.created_ms, self.version, self.bytes)
    }
}

/// A stream's counts by bucket, in bucket order; stored as a JSON object keyed by bucket.
///
/// A sorted list, not a `BTreeMap`: a node keeps one per stream it served in each open
/// object (the hour's and the day's), usually with one or two buckets, and a map's first
/// node has room for eleven.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(Vec<(u32, Counts)>);

impl Buckets {
    /// The counts of `bucket`, added (zero) if absent.
    pub fn entry(&mut self, bucket: u32) -> &mut Counts {
        let i = match self.0.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (bucket, Counts::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    #[cfg(test)]
    pub fn get(&self, bucket: u32) -> Option<&Counts> {
        self.0
            .binary_search_by_key(&bucket, |(b, _)| *b)
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Counts)> {
        self.0.iter().map(|(b, c)| (*b, c))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Buckets {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(b, c)| (b, c)))
    }
}

impl<'de> Deserialize<'de> for Buckets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<u32, Counts>::deserialize(d)?;
        Ok(Self(map.into_iter().collect()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamSeries {
    #[serde(default, skip_serializing_if = "Buckets::is_empty")]
    pub counts: Buckets,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageObject {
    pub format: u32,
    pub node: String,
    /// Epoch seconds of the period's start.
    pub start: u32,
    pub bucket_secs: u32,
    /// Basin, then stream.
    #[serde(default)]
    pub streams: BTreeMap<String, BTreeMap<String, StreamSeries>>,
    /// Basin (empty for the account), then operation, then bucket.
    #[serde(default)]
    pub ops: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>,
}

impl UsageObject {
    pub fn new(node: &str, start: u32, bucket_secs: u32) -> Self {
        Self {
            format: FORMAT,
            node: node.to_owned(),
            start,
            bucket_secs,
            streams: BTreeMap::new(),
            ops: BTreeMap::new(),
        }
    }

    fn bucket(&self, minute: u32) -> u32 {
        minute - minute % self.bucket_secs
    }

    pub fn add_counts(&mut self, basin: &str, stream: &str, minute: u32, counts: &Counts) {
        let bucket = self.bucket(minute);
        self.series(basin, stream).counts.entry(bucket).add(counts);
    }

    pub fn add_op(&mut self, basin: &str, op: &str, minute: u32, n: u64) {
        let bucket = self.bucket(minute);
        *self
            .ops
            .entry(basin.to_owned())
            .or_default()
            .entry(op.to_owned())
            .or_default()
            .entry(bucket)
            .or_default() += n;
    }

    /// Adds a storage sample unless it tells nothing new (same version and bytes as the
    /// stream's last one here).
    pub fn add_sample(&mut self, basin: &str, stream: &str, sample: Sample) {
        let storage = &mut self.series(basin, stream).storage;
        match storage.last() {
            Some(last) if last.rank() == sample.rank() => {}
            _ => storage.push(sample),
        }
    }

    fn series(&mut self, basin: &str, stream: &str) -> &mut StreamSeries {
        self.streams
            .entry(basin.to_owned())
            .or_default()
            .entry(stream.to_owned())
            .or_default()
    }

    pub fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self).expect("usage serializes").into()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let object: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if object.format != FORMAT {
            return Err(format!("unknown usage format {}", object.format));
        }
        if object.bucket_secs == 0 {
            return Err("usage object without a bucket length".into());
        }
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_roll_minutes_up() {
        let mut day = UsageObject::new("n", 86_400, 3600);
        let c = Counts {
            append_express: 1,
            append_bytes: 10,
            ..Counts::default()
        };
        day.add_counts("b", "s", 86_400 + 60, &c);
        day.add_counts("b", "s", 86_400 + 3540, &c);
        day.add_counts("b", "s", 86_400 + 3600, &c);
        day.add_op("", "list-basins", 86_400 + 120, 2);
        let s = &day.streams["b"]["s"];
        assert_eq!(s.counts.get(86_400).unwrap().append_bytes, 20);
        assert_eq!(s.counts.get(90_000).unwrap().append_express, 1);
        assert_eq!(day.ops[""]["list-basins"][&86_400], 2);
        let back = UsageObject::decode(&day.encode()).unwrap();
        assert_eq!(back, day);
    }

    /// Buckets are kept in order and stored as the map they were stored as before they
    /// were a list, so objects written by either read back the same.
    #[test]
    fn buckets_are_stored_as_a_map_in_order() {
        let mut b = Buckets::default();
        b.entry(120).append_bytes = 2;
        b.entry(60).append_bytes = 1;
        b.entry(120).append_bytes += 3;
        let map: BTreeMap<u32, Counts> = b.iter().map(|(k, c)| (k, *c)).collect();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), json);
        assert_eq!(serde_json::from_str::<Buckets>(&json).unwrap(), b);
        assert_eq!(b.get(120).unwrap().append_bytes, 5);
    }

    #[test]
    fn samples_keep_only_changes() {
        let mut o = UsageObject::new("n", 0, 60);
        let at = Sample::of_first_stream;
        o.add_sample("b", "s", at(0, 1, 5));
        o.add_sample("b", "s", at(60, 1, 5));
        o.add_sample("b", "s", at(120, 2, 9));
        assert_eq!(
            o.streams["b"]["s"].storage,
            vec![at(0, 1, 5), at(120, 2, 9)]
        );
    }

    #[test]
    fn refuses_other_formats() {
        let mut o = UsageObject::new("n", 0, 60);
        o.format = 2;
        assert!(UsageObject::decode(&o.encode()).is_err());
        assert!(UsageObject::decode(b"{}").is_err());
    }
}

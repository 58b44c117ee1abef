//! Figures from usage objects: sums across nodes for accumulations, the truest sample for
//! gauges. Pure functions of the objects read, so that any node answers alike.

use std::collections::{BTreeMap, BTreeSet};

use super::object::{Counts, DELETED, Sample, UsageObject};

/// Which streams a figure covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Basin(&'a str),
    Stream(&'a str, &'a str),
}

impl Scope<'_> {
    fn basin(&self) -> &str {
        match self {
            Self::Basin(b) | Self::Stream(b, _) => b,
        }
    }

    fn covers(&self, stream: &str) -> bool {
        match self {
            Self::Basin(_) => true,
            Self::Stream(_, s) => *s == stream,
        }
    }
}

/// A time range `[start, end)` in epoch seconds, and the length of the figures' buckets.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: u32,
    pub end: u32,
    pub step: u32,
}

impl Window {
    /// Whether a stored bucket starting at `bucket` (of `len` seconds) falls in the
    /// window: it may begin before `start` when the window starts inside it.
    fn holds(&self, bucket: u32, len: u32) -> bool {
        bucket >= self.start - self.start % len && bucket < self.end
    }

    fn point(&self, bucket: u32) -> u32 {
        bucket - bucket % self.step
    }

    /// The gauge's instants: each step's start, from the one holding `start` to `end`.
    fn instants(&self) -> impl Iterator<Item = u32> + use<> {
        let first = self.start - self.start % self.step;
        let (end, step) = (self.end, self.step as usize);
        (first..end).step_by(step)
    }
}

fn points(sums: BTreeMap<u32, u64>) -> Vec<(u32, f64)> {
    sums.into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(t, v)| (t, v as f64))
        .collect()
}

/// The sum over every node and stream in scope of `pick(counts)`, per step; steps without
/// any are left out, as S2 leaves them out.
pub fn accumulate(
    objects: &[UsageObject],
    scope: Scope<'_>,
    window: Window,
    pick: impl Fn(&Counts) -> u64,
) -> Vec<(u32, f64)> {
    let mut sums = BTreeMap::<u32, u64>::new();
    for o in objects {
        let Some(streams) = o.streams.get(scope.basin()) else {
            continue;
        };
        for (_, series) in streams.iter().filter(|(n, _)| scope.covers(n)) {
            for (bucket, counts) in series.counts.iter() {
                if window.holds(bucket, o.bucket_secs) {
                    *sums.entry(window.point(bucket)).or_default() += pick(counts);
                }
            }
        }
    }
    points(sums)
}

/// Control-plane operations of `basin` (empty: the account) per operation name, per step;
/// operations never made in the window are left out.
pub fn operations(
    objects: &[UsageObject],
    basin: &str,
    window: Window,
) -> BTreeMap<String, Vec<(u32, f64)>> {
    let mut sums = BTreeMap::<String, BTreeMap<u32, u64>>::new();
    for o in objects {
        for (op, buckets) in o.ops.get(basin).into_iter().flatten() {
            for (bucket, n) in buckets {
                if window.holds(*bucket, o.bucket_secs) {
                    *sums
                        .entry(op.clone())
                        .or_default()
                        .entry(window.point(*bucket))
                        .or_default() += n;
                }
            }
        }
    }
    sums.into_iter()
        .map(|(op, s)| (op, points(s)))
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

/// Stored bytes of the streams in scope at every step: for each stream, the truest sample
/// (highest manifest version, then most bytes) taken before the step ended, from any node;
/// 0 for a stream with none yet. Every step of the window has a point, as S2's gauges do.
pub fn storage(objects: &[UsageObject], scope: Scope<'_>, window: Window) -> Vec<(u32, f64)> {
    let mut by_stream = BTreeMap::<&str, Vec<Sample>>::new();
    for o in objects {
        let Some(streams) = o.streams.get(scope.basin()) else {
            continue;
        };
        for (name, series) in streams.iter().filter(|(n, _)| scope.covers(n)) {
            by_stream
                .entry(name.as_str())
                .or_default()
                .extend(series.storage.iter().copied());
        }
    }
    for samples in by_stream.values_mut() {
        samples.sort_by_key(|s| s.at);
    }
    window
        .instants()
        .map(|t| {
            let until = t.saturating_add(window.step);
            let total: u64 = by_stream
                .values()
                .filter_map(|samples| {
                    samples
                        .iter()
                        .take_while(|s| s.at < until)
                        .max_by_key(|s| s.rank())
                        .map(|s| s.bytes)
                })
                .sum();
            (t, total as f64)
        })
        .collect()
}

/// Basins with a stream during the window: one that was counted in it, or sampled before
/// its end and not deleted by then.
pub fn active_basins(objects: &[UsageObject], window: Window) -> Vec<String> {
    let mut active = BTreeSet::new();
    let mut samples = BTreeMap::<(&str, &str), Vec<Sample>>::new();
    for o in objects {
        for (basin, streams) in &o.streams {
            for (name, series) in streams {
                if series
                    .counts
                    .iter()
                    .any(|(b, _)| window.holds(b, o.bucket_secs))
                {
                    active.insert(basin.clone());
                }
                samples
                    .entry((basin.as_str(), name.as_str()))
                    .or_default()
                    .extend(series.storage.iter().filter(|s| s.at < window.end));
            }
        }
    }
    for ((basin, _), s) in samples {
        let latest = s.iter().max_by_key(|s| s.rank());
        let alive_at_start = latest.is_some_and(|s| s.version != DELETED);
        let alive_during = s
            .iter()
            .any(|s| s.version != DELETED && s.at >= window.start);
        if alive_at_start || alive_during {
            active.insert(basin.to_owned());
        }
    }
    active.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(node: &str, start: u32, bucket_secs: u32) -> UsageObject {
        UsageObject::new(node, start, bucket_secs)
    }

    fn appends(n: u64, bytes: u64) -> Counts {
        Counts {
            append_express: n,
            append_bytes: bytes,
            ..Counts::default()
        }
    }

    #[test]
    fn accumulations_sum_nodes_and_streams_per_step() {
        let mut a = object("a", 3600, 60);
        let mut b = object("b", 3600, 60);
        a.add_counts("bs", "s1", 3600, &appends(2, 20));
        a.add_counts("bs", "s2", 3660, &appends(1, 5));
        b.add_counts("bs", "s1", 3600, &appends(3, 30));
        b.add_counts("other", "s1", 3600, &appends(9, 90));
        let objects = [a, b];
        let minute = Window {
            start: 3600,
            end: 7200,
            step: 60,
        };
        let bytes = |c: &Counts| c.append_bytes;
        assert_eq!(
            accumulate(&objects, Scope::Basin("bs"), minute, bytes),
            vec![(3600, 50.0), (3660, 5.0)]
        );
        let hour = Window {
            step: 3600,
            ..minute
        };
        assert_eq!(
            accumulate(&objects, Scope::Basin("bs"), hour, |c| c.append_express),
            vec![(3600, 6.0)]
        );
        assert_eq!(
            accumulate(&objects, Scope::Stream("bs", "s2"), hour, bytes),
            vec![(3600, 5.0)]
        );
        let later = Window {
            start: 3700,
            end: 7200,
            step: 60,
        };
        assert_eq!(
            accumulate(&objects, Scope::Basin("bs"), later, bytes),
            vec![(3660, 5.0)],
            "a window starting inside a bucket keeps that bucket, not earlier ones"
        );
    }

    #[test]
    fn operations_by_name_leave_out_unused_ones() {
        let mut a = object("a", 0, 3600);
        let mut b = object("b", 0, 3600);
        a.add_op("", "list-basins", 60, 2);
        b.add_op("", "list-basins", 120, 1);
        b.add_op("", "create-basin", 7200, 1);
        b.add_op("bs", "list-streams", 60, 4);
        let w = Window {
            start: 0,
            end: 3600,
            step: 3600,
        };
        let ops = operations(&[a, b], "", w);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops["list-basins"], vec![(0, 3.0)]);
    }

    #[test]
    fn storage_takes_the_newest_version_from_any_node_and_carries_it_forward() {
        let mut a = object("a", 0, 60);
        let mut b = object("b", 0, 60);
        let s = Sample::of_first_stream;
        a.add_sample("bs", "s1", s(10, 3, 300));
        // `b` saw an older manifest later: the version decides, not the time.
        b.add_sample("bs", "s1", s(70, 2, 200));
        b.add_sample("bs", "s2", s(130, 1, 50));
        a.add_sample("bs", "s2", s(200, DELETED, 0));
        let w = Window {
            start: 0,
            end: 240,
            step: 60,
        };
        let objects = [a, b];
        assert_eq!(
            storage(&objects, Scope::Basin("bs"), w),
            vec![(0, 300.0), (60, 300.0), (120, 350.0), (180, 300.0)]
        );
        assert_eq!(
            storage(&objects, Scope::Stream("bs", "s2"), w),
            vec![(0, 0.0), (60, 0.0), (120, 50.0), (180, 0.0)]
        );
    }

    #[test]
    fn active_basins_had_a_live_stream_in_the_window() {
        let mut o = object("a", 0, 3600);
        let s = Sample::of_first_stream;
        o.add_sample("kept", "s", s(10, 1, 0));
        o.add_sample("gone", "s", s(10, 1, 5));
        o.add_sample("gone", "s", s(20, DELETED, 0));
        o.add_counts("busy", "s", 7200, &appends(1, 1));
        let w = |start, end| Window {
            start,
            end,
            step: 3600,
        };
        assert_eq!(active_basins(&[o.clone()], w(100, 3600)), vec!["kept"]);
        assert_eq!(active_basins(&[o.clone()], w(0, 15)), vec!["gone", "kept"]);
        assert_eq!(active_basins(&[o], w(100, 10_800)), vec!["busy", "kept"]);
    }
}

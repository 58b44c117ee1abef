//! Histograms and the Prometheus text format for a node's `/metrics`.
//!
//! A histogram has fixed bucket bounds and relaxed atomic counters, so observing costs a
//! binary search over its bounds and two atomic adds, and never blocks. A scrape
//! taken while observations land may see a bucket a moment ahead of the sum; Prometheus
//! tolerates that, and every counter only grows.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// Latency bucket bounds, in microseconds: fine enough around the milliseconds of a store
/// round trip and the hundreds of a `standard` linger to tell a p50 or p99 from its
/// neighbours, up to a stalled request.
pub const LATENCY_BOUNDS_US: &[u64] = &[
    100, 250, 500, 750, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500, 10_000, 15_000, 20_000,
    30_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// Size bucket bounds, in bytes: from one small record to a commit at the `standard`
/// linger's 4 MiB cap and beyond.
pub const SIZE_BOUNDS_BYTES: &[u64] = &[
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
];

/// Counts of observed values by bucket, and their sum.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds (inclusive), ascending; `buckets` has one more slot for the rest.
    bounds: &'static [u64],
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn latency() -> Self {
        Self::new(LATENCY_BOUNDS_US)
    }

    pub fn size() -> Self {
        Self::new(SIZE_BOUNDS_BYTES)
    }

    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    /// Observes a duration in microseconds, the unit of [`LATENCY_BOUNDS_US`].
    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// How many values were observed.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// Observations at or below each bound, then in all; and their sum.
    pub(crate) fn cumulative(&self) -> (Vec<u64>, u64) {
        let mut total = 0;
        let counts = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect();
        (counts, self.sum.load(Relaxed))
    }
}

/// A Prometheus text exposition (format 0.0.4) being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// A counter family: one sample per label set (`op="get"`, or empty for none).
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(&str, u64)]) {
        self.family(name, help, "counter");
        for (labels, value) in samples {
            self.sample(name, "", labels, &value.to_string());
        }
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "gauge");
        self.sample(name, "", "", &value.to_string());
    }

    /// A histogram family whose observations are in a base unit (microseconds, bytes)
    /// and are exposed divided by `per_unit` (1e6 for seconds), which keeps bounds such
    /// as 0.25 exact in the text.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        per_unit: f64,
        series: &[(&str, &Histogram)],
    ) {
        self.family(name, help, "histogram");
        for (labels, h) in series {
            let (counts, sum) = h.cumulative();
            let sep = if labels.is_empty() { "" } else { "," };
            for (bound, count) in h.bounds.iter().zip(&counts) {
                let le = format!("{labels}{sep}le=\"{}\"", *bound as f64 / per_unit);
                self.sample(name, "_bucket", &le, &count.to_string());
            }
            let all = counts.last().copied().unwrap_or(0);
            let inf = format!("{labels}{sep}le=\"+Inf\"");
            self.sample(name, "_bucket", &inf, &all.to_string());
            self.sample(name, "_sum", labels, &(sum as f64 / per_unit).to_string());
            self.sample(name, "_count", labels, &all.to_string());
        }
    }

    pub fn finish(self) -> String {
        self.text
    }

    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, suffix: &str, labels: &str, value: &str) {
        if labels.is_empty() {
            let _ = writeln!(self.text, "{name}{suffix} {value}");
        } else {
            let _ = writeln!(self.text, "{name}{suffix}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = Histogram::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, 5_000] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), (vec![2, 4, 6], 5_222));
    }

    /// Observations at or below `bound`, which must be one of `h`'s bounds.
    pub(crate) fn at_or_below(h: &Histogram, bound: u64) -> u64 {
        let i = h.bounds.iter().position(|&b| b == bound).expect("a bound");
        h.cumulative().0[i]
    }

    #[test]
    fn durations_are_observed_in_microseconds() {
        let h = Histogram::latency();
        h.observe_duration(Duration::from_micros(1_400));
        h.observe_duration(Duration::from_secs(60));
        assert_eq!(h.cumulative().1, 60_001_400);
        assert_eq!((at_or_below(&h, 1_000), at_or_below(&h, 1_500)), (0, 1));
        assert_eq!((at_or_below(&h, 10_000_000), h.count()), (1, 2));
    }

    #[test]
    fn renders_prometheus_text() {
        let h = Histogram::new(&[1_000, 250_000]);
        h.observe(500);
        h.observe(2_000_000);
        let mut e = Exposition::default();
        e.counter("x_total", "Xs.", &[("op=\"get\"", 3), ("op=\"put\"", 4)]);
        e.gauge("g_bytes", "Gs.", 7);
        e.histogram("d_seconds", "Ds.", 1e6, &[("op=\"get\"", &h)]);
        e.histogram("n_bytes", "Ns.", 1.0, &[("", &Histogram::new(&[8]))]);
        assert_eq!(
            e.finish(),
            "# HELP x_total Xs.\n# TYPE x_total counter\n\
             x_total{op=\"get\"} 3\nx_total{op=\"put\"} 4\n\
             # HELP g_bytes Gs.\n# TYPE g_bytes gauge\ng_bytes 7\n\
             # HELP d_seconds Ds.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{op=\"get\",le=\"0.001\"} 1\n\
             d_seconds_bucket{op=\"get\",le=\"0.25\"} 1\n\
             d_seconds_bucket{op=\"get\",le=\"+Inf\"} 2\n\
             d_seconds_sum{op=\"get\"} 2.0005\n\
             d_seconds_count{op=\"get\"} 2\n\
             # HELP n_bytes Ns.\n# TYPE n_bytes histogram\n\
             n_bytes_bucket{le=\"8\"} 0\nn_bytes_bucket{le=\"+Inf\"} 0\n\
             n_bytes_sum 0\nn_bytes_count 0\n"
        );
    }
}

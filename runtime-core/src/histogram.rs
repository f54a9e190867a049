//! Histograms of poll time and of schedule latency (from a task's wake-up, or spawn, to the
//! start of its poll), per worker and per class of priority (the priority scheduler's bands,
//! or one class), with buckets the user chooses.
//!
//! Off by default: on, each poll by a worker reads the clock twice and each schedule once, and
//! each task keeps its wake-up time in its metadata (a word that is there anyway). Counts are
//! relaxed atomics written only by their worker (a load and a store), read by snapshots.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::task::Priority;

/// The most buckets a histogram may have.
pub const MAX_BUCKETS: usize = 64;

/// Bucket bounds: bucket `i` counts values up to `bounds[i]` (inclusive) and above the bound
/// before it; a last, unbounded bucket counts the rest.
///
/// ```
/// use std::time::Duration;
/// use runtime_core::HistogramBuckets;
/// let b = HistogramBuckets::exponential(Duration::from_micros(1), 20).unwrap();
/// assert_eq!(b.bounds().len(), 20);
/// assert_eq!(b.bounds()[3], Duration::from_micros(8));
/// assert!(HistogramBuckets::explicit(vec![Duration::from_millis(2), Duration::from_millis(1)]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramBuckets {
    bounds: Vec<Duration>,
}

impl Default for HistogramBuckets {
    /// 1 µs, 2 µs, 4 µs, ... up to about 0.5 s (20 bounds), then the rest.
    fn default() -> Self {
        HistogramBuckets::exponential(Duration::from_micros(1), 20).expect("valid")
    }
}

impl HistogramBuckets {
    /// `count` bounds, `first` and then doubling (`first`, `2 first`, `4 first`, ...).
    /// `first` must be positive and `count` in 1..=[`MAX_BUCKETS`].
    pub fn exponential(first: Duration, count: usize) -> Result<HistogramBuckets, String> {
        if first.is_zero() {
            return Err("the first bucket bound must be more than zero".into());
        }
        if !(1..=MAX_BUCKETS).contains(&count) {
            return Err(format!(
                "{count} buckets: the count must be in 1..={MAX_BUCKETS}"
            ));
        }
        let mut bounds = Vec::with_capacity(count);
        let mut b = first;
        for _ in 0..count {
            bounds.push(b);
            b = b.saturating_mul(2);
        }
        HistogramBuckets::explicit(bounds)
    }

    /// These bounds: 1..=[`MAX_BUCKETS`] of them, strictly increasing.
    pub fn explicit(bounds: Vec<Duration>) -> Result<HistogramBuckets, String> {
        if bounds.is_empty() || bounds.len() > MAX_BUCKETS {
            return Err(format!(
                "{} bucket bounds: between 1 and {MAX_BUCKETS} are needed",
                bounds.len()
            ));
        }
        if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!(
                "bucket bounds must increase: {:?} is followed by {:?}",
                w[0], w[1]
            ));
        }
        Ok(HistogramBuckets { bounds })
    }

    /// The bounds (the last, unbounded bucket has none).
    pub fn bounds(&self) -> &[Duration] {
        &self.bounds
    }

    fn bucket_of(&self, nanos: u64) -> usize {
        self.bounds
            .partition_point(|b| (b.as_nanos() as u64) < nanos)
    }
}

/// Maps a priority to a class (a histogram of its own) and names the classes.
#[derive(Clone)]
pub struct HistogramClasses {
    names: Vec<String>,
    class_of: Arc<dyn Fn(Priority) -> usize + Send + Sync>,
}

impl fmt::Debug for HistogramClasses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramClasses")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Default for HistogramClasses {
    /// One class, "all".
    fn default() -> Self {
        HistogramClasses {
            names: vec!["all".into()],
            class_of: Arc::new(|_| 0),
        }
    }
}

impl HistogramClasses {
    /// Classes named `names`; `class_of` maps each priority to an index into them (an index
    /// out of range counts in the last class).
    pub fn new(
        names: Vec<String>,
        class_of: impl Fn(Priority) -> usize + Send + Sync + 'static,
    ) -> HistogramClasses {
        if names.is_empty() {
            return HistogramClasses::default();
        }
        HistogramClasses {
            names,
            class_of: Arc::new(class_of),
        }
    }
}

/// How to record histograms: buckets and classes. See the module docs for the cost.
#[derive(Debug, Clone, Default)]
pub struct HistogramConfig {
    /// The buckets of both histograms.
    pub buckets: HistogramBuckets,
    /// The classes of priority.
    pub classes: HistogramClasses,
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// The bucket bounds (see [`HistogramBuckets`]).
    pub bounds: Vec<Duration>,
    /// One count per bound, then the unbounded bucket's.
    pub counts: Vec<u64>,
}

impl HistogramSnapshot {
    /// Values recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// An upper bound of the `q` quantile (`0.0..=1.0`): the bound of the bucket it falls in,
    /// `Duration::MAX` for the unbounded bucket, `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.bounds.get(i).copied().unwrap_or(Duration::MAX));
            }
        }
        None
    }

    /// Adds `other`'s counts (same bounds) to these.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

/// One histogram: relaxed counters written by one worker.
struct Counts(Box<[AtomicU64]>);

impl Counts {
    fn new(n: usize) -> Counts {
        Counts((0..n).map(|_| AtomicU64::new(0)).collect())
    }

    #[inline]
    fn record(&self, bucket: usize) {
        let c = &self.0[bucket];
        c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
    }

    fn snapshot(&self, bounds: &[Duration]) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: bounds.to_vec(),
            counts: self.0.iter().map(|c| c.load(Relaxed)).collect(),
        }
    }
}

/// The histograms of one runtime: per worker, per class, for poll time and schedule latency.
pub(crate) struct Histograms {
    config: HistogramConfig,
    /// The time base of the wake-up stamps (microseconds since, in a `u32`: wraps after 71
    /// minutes, which a latency never spans).
    pub(crate) epoch: Instant,
    /// `[worker][class]`.
    poll_time: Box<[Box<[Counts]>]>,
    latency: Box<[Box<[Counts]>]>,
}

impl Histograms {
    pub(crate) fn new(config: HistogramConfig, workers: usize) -> Histograms {
        let buckets = config.buckets.bounds.len() + 1;
        let classes = config.classes.names.len();
        let table = || -> Box<[Box<[Counts]>]> {
            (0..workers)
                .map(|_| (0..classes).map(|_| Counts::new(buckets)).collect())
                .collect()
        };
        Histograms {
            epoch: Instant::now(),
            poll_time: table(),
            latency: table(),
            config,
        }
    }

    /// Microseconds since the epoch, wrapping: a task's wake-up stamp.
    #[inline]
    pub(crate) fn stamp(&self) -> u32 {
        self.epoch.elapsed().as_micros() as u32
    }

    #[inline]
    pub(crate) fn class_of(&self, priority: Priority) -> usize {
        let n = self.config.classes.names.len();
        ((self.config.classes.class_of)(priority)).min(n - 1)
    }

    /// Records a poll by `worker`: it started at `start`, the task was stamped `woken` when
    /// scheduled, and it ended at `end`.
    #[inline]
    pub(crate) fn record(
        &self,
        worker: usize,
        class: usize,
        woken: u32,
        start: Instant,
        end: Instant,
    ) {
        let started = start.saturating_duration_since(self.epoch).as_micros() as u32;
        let latency_ns = u64::from(started.wrapping_sub(woken)) * 1000;
        let poll_ns = end.saturating_duration_since(start).as_nanos() as u64;
        let b = &self.config.buckets;
        self.latency[worker][class].record(b.bucket_of(latency_ns));
        self.poll_time[worker][class].record(b.bucket_of(poll_ns));
    }

    fn snapshot_of(
        &self,
        table: &[Box<[Counts]>],
        worker: Option<usize>,
        class: Option<usize>,
    ) -> HistogramSnapshot {
        let bounds = &self.config.buckets.bounds;
        let mut out = HistogramSnapshot::default();
        for (w, per_class) in table.iter().enumerate() {
            if worker.is_some_and(|x| x != w) {
                continue;
            }
            for (c, counts) in per_class.iter().enumerate() {
                if class.is_some_and(|x| x != c) {
                    continue;
                }
                out.merge(&counts.snapshot(bounds));
            }
        }
        out
    }

    pub(crate) fn poll_time(
        &self,
        worker: Option<usize>,
        class: Option<usize>,
    ) -> HistogramSnapshot {
        self.snapshot_of(&self.poll_time, worker, class)
    }

    pub(crate) fn latency(&self, worker: Option<usize>, class: Option<usize>) -> HistogramSnapshot {
        self.snapshot_of(&self.latency, worker, class)
    }

    pub(crate) fn class_names(&self) -> &[String] {
        &self.config.classes.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_place_values_at_their_bounds() {
        let b =
            HistogramBuckets::explicit(vec![Duration::from_micros(10), Duration::from_micros(100)])
                .unwrap();
        assert_eq!(b.bucket_of(0), 0);
        assert_eq!(b.bucket_of(10_000), 0, "a bound is inclusive");
        assert_eq!(b.bucket_of(10_001), 1);
        assert_eq!(b.bucket_of(100_001), 2, "the unbounded bucket");
        assert!(HistogramBuckets::exponential(Duration::ZERO, 3).is_err());
        assert!(HistogramBuckets::exponential(Duration::from_micros(1), 65).is_err());
        assert!(HistogramBuckets::explicit(vec![]).is_err());
    }

    #[test]
    fn quantiles_and_merges() {
        let mut s = HistogramSnapshot {
            bounds: vec![Duration::from_micros(1), Duration::from_micros(2)],
            counts: vec![90, 9, 1],
        };
        assert_eq!(s.quantile(0.5), Some(Duration::from_micros(1)));
        assert_eq!(s.quantile(0.95), Some(Duration::from_micros(2)));
        assert_eq!(s.quantile(1.0), Some(Duration::MAX));
        s.merge(&s.clone());
        assert_eq!(s.total(), 200);
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }
}

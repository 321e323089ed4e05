//! Loader run times: a fixed-bucket histogram, recorded at the end of each load (never on a hit).
//!
//! The buckets step by 20-33% (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 per decade) from 1 µs to
//! 100 s, so a quantile is known to within one step. The Prometheus text reports the
//! 1 / 2.5 / 5 bounds from 100 µs up (see [`LoadTimes::prometheus_buckets`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The histogram's name, in the Prometheus text and the `metrics` facade.
pub(crate) const LOAD_DURATION: &str = "cache_load_duration_seconds";

/// Its help text.
pub(crate) const LOAD_DURATION_HELP: &str =
    "How long loader runs took (refreshes included), whatever their outcome.";

/// The steps of one decade, in hundredths of its first bound.
const STEPS: [u64; 10] = [100, 125, 150, 200, 250, 300, 400, 500, 600, 800];

/// Finite bucket bounds: 8 decades (1 µs to 80 s), and 100 s.
const FINITE: usize = 81;

/// Buckets: one per finite bound (`<= bound`), and one past the last.
pub(crate) const BUCKETS: usize = FINITE + 1;

/// The upper bounds of the finite buckets, in nanoseconds.
const BOUNDS: [u64; FINITE] = bounds();

const fn bounds() -> [u64; FINITE] {
    let mut out = [0u64; FINITE];
    let (mut decade, mut i) = (1_000u64, 0);
    while i < FINITE - 1 {
        out[i] = decade * STEPS[i % 10] / 100;
        i += 1;
        if i % 10 == 0 {
            decade *= 10;
        }
    }
    out[FINITE - 1] = decade;
    out
}

/// The bucket of a load that took `nanos`.
fn bucket(nanos: u64) -> usize {
    BOUNDS.partition_point(|&b| b < nanos)
}

/// A histogram of loader run times (a snapshot): how many loads ended, how long they took in
/// total, and their distribution, for the mean (Caffeine's `averageLoadPenalty`) and the
/// quantiles. Part of [`CacheStats`](crate::CacheStats).
///
/// A load is timed from the loader's start to its end, whatever its outcome (a value, an
/// error, a panic, a cancelled future), by the cache's [`Clock`](crate::Clock): a
/// [`ManualClock`](crate::ManualClock) makes it exact in tests.
///
/// ```
/// use cache_runtime::{Cache, Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let cache: Cache<u64, u64> = Cache::builder().clock(Clock::manual(&clock)).build()?;
/// for k in 0..10 {
///     cache.get_or_insert_with(&k, || {
///         // The slowest of ten loads takes 50 ms, the others 2 ms.
///         clock.advance(Duration::from_millis(if k == 9 { 50 } else { 2 }));
///         k
///     });
/// }
/// let t = cache.stats().load_time;
/// assert_eq!(t.count(), 10);
/// assert_eq!(t.total(), Duration::from_millis(68));
/// assert_eq!(t.mean(), Some(Duration::from_micros(6_800)));
/// // Quantiles are known to within their bucket (a step of 20-33%).
/// let p50 = t.p50().unwrap();
/// assert!(p50 > Duration::from_micros(1_500) && p50 <= Duration::from_millis(2));
/// let p99 = t.p99().unwrap();
/// assert!(p99 > Duration::from_millis(40) && p99 <= Duration::from_millis(50));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LoadTimes {
    counts: [u64; BUCKETS],
    sum_nanos: u64,
}

impl Default for LoadTimes {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            sum_nanos: 0,
        }
    }
}

impl fmt::Debug for LoadTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadTimes")
            .field("count", &self.count())
            .field("total", &self.total())
            .field("p50", &self.p50())
            .field("p90", &self.p90())
            .field("p99", &self.p99())
            .finish()
    }
}

impl LoadTimes {
    /// How many loads ended (a load in flight is counted in
    /// [`CacheStats::loads`](crate::CacheStats::loads) but not yet here).
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The time spent in loaders, in total.
    #[must_use]
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos)
    }

    /// The mean time of a load (Caffeine's `averageLoadPenalty`), or `None` before the first.
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        let n = self.count();
        (n > 0).then(|| Duration::from_nanos(self.sum_nanos / n))
    }

    /// The `q` quantile (`0.0..=1.0`) of load times, or `None` before the first load:
    /// interpolated within its bucket, as Prometheus' `histogram_quantile` does, so it is off
    /// by at most one bucket step (20-33%). A quantile in the last bucket (over 100 s) is
    /// reported as 100 s.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder().clock(Clock::manual(&clock)).build()?;
    /// assert_eq!(cache.stats().load_time.quantile(0.5), None);
    /// cache.get_or_insert_with(&1, || {
    ///     clock.advance(Duration::from_millis(3));
    ///     1
    /// });
    /// let q = cache.stats().load_time.quantile(0.5).unwrap();
    /// assert!(q > Duration::from_micros(2_500) && q <= Duration::from_millis(3));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut below = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            if below + c >= rank {
                let Some(&upper) = BOUNDS.get(i) else {
                    return Some(Duration::from_nanos(BOUNDS[FINITE - 1]));
                };
                let lower = if i == 0 { 0 } else { BOUNDS[i - 1] };
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                let at = lower + ((upper - lower) as f64 * (rank - below) as f64 / c as f64) as u64;
                return Some(Duration::from_nanos(at));
            }
            below += c;
        }
        None
    }

    /// The median load time (see [`quantile`](Self::quantile)).
    #[must_use]
    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.5)
    }

    /// The 90th percentile of load times (see [`quantile`](Self::quantile)).
    #[must_use]
    pub fn p90(&self) -> Option<Duration> {
        self.quantile(0.9)
    }

    /// The 99th percentile of load times (see [`quantile`](Self::quantile)).
    #[must_use]
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// Cumulative counts at the Prometheus bucket bounds: `(le, loads that took at most le)`,
    /// `le` in seconds from 100 µs to 100 s by 1 / 2.5 / 5, then `None` (`+Inf`) with every
    /// load.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder().clock(Clock::manual(&clock)).build()?;
    /// cache.get_or_insert_with(&1, || {
    ///     clock.advance(Duration::from_millis(2));
    ///     1
    /// });
    /// let buckets = cache.stats().load_time.prometheus_buckets();
    /// assert_eq!(buckets[0], (Some(0.0001), 0));
    /// assert!(buckets.contains(&(Some(0.001), 0)));
    /// assert!(buckets.contains(&(Some(0.0025), 1)));
    /// assert_eq!(buckets.last(), Some(&(None, 1)));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn prometheus_buckets(&self) -> Vec<(Option<f64>, u64)> {
        let mut out = Vec::with_capacity(20);
        let mut cumulative = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            cumulative += c;
            match BOUNDS.get(i) {
                Some(&b) if b >= 100_000 && is_prometheus_bound(b) => {
                    #[allow(clippy::cast_precision_loss)]
                    out.push((Some(b as f64 / 1e9), cumulative));
                }
                Some(_) => {}
                None => out.push((None, cumulative)),
            }
        }
        out
    }

    /// Both snapshots' loads together (caches sharing a name, in the registry).
    pub(crate) fn plus(&self, other: &Self) -> Self {
        let mut out = *self;
        for (o, c) in out.counts.iter_mut().zip(&other.counts) {
            *o += c;
        }
        out.sum_nanos += other.sum_nanos;
        out
    }

    fn minus(&self, base: &Self) -> Self {
        let mut out = *self;
        for (o, c) in out.counts.iter_mut().zip(&base.counts) {
            *o = o.wrapping_sub(*c);
        }
        out.sum_nanos = out.sum_nanos.wrapping_sub(base.sum_nanos);
        out
    }
}

/// Whether a bound is 1, 2.5 or 5 times a power of ten.
fn is_prometheus_bound(b: u64) -> bool {
    let mut m = b;
    while m >= 100 && m.is_multiple_of(10) {
        m /= 10;
    }
    matches!(m, 10 | 25 | 50)
}

/// The live histogram of one cache: shared atomic counts, written at the end of a load.
pub(crate) struct Latency {
    counts: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
    /// The snapshot at the last reset, subtracted from later ones.
    baseline: Mutex<LoadTimes>,
}

impl Latency {
    pub(crate) fn new() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            baseline: Mutex::new(LoadTimes::default()),
        }
    }

    /// Records a load that took `nanos`.
    pub(crate) fn record(&self, nanos: u64) {
        self.counts[bucket(nanos)].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn raw(&self) -> LoadTimes {
        LoadTimes {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn snapshot(&self) -> LoadTimes {
        let base = *self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        self.raw().minus(&base)
    }

    pub(crate) fn reset(&self) {
        let now = self.raw();
        *self.baseline.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_step_through_each_decade() {
        assert_eq!(
            &BOUNDS[..11],
            &[
                1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000
            ]
        );
        assert_eq!(BOUNDS[FINITE - 1], 100_000_000_000);
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]));
        // Each step is at most a third.
        assert!(BOUNDS.windows(2).all(|w| w[1] * 3 <= w[0] * 4));
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_001), 1);
        assert_eq!(bucket(100_000_000_000), FINITE - 1);
        assert_eq!(bucket(u64::MAX), FINITE);
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let l = Latency::new();
        // 90 loads of 3 ms, 10 of 40 ms.
        for _ in 0..90 {
            l.record(3_000_000);
        }
        for _ in 0..10 {
            l.record(40_000_000);
        }
        let t = l.snapshot();
        assert_eq!(t.count(), 100);
        assert_eq!(t.total(), Duration::from_millis(670));
        assert_eq!(t.mean(), Some(Duration::from_micros(6_700)));
        // Bucket (2.5 ms, 3 ms]: rank 50 of 90 there.
        assert_eq!(
            t.p50(),
            Some(Duration::from_nanos(2_500_000 + 500_000 * 50 / 90))
        );
        assert_eq!(t.p90(), Some(Duration::from_millis(3)));
        // Bucket (30 ms, 40 ms]: rank 99 is the 9th of its 10.
        assert_eq!(t.p99(), Some(Duration::from_millis(39)));
        assert_eq!(
            t.quantile(0.0),
            Some(Duration::from_nanos(2_500_000 + 500_000 / 90))
        );
        l.record(u64::MAX / 4);
        assert_eq!(l.snapshot().quantile(1.0), Some(Duration::from_secs(100)));
        l.reset();
        assert_eq!(l.snapshot(), LoadTimes::default());
        assert_eq!(l.snapshot().p50(), None);
    }

    #[test]
    fn prometheus_buckets_are_cumulative_at_1_2_5_bounds() {
        let l = Latency::new();
        l.record(50_000); // 50 µs: below the first reported bound
        l.record(3_000_000);
        l.record(200_000_000_000); // 200 s
        let b = l.snapshot().prometheus_buckets();
        let les: Vec<f64> = b.iter().filter_map(|(le, _)| *le).collect();
        assert_eq!(les.len(), 19);
        assert_eq!(les[..4], [0.0001, 0.00025, 0.0005, 0.001]);
        assert_eq!(*les.last().unwrap(), 100.0);
        assert_eq!(b[0], (Some(0.0001), 1));
        assert!(b.contains(&(Some(0.0025), 1)));
        assert!(b.contains(&(Some(0.005), 2)));
        assert!(b.contains(&(Some(100.0), 2)));
        assert_eq!(b.last(), Some(&(None, 3)));
        assert!(b.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}

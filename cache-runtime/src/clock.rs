//! Time for expiry: a coarse monotonic clock by default, and a manual clock for tests.
//!
//! A cache hit that must check a TTL reads the clock once. `Instant::now()` costs a full
//! `CLOCK_MONOTONIC` read; on Linux the cache reads `CLOCK_MONOTONIC_COARSE` instead, which the
//! vDSO answers from the last timer tick without touching the hardware counter (resolution 1–4 ms,
//! the kernel's `CONFIG_HZ`). Expiry is therefore exact to within one tick. BENCHMARKS.md gives the
//! measured difference. Entries without a TTL never read the clock at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic time source in nanoseconds, shared by a cache's entries.
///
/// The default is [`Clock::coarse`]. Tests inject a [`ManualClock`] with [`Clock::manual`] to
/// move time by hand instead of sleeping.
///
/// ```
/// use cache_runtime::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let manual = ManualClock::new();
/// let clock = Clock::manual(&manual);
/// let t0 = clock.now_nanos();
/// manual.advance(Duration::from_millis(5));
/// assert_eq!(clock.now_nanos() - t0, 5_000_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The coarse monotonic clock (the default).
    #[must_use]
    pub fn coarse() -> Self {
        Self { manual: None }
    }

    /// A clock that reads `manual`, and moves only when it is advanced.
    #[must_use]
    pub fn manual(manual: &ManualClock) -> Self {
        Self {
            manual: Some(Arc::clone(&manual.nanos)),
        }
    }

    /// The current time in nanoseconds since an arbitrary fixed origin.
    #[inline]
    #[must_use]
    pub fn now_nanos(&self) -> u64 {
        match &self.manual {
            None => coarse_nanos(),
            Some(n) => n.load(Ordering::Acquire),
        }
    }
}

/// A clock that moves only when told to, for tests of expiry.
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock starting at one second past its origin (zero is kept free as a sentinel).
    #[must_use]
    pub fn new() -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(1_000_000_000)),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
fn coarse_nanos() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    // Monotonic time is non-negative; `as` keeps the hot path branch-free.
    #[allow(clippy::cast_sign_loss)]
    let (secs, nanos) = (ts.tv_sec as u64, ts.tv_nsec as u64);
    secs.wrapping_mul(1_000_000_000).wrapping_add(nanos)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
fn coarse_nanos() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The precise clock, for comparison in benchmarks.
#[doc(hidden)]
#[must_use]
pub fn precise_nanos() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

//! Time for expiry: a coarse monotonic clock by default, and a manual clock for tests.
//!
//! Time is read as `CLOCK_MONOTONIC_COARSE` on Linux, which the vDSO answers from the last timer
//! tick without touching the hardware counter (resolution 1–4 ms, the kernel's `CONFIG_HZ`), about
//! a tenth of the cost of `Instant::now()`. Expiry is exact to within one tick.
//!
//! A hit does even less. Once a cache with a TTL exists, one background thread per process
//! (`cache-runtime-clock`) stores the coarse time in an atomic every 10 ms. A hit whose deadline
//! lies more than [`TICK_MARGIN`] past that stored time is fresh without reading any clock: one
//! relaxed load. Only entries in the last 250 ms of their life read the coarse clock itself, so a
//! ticker that falls behind (a stalled thread) can never make an expired entry look fresh unless
//! it stalls for longer than the margin. If the thread cannot be started, every check reads the
//! coarse clock. Entries without a TTL never read the clock at all. BENCHMARKS.md has the figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

/// How far ahead of the ticker's time a deadline must be for a hit to skip the clock read.
///
/// ```
/// use cache_runtime::TICK_MARGIN;
/// use std::time::Duration;
///
/// // Only entries this close to their deadline read the clock on a hit.
/// assert_eq!(TICK_MARGIN, Duration::from_millis(250));
/// ```
pub const TICK_MARGIN: Duration = Duration::from_millis(250);
const TICK_MARGIN_NANOS: u64 = 250_000_000;
const TICK_EVERY: Duration = Duration::from_millis(10);

/// The coarse time as of the ticker's last tick; 0 while no ticker runs.
static TICK: AtomicU64 = AtomicU64::new(0);

/// The ticker's last time plus [`TICK_MARGIN`]: a deadline later than this is not past, without
/// a clock read. `u64::MAX` while no ticker runs (no deadline is later: every check reads the
/// clock). Kept beside [`TICK`] so that a hit compares against one load, not a load, a test
/// and a saturating add.
static FRESH_BEYOND: AtomicU64 = AtomicU64::new(u64::MAX);

/// [`FRESH_BEYOND`] as the packed deadline word's bound ([`crate::entry::hit_bound`]): what a
/// hit of the sharded stores compares an entry's word with, under the read lock.
static FRESH_WHEN: AtomicU64 = AtomicU64::new(crate::entry::hit_bound(u64::MAX));

/// Stores the ticker's time `now`.
fn tick(now: u64) {
    TICK.store(now, Ordering::Relaxed);
    let beyond = now.saturating_add(TICK_MARGIN_NANOS);
    FRESH_BEYOND.store(beyond, Ordering::Relaxed);
    FRESH_WHEN.store(crate::entry::hit_bound(beyond), Ordering::Relaxed);
}

/// Starts the ticker thread once per process (a no-op afterwards).
pub(crate) fn start_ticker() {
    static START: Once = Once::new();
    START.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("cache-runtime-clock".into())
            .spawn(|| {
                loop {
                    tick(coarse_nanos());
                    std::thread::sleep(TICK_EVERY);
                }
            });
        if spawned.is_ok() {
            // Valid before the first check, whenever the thread first runs.
            tick(coarse_nanos());
        }
    });
}

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
#[derive(Clone)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
    /// What a hit compares a deadline against first ([`is_past`](Self::is_past)): the
    /// ticker's [`FRESH_BEYOND`] for the coarse clock; for a manual clock, [`NO_TICKER`]
    /// (every check reads the manual time). One load through this, rather than a test of
    /// which clock this is and then a load.
    fresh_beyond: &'static AtomicU64,
    /// The same bound for a packed deadline word ([`FRESH_WHEN`] or [`NO_TICKER_WHEN`]).
    fresh_when: &'static AtomicU64,
}

/// The bound of a clock that no ticker serves (a manual one): no deadline is later.
static NO_TICKER: AtomicU64 = AtomicU64::new(u64::MAX);
/// [`NO_TICKER`] for a packed deadline word: only an entry without a deadline is above it.
static NO_TICKER_WHEN: AtomicU64 = AtomicU64::new(crate::entry::hit_bound(u64::MAX));

impl std::fmt::Debug for Clock {
    /// Which clock this is, and a manual clock's time (not the ticker's bound, which moves).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::Coarse"),
            Some(n) => f
                .debug_struct("Clock::Manual")
                .field("nanos", &n.load(Ordering::Acquire))
                .finish(),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::coarse()
    }
}

impl Clock {
    /// The coarse monotonic clock (the default).
    ///
    /// ```
    /// use cache_runtime::Clock;
    /// use std::time::Duration;
    ///
    /// let clock = Clock::coarse();
    /// let t0 = clock.now_nanos();
    /// std::thread::sleep(Duration::from_millis(20));
    /// assert!(clock.now_nanos() > t0); // moves by itself, a tick (1-4 ms) at a time
    /// ```
    #[must_use]
    pub fn coarse() -> Self {
        Self {
            manual: None,
            fresh_beyond: &FRESH_BEYOND,
            fresh_when: &FRESH_WHEN,
        }
    }

    /// A clock that reads `manual`, and moves only when it is advanced.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let manual = ManualClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(5))
    ///     .clock(Clock::manual(&manual))
    ///     .build()?;
    /// cache.insert(1, 1);
    /// manual.advance(Duration::from_secs(5));
    /// assert_eq!(cache.get(&1), None); // expired without sleeping
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn manual(manual: &ManualClock) -> Self {
        Self {
            manual: Some(Arc::clone(&manual.nanos)),
            fresh_beyond: &NO_TICKER,
            fresh_when: &NO_TICKER_WHEN,
        }
    }

    /// The current time in nanoseconds since an arbitrary fixed origin.
    ///
    /// ```
    /// use cache_runtime::Clock;
    ///
    /// let clock = Clock::coarse();
    /// let (a, b) = (clock.now_nanos(), clock.now_nanos());
    /// assert!(b >= a); // monotonic
    /// ```
    #[inline]
    #[must_use]
    pub fn now_nanos(&self) -> u64 {
        match &self.manual {
            None => coarse_nanos(),
            Some(n) => n.load(Ordering::Acquire),
        }
    }

    /// Whether this is a manual clock (which moves only when advanced).
    pub(crate) fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The time now to the clock's full precision (not the coarse tick), for timing loads: the
    /// manual clock's time, or the monotonic clock.
    pub(crate) fn precise_nanos(&self) -> u64 {
        match &self.manual {
            None => precise_nanos(),
            Some(n) => n.load(Ordering::Acquire),
        }
    }

    /// The time as of the last tick: the ticker's stored time (one relaxed load) while it
    /// runs, else the coarse clock; the manual clock's time. For recording reads (time-to-idle),
    /// where a time up to a tick old will do.
    #[inline(always)]
    pub(crate) fn tick_nanos(&self) -> u64 {
        match &self.manual {
            None => match TICK.load(Ordering::Relaxed) {
                0 => coarse_nanos(),
                tick => tick,
            },
            Some(n) => n.load(Ordering::Acquire),
        }
    }

    /// The bound of [`Stored::plainly_fresh`](crate::entry::Stored::plainly_fresh): a packed
    /// deadline word above it has not passed, by this clock's ticker (only a word without a
    /// deadline is above a manual clock's).
    #[inline(always)]
    pub(crate) fn hit_bound(&self) -> u64 {
        self.fresh_when.load(Ordering::Relaxed)
    }

    /// Whether `deadline` has passed: the check of a cache hit (see the module docs).
    #[inline(always)]
    pub(crate) fn is_past(&self, deadline: u64) -> bool {
        if deadline > self.fresh_beyond.load(Ordering::Relaxed) {
            return false;
        }
        match &self.manual {
            None => deadline <= coarse_nanos(),
            Some(n) => deadline <= n.load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_checks_agree_with_the_clock_with_and_without_the_ticker() {
        let c = Clock::coarse();
        let check = || {
            let now = c.now_nanos();
            assert!(c.is_past(now - 1));
            assert!(c.is_past(1));
            assert!(!c.is_past(now + 10_000_000_000));
            // Within the margin: decided by a real read (unless this thread really was held up
            // for 100 ms between the two reads).
            let soon = now + 100_000_000;
            assert!(!c.is_past(soon) || c.now_nanos() >= soon);
        };
        check();
        start_ticker();
        assert_ne!(TICK.load(Ordering::Relaxed), 0);
        check();
    }
}

/// A clock that moves only when told to, for tests of expiry.
///
/// ```
/// use cache_runtime::{Cache, Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let sessions: Cache<u64, String> = Cache::builder()
///     .ttl(Duration::from_secs(30 * 60))
///     .clock(Clock::manual(&clock))
///     .build()?;
/// sessions.insert(1, "ada".to_string());
/// clock.advance(Duration::from_secs(29 * 60));
/// assert!(sessions.contains_key(&1));
/// clock.advance(Duration::from_secs(60)); // 30 minutes on, at once
/// assert!(!sessions.contains_key(&1));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
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
    ///
    /// ```
    /// use cache_runtime::{Clock, ManualClock};
    ///
    /// let clock = Clock::manual(&ManualClock::new());
    /// assert_eq!(clock.now_nanos(), 1_000_000_000);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(1_000_000_000)),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    ///
    /// ```
    /// use cache_runtime::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let manual = ManualClock::new();
    /// let clock = Clock::manual(&manual);
    /// manual.clone().advance(Duration::from_millis(1_500)); // clones share the time
    /// assert_eq!(clock.now_nanos(), 2_500_000_000);
    /// manual.advance(Duration::MAX);
    /// assert_eq!(clock.now_nanos(), u64::MAX);
    /// ```
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

/// The monotonic clock to the nanosecond (for timing loads, not on the hit path).
fn precise_nanos() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
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

//! The circuit breaker and the fault accounting of a remote backend, shared by backends.
//!
//! A backend asks [`Breaker::admit`] before each operation and hands its outcome to
//! [`Breaker::record`]. Each kind of fault is counted ([`Faults`]); after [`BREAKER_THRESHOLD`]
//! consecutive faults the breaker opens for [`BREAKER_COOLDOWN`], during which operations are
//! refused at no cost (no network). Then it is half-open: one trial operation goes through (the
//! others are still refused); its success closes the breaker, so caching resumes by itself when
//! the server comes back, and its failure opens it for another cool-down. A trial that never
//! reports (a cancelled caller) is replaced by another after a cool-down.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::tier::Fault;
// Counted here, defined with the backend trait (a backend's health reports them).
pub(crate) use crate::tier::Faults;

/// Consecutive faults that open the circuit breaker.
///
/// ```no_run
/// # #[cfg(feature = "redis")] {
/// use cache_runtime::{BREAKER_THRESHOLD, Cache, RedisBackend};
/// use std::{sync::Arc, time::Duration};
///
/// // Redis is down: every call still answers, from its loader.
/// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
/// let users: Cache<u64, String> = Cache::builder()
///     .remote(redis.clone(), "myapp")
///     .build()?;
/// for id in 0..u64::from(BREAKER_THRESHOLD) {
///     assert_eq!(users.get_or_insert_with(&id, || format!("user {id}")), format!("user {id}"));
/// }
/// assert!(redis.is_open()); // Redis is skipped now, at no cost
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker skips its server (Redis, or one memcached server) before it lets one
/// trial operation through.
///
/// ```no_run
/// # #[cfg(feature = "redis")] {
/// use cache_runtime::{BREAKER_COOLDOWN, Cache, RedisBackend};
/// use std::{sync::Arc, time::Duration};
///
/// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
/// let users: Cache<u64, String> = Cache::builder()
///     .remote(redis.clone(), "myapp")
///     .build()?;
/// for id in 0..10 {
///     users.get_or_insert_with(&id, || format!("user {id}")); // Redis is down
/// }
/// assert!(redis.is_open());
/// std::thread::sleep(BREAKER_COOLDOWN);
/// assert!(!redis.is_open()); // operations try Redis again
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const BREAKER_COOLDOWN: Duration = Duration::from_millis(500);

#[derive(Default)]
struct FaultCounters {
    connect: AtomicU64,
    timeout: AtomicU64,
    error: AtomicU64,
    short_circuited: AtomicU64,
}

/// One backend's circuit breaker and fault counters.
pub(crate) struct Breaker {
    /// Faults since the last success.
    failures: AtomicU32,
    /// When an open breaker becomes half-open (clock nanoseconds).
    open_until: AtomicU64,
    /// Half-open: no new trial before this (clock nanoseconds).
    trial_until: AtomicU64,
    clock: Clock,
    faults: FaultCounters,
}

impl Breaker {
    /// A closed breaker that has counted nothing.
    pub(crate) fn new() -> Self {
        Self {
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            trial_until: AtomicU64::new(0),
            clock: Clock::coarse(),
            faults: FaultCounters::default(),
        }
    }

    /// Whether the breaker is open now (operations are refused).
    pub(crate) fn is_open(&self) -> bool {
        self.clock.now_nanos() < self.open_until.load(Ordering::Relaxed)
    }

    /// Faults counted so far.
    /// Past its cool-down but not yet closed: one trial goes through, the rest are refused.
    pub(crate) fn is_half_open(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= BREAKER_THRESHOLD && !self.is_open()
    }

    pub(crate) fn faults(&self) -> Faults {
        let f = &self.faults;
        Faults {
            connect: f.connect.load(Ordering::Relaxed),
            timeout: f.timeout.load(Ordering::Relaxed),
            error: f.error.load(Ordering::Relaxed),
            short_circuited: f.short_circuited.load(Ordering::Relaxed),
        }
    }

    /// Lets an operation through, or refuses it (and counts it) while the breaker is open.
    pub(crate) fn admit(&self) -> Result<(), Fault> {
        if self.failures.load(Ordering::Relaxed) < BREAKER_THRESHOLD {
            return Ok(()); // closed
        }
        let now = self.clock.now_nanos();
        if now >= self.open_until.load(Ordering::Relaxed) {
            // Half-open: the first caller past the cool-down is the trial.
            let due = self.trial_until.load(Ordering::Relaxed);
            if now >= due
                && self
                    .trial_until
                    .compare_exchange(
                        due,
                        now.saturating_add(cooldown()),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                return Ok(());
            }
        }
        self.faults.short_circuited.fetch_add(1, Ordering::Relaxed);
        Err(Fault::Open)
    }

    /// Counts an operation's outcome (a success closes the run of faults; a fault may open
    /// the breaker), and hands it back.
    pub(crate) fn record<T>(&self, r: Result<T, Fault>) -> Result<T, Fault> {
        match &r {
            Ok(_) => self.failures.store(0, Ordering::Relaxed),
            Err(f) => {
                let counter = match f {
                    Fault::Connect => &self.faults.connect,
                    Fault::Timeout => &self.faults.timeout,
                    Fault::Error | Fault::Reply => &self.faults.error,
                    Fault::Open => return r,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    fault = ?f,
                    consecutive = n,
                    breaker_opens = n >= BREAKER_THRESHOLD,
                    "cache backend fault"
                );
                if n >= BREAKER_THRESHOLD {
                    // Opens (or, after a failed trial, opens again).
                    let until = self.clock.now_nanos().saturating_add(cooldown());
                    self.open_until.store(until, Ordering::Relaxed);
                    self.trial_until.store(until, Ordering::Relaxed);
                }
            }
        }
        r
    }
}

/// [`BREAKER_COOLDOWN`] in nanoseconds.
fn cooldown() -> u64 {
    u64::try_from(BREAKER_COOLDOWN.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn breaker(clock: &ManualClock) -> Breaker {
        let mut b = Breaker::new();
        b.clock = Clock::manual(clock);
        b
    }

    fn open(b: &Breaker) {
        for _ in 0..BREAKER_THRESHOLD {
            assert!(b.admit().is_ok());
            let _ = b.record::<()>(Err(Fault::Timeout));
        }
    }

    #[test]
    fn after_the_cool_down_one_trial_goes_through_and_its_success_closes() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        open(&b);
        assert!(b.is_open());
        assert_eq!(b.admit(), Err(Fault::Open));
        clock.advance(BREAKER_COOLDOWN);
        assert!(!b.is_open() && b.is_half_open());
        // Half-open: one trial among eight callers, the others refused at no cost.
        let admitted = (0..8).filter(|_| b.admit().is_ok()).count();
        assert_eq!(admitted, 1);
        let _ = b.record::<()>(Ok(()));
        assert_eq!(
            (0..8).filter(|_| b.admit().is_ok()).count(),
            8,
            "closed again"
        );
        assert_eq!(b.faults().short_circuited, 8);
    }

    #[test]
    fn a_failed_trial_opens_the_breaker_for_another_cool_down() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        open(&b);
        clock.advance(BREAKER_COOLDOWN);
        assert!(b.admit().is_ok());
        let _ = b.record::<()>(Err(Fault::Connect));
        assert!(b.is_open());
        assert_eq!(b.admit(), Err(Fault::Open));
        clock.advance(BREAKER_COOLDOWN / 2);
        assert_eq!(b.admit(), Err(Fault::Open));
        clock.advance(BREAKER_COOLDOWN / 2);
        assert!(b.admit().is_ok(), "the next trial");
    }

    #[test]
    fn a_trial_that_never_reports_is_replaced_after_a_cool_down() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        open(&b);
        clock.advance(BREAKER_COOLDOWN);
        assert!(b.admit().is_ok()); // its caller is cancelled: no record
        assert_eq!(b.admit(), Err(Fault::Open));
        clock.advance(BREAKER_COOLDOWN);
        assert!(b.admit().is_ok());
    }
}

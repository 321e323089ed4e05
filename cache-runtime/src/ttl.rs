//! Time-to-live settings, jitter, and the deadline an insert computes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::BuildError;

/// The deadline of an entry that never expires.
pub(crate) const NEVER: u64 = u64::MAX;

/// Random spread added to each entry's TTL, drawn once per insert, so that keys written together
/// do not all expire together (and reload together: a synchronized-expiry stampede).
///
/// ```
/// use cache_runtime::{Cache, Jitter};
/// use std::time::Duration;
///
/// // Each entry lives 60 s +/- 10%.
/// let cache: Cache<u64, String> = Cache::builder()
///     .ttl(Duration::from_secs(60))
///     .jitter(Jitter::Fraction(0.1))
///     .build()
///     .unwrap();
/// # drop(cache);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Jitter {
    /// A fraction of the TTL: `0.1` draws each entry's TTL uniformly from 90%..=110% of it.
    /// Must be within `0.0..=1.0`.
    Fraction(f64),
    /// An absolute spread: the TTL is drawn uniformly from `ttl - d ..= ttl + d`. Must not
    /// exceed the TTL. Applied to `negative_ttl` capped at the same share of it.
    Spread(Duration),
}

/// Validated expiry settings of one cache.
#[derive(Debug)]
pub(crate) struct Expiry {
    ttl: Option<u64>,
    negative_ttl: Option<u64>,
    /// Jitter as a fraction of the TTL, scaled to 2^32 (0 = none).
    jitter: u64,
    rng: AtomicU64,
}

pub(crate) fn ttl_nanos(d: Duration, setting: &'static str) -> Result<u64, BuildError> {
    if d.is_zero() {
        return Err(BuildError::ZeroTtl { setting });
    }
    // Leave headroom so `now + ttl + jitter` cannot overflow for centuries of uptime.
    match u64::try_from(d.as_nanos()) {
        Ok(n) if n <= u64::MAX / 2 => Ok(n),
        _ => Err(BuildError::TtlTooLarge { setting }),
    }
}

impl Expiry {
    pub(crate) fn new(
        ttl: Option<Duration>,
        negative_ttl: Option<Duration>,
        jitter: Option<Jitter>,
        seed: u64,
    ) -> Result<Self, BuildError> {
        let ttl = ttl.map(|d| ttl_nanos(d, "ttl")).transpose()?;
        let negative_ttl = negative_ttl
            .map(|d| ttl_nanos(d, "negative_ttl"))
            .transpose()?;
        let fraction = match jitter {
            None => 0.0,
            Some(j) => {
                let Some(base) = ttl.or(negative_ttl) else {
                    return Err(BuildError::InvalidJitter(
                        "jitter needs a `ttl` or `negative_ttl` to spread".into(),
                    ));
                };
                match j {
                    Jitter::Fraction(f) if (0.0..=1.0).contains(&f) => f,
                    Jitter::Fraction(f) => {
                        return Err(BuildError::InvalidJitter(format!(
                            "a fraction must be within 0.0..=1.0 (0% to 100% of the TTL), got {f}"
                        )));
                    }
                    Jitter::Spread(d) => {
                        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                        if d > base {
                            return Err(BuildError::InvalidJitter(format!(
                                "a spread of {d} ns exceeds the TTL of {base} ns (over 100%)"
                            )));
                        }
                        #[allow(clippy::cast_precision_loss)]
                        let f = d as f64 / base as f64;
                        f
                    }
                }
            }
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let jitter = (fraction * f64::from(u32::MAX)) as u64;
        Ok(Self {
            ttl,
            negative_ttl,
            jitter,
            rng: AtomicU64::new(seed),
        })
    }

    /// No expiry at all.
    pub(crate) fn none(seed: u64) -> Self {
        Self {
            ttl: None,
            negative_ttl: None,
            jitter: 0,
            rng: AtomicU64::new(seed),
        }
    }

    pub(crate) fn has_negative_ttl(&self) -> bool {
        self.negative_ttl.is_some()
    }

    /// The deadline for a value inserted now (`negative` picks `negative_ttl`).
    pub(crate) fn deadline(&self, now: impl FnOnce() -> u64, negative: bool) -> u64 {
        let ttl = if negative {
            self.negative_ttl
        } else {
            self.ttl
        };
        match ttl {
            None => NEVER,
            Some(ttl) => now().saturating_add(self.jittered(ttl)),
        }
    }

    /// The deadline for an explicit per-entry TTL (already validated), with the cache's jitter.
    pub(crate) fn deadline_for(&self, now: u64, ttl: u64) -> u64 {
        now.saturating_add(self.jittered(ttl))
    }

    /// `ttl` moved uniformly within +/- the jitter fraction; never below 1 ns.
    fn jittered(&self, ttl: u64) -> u64 {
        if self.jitter == 0 {
            return ttl;
        }
        // spread = ttl * fraction, computed in 128 bits: ttl * jitter / 2^32.
        let spread = u64::try_from((u128::from(ttl) * u128::from(self.jitter)) >> 32).unwrap_or(0);
        if spread == 0 {
            return ttl;
        }
        let r = self.next_random();
        // Uniform in 0..=2*spread, then shifted to -spread..=+spread.
        let width = spread.saturating_mul(2).saturating_add(1);
        let offset = u64::try_from((u128::from(r) * u128::from(width)) >> 64).unwrap_or(0);
        (ttl - spread).saturating_add(offset).max(1)
    }

    /// splitmix64 over a shared atomic counter: lock-free, and reproducible from a seed when
    /// one thread inserts.
    pub(crate) fn next_random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let e = Expiry::new(
            Some(Duration::from_secs(100)),
            None,
            Some(Jitter::Fraction(0.1)),
            7,
        )
        .unwrap();
        let base = 100_000_000_000u64;
        let mut min = u64::MAX;
        let mut max = 0;
        let mut buckets = [0u32; 10];
        for _ in 0..20_000 {
            let d = e.deadline(|| 0, false);
            assert!((90_000_000_000..=110_000_000_000).contains(&d), "{d}");
            min = min.min(d);
            max = max.max(d);
            let b = ((d - 90_000_000_000) * 10 / 20_000_000_001) as usize;
            buckets[b] += 1;
        }
        // The draw covers the whole range, roughly uniformly.
        assert!(min < base - 9_900_000_000 && max > base + 9_900_000_000);
        for b in buckets {
            assert!((1_700..=2_300).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn spread_and_errors() {
        let e = Expiry::new(
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(1)),
            Some(Jitter::Spread(Duration::from_secs(2))),
            1,
        )
        .unwrap();
        for _ in 0..1000 {
            let d = e.deadline(|| 0, false);
            assert!((8_000_000_000..=12_000_000_000).contains(&d));
            // 20% of negative_ttl
            let n = e.deadline(|| 0, true);
            assert!((800_000_000..=1_200_000_000).contains(&n));
        }
        let err = |ttl, j| Expiry::new(ttl, None, Some(j), 0).unwrap_err();
        assert!(matches!(
            err(Some(Duration::from_secs(1)), Jitter::Fraction(1.5)),
            BuildError::InvalidJitter(_)
        ));
        assert!(matches!(
            err(Some(Duration::from_secs(1)), Jitter::Fraction(f64::NAN)),
            BuildError::InvalidJitter(_)
        ));
        assert!(matches!(
            err(
                Some(Duration::from_secs(1)),
                Jitter::Spread(Duration::from_secs(2))
            ),
            BuildError::InvalidJitter(_)
        ));
        assert!(matches!(
            err(None, Jitter::Fraction(0.1)),
            BuildError::InvalidJitter(_)
        ));
        assert_eq!(
            Expiry::new(Some(Duration::ZERO), None, None, 0).unwrap_err(),
            BuildError::ZeroTtl { setting: "ttl" }
        );
        assert_eq!(
            Expiry::new(None, Some(Duration::MAX), None, 0).unwrap_err(),
            BuildError::TtlTooLarge {
                setting: "negative_ttl"
            }
        );
    }

    #[test]
    fn no_ttl_never_expires_and_reads_no_clock() {
        let e = Expiry::new(None, None, None, 0).unwrap();
        assert_eq!(
            e.deadline(|| unreachable!("no clock read without a ttl"), false),
            NEVER
        );
    }
}

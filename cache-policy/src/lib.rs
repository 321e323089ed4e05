//! The eviction policies of `cache-runtime`, and the names they parse from.
//!
//! This is the one table of policy names: the runtime re-exports [`Policy`] and
//! [`UnknownPolicy`] (as `cache_runtime::Policy`), and the `#[cached(policy = "...")]` attribute
//! parses its string with the same [`FromStr`] and takes its "did you mean" candidates from
//! [`Policy::ALL`]. It depends on nothing, so that the macro crate can use it.
//!
//! ```
//! use cache_policy::Policy;
//!
//! assert_eq!("lru".parse::<Policy>(), Ok(Policy::Lru));
//! assert_eq!("W-TinyLFU".parse::<Policy>(), Ok(Policy::Lfu));
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

/// The eviction policy of a cache: which entry leaves when a new one needs room.
///
/// | policy | hit costs | keeps | good for |
/// |---|---|---|---|
/// | [`Lfu`](Policy::Lfu) (default) | a read lock, a count in the entry; a list move under the write lock once an epoch | keys with the highest recent frequency (W-TinyLFU, aging) | mixed traffic: the closest to optimal on average |
/// | [`S3Fifo`](Policy::S3Fifo) | a read lock, one atomic | frequently re-used keys; resists scans | scan-heavy traffic; quick_cache's behaviour |
/// | [`Lru`](Policy::Lru) | a read lock; a list move under the write lock once an epoch (below 1,024 entries: a shard lock and a list move) | the most recently used keys (per shard; exactly below 1,024 entries) | recency-heavy traffic |
/// | [`Fifo`](Policy::Fifo) | a read lock | the most recently inserted keys | predictable, insertion-ordered expiry |
///
/// Why [`Lfu`](Policy::Lfu) is the default (issue 18; every figure with its command in the
/// project's BENCHMARKS.md):
/// - **Hit ratio.** On the 13 real traces of the project's hit-ratio benchmark (104 trace and
///   size points), `Lfu`'s mean gap to Belady's optimum is 4.29 points, against 4.51 for the
///   better of moka and quick_cache chosen per point after the fact, and it is never more than 3
///   points below that better peer. `S3Fifo` (quick_cache's policy, the default before) is at
///   6.47.
/// - **Hit cost.** A fresh entry's hit takes the shard's read lock and clones the value alone,
///   as a raw quick_cache lookup does: a `#[cached]` hit with `u64` keys on one thread measured
///   1.10x a raw quick_cache `get` (1.12x through `Cache::get`; 0.97x with 64-byte `String`
///   keys), and on two threads `Lfu`'s hits are faster than `S3Fifo`'s. A small cache's hits take
///   the read lock too.
/// - **Memory.** 14 to 21 bytes an entry above raw quick_cache (its frequency sketch), against
///   8 to 17 for `S3Fifo`.
///
/// Choose `S3Fifo` for quick_cache's exact behaviour, or where a workload is mostly one-off
/// scans; `Lru` where you want to predict evictions by hand.
///
/// Parse from the names used by the `#[cached(policy = "...")]` attribute:
///
/// ```
/// use cache_policy::Policy;
/// assert_eq!("lfu".parse::<Policy>(), Ok(Policy::Lfu));
/// assert_eq!("s3-fifo".parse::<Policy>(), Ok(Policy::S3Fifo));
/// assert!("lfuu".parse::<Policy>().unwrap_err().to_string().contains("`lfu`"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// `quick_cache`'s policy, S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO, a
    /// main FIFO with re-insertion of referenced entries (CLOCK-like, counters up to 2), and a
    /// ghost queue of recently evicted keys. Scan resistant; hits take only a read lock. The
    /// default until issue 18 made [`Lfu`](Policy::Lfu)'s hit as cheap.
    S3Fifo,
    /// Least-recently-used within each shard: a hit moves its entry to the front, the back is
    /// evicted. In a cache of 1,024 entries or more, an entry moves on its *first* hit in an
    /// epoch (1/64 of its shard's capacity of inserts) and its later hits in the epoch take
    /// only the shard's read lock, so the order is exact between epochs and by first hit
    /// within one: least-recently-used to within one epoch (on the project's traces its mean
    /// hit ratio over the sizes is within 0.02 points of the exact LRU's). A smaller cache
    /// (capacity, in weight) is exact.
    Lru,
    /// Window TinyLFU (Einziger et al., 2017): an LRU window (1% of the capacity at first, then
    /// sized by hit density: capacity moves towards the window or the main area, whichever
    /// earned more hits a slot at its margin, down to no window), a segmented-LRU main area,
    /// and eviction, when the whole is full, of the less frequent of the newest candidate and
    /// the main area's oldest entry (Caffeine's), by a count-min frequency sketch whose counters
    /// are halved periodically (aging), so that yesterday's hot keys do not stay forever. The
    /// sketch (8 bytes an entry, and at least 4 KiB a shard, which keeps a small cache's
    /// frequency counts apart) is allocated when a shard first reaches half its capacity, so a
    /// cache that never fills never pays for it, and it then counts the entries already held.
    /// In a cache of 1,024 entries or more, the window and the protected segment order their
    /// entries by epochs at every size (an epoch is 1/64 of a shard's capacity of inserts, at
    /// least one), so that most hits take only a read lock. The default.
    #[default]
    Lfu,
    /// First-in, first-out: hits do not reorder.
    Fifo,
}

impl Policy {
    /// Every policy with the name it parses from.
    ///
    /// ```
    /// use cache_policy::Policy;
    ///
    /// for (name, policy) in Policy::ALL {
    ///     assert_eq!(name.parse::<Policy>(), Ok(policy));
    ///     assert_eq!(policy.name(), name);
    /// }
    /// ```
    pub const ALL: [(&'static str, Policy); 4] = [
        ("s3-fifo", Policy::S3Fifo),
        ("lru", Policy::Lru),
        ("lfu", Policy::Lfu),
        ("fifo", Policy::Fifo),
    ];

    /// Other names each policy parses from (in any case, as every name): the spellings the
    /// `#[cached(policy = "...")]` attribute accepts beside [`ALL`](Policy::ALL)'s.
    ///
    /// ```
    /// use cache_policy::Policy;
    ///
    /// for (alias, policy) in Policy::ALIASES {
    ///     assert_eq!(alias.parse::<Policy>(), Ok(policy));
    /// }
    /// assert_eq!("TinyLFU".parse::<Policy>(), Ok(Policy::Lfu));
    /// ```
    pub const ALIASES: [(&'static str, Policy); 5] = [
        ("s3fifo", Policy::S3Fifo),
        ("s3_fifo", Policy::S3Fifo),
        ("default", Policy::Lfu),
        ("tinylfu", Policy::Lfu),
        ("w-tinylfu", Policy::Lfu),
    ];

    /// The name this policy parses from.
    ///
    /// ```
    /// use cache_policy::Policy;
    ///
    /// assert_eq!(Policy::Lfu.name(), "lfu");
    /// assert_eq!(Policy::default().to_string(), "lfu");
    /// assert_eq!("W-TinyLFU".parse::<Policy>().map(Policy::name), Ok("lfu"));
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Policy::S3Fifo => "s3-fifo",
            Policy::Lru => "lru",
            Policy::Lfu => "lfu",
            Policy::Fifo => "fifo",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown [`Policy`] name.
///
/// ```
/// use cache_policy::{Policy, UnknownPolicy};
///
/// let err: UnknownPolicy = "lru2".parse::<Policy>().unwrap_err();
/// assert!(err.to_string().starts_with("unknown policy `lru2`"));
/// assert_eq!(
///     err.to_string(),
///     "unknown policy `lru2`; expected one of `s3-fifo`, `lru`, `lfu` (the default), `fifo`"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy {
    given: String,
}

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown policy `{}`; expected one of ", self.given)?;
        for (i, (name, policy)) in Policy::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let default = if *policy == Policy::default() {
                " (the default)"
            } else {
                ""
            };
            write!(f, "{sep}`{name}`{default}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Policy::ALL
            .iter()
            .chain(&Policy::ALIASES)
            .find(|(name, _)| *name == lower)
            .map(|&(_, policy)| policy)
            .ok_or_else(|| UnknownPolicy { given: s.into() })
    }
}

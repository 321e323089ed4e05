//! Typed errors.

use std::fmt;

/// A cache was configured with settings that cannot work.
///
/// Returned by [`CacheBuilder::build`](crate::CacheBuilder::build) and by the per-entry TTL
/// methods; the runtime never panics on bad settings.
///
/// ```
/// use cache_runtime::{BuildError, Cache};
/// use std::time::Duration;
///
/// let zero = Cache::<u64, u64>::builder().ttl(Duration::ZERO).build().unwrap_err();
/// assert_eq!(zero, BuildError::ZeroTtl { setting: "ttl" });
/// assert_eq!(zero.to_string(), "`ttl` must be longer than zero");
/// let empty = Cache::<u64, u64>::builder().capacity(0).build().unwrap_err();
/// assert_eq!(empty, BuildError::ZeroCapacity);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The capacity (entries or total weight) was zero.
    ZeroCapacity,
    /// A time-to-live (`ttl`, `negative_ttl` or a per-entry TTL) was zero.
    ZeroTtl {
        /// Which setting: `"ttl"`, `"negative_ttl"` or `"entry ttl"`.
        setting: &'static str,
    },
    /// A time-to-live is too long to be represented (over about 292 years).
    TtlTooLarge {
        /// Which setting: `"ttl"`, `"negative_ttl"` or `"entry ttl"`.
        setting: &'static str,
    },
    /// The jitter is negative, not a number, over 100% of the TTL, or set without a TTL.
    InvalidJitter(String),
    /// The shard count is zero or larger than 65,536.
    InvalidShards(usize),
    /// `early_refresh`'s beta is not a positive finite number (at most 1e6), or is set without a
    /// TTL.
    InvalidEarlyRefresh(String),
    /// A setting of the remote tier (`distributed_lock`, `l1_ttl`, `max_pending_writes`) on a
    /// cache without one.
    NoRemoteTier {
        /// Which setting: `"distributed_lock"`, `"l1_ttl"` or `"max_pending_writes"`.
        setting: &'static str,
    },
    /// `max_pending_writes(0)`: a cache must be able to keep at least one write it could not
    /// send.
    InvalidPendingLimit,
    /// `refresh_every` is zero or not shorter than the `ttl`, or `refresh_top` is zero or set
    /// without `refresh_every`.
    InvalidRefreshEvery(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroCapacity => f.write_str("cache capacity must be at least 1"),
            Self::ZeroTtl { setting } => write!(f, "`{setting}` must be longer than zero"),
            Self::TtlTooLarge { setting } => {
                write!(f, "`{setting}` is too long (the limit is about 292 years)")
            }
            Self::InvalidJitter(why) => write!(f, "invalid jitter: {why}"),
            Self::InvalidShards(n) => write!(f, "shard count must be 1..=65536, got {n}"),
            Self::InvalidEarlyRefresh(why) => write!(f, "invalid early refresh: {why}"),
            Self::NoRemoteTier { setting } => write!(
                f,
                "`{setting}` needs a remote tier (`CacheBuilder::remote`), and this cache has none"
            ),
            Self::InvalidPendingLimit => f.write_str(
                "`max_pending_writes` must be at least 1 (beyond it the cache uses L1 only)",
            ),
            Self::InvalidRefreshEvery(why) => write!(f, "invalid scheduled refresh: {why}"),
        }
    }
}

impl std::error::Error for BuildError {}

//! Bounded in-memory maps with an eviction policy.
//!
//! A store knows nothing of time, loading or backends: it maps keys to values, keeps the total
//! weight under its capacity by evicting, and reports each eviction to a listener. The default
//! policy is `quick_cache`'s own S3-FIFO; `lru`, `lfu` (W-TinyLFU) and `fifo` are sharded
//! structures of this crate ([`sharded`], [`policy`]).

pub(crate) mod policy;
pub(crate) mod quick;
pub(crate) mod sharded;

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Arc;

use foldhash::quality::FixedState;

/// The eviction policy of a cache: which entry leaves when a new one needs room.
///
/// | policy | hit costs | keeps | good for |
/// |---|---|---|---|
/// | [`S3Fifo`](Policy::S3Fifo) (default) | a read lock, one atomic | frequently re-used keys; resists scans | almost everything |
/// | [`Lru`](Policy::Lru) | a shard lock, a list move | the most recently used keys, exactly (per shard) | recency-heavy traffic |
/// | [`Lfu`](Policy::Lfu) | a shard lock, a sketch update | keys with the highest recent frequency (W-TinyLFU, aging) | skewed (Zipf) traffic, scans |
/// | [`Fifo`](Policy::Fifo) | a shard lock | the most recently inserted keys | predictable, insertion-ordered expiry |
///
/// Parse from the names used by the `#[cached(policy = "...")]` attribute:
///
/// ```
/// use cache_runtime::Policy;
/// assert_eq!("lfu".parse::<Policy>(), Ok(Policy::Lfu));
/// assert_eq!("s3-fifo".parse::<Policy>(), Ok(Policy::S3Fifo));
/// assert!("lfuu".parse::<Policy>().unwrap_err().to_string().contains("`lfu`"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// `quick_cache`'s policy, S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO, a
    /// main FIFO with re-insertion of referenced entries (CLOCK-like, counters up to 2), and a
    /// ghost queue of recently evicted keys. Scan resistant; hits take only a read lock.
    #[default]
    S3Fifo,
    /// Exact least-recently-used within each shard.
    Lru,
    /// Window TinyLFU (Einziger et al., 2017): an LRU window (1% of the capacity at first, then
    /// sized by hill climbing on the hit ratio, down to none), a segmented-LRU main area, and
    /// eviction, when the whole is full, of the less frequent of the newest candidate and the
    /// main area's oldest entry (Caffeine's), by a
    /// count-min frequency sketch whose counters are halved periodically (aging), so that
    /// yesterday's hot keys do not stay forever. The sketch (8 bytes an entry, and at least 4 KiB
    /// a shard, which keeps a small cache's frequency counts apart) is allocated when a shard
    /// first reaches half its capacity, so a cache that never fills never pays for it.
    Lfu,
    /// First-in, first-out: hits do not reorder.
    Fifo,
}

impl Policy {
    /// Every policy with the name it parses from.
    ///
    /// ```
    /// use cache_runtime::Policy;
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

    /// The name this policy parses from.
    ///
    /// ```
    /// use cache_runtime::Policy;
    ///
    /// assert_eq!(Policy::Lfu.name(), "lfu");
    /// assert_eq!(Policy::default().to_string(), "s3-fifo");
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
/// use cache_runtime::{Policy, UnknownPolicy};
///
/// let err: UnknownPolicy = "lru2".parse::<Policy>().unwrap_err();
/// assert!(err.to_string().starts_with("unknown policy `lru2`"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy {
    given: String,
}

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown policy `{}`; expected one of `s3-fifo` (the default), `lru`, `lfu`, `fifo`",
            self.given
        )
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "s3-fifo" | "s3fifo" | "s3_fifo" | "default" => Ok(Policy::S3Fifo),
            "lru" => Ok(Policy::Lru),
            "lfu" | "tinylfu" | "w-tinylfu" => Ok(Policy::Lfu),
            "fifo" => Ok(Policy::Fifo),
            _ => Err(UnknownPolicy { given: s.into() }),
        }
    }
}

/// Computes an entry's weight; `None` weighs every entry 1.
pub(crate) struct Weigher<K, T>(pub(crate) Option<WeighFn<K, T>>);

/// A user's weight function.
pub(crate) type WeighFn<K, T> = Arc<dyn Fn(&K, &T) -> u64 + Send + Sync>;

impl<K, T> Clone for Weigher<K, T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, T> Weigher<K, T> {
    /// The entry's weight, at least 1: a zero weight would make an entry unevictable.
    #[inline]
    pub(crate) fn weigh(&self, k: &K, v: &T) -> u64 {
        match &self.0 {
            None => 1,
            Some(f) => f(k, v).max(1),
        }
    }
}

/// Told of every value a store evicts, while the store's lock is held: it must be quick and
/// must not call back into the store (the cache's listener only counts).
pub(crate) struct Listener<T>(pub(crate) Arc<dyn Fn(&T) + Send + Sync>);

/// Entries evicted by one operation, kept so that they drop (running the user's destructors)
/// after the store's lock is released. The first is kept inline, so the usual single eviction of
/// an insert allocates nothing.
pub(crate) struct Evictions<K, T> {
    first: Option<(K, T)>,
    rest: Vec<(K, T)>,
}

impl<K, T> Default for Evictions<K, T> {
    fn default() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<K, T> Evictions<K, T> {
    pub(crate) fn push(&mut self, key: K, value: T) {
        if self.first.is_none() {
            self.first = Some((key, value));
        } else {
            self.rest.push((key, value));
        }
    }
}

/// Sizing shared by every store.
pub(crate) struct StoreConfig<K, T> {
    pub(crate) policy: Policy,
    /// Total weight (entries, when unweighted).
    pub(crate) capacity: u64,
    /// Expected number of entries (sizes tables and the frequency sketch).
    pub(crate) estimated_items: usize,
    pub(crate) shards: Option<usize>,
    pub(crate) hasher: FixedState,
    pub(crate) weigher: Weigher<K, T>,
    pub(crate) listener: Listener<T>,
}

/// A store of one of the policies, dispatched without a virtual call.
pub(crate) enum Store<K, T> {
    S3Fifo(quick::QuickStore<K, T>),
    Lru(sharded::Sharded<K, T, policy::Lru>),
    Lfu(sharded::Sharded<K, T, policy::Lfu>),
    Fifo(sharded::Sharded<K, T, policy::Fifo>),
}

macro_rules! dispatch {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Store::S3Fifo($s) => $e,
            Store::Lru($s) => $e,
            Store::Lfu($s) => $e,
            Store::Fifo($s) => $e,
        }
    };
}

impl<K, T> Store<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(cfg: StoreConfig<K, T>) -> Self {
        match cfg.policy {
            Policy::S3Fifo => Store::S3Fifo(quick::QuickStore::new(cfg)),
            Policy::Lru => Store::Lru(sharded::Sharded::new(cfg)),
            Policy::Lfu => Store::Lfu(sharded::Sharded::new(cfg)),
            Policy::Fifo => Store::Fifo(sharded::Sharded::new(cfg)),
        }
    }

    #[inline(always)]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        dispatch!(self, s => s.get(key))
    }

    /// Inserts; returns what left the store (evicted or replaced), to be dropped by the caller
    /// once it holds no lock.
    pub(crate) fn insert(&self, key: K, value: T) -> Evictions<K, T> {
        dispatch!(self, s => s.insert(key, value))
    }

    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        dispatch!(self, s => s.remove(key))
    }

    /// Removes the entry of `key` if `pred` holds for its value.
    pub(crate) fn remove_if<Q>(&self, key: &Q, pred: impl FnOnce(&T) -> bool) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        dispatch!(self, s => s.remove_if(key, pred))
    }

    /// Keeps only the entries for which `keep` holds; returns how many were removed.
    pub(crate) fn retain(&self, keep: impl Fn(&K, &T) -> bool) -> u64 {
        dispatch!(self, s => s.retain(keep))
    }

    pub(crate) fn clear(&self) {
        dispatch!(self, s => s.clear());
    }

    pub(crate) fn len(&self) -> usize {
        dispatch!(self, s => s.len())
    }

    pub(crate) fn capacity(&self) -> u64 {
        dispatch!(self, s => s.capacity())
    }

    /// Total weight held now.
    pub(crate) fn weight(&self) -> u64 {
        dispatch!(self, s => s.weight())
    }
}

/// Splits `capacity` over shards, like `quick_cache`: a power of two, at most 4 per core,
/// and few enough that each shard holds about 32 entries or more.
pub(crate) fn shard_count(requested: Option<usize>, estimated_items: usize) -> usize {
    if let Some(n) = requested {
        return n.max(1).next_power_of_two();
    }
    let cores = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
    let mut n = (cores * 4).next_power_of_two();
    while n > 1 && estimated_items / n < 32 {
        n /= 2;
    }
    n
}

#[cfg(test)]
mod model_tests;

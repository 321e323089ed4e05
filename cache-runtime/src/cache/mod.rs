//! The typed cache a memoized function owns: store + expiry + single-flight + statistics.

mod batch;
mod build;
mod builder;
mod iter;
mod load;
mod lookup;
mod miss;
mod refresh;
mod reload;
mod removal;
mod schedule;
mod write;

pub use batch::Absent;
pub use builder::CacheBuilder;
pub use iter::Iter;
pub use refresh::Lookup;
pub(crate) use refresh::Refresh;
pub use reload::{reload, reload_async};
pub use removal::RemovalCause;
pub use schedule::REFRESH_CONCURRENCY;

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use foldhash::quality::FixedState;

use crate::clock::Clock;
use crate::entry::{Entry, Stored};
use crate::flight::Flights;
use crate::invalidate::Scope;
use crate::invalidate::stamps::{Idle, Stamps};
use crate::registry::Report;
use crate::stats::Stats;
use crate::store::{Gone, Store};
use crate::tier::Tier;
use crate::ttl::Expiry;
use crate::{CacheStats, Policy};

/// Numbers the caches, for default names and hash seeds.
pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The capacity of a cache built without [`CacheBuilder::capacity`]: 10,000 entries.
///
/// ```
/// use cache_runtime::{Cache, DEFAULT_CAPACITY};
///
/// let cache: Cache<u64, String> = Cache::builder().build()?;
/// // Split between the cache's shards, rounded up to whole entries each.
/// assert!(cache.capacity() >= DEFAULT_CAPACITY);
/// assert!(cache.capacity() < DEFAULT_CAPACITY + 1_000);
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// The per-entry TTL of `ttl_fn`.
pub(crate) type TtlFn<V> = Arc<dyn Fn(&V) -> Duration + Send + Sync>;

pub(crate) struct Meter {
    pub(crate) stats: Stats,
    pub(crate) clock: Clock,
}

pub(crate) struct Core<K, V, N> {
    pub(crate) store: Store<K, Stored<V, N>>,
    /// The names of its tags and entries, for invalidation by tag and by dependency.
    pub(crate) scope: Arc<Scope>,
    /// Whether a load records the entries it reads (`depends = false` turns it off).
    pub(crate) depends: bool,
    pub(crate) flights: Flights<K, Entry<V, N>>,
    pub(crate) expiry: Expiry,
    pub(crate) meter: Arc<Meter>,
    pub(crate) hasher: FixedState,
    pub(crate) name: String,
    pub(crate) policy: Policy,
    /// No entry expires before this (coarse-clock ns): a lower bound kept by inserts and sweeps.
    pub(crate) next_expiry: AtomicU64,
    /// Inserts since the last sweep, and how many make a sweep due.
    pub(crate) inserts_since_sweep: AtomicU64,
    pub(crate) sweep_interval: u64,
    /// The remote tier (L2), if any.
    pub(crate) tier: Option<Arc<dyn Tier<K, V, N>>>,
    /// With a remote tier: how long an entry stays in this process's L1 (ns).
    pub(crate) l1_ttl: Option<u64>,
    /// Fleet-wide single-flight: the lease a loading process takes in the remote tier.
    pub(crate) lease: Option<Duration>,
    /// Stale-while-revalidate: how long past its deadline an entry may still be served (ns).
    pub(crate) stale: u64,
    /// XFetch's beta (0: no early refresh).
    pub(crate) beta: f64,
    /// A value's own TTL, chosen from the value.
    pub(crate) ttl_fn: Option<TtlFn<V>>,
    /// The time-to-idle (ns): an entry not read for this long expires.
    pub(crate) tti: Option<u64>,
    /// With a scheduled refresh: each entry counts its reads (see `schedule.rs`).
    pub(crate) counts_reads: bool,
}

/// A bounded, thread-safe memoization cache from `K` to `V`, with optional cached negative
/// results of type `N`.
///
/// - **Bounded**: by entry count or by total weight, with a chosen eviction [`Policy`].
/// - **Expiry**: a TTL per cache (and per entry), with [`Jitter`](crate::Jitter); expired entries are never
///   returned.
/// - **Single-flight**: concurrent misses of one key, from threads or async tasks, run one
///   load; the others wait for it and share its result.
/// - **Negative caching**: a loader's `Err` (or `None`) is cached for its own `negative_ttl`.
/// - **Statistics**: per cache ([`Cache::stats`]) and in the process-wide [`registry`](crate::registry).
///
/// Cloning a `Cache` is cheap: clones share the same entries.
///
/// ```
/// use cache_runtime::Cache;
/// use std::time::Duration;
///
/// let squares: Cache<u64, u64> = Cache::builder()
///     .capacity(1_000)
///     .ttl(Duration::from_secs(60))
///     .build()?;
///
/// assert_eq!(squares.get_or_insert_with(&12, || 12 * 12), 144); // miss: loads
/// assert_eq!(squares.get_or_insert_with(&12, || unreachable!()), 144); // hit
///
/// let stats = squares.stats();
/// assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub struct Cache<K, V, N = std::convert::Infallible> {
    pub(crate) core: Arc<Core<K, V, N>>,
}

impl<K, V, N> Clone for Cache<K, V, N> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<K, V, N> Cache<K, V, N>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    N: Send + Sync + 'static,
{
    /// The cache whose core `any` is, if it has these types.
    pub(crate) fn from_any(any: Arc<dyn std::any::Any + Send + Sync>) -> Option<Self> {
        any.downcast::<Core<K, V, N>>()
            .ok()
            .map(|core| Cache { core })
    }
}

impl<K, V, N> fmt::Debug for Cache<K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.core.name)
            .field("policy", &self.core.policy)
            .finish_non_exhaustive()
    }
}

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// A builder with the defaults: [`DEFAULT_CAPACITY`] entries, the `lfu` policy (W-TinyLFU), no
    /// TTL.
    ///
    /// ```
    /// use cache_runtime::{Cache, DEFAULT_CAPACITY, Policy};
    ///
    /// let cache: Cache<u64, String> = Cache::builder().name("users").build()?;
    /// assert_eq!(cache.name(), "users");
    /// assert_eq!(cache.policy(), Policy::Lfu);
    /// assert!(cache.capacity() >= DEFAULT_CAPACITY); // rounded up per shard
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn builder() -> CacheBuilder<K, V, N> {
        CacheBuilder::new()
    }
    /// This cache's statistics now.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().build()?;
    /// cache.get_or_insert_with(&1, || 10); // a miss and a load
    /// cache.get(&1); // a hit
    /// let s = cache.stats();
    /// assert_eq!((s.hits, s.misses, s.loads, s.entries), (1, 1, 1, 1));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.core.stats()
    }

    /// Sets every counter to zero.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().build()?;
    /// cache.get_or_insert_with(&1, || 10);
    /// cache.reset_stats();
    /// let s = cache.stats();
    /// assert_eq!((s.hits, s.misses, s.loads), (0, 0, 0));
    /// assert_eq!(s.entries, 1); // the entries stay
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn reset_stats(&self) {
        self.core.meter.stats.reset();
        if let Some(tier) = &self.core.tier {
            tier.pending().reset_failures();
        }
    }

    /// The number of entries held (fresh, or expired but not yet removed).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().build()?;
    /// cache.insert(1, 10);
    /// cache.insert(2, 20);
    /// cache.insert(2, 21); // replaces
    /// assert_eq!(cache.len(), 2);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.store.len()
    }

    /// Whether the cache holds no entries.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().build()?;
    /// assert!(cache.is_empty());
    /// cache.insert(1, 10);
    /// assert!(!cache.is_empty());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight held (the entry count, when unweighted).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let pages: Cache<String, Vec<u8>> = Cache::builder()
    ///     .max_weight(1 << 20, |_url, body: &Vec<u8>| body.len() as u64)
    ///     .build()?;
    /// pages.insert("/".to_string(), vec![0; 300]);
    /// pages.insert("/about".to_string(), vec![0; 200]);
    /// assert_eq!(pages.weight(), 500);
    /// assert_eq!(pages.len(), 2);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn weight(&self) -> u64 {
        self.core.store.weight()
    }

    /// The capacity: the total weight (entry count, when unweighted) the cache holds at most.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().capacity(500).build()?;
    /// assert!(cache.capacity() >= 500); // split between shards, rounded up to whole entries
    /// for i in 0..1_000 {
    ///     cache.insert(i, i);
    /// }
    /// assert!(cache.len() as u64 <= cache.capacity());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.core.store.capacity()
    }

    /// The cache's name, as listed in the [`registry`](crate::registry).
    ///
    /// ```
    /// use cache_runtime::{Cache, registry};
    ///
    /// let sessions: Cache<u64, String> = Cache::builder().name("sessions").build()?;
    /// assert_eq!(sessions.name(), "sessions");
    /// assert!(registry::get::<u64, String>("sessions").is_ok());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The eviction policy.
    ///
    /// ```
    /// use cache_runtime::{Cache, Policy};
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().policy(Policy::Lru).build()?;
    /// assert_eq!(cache.policy(), Policy::Lru);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.core.policy
    }

    /// Drops this process's copy of `key` only (not the remote tier's), as an invalidation
    /// from another process does. For benchmarks and tests.
    #[doc(hidden)]
    pub fn evict_local(&self, key: &K) {
        crate::tier::LocalL1::evict_local(&*self.core, Some(key), true);
    }

    /// How many loads are in flight now (for tests and diagnostics).
    #[doc(hidden)]
    #[must_use]
    pub fn loads_in_flight(&self) -> usize {
        self.core.flights.len()
    }

    /// How many callers wait now on loads in flight: a test's way to know that a caller has
    /// joined a load before it lets the load end (for tests and diagnostics).
    #[doc(hidden)]
    #[must_use]
    pub fn waiting_on_loads(&self) -> usize {
        self.core.flights.waiting()
    }
}

impl<K, V, N> Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// An entry to store, with the stamps its load recorded and, with a time-to-idle, its idle
    /// record (read now): every entry the cache stores is built here.
    #[inline]
    pub(crate) fn stored(
        &self,
        entry: Entry<V, N>,
        expires_at: u64,
        early: u64,
        stamps: Option<Arc<Stamps>>,
    ) -> Stored<V, N> {
        let idle = self
            .tti
            .map(|tti| Idle::new(self.meter.clock.now_nanos(), tti, self.meter.clock.clone()));
        let stamps = Stamps::with_access(stamps, idle, self.counts_reads);
        Stored::new(entry, expires_at, early, stamps)
    }

    fn stats(&self) -> CacheStats {
        let mut s = self.meter.stats.snapshot(self.store.len());
        if let Some(tier) = &self.tier {
            let pending = tier.pending();
            s.remote_write_failures = pending.failures();
            s.pending_remote_writes = pending.len() as u64;
            s.l1_only = pending.l1_only();
        }
        s
    }
}

impl<K, V, N> crate::tier::LocalL1<K> for Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    fn evict_local(&self, key: Option<&K>, bump: bool) {
        match key {
            Some(k) => {
                self.flights.invalidate(self.hasher.hash_one(k), k);
                self.removed(self.store.remove(k), Gone::Explicit);
                if bump {
                    self.scope.wrote(lookup::IDENT.hash_one(k));
                }
            }
            None => {
                self.flights.invalidate_all();
                drop(self.store.clear());
                if bump {
                    self.scope.cleared();
                }
            }
        }
    }
}

impl<K, V, N> Report for Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> CacheStats {
        Core::stats(self)
    }

    fn remote(&self) -> Option<(usize, crate::tier::Health)> {
        let backend = self.tier.as_ref()?.backend();
        // The backend's identity: caches that share it report its faults once.
        let id = std::ptr::from_ref(backend).cast::<()>().addr();
        Some((id, backend.health()))
    }
}

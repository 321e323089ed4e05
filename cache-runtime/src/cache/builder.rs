//! The builder of a [`Cache`]: every setting, in one shape from the attribute to the cache.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

#[allow(unused_imports)] // the doc links
use super::Cache;
use super::removal::{self, Removal, RemovalCause};
use super::{DEFAULT_CAPACITY, TtlFn};
use crate::Policy;
use crate::clock::Clock;
#[cfg(feature = "serde")]
use crate::codec::Bincode;
use crate::store::WeighFn;
use crate::tier::Tier;
#[cfg(feature = "serde")]
use crate::tier::{Backend, NoNegatives, Typed, WithNegatives};
use crate::ttl::Jitter;

/// Configures a [`Cache`]. Every setting is checked by [`build`](Self::build), which returns a
/// [`BuildError`](crate::BuildError) rather than panicking.
///
/// ```
/// use cache_runtime::{Cache, Jitter, Policy};
/// use std::time::Duration;
///
/// // At most 64 MiB of page bodies, least-frequently-used evicted first.
/// let pages: Cache<String, Vec<u8>> = Cache::builder()
///     .name("pages")
///     .policy(Policy::Lfu)
///     .max_weight(64 << 20, |_url, body: &Vec<u8>| body.len() as u64)
///     .ttl(Duration::from_secs(30))
///     .jitter(Jitter::Spread(Duration::from_secs(3)))
///     .build()?;
/// # drop(pages);
///
/// assert!(Cache::<u64, u64>::builder().capacity(0).build().is_err());
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub struct CacheBuilder<K, V, N = Infallible> {
    pub(crate) name: Option<String>,
    pub(super) capacity: u64,
    pub(super) estimated_items: Option<usize>,
    pub(super) weigher: Option<WeighFn<K, V>>,
    pub(super) policy: Policy,
    pub(super) ttl: Option<Duration>,
    pub(super) tti: Option<Duration>,
    pub(super) negative_ttl: Option<Duration>,
    pub(super) jitter: Option<Jitter>,
    pub(super) clock: Clock,
    pub(super) seed: Option<u64>,
    pub(super) shards: Option<usize>,
    pub(super) tier: Option<TierFactory<K, V, N>>,
    pub(super) l1_ttl: Option<Duration>,
    pub(super) lease: Option<Duration>,
    pub(super) pending_limit: Option<usize>,
    pub(super) stale: Option<Duration>,
    pub(super) early_refresh: Option<f64>,
    pub(super) ttl_fn: Option<TtlFn<V>>,
    pub(super) version: Option<u32>,
    pub(super) depends: bool,
    pub(super) on_removal: Option<Removal<K, V>>,
    /// `refresh_every`: the period, and what starts the refresh thread (with `refresh_top`).
    pub(super) schedule: Option<(Duration, ScheduleStart<K, V, N>)>,
    pub(super) refresh_top: Option<usize>,
    pub(super) _types: PhantomData<fn() -> N>,
}

/// Starts a cache's scheduled refresh, given its core and `refresh_top`.
pub(super) type ScheduleStart<K, V, N> = Box<dyn FnOnce(&Arc<super::Core<K, V, N>>, usize) + Send>;

/// Makes a cache's remote tier from its name and version.
pub(super) type TierFactory<K, V, N> =
    Box<dyn FnOnce(&str, Option<u32>) -> Arc<dyn Tier<K, V, N>> + Send>;

impl<K, V, N> fmt::Debug for CacheBuilder<K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("weighted", &self.weigher.is_some())
            .field("policy", &self.policy)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .field("negative_ttl", &self.negative_ttl)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl<K, V, N> Default for CacheBuilder<K, V, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, N> CacheBuilder<K, V, N> {
    /// The defaults: [`DEFAULT_CAPACITY`] entries, [`Policy::Lfu`], no TTL.
    ///
    /// ```
    /// use cache_runtime::{Cache, CacheBuilder, DEFAULT_CAPACITY, Policy};
    ///
    /// let cache: Cache<u64, String> = CacheBuilder::new().build()?;
    /// assert_eq!(cache.policy(), Policy::Lfu);
    /// assert!(cache.capacity() >= DEFAULT_CAPACITY); // rounded up per shard
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            name: None,
            capacity: DEFAULT_CAPACITY,
            estimated_items: None,
            weigher: None,
            policy: Policy::default(),
            ttl: None,
            tti: None,
            negative_ttl: None,
            jitter: None,
            clock: Clock::coarse(),
            seed: None,
            shards: None,
            tier: None,
            l1_ttl: None,
            lease: None,
            pending_limit: None,
            stale: None,
            early_refresh: None,
            ttl_fn: None,
            version: None,
            depends: true,
            on_removal: None,
            schedule: None,
            refresh_top: None,
            _types: PhantomData,
        }
    }

    /// The name in the [`registry`](crate::registry) and in statistics (default `cache-<n>`).
    ///
    /// ```
    /// use cache_runtime::{Cache, registry};
    ///
    /// let sessions: Cache<u64, String> = Cache::builder().name("sessions").build()?;
    /// let listed = registry::caches();
    /// assert!(listed.iter().any(|c| c.name == "sessions"));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Holds at most `entries` entries.
    ///
    /// ```
    /// use cache_runtime::{Cache, Policy};
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().capacity(100).policy(Policy::Lru).build()?;
    /// for i in 0..1_000 {
    ///     cache.insert(i, i);
    /// }
    /// assert!(cache.len() <= 100);
    /// assert!(cache.stats().evictions >= 900);
    /// assert_eq!(cache.get(&999), Some(999)); // the most recent stays
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self.weigher = None;
        self
    }

    /// Never evicts for room: the cache grows with its distinct keys (entries still expire).
    /// Only for key sets known to be small.
    ///
    /// ```
    /// use cache_runtime::{Cache, DEFAULT_CAPACITY};
    ///
    /// let countries: Cache<u64, u64> = Cache::builder().unbounded().build()?;
    /// for i in 0..2 * DEFAULT_CAPACITY {
    ///     countries.insert(i, i);
    /// }
    /// assert_eq!(countries.len() as u64, 2 * DEFAULT_CAPACITY);
    /// assert_eq!(countries.stats().evictions, 0);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn unbounded(mut self) -> Self {
        self.capacity = u64::MAX >> 2;
        self.weigher = None;
        self.estimated_items.get_or_insert(1024);
        self
    }

    /// Bounds the total weight instead of the count: each entry weighs `weigh(key, value)`
    /// (at least 1; a cached negative result weighs 1), and the total stays within `max_weight`.
    /// An entry heavier than a shard's share of `max_weight` is not kept.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// // At most 1 MiB of page bodies, whatever their number.
    /// let pages: Cache<String, Vec<u8>> = Cache::builder()
    ///     .max_weight(1 << 20, |_url, body: &Vec<u8>| body.len() as u64)
    ///     .build()?;
    /// pages.insert("/".to_string(), vec![0; 1_000]);
    /// assert_eq!(pages.weight(), 1_000);
    /// pages.insert("/video".to_string(), vec![0; 2 << 20]); // heavier than the cache: not kept
    /// assert!(!pages.contains_key("/video"));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn max_weight(
        mut self,
        max_weight: u64,
        weigh: impl Fn(&K, &V) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.capacity = max_weight;
        self.weigher = Some(Arc::new(weigh));
        self
    }

    /// The expected number of entries of a weighted cache (sizes its tables and frequency
    /// sketch; default: `max_weight / 64`, at most 1,000,000).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// // 1 GiB of images of about 100 KiB each: about 10,000 entries.
    /// let images: Cache<u64, Vec<u8>> = Cache::builder()
    ///     .max_weight(1 << 30, |_id, bytes: &Vec<u8>| bytes.len() as u64)
    ///     .estimated_items(10_000)
    ///     .build()?;
    /// images.insert(1, vec![0; 100 << 10]);
    /// assert_eq!(images.weight(), 100 << 10);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn estimated_items(mut self, items: usize) -> Self {
        self.estimated_items = Some(items);
        self
    }

    /// The eviction policy (default [`Policy::Lfu`], W-TinyLFU; see [`Policy`] for why).
    /// `Policy::S3Fifo` is quick_cache's policy, the default until issue 18.
    ///
    /// ```
    /// use cache_runtime::{Cache, Policy};
    ///
    /// // The policy's name can come from configuration.
    /// let policy: Policy = "s3-fifo".parse().unwrap();
    /// let cache: Cache<u64, u64> = Cache::builder().policy(policy).build()?;
    /// assert_eq!(cache.policy(), Policy::S3Fifo);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How long a value stays fresh after it is stored.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// cache.insert(1, 10);
    /// clock.advance(Duration::from_secs(59));
    /// assert_eq!(cache.get(&1), Some(10));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(cache.get(&1), None);
    /// assert!(Cache::<u64, u64>::builder().ttl(Duration::ZERO).build().is_err());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Time-to-idle: an entry not read for this long expires (moka's `time_to_idle`, Caffeine's
    /// `expireAfterAccess`). With a [`ttl`](Self::ttl) too, the earlier deadline wins: an entry
    /// read often still expires at its TTL, one left unread goes sooner.
    ///
    /// A read is a hit of the entry (any lookup that finds it: `get`, a `#[cached]` call,
    /// [`contains_key`](Cache::contains_key), [`iter`](Cache::iter)); it moves the idle deadline
    /// at most once per clock tick (10 ms for the coarse clock), so expiry is exact to within a
    /// tick, and a hit costs a few more instructions than without (see BENCHMARKS.md). It applies
    /// to negative entries as to values. An entry that expires so is counted as an expiration
    /// and reported to the [`on_removal`](Self::on_removal) listener as
    /// [`RemovalCause::Expired`].
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let sessions: Cache<u64, String> = Cache::builder()
    ///     .time_to_idle(Duration::from_secs(10))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// sessions.insert(1, "ada".to_string());
    /// sessions.insert(2, "grace".to_string());
    /// for _ in 0..6 {
    ///     clock.advance(Duration::from_secs(5));
    ///     assert!(sessions.get(&1).is_some()); // read every 5 s: kept
    /// }
    /// assert_eq!(sessions.get(&2), None); // unread for 30 s: expired
    /// assert_eq!(sessions.stats().expirations, 1);
    /// assert!(Cache::<u64, u64>::builder().time_to_idle(Duration::ZERO).build().is_err());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Caches negative results (`Err`, `None`) for this long; without it they are not cached.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .ttl(Duration::from_secs(300))
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// assert_eq!(users.get_or_load_option(&9, || None), None);
    /// assert_eq!(users.get_or_load_option(&9, || unreachable!()), None); // cached "not found"
    /// clock.advance(Duration::from_secs(5)); // the user may exist by now: ask again
    /// let found = users.get_or_load_option(&9, || Some("new".to_string()));
    /// assert_eq!(found.as_deref(), Some("new"));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Spreads each entry's TTL randomly, drawn once per insert.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, Jitter, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(100))
    ///     .jitter(Jitter::Fraction(0.2)) // each entry lives 80 to 120 s
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// (0..100).for_each(|i| cache.insert(i, i));
    /// let alive = || (0..100).filter(|i| cache.contains_key(i)).count();
    /// clock.advance(Duration::from_secs(79));
    /// assert_eq!(alive(), 100);
    /// clock.advance(Duration::from_secs(42));
    /// assert_eq!(alive(), 0);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// The clock that expiry reads (default [`Clock::coarse`]; tests pass a
    /// [`ManualClock`](crate::ManualClock)).
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(10))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// cache.insert(1, 1);
    /// clock.advance(Duration::from_secs(10)); // no sleeping
    /// assert_eq!(cache.get(&1), None);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Fixes the hash seed and the jitter's random sequence, for reproducible runs (default:
    /// random per cache, against hash flooding).
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, Jitter, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let build = || {
    ///     Cache::<u64, u64>::builder()
    ///         .ttl(Duration::from_secs(60))
    ///         .jitter(Jitter::Fraction(0.5))
    ///         .seed(42)
    ///         .clock(Clock::manual(&clock))
    ///         .build()
    /// };
    /// let (a, b) = (build()?, build()?);
    /// a.insert(1, 1);
    /// b.insert(1, 1);
    /// // The same seed draws the same jitter: both entries expire at the same moment.
    /// for _ in 0..90 {
    ///     clock.advance(Duration::from_secs(1));
    ///     assert_eq!(a.contains_key(&1), b.contains_key(&1));
    /// }
    /// assert!(!a.contains_key(&1));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Like [`remote`](CacheBuilder::remote), for a cache that also holds negative results
    /// (`N` is encoded with serde too).
    ///
    /// ```
    /// use cache_runtime::{Cache, tier::MemoryBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let shared = Arc::new(MemoryBackend::new()); // or a server the fleet shares
    /// let users = || {
    ///     Cache::<u64, String, ()>::builder()
    ///         .name("doc.negative_users")
    ///         .negative_ttl(Duration::from_secs(30))
    ///         .remote_with_negatives(shared.clone(), "myapp")
    ///         .build()
    /// };
    /// let (a, b) = (users()?, users()?);
    /// assert_eq!(a.get_or_load_option(&404, || None), None);
    /// // "No such user" is shared through the remote tier too, for `negative_ttl`.
    /// assert_eq!(b.get_or_load_option(&404, || unreachable!()), None);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[cfg(feature = "serde")]
    #[must_use]
    pub fn remote_with_negatives(mut self, backend: Arc<dyn Backend>, prefix: &str) -> Self
    where
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        N: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let prefix = prefix.to_owned();
        self.tier = Some(Box::new(move |name: &str, version: Option<u32>| {
            Arc::new(Typed::<Bincode, WithNegatives>::new(
                backend,
                &prefix,
                name,
                &typed_shape::<K, V, N>(version),
            )) as Arc<dyn Tier<K, V, N>>
        }));
        self
    }

    /// With a remote tier: fleet-wide single-flight. A process that misses takes a lease on the
    /// key in the remote tier (a random token, set only if absent) before loading; the others
    /// wait (bounded by `lease`) for its value to appear there, then load themselves if it has
    /// not. The lease is released only by its holder (compare-and-delete), or expires.
    ///
    /// ```
    /// # #[cfg(feature = "serde")] {
    /// use cache_runtime::{Cache, tier::MemoryBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let shared = Arc::new(MemoryBackend::new()); // or a server the fleet shares
    /// let reports: Cache<u64, String> = Cache::builder()
    ///     .ttl(Duration::from_secs(3600))
    ///     .remote(shared, "myapp")
    ///     .distributed_lock(Duration::from_secs(10))
    ///     .build()?;
    /// // One process of the fleet builds the report; the others wait (up to 10 s) for it.
    /// let report = reports.get_or_insert_with(&2024, || "the year's report".to_string());
    /// assert_eq!(report, "the year's report");
    /// # }
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn distributed_lock(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Stale-while-revalidate: for up to `window` past its TTL, an entry is still served to
    /// callers that can refresh it (`#[cached(stale = ..)]`, [`Cache::get_or_refresh`]), while
    /// one refresh per key runs in the background. A failed refresh keeps the stale value (and
    /// counts in [`CacheStats::refresh_errors`](crate::CacheStats::refresh_errors)); past the window the entry is gone.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let prices: Cache<String, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .stale_while_revalidate(Duration::from_secs(30))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// prices.insert("gold".to_string(), 100);
    /// clock.advance(Duration::from_secs(70)); // expired, within the window
    /// assert_eq!(prices.get("gold"), None); // plain reads never see a stale value
    /// // Served stale at once, refreshed in the background:
    /// assert_eq!(prices.get_or_refresh("gold".to_string(), || Ok(101)), Ok(100));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale = Some(window);
        self
    }

    /// Probabilistic early refresh (XFetch): a hit refreshes an entry before its TTL with a
    /// probability that rises as expiry nears, scaled by how long its load took and by `beta`
    /// (1.0 is the paper's choice; larger refreshes earlier). Hot keys are then recomputed by
    /// one caller shortly before they expire instead of all expiring at once. Needs a TTL.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let hot: Cache<u64, String> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .early_refresh(1.0)
    ///     .build()?;
    /// // Near expiry, one caller of `get_or_refresh` (or of a `#[cached]` function) refreshes.
    /// assert_eq!(hot.get_or_refresh(1, || Ok("v1".to_string())), Ok("v1".to_string()));
    /// // It needs a TTL to refresh ahead of:
    /// assert!(Cache::<u64, String>::builder().early_refresh(1.0).build().is_err());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = Some(beta);
        self
    }

    /// The version of the cached values, part of every L2 key (`...:v<version>:...`): bump it
    /// when the meaning of a value changes but not its type (which changes the key by itself),
    /// and the new code reads none of the old entries. No effect without a remote tier.
    ///
    /// ```
    /// use cache_runtime::{Cache, tier::MemoryBackend};
    /// use std::sync::Arc;
    ///
    /// let backend = Arc::new(MemoryBackend::new());
    /// let v1: Cache<u64, u64> =
    ///     Cache::builder().name("prices-doc").remote(backend.clone(), "app").version(1).build()?;
    /// v1.insert(7, 350); // in cents
    /// let v2: Cache<u64, u64> =
    ///     Cache::builder().name("prices-doc").remote(backend.clone(), "app").version(2).build()?;
    /// assert_eq!(v2.get_or_insert_with(&7, || 3), 3); // in euros: v1's entry is not read
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    /// Whether an entry depends on the entries of other caches its loader reads (default
    /// `true`): invalidating one of those then drops it too. `false` for a loader whose reads
    /// do not matter to its result (a feature flag, a rate limit).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let stock: Cache<u64, u32> = Cache::builder().build()?;
    /// let page: Cache<u64, String> = Cache::builder().build()?;
    /// let flat: Cache<u64, String> = Cache::builder().depends(false).build()?;
    /// stock.insert(7, 3);
    /// let render = || format!("{} left", stock.get(&7).unwrap_or(0));
    /// page.get_or_insert_with(&7, render);
    /// flat.get_or_insert_with(&7, render);
    /// stock.insert(7, 2); // the page read stock 7: it is dropped
    /// assert!(!page.contains_key(&7));
    /// assert!(flat.contains_key(&7));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn depends(mut self, depends: bool) -> Self {
        self.depends = depends;
        self
    }

    /// Each value's own TTL, chosen from the value (for values that carry their freshness, such
    /// as HTTP responses with `max-age`). Replaces the cache's `ttl` for values (jitter still
    /// applies); a zero TTL means "do not cache". Negative results keep `negative_ttl`.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// #[derive(Clone)]
    /// struct Page { html: String, max_age: u64 }
    ///
    /// let clock = ManualClock::new();
    /// let pages: Cache<String, Page> = Cache::builder()
    ///     .ttl_fn(|p: &Page| Duration::from_secs(p.max_age))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// pages.insert("/news".to_string(), Page { html: "<h1>News</h1>".into(), max_age: 10 });
    /// pages.insert("/live".to_string(), Page { html: "<h1>Live</h1>".into(), max_age: 0 });
    /// assert!(!pages.contains_key("/live")); // a zero TTL: not cached
    /// clock.advance(Duration::from_secs(9));
    /// assert!(pages.contains_key("/news"));
    /// clock.advance(Duration::from_secs(1));
    /// assert!(!pages.contains_key("/news"));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn ttl_fn(mut self, f: impl Fn(&V) -> Duration + Send + Sync + 'static) -> Self {
        self.ttl_fn = Some(Arc::new(f));
        self
    }

    /// A listener told of each value that leaves the cache, with its key and the
    /// [`RemovalCause`]: expired, evicted for size, invalidated explicitly, replaced.
    ///
    /// It is called after the cache's locks are released (it may use the cache), on the thread
    /// whose call removed the entry (an insert that evicted, a `remove`, a load that replaced
    /// an expired value, a lookup that found one), never on a hit. A listener that panics
    /// loses that call only: the entry is gone and counted, nothing is poisoned, and the
    /// caller does not see the panic. Negative entries are not reported.
    ///
    /// ```
    /// use cache_runtime::{Cache, RemovalCause};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&log);
    /// let users: Cache<u64, String> = Cache::builder()
    ///     .on_removal(move |id: &u64, name: &String, why| {
    ///         seen.lock().unwrap().push((*id, name.clone(), why));
    ///     })
    ///     .build()?;
    /// users.insert(1, "ada".into());
    /// users.insert(1, "ada lovelace".into()); // replaces
    /// users.remove(&1); // invalidates
    /// assert_eq!(*log.lock().unwrap(), [
    ///     (1, "ada".to_string(), RemovalCause::Replaced),
    ///     (1, "ada lovelace".to_string(), RemovalCause::Explicit),
    /// ]);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn on_removal(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self
    where
        K: Clone,
    {
        self.on_removal = Some(Removal {
            listener: Arc::new(listener),
            copy_key: removal::copy_key::<K>,
        });
        self
    }

    /// Scheduled refresh: every `every` (moved by up to 10% either way, so that caches started
    /// together do not refresh together; timed from the start of the previous round, so a
    /// round that takes long does not push the next one back, and after a round that outlasted
    /// its period the next waits a tenth of a period), the keys read since the last round, at
    /// most
    /// [`refresh_top`](Self::refresh_top) of them (default 1,000) by how often they were read,
    /// are reloaded with `load` in the background, through the key's single-flight (a load
    /// already in flight is joined), [`REFRESH_CONCURRENCY`](crate::REFRESH_CONCURRENCY) at a
    /// time. A hot key is thus reloaded before it expires, and its readers never wait for it;
    /// a key not read in a round is left to expire. `load`'s `Err` is a negative result (cached
    /// with `negative_ttl`; without it, the old value stays and `refresh_errors` counts it).
    ///
    /// The reloads run on a background thread, which the cache holds weakly: it ends when the
    /// cache is dropped. `every` must be shorter than the `ttl`, or entries would expire before
    /// their refresh. The cache's [`clock`](Self::clock) keeps the time (a manual clock in
    /// tests).
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let price = Arc::new(AtomicU64::new(100));
    /// let source = Arc::clone(&price);
    /// let clock = ManualClock::new();
    /// let prices: Cache<&str, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(Clock::manual(&clock))
    ///     .refresh_every(Duration::from_secs(20), move |_item| Ok(source.load(Ordering::SeqCst)))
    ///     .build()?;
    /// prices.insert("tea", 100);
    /// assert_eq!(prices.get(&"tea"), Some(100)); // read: it is hot
    /// price.store(120, Ordering::SeqCst);
    /// clock.advance(Duration::from_secs(25)); // a round is due
    /// // Reloaded in the background (the loop waits for the refresh thread, not for a load):
    /// while prices.get(&"tea") != Some(120) {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// assert_eq!(prices.stats().misses, 0); // no reader ever waited for a load
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn refresh_every(
        self,
        every: Duration,
        load: impl Fn(&K) -> Result<V, N> + Send + Sync + 'static,
    ) -> Self
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        N: Clone + Send + Sync + 'static,
    {
        self.refresh_every_loaded(every, move |k: &K| match load(k) {
            Ok(v) => crate::entry::Loaded::Value(v),
            Err(n) => crate::entry::Loaded::Negative(n),
        })
    }

    /// The async form of [`refresh_every`](Self::refresh_every): each reload is a task on the
    /// Tokio runtime the cache is built on (without one, the refresh thread runs the futures).
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let clock = ManualClock::new();
    /// let rates: Cache<String, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(Clock::manual(&clock))
    ///     .refresh_every_async(Duration::from_secs(20), |cur: String| async move {
    ///         Ok(cur.len() as u64 * 100)
    ///     })
    ///     .build()?;
    /// rates.insert("eur".to_string(), 1);
    /// assert_eq!(rates.get("eur"), Some(1));
    /// clock.advance(Duration::from_secs(25)); // the first round is due: "eur" was read
    /// while rates.get("eur") != Some(300) {
    ///     tokio::time::sleep(Duration::from_millis(1)).await;
    /// }
    /// assert_eq!(rates.stats().refreshes, 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn refresh_every_async<F>(
        self,
        every: Duration,
        load: impl Fn(K) -> F + Send + Sync + 'static,
    ) -> Self
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        N: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<V, N>> + Send + 'static,
    {
        self.refresh_every_loaded_async(every, move |k: K| {
            let fut = load(k);
            Box::pin(async move {
                match fut.await {
                    Ok(v) => crate::entry::Loaded::Value(v),
                    Err(n) => crate::entry::Loaded::Negative(n),
                }
            })
        })
    }

    /// [`refresh_every`](Self::refresh_every) with a loader that classifies its own outcome
    /// (`#[cached(refresh_every = ..)]`: `Loaded::Error` is not cached).
    #[doc(hidden)]
    #[must_use]
    pub fn refresh_every_loaded(
        mut self,
        every: Duration,
        load: impl Fn(&K) -> crate::entry::Loaded<V, N, ()> + Send + Sync + 'static,
    ) -> Self
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        N: Clone + Send + Sync + 'static,
    {
        let reloader = super::schedule::Reloader::Blocking(Arc::new(load));
        self.schedule = Some((every, super::schedule::starter(every, reloader)));
        self
    }

    /// The async form of [`refresh_every_loaded`](Self::refresh_every_loaded).
    #[doc(hidden)]
    #[must_use]
    pub fn refresh_every_loaded_async(
        mut self,
        every: Duration,
        load: impl Fn(K) -> super::schedule::ReloadFuture<V, N> + Send + Sync + 'static,
    ) -> Self
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        N: Clone + Send + Sync + 'static,
    {
        let reloader = super::schedule::Reloader::Async(Arc::new(load));
        self.schedule = Some((every, super::schedule::starter(every, reloader)));
        self
    }

    /// With [`refresh_every`](Self::refresh_every): how many keys a round reloads at most, the
    /// most read first (default 1,000).
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let top: Cache<u64, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(300))
    ///     .refresh_every(Duration::from_secs(60), |k| Ok(k * 2))
    ///     .refresh_top(100) // the 100 most read keys of each minute
    ///     .build()?;
    /// # drop(top);
    /// assert!(Cache::<u64, u64>::builder().refresh_top(10).build().is_err()); // needs refresh_every
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn refresh_top(mut self, keys: usize) -> Self {
        self.refresh_top = Some(keys);
        self
    }

    /// With a remote tier: how long an entry stays in this process (L1) before it is read from
    /// the remote tier again (at most the TTL). Other processes' writes and invalidations reach
    /// this process within this time. The default is 5 s on a backend that broadcasts
    /// invalidations (Redis: they evict the other processes' copies at once), 1 s on one that
    /// cannot (memcached without an invalidation channel, `MemoryBackend`).
    ///
    /// ```
    /// # #[cfg(feature = "serde")] {
    /// use cache_runtime::{Cache, tier::MemoryBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let shared = Arc::new(MemoryBackend::new()); // or a server the fleet shares
    /// let prices: Cache<String, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(600))
    ///     .remote(shared, "shop")
    ///     .l1_ttl(Duration::from_millis(500)) // other processes' updates show within 0.5 s
    ///     .build()?;
    /// assert_eq!(prices.get_or_insert_with("tea", || 3), 3);
    /// # }
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = Some(ttl);
        self
    }

    /// With a remote tier: how many keys' writes and invalidations that the backend did not take
    /// (a fault, an open breaker) this cache keeps, to retry them in the background (default
    /// 10,000). Until one goes through, this process does not read that key from the remote tier
    /// (it loads instead), so a write that met a fault never brings the old value back. Beyond
    /// this many, the cache stops using the remote tier (L1 only, shown by
    /// [`CacheStats::l1_only`](crate::CacheStats::l1_only)) until a clear of its remote entries
    /// goes through, which covers every key it could not keep.
    ///
    /// ```
    /// # #[cfg(feature = "serde")] {
    /// use cache_runtime::{Cache, tier::MemoryBackend};
    /// use std::sync::Arc;
    ///
    /// let prices: Cache<String, u64> = Cache::builder()
    ///     .remote(Arc::new(MemoryBackend::new()), "shop")
    ///     .max_pending_writes(1_000)
    ///     .build()?;
    /// prices.insert("tea".to_string(), 3); // the backend took it: nothing pending
    /// let s = prices.stats();
    /// assert_eq!((s.pending_remote_writes, s.remote_write_failures, s.l1_only), (0, 0, false));
    /// # }
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn max_pending_writes(mut self, keys: usize) -> Self {
        self.pending_limit = Some(keys);
        self
    }

    /// The number of independently locked shards (rounded up to a power of two; default: up to
    /// 4 per core, with about 32 entries or more each). Capacity is split evenly between them.
    ///
    /// ```
    /// use cache_runtime::{BuildError, Cache};
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().capacity(1_000_000).shards(64).build()?;
    /// cache.insert(1, 1);
    /// assert_eq!(cache.get(&1), Some(1));
    /// let err = Cache::<u64, u64>::builder().shards(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::InvalidShards(0));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }
}

impl<K, V, N> CacheBuilder<K, V, N> {
    /// Drops the settings of a remote tier: for a function whose configured backend is this
    /// process's memory.
    #[cfg(feature = "config")]
    pub(crate) fn memory_only(mut self) -> Self {
        self.lease = None;
        self.l1_ttl = None;
        self.pending_limit = None;
        self
    }
}

#[cfg(feature = "serde")]
impl<K, V> CacheBuilder<K, V, Infallible> {
    /// Adds a remote tier (L2) on `backend` behind this process's store (L1): a miss here
    /// reads the remote tier before loading, and every load, write-through and invalidation
    /// also goes there, so several processes share results. Values travel through the
    /// [`Bincode`](crate::codec::Bincode) codec, under
    /// `<prefix>:<cache name>:<type tag>:<key hash>`. Backend faults never fail a call (see
    /// [`tier`](crate::tier)).
    ///
    /// ```
    /// use cache_runtime::{Cache, tier::MemoryBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let shared = Arc::new(MemoryBackend::new()); // or a server the fleet shares
    /// let users: Cache<u64, String> = Cache::builder()
    ///     .name("doc.remote_users")
    ///     .ttl(Duration::from_secs(600))
    ///     .remote(shared.clone(), "myapp") // keys `myapp:doc.remote_users:<type tag>:<key hash>`
    ///     .build()?;
    /// // A miss asks the remote tier before loading; a load is stored in both tiers.
    /// assert_eq!(users.get_or_insert_with(&1, || "ada".to_string()), "ada");
    /// assert_eq!(shared.len(), 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn remote(mut self, backend: Arc<dyn Backend>, prefix: &str) -> Self
    where
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let prefix = prefix.to_owned();
        self.tier = Some(Box::new(move |name: &str, version: Option<u32>| {
            Arc::new(Typed::<Bincode, NoNegatives>::new(
                backend,
                &prefix,
                name,
                &typed_shape::<K, V, ()>(version),
            )) as Arc<dyn Tier<K, V, Infallible>>
        }));
        self
    }
}

/// The version-and-shape segment of a cache's L2 namespace (see [`crate::invalidate::version`]).
#[cfg(feature = "serde")]
fn typed_shape<K, V, N>(version: Option<u32>) -> String
where
    K: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
    N: serde::de::DeserializeOwned,
{
    use crate::invalidate::version::{segment, shape};
    let shape = format!(
        "{}|{}|{}|{}",
        std::any::type_name::<(K, V, N)>(),
        shape::<K>(),
        shape::<V>(),
        shape::<N>()
    );
    segment(version, &shape)
}

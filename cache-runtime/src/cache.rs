//! The typed cache a memoized function owns: store + expiry + single-flight + statistics.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foldhash::quality::FixedState;

use crate::clock::Clock;
use crate::flight::{Flight, Flights, Join, Lead, Waited};
use crate::registry::{self, Report};
use crate::stats::{Counter, Stats};
use crate::store::{Evictions, Listener, Store, StoreConfig, WeighFn, Weigher, shard_count};
use crate::tier::Tier;
use crate::ttl::{Expiry, Jitter, NEVER, ttl_nanos};
use crate::{BuildError, CacheStats, Policy};
use std::sync::Arc;

/// The time left until `deadline`, for a remote TTL (`None`: no expiry).
fn remaining(now: u64, deadline: u64) -> Option<Duration> {
    (deadline != NEVER).then(|| Duration::from_nanos(deadline.saturating_sub(now).max(1)))
}

/// The counter of a hit on `e`.
#[inline(always)]
fn hit_counter<V, N>(e: &Entry<V, N>) -> Counter {
    match e {
        Entry::Value(_) => Counter::Hit,
        Entry::Negative(_) => Counter::NegativeHit,
    }
}

/// Counts a loader run (of a refresh).
fn count_load<K, V, N>(cache: &Cache<K, V, N>) {
    cache.core.meter.stats.incr(Counter::Load);
}

/// Numbers the caches, for default names and hash seeds.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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

/// A cached result: a value, or a negative result ("not found", an error) kept for
/// `negative_ttl`. A negative result is never confused with a value.
///
/// ```
/// use cache_runtime::{Cache, Entry};
/// use std::time::Duration;
///
/// let users: Cache<u64, String, &str> = Cache::builder()
///     .negative_ttl(Duration::from_secs(10))
///     .build()?;
/// users.insert(1, "ada".to_string());
/// users.insert_negative(2, "no such user");
/// assert_eq!(users.get_entry(&1), Some(Entry::Value("ada".to_string())));
/// assert_eq!(users.get_entry(&2), Some(Entry::Negative("no such user")));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry<V, N> {
    /// A successfully loaded value.
    Value(V),
    /// A cached negative result.
    Negative(N),
}

impl<V, N> Entry<V, N> {
    /// The value, or `Err` with the negative result.
    ///
    /// ```
    /// use cache_runtime::Entry;
    ///
    /// assert_eq!(Entry::<u32, &str>::Value(7).into_result(), Ok(7));
    /// assert_eq!(Entry::<u32, &str>::Negative("not found").into_result(), Err("not found"));
    /// ```
    ///
    /// # Errors
    /// The cached negative result.
    pub fn into_result(self) -> Result<V, N> {
        match self {
            Entry::Value(v) => Ok(v),
            Entry::Negative(n) => Err(n),
        }
    }
}

/// What the store holds: the entry and its deadline (coarse-clock nanoseconds; `NEVER` = no TTL).
#[derive(Clone)]
pub(crate) struct Stored<V, N> {
    entry: Entry<V, N>,
    expires_at: u64,
    /// With early refresh: how long before `expires_at` a hit starts drawing whether to refresh
    /// (the longest XFetch gap the entry's load time allows; 0 = never early).
    early: u64,
}

/// A loader's outcome: cached as a value, cached as a negative result (if `negative_ttl` is set),
/// or an outcome returned to its caller only.
#[doc(hidden)]
#[derive(Debug)]
pub enum Loaded<V, N, E> {
    /// Cached as a value.
    Value(V),
    /// Cached as a negative result (with `negative_ttl`), else returned uncached.
    Negative(N),
    /// Returned to its caller only, never cached.
    Error(E),
}

/// What a lookup found (uncounted): fresh, fresh but drawn for an early refresh, expired but
/// within the `stale` window, or nothing usable.
pub(crate) enum Found<V, N> {
    Fresh(Entry<V, N>),
    Early(Entry<V, N>),
    Stale(Entry<V, N>),
    Miss,
}

/// What a refresh-aware lookup found: a value to serve, a value to serve with the duty to
/// refresh it (this caller holds the key's one refresh), or a miss.
#[doc(hidden)]
pub enum Lookup<K, V, N> {
    /// A fresh value (or a stale/early one whose refresh another caller runs).
    Hit(Entry<V, N>),
    /// A value to serve, and the key's refresh to run.
    Refresh(Entry<V, N>, Refresh<K, V, N>),
    /// Nothing usable: load.
    Miss,
}

/// The key's one refresh in flight, held by whoever runs it. Dropped unfinished (an error, a
/// panic, a cancelled task), it frees the key and the old value stays.
#[doc(hidden)]
pub struct Refresh<K, V, N> {
    lead: Lead<K, Entry<V, N>, CoreFlights<K, V, N>>,
    started: u64,
}

/// Reaches a cache's single-flight table through an owning handle (for detached refreshes).
#[doc(hidden)]
pub(crate) struct CoreFlights<K, V, N>(Arc<Core<K, V, N>>);

impl<K, V, N> std::ops::Deref for CoreFlights<K, V, N> {
    type Target = Flights<K, Entry<V, N>>;
    fn deref(&self) -> &Self::Target {
        &self.0.flights
    }
}

/// The longest XFetch gap, in units of `delta * beta`: `-ln(r)` for the smallest `r` drawn
/// (2^-53) is 36.7.
const XFETCH_SPAN: f64 = 36.8;

/// The per-entry TTL of `ttl_fn`.
pub(crate) type TtlFn<V> = Arc<dyn Fn(&V) -> Duration + Send + Sync>;

impl<V, N, E> From<Entry<V, N>> for Loaded<V, N, E> {
    fn from(e: Entry<V, N>) -> Self {
        match e {
            Entry::Value(v) => Loaded::Value(v),
            Entry::Negative(n) => Loaded::Negative(n),
        }
    }
}

struct Meter {
    stats: Stats,
    clock: Clock,
}

struct Core<K, V, N> {
    store: Store<K, Stored<V, N>>,
    flights: Flights<K, Entry<V, N>>,
    expiry: Expiry,
    meter: Arc<Meter>,
    hasher: FixedState,
    name: String,
    policy: Policy,
    /// No entry expires before this (coarse-clock ns): a lower bound kept by inserts and sweeps.
    next_expiry: AtomicU64,
    /// Inserts since the last sweep, and how many make a sweep due.
    inserts_since_sweep: AtomicU64,
    sweep_interval: u64,
    /// The remote tier (L2), if any.
    tier: Option<Arc<dyn Tier<K, V, N>>>,
    /// With a remote tier: how long an entry stays in this process's L1 (ns).
    l1_ttl: Option<u64>,
    /// Fleet-wide single-flight: the lease a loading process takes in the remote tier.
    lease: Option<Duration>,
    /// Stale-while-revalidate: how long past its deadline an entry may still be served (ns).
    stale: u64,
    /// XFetch's beta (0: no early refresh).
    beta: f64,
    /// A value's own TTL, chosen from the value.
    ttl_fn: Option<TtlFn<V>>,
}

/// An entry to cache: when it was loaded, its deadline and early window (coarse-clock ns).
struct ToCache<V, N> {
    entry: Entry<V, N>,
    now: u64,
    deadline: u64,
    early: u64,
}

/// A fleet-wide lease held while this process loads; released by `release_async` or, failing
/// that (a panic, a cancelled future, a sync caller), when dropped.
struct LeaseGuard<'a, K, V, N> {
    tier: &'a dyn Tier<K, V, N>,
    key: K,
    token: Option<String>,
}

impl<K, V, N> LeaseGuard<'_, K, V, N> {
    async fn release_async(&mut self) {
        if let Some(token) = self.token.take() {
            self.tier.release_async(&self.key, &token).await;
        }
    }
}

impl<K, V, N> Drop for LeaseGuard<'_, K, V, N> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            self.tier.release(&self.key, &token);
        }
    }
}

/// A bounded, thread-safe memoization cache from `K` to `V`, with optional cached negative
/// results of type `N`.
///
/// - **Bounded**: by entry count or by total weight, with a chosen eviction [`Policy`].
/// - **Expiry**: a TTL per cache (and per entry), with [`Jitter`]; expired entries are never
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
pub struct Cache<K, V, N = Infallible> {
    core: Arc<Core<K, V, N>>,
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
    /// A builder with the defaults: [`DEFAULT_CAPACITY`] entries, the S3-FIFO policy, no TTL.
    ///
    /// ```
    /// use cache_runtime::{Cache, DEFAULT_CAPACITY, Policy};
    ///
    /// let cache: Cache<u64, String> = Cache::builder().name("users").build()?;
    /// assert_eq!(cache.name(), "users");
    /// assert_eq!(cache.policy(), Policy::S3Fifo);
    /// assert!(cache.capacity() >= DEFAULT_CAPACITY); // rounded up per shard
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn builder() -> CacheBuilder<K, V, N> {
        CacheBuilder::new()
    }

    #[inline(always)]
    fn expired(&self, s: &Stored<V, N>) -> bool {
        // Entries without a TTL never read the clock; most others read only the ticker.
        s.expires_at != NEVER && self.core.meter.clock.is_past(s.expires_at)
    }

    /// What `key` holds, without counting. Removes an entry past its last usable moment.
    #[inline(always)]
    fn find<Q>(&self, key: &Q) -> Found<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(s) = self.core.store.get(key) else {
            return Found::Miss;
        };
        // One clock check on a hit: the deadline, moved earlier by the early-refresh window
        // (0 unless `early_refresh` is set).
        if s.expires_at != NEVER
            && self
                .core
                .meter
                .clock
                .is_past(s.expires_at.saturating_sub(s.early))
        {
            return self.find_cold(key, s);
        }
        Found::Fresh(s.entry)
    }

    /// An entry near or past its deadline: early, stale, or gone.
    #[cold]
    fn find_cold<Q>(&self, key: &Q, s: Stored<V, N>) -> Found<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.core.meter.clock.now_nanos();
        if now < s.expires_at {
            return if self.draw_early(now, &s) {
                Found::Early(s.entry)
            } else {
                Found::Fresh(s.entry)
            };
        }
        if now < s.expires_at.saturating_add(self.core.stale) {
            return Found::Stale(s.entry);
        }
        self.expire(key, now);
        Found::Miss
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein; VLDB 2015): refresh early when
    /// `now - delta * beta * ln(r) >= expiry`, `r` uniform in (0, 1]. `early` is
    /// `delta * beta * XFETCH_SPAN`, so the gap is `early * -ln(r) / XFETCH_SPAN`.
    fn draw_early(&self, now: u64, s: &Stored<V, N>) -> bool {
        if s.early == 0 {
            return false;
        }
        #[allow(clippy::cast_precision_loss)]
        let r = ((self.core.expiry.next_random() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        #[allow(clippy::cast_precision_loss)]
        let gap = s.early as f64 * -r.ln() / XFETCH_SPAN;
        #[allow(clippy::cast_precision_loss)]
        let left = (s.expires_at - now) as f64;
        gap >= left
    }

    /// The fresh entry of `key`, without counting (an early-drawn one is still fresh).
    #[inline(always)]
    fn lookup<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.find(key) {
            Found::Fresh(e) | Found::Early(e) => Some(e),
            Found::Stale(_) | Found::Miss => None,
        }
    }

    #[cold]
    fn expire<Q>(&self, key: &Q, now: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let stale = self.core.stale;
        if self
            .core
            .store
            .remove_if(key, |s| {
                s.expires_at != NEVER && s.expires_at.saturating_add(stale) <= now
            })
            .is_some()
        {
            self.core.meter.stats.incr(Counter::Expiration);
        }
    }

    /// The counted lookup of a caller that can refresh: a stale value (within `stale`) or an
    /// early-drawn one is served, and the first such caller gets the key's refresh to run.
    #[doc(hidden)]
    #[inline]
    pub fn lookup_refresh<Q>(&self, key: &Q) -> Lookup<K, V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let stats = &self.core.meter.stats;
        let (e, stale) = match self.find(key) {
            Found::Fresh(e) => {
                stats.incr(hit_counter(&e));
                return Lookup::Hit(e);
            }
            Found::Miss => {
                stats.incr(Counter::Miss);
                return Lookup::Miss;
            }
            Found::Early(e) => (e, false),
            Found::Stale(e) => (e, true),
        };
        stats.incr(hit_counter(&e));
        if stale {
            stats.incr(Counter::StaleHit);
        }
        match self.core.flights.try_lead(self.hash(key), key) {
            Some(lead) => {
                stats.incr(Counter::Refresh);
                Lookup::Refresh(
                    e,
                    Refresh {
                        lead: lead.transfer(CoreFlights(Arc::clone(&self.core))),
                        started: self.core.meter.clock.now_nanos(),
                    },
                )
            }
            None => Lookup::Hit(e),
        }
    }

    /// Ends a refresh with its loader's outcome: stores it (locally and in the remote tier) and
    /// returns the new entry, or, for an outcome not to cache, counts a failed refresh, keeps
    /// the old entry and hands the outcome back.
    #[doc(hidden)]
    pub fn finish_refresh<E>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        out: Loaded<V, N, E>,
    ) -> Result<Entry<V, N>, Loaded<V, N, E>> {
        let (lead, c) = self.refresh_outcome(refresh, out)?;
        if let Some(tier) = &self.core.tier {
            tier.put(&key, &c.entry, remaining(c.now, c.deadline));
        }
        if let (Some(k), Some(tier)) = (self.complete_owned(lead, key, &c), &self.core.tier) {
            tier.delete(&k);
        }
        Ok(c.entry)
    }

    /// The async form of [`finish_refresh`](Self::finish_refresh): the remote tier is written
    /// without blocking the task's thread.
    async fn finish_refresh_async<E>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        out: Loaded<V, N, E>,
    ) -> Result<Entry<V, N>, Loaded<V, N, E>> {
        let (lead, c) = self.refresh_outcome(refresh, out)?;
        if let Some(tier) = &self.core.tier {
            tier.put_async(&key, &c.entry, remaining(c.now, c.deadline))
                .await;
        }
        if let (Some(k), Some(tier)) = (self.complete_owned(lead, key, &c), &self.core.tier) {
            tier.delete_async(&k).await;
        }
        Ok(c.entry)
    }

    /// What a refresh's loader returned: the entry to store, with the refresh's lead, or (a
    /// failed refresh, counted) the outcome to hand back.
    #[allow(clippy::type_complexity)]
    fn refresh_outcome<E>(
        &self,
        refresh: Refresh<K, V, N>,
        out: Loaded<V, N, E>,
    ) -> Result<(Lead<K, Entry<V, N>, CoreFlights<K, V, N>>, ToCache<V, N>), Loaded<V, N, E>> {
        let Refresh { lead, started } = refresh;
        match self.cacheable(out, started) {
            Ok(c) => Ok((lead, c)),
            Err(out) => {
                // Counted before the key's slot is released: whoever sees the refresh over
                // (`loads_in_flight`) sees it counted.
                self.refresh_failed();
                drop(lead);
                Err(out)
            }
        }
    }

    /// Stores a refreshed entry locally; hands `key` back when an invalidation arrived during
    /// the refresh (then nothing was stored, and the remote copy is to be deleted).
    fn complete_owned(
        &self,
        lead: Lead<K, Entry<V, N>, CoreFlights<K, V, N>>,
        key: K,
        c: &ToCache<V, N>,
    ) -> Option<K> {
        let mut key = Some(key);
        // `complete_local` takes the key only when it stores.
        let stored = self.complete_local(lead, || key.take().expect("taken once"), c);
        if stored { None } else { key }
    }

    /// Counts a refresh that ended without a value to store (an error, a rejected value, or a
    /// loader that panicked); the old entry stays.
    #[doc(hidden)]
    pub fn refresh_failed(&self) {
        self.core.meter.stats.incr(Counter::RefreshError);
        #[cfg(feature = "tracing")]
        tracing::debug!(cache = %self.core.name, "cache refresh failed; the old value stays");
    }

    /// Runs `refresh` in the background (see [`refresh`](crate::refresh)): `load` runs once and
    /// its cacheable outcome replaces the entry; anything else (an error, a panic) keeps the old
    /// one and counts in `refresh_errors`.
    #[doc(hidden)]
    pub fn spawn_refresh<E: 'static>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        load: impl FnOnce() -> Loaded<V, N, E> + Send + 'static,
    ) {
        let cache = self.clone();
        crate::refresh::spawn(Box::new(move || {
            self::count_load(&cache);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)) {
                Ok(out) => drop(cache.finish_refresh(refresh, key, out)),
                Err(_) => {
                    // Counted first, then the slot released (see `refresh_outcome`).
                    cache.refresh_failed();
                    drop(refresh);
                }
            }
        }));
    }

    /// The async form of [`spawn_refresh`](Self::spawn_refresh): a task on the caller's Tokio
    /// runtime (or a thread outside one).
    #[doc(hidden)]
    pub fn spawn_refresh_async<E: Send + 'static, F>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        load: impl FnOnce() -> F + Send + 'static,
    ) where
        F: Future<Output = Loaded<V, N, E>> + Send + 'static,
    {
        let cache = self.clone();
        crate::refresh::spawn_async(async move {
            self::count_load(&cache);
            let run = crate::refresh::CatchUnwind(Box::pin(async move { load().await }));
            match run.await {
                Ok(out) => drop(cache.finish_refresh_async(refresh, key, out).await),
                Err(()) => {
                    cache.refresh_failed();
                    drop(refresh);
                }
            }
        });
    }

    /// Runs `refresh` on this caller (XFetch's early recomputation): the new entry, or, when the
    /// outcome is not to be cached, `old` (still fresh) and a counted failed refresh.
    #[doc(hidden)]
    pub fn refresh_inline<E>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        old: Entry<V, N>,
        load: impl FnOnce() -> Loaded<V, N, E>,
    ) -> Entry<V, N> {
        count_load(self);
        self.finish_refresh(refresh, key, load()).unwrap_or(old)
    }

    /// The async form of [`refresh_inline`](Self::refresh_inline). If this future is dropped,
    /// the refresh ends and the old entry stays.
    #[doc(hidden)]
    pub async fn refresh_inline_async<E, F>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        old: Entry<V, N>,
        load: impl FnOnce() -> F,
    ) -> Entry<V, N>
    where
        F: Future<Output = Loaded<V, N, E>>,
    {
        count_load(self);
        let out = load().await;
        self.finish_refresh_async(refresh, key, out)
            .await
            .unwrap_or(old)
    }

    /// Stale-while-revalidate and early refresh for direct callers: like
    /// [`get_or_load`](Self::get_or_load), but a value within the cache's
    /// [`stale_while_revalidate`](CacheBuilder::stale_while_revalidate) window (or drawn for an
    /// [`early_refresh`](CacheBuilder::early_refresh)) is returned at once while `load` refreshes
    /// it in the background, at most one refresh per key at a time.
    ///
    /// ```
    /// use cache_runtime::{Cache, ManualClock, Clock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let prices: Cache<String, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .stale_while_revalidate(Duration::from_secs(30))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    ///
    /// let key = "gold".to_string();
    /// assert_eq!(prices.get_or_refresh(key.clone(), || Ok(100)), Ok(100)); // miss: loads
    /// clock.advance(Duration::from_secs(70)); // expired, within the stale window
    /// // Served at once (stale); the refresh runs in the background.
    /// assert_eq!(prices.get_or_refresh(key.clone(), || Ok(101)), Ok(100));
    /// # while prices.loads_in_flight() > 0 { std::thread::yield_now(); }
    /// # assert_eq!(prices.get(&key), Some(101));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    pub fn get_or_refresh(
        &self,
        key: K,
        load: impl FnOnce() -> Result<V, N> + Send + 'static,
    ) -> Result<V, N>
    where
        K: Clone,
    {
        let to_loaded = |r: Result<V, N>| match r {
            Ok(v) => Loaded::<V, N, Infallible>::Value(v),
            Err(n) => Loaded::Negative(n),
        };
        match self.lookup_refresh(&key) {
            Lookup::Hit(e) => e.into_result(),
            Lookup::Refresh(e, r) => {
                self.spawn_refresh(r, key, move || to_loaded(load()));
                e.into_result()
            }
            Lookup::Miss => match self.load_after_miss(&key, || to_loaded(load())) {
                Loaded::Value(v) => Ok(v),
                Loaded::Negative(n) => Err(n),
                Loaded::Error(e) => match e {},
            },
        }
    }

    /// The async form of [`get_or_refresh`](Self::get_or_refresh): the refresh is a task on the
    /// caller's Tokio runtime.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new();
    /// let rates: Cache<String, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .stale_while_revalidate(Duration::from_secs(30))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    ///
    /// let eur = "eur".to_string();
    /// assert_eq!(rates.get_or_refresh_async(eur.clone(), || async { Ok(108) }).await, Ok(108));
    /// clock.advance(Duration::from_secs(70)); // expired, within the stale window
    /// // Served at once (stale); the refresh runs as a task on this runtime.
    /// assert_eq!(rates.get_or_refresh_async(eur.clone(), || async { Ok(109) }).await, Ok(108));
    /// # while rates.loads_in_flight() > 0 { tokio::task::yield_now().await; }
    /// # assert_eq!(rates.get(&eur), Some(109));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    pub async fn get_or_refresh_async<F>(
        &self,
        key: K,
        load: impl FnOnce() -> F + Send + 'static,
    ) -> Result<V, N>
    where
        K: Clone,
        F: Future<Output = Result<V, N>> + Send + 'static,
    {
        let to_loaded = |r: Result<V, N>| match r {
            Ok(v) => Loaded::<V, N, Infallible>::Value(v),
            Err(n) => Loaded::Negative(n),
        };
        match self.lookup_refresh(&key) {
            Lookup::Hit(e) => e.into_result(),
            Lookup::Refresh(e, r) => {
                self.spawn_refresh_async(r, key, move || async move { to_loaded(load().await) });
                e.into_result()
            }
            Lookup::Miss => {
                match self
                    .load_after_miss_async(&key, || async { to_loaded(load().await) })
                    .await
                {
                    Loaded::Value(v) => Ok(v),
                    Loaded::Negative(n) => Err(n),
                    Loaded::Error(e) => match e {},
                }
            }
        }
    }

    /// Looks `key` up and counts a hit, a negative hit or a miss.
    #[inline(always)]
    fn lookup_counted<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.lookup(key);
        self.core.meter.stats.incr(match &found {
            Some(e) => hit_counter(e),
            None => Counter::Miss,
        });
        found
    }

    /// The fresh value of `key`, if cached. A cached negative result reads as `None` here; see
    /// [`get_entry`](Self::get_entry).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let stock: Cache<String, u64> = Cache::builder().build()?;
    /// stock.insert("tea".to_string(), 3);
    /// assert_eq!(stock.get("tea"), Some(3)); // looked up by `&str`: no allocation
    /// assert_eq!(stock.get("coffee"), None);
    /// assert_eq!((stock.stats().hits, stock.stats().misses), (1, 1));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[inline(always)]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.lookup_counted(key)? {
            Entry::Value(v) => Some(v),
            Entry::Negative(_) => None,
        }
    }

    /// The fresh entry of `key` (a value or a negative result), if cached.
    ///
    /// ```
    /// use cache_runtime::{Cache, Entry};
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound;
    ///
    /// let users: Cache<u64, String, NotFound> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(users.get_or_load(&404, || Err(NotFound)), Err(NotFound));
    /// assert_eq!(users.get(&404), None); // `get` sees values only
    /// assert_eq!(users.get_entry(&404), Some(Entry::Negative(NotFound)));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn get_entry<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lookup_counted(key)
    }

    /// Whether a fresh entry of `key` is cached. Not counted in the statistics.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, String> = Cache::builder().build()?;
    /// cache.insert(1, "one".to_string());
    /// assert!(cache.contains_key(&1));
    /// assert!(!cache.contains_key(&2));
    /// assert_eq!(cache.stats().hits + cache.stats().misses, 0); // not counted
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.core.store.get(key).is_some_and(|s| !self.expired(&s))
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.core.hasher.hash_one(key)
    }

    fn put(&self, key: K, mut stored: Stored<V, N>) {
        // Mark any load of this key in flight first, so that its older result cannot overwrite
        // this one when it finishes.
        self.core.flights.invalidate(self.hash(&key), &key);
        if let Some(tier) = &self.core.tier {
            let now = self.core.meter.clock.now_nanos();
            tier.put(&key, &stored.entry, remaining(now, stored.expires_at));
            tier.broadcast(Some(&key));
            stored.expires_at = self.l1_deadline(now, stored.expires_at);
        }
        drop(self.core.insert(key, stored));
    }

    /// Stores `value` under `key` with the cache's TTL (write-through), replacing any entry.
    /// A load of `key` in flight still answers its callers, but does not overwrite this value.
    ///
    /// With a `ttl_fn`, the value's own TTL applies; a value whose TTL is zero is not stored
    /// (and replaces nothing: the old entry is removed).
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let users: Cache<u64, String> = Cache::builder().ttl(Duration::from_secs(60)).build()?;
    /// users.insert(1, "ada".to_string());
    /// users.insert(1, "grace".to_string()); // replaces the entry, with a new TTL
    /// assert_eq!(users.get(&1).as_deref(), Some("grace"));
    /// assert_eq!(users.len(), 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let Some(expires_at) = self.value_deadline(&value, || self.core.meter.clock.now_nanos())
        else {
            self.core.flights.invalidate(self.hash(&key), &key);
            if let Some(tier) = &self.core.tier {
                tier.delete(&key);
                tier.broadcast(Some(&key));
            }
            drop(self.core.store.remove(&key));
            return;
        };
        self.put(
            key,
            Stored {
                entry: Entry::Value(value),
                expires_at,
                early: 0,
            },
        );
    }

    /// The deadline of `value` stored now: from the `ttl_fn`, else the cache's TTL. `None` when
    /// the `ttl_fn` gives zero (not to be cached).
    fn value_deadline(&self, value: &V, now: impl FnOnce() -> u64) -> Option<u64> {
        let Some(f) = &self.core.ttl_fn else {
            return Some(self.core.expiry.deadline(now, false));
        };
        let ttl = f(value);
        if ttl.is_zero() {
            return None;
        }
        let ttl = u64::try_from(ttl.as_nanos())
            .unwrap_or(u64::MAX)
            .min(u64::MAX / 2);
        crate::clock::start_ticker();
        Some(self.core.expiry.deadline_for(now(), ttl))
    }

    /// Stores `value` under `key` with its own TTL (the cache's jitter still applies).
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let tokens: Cache<&str, String> = Cache::builder()
    ///     .ttl(Duration::from_secs(3600))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// tokens.insert_with_ttl("api", "t0k3n".to_string(), Duration::from_secs(30))?;
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(tokens.get("api"), None); // its own 30 s, not the cache's hour
    /// assert!(tokens.insert_with_ttl("api", "t0k3n".to_string(), Duration::ZERO).is_err());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// [`BuildError::ZeroTtl`] or [`BuildError::TtlTooLarge`] for a TTL that cannot work; the
    /// cache is left unchanged.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), BuildError> {
        let ttl = ttl_nanos(ttl, "entry ttl")?;
        crate::clock::start_ticker();
        let expires_at = self
            .core
            .expiry
            .deadline_for(self.core.meter.clock.now_nanos(), ttl);
        self.put(
            key,
            Stored {
                entry: Entry::Value(value),
                expires_at,
                early: 0,
            },
        );
        Ok(())
    }

    /// Stores a negative result under `key` for `negative_ttl` (or forever without one).
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(10))
    ///     .build()?;
    /// users.insert_negative(7, ()); // user 7 is known not to exist
    /// assert_eq!(users.get_or_load_option(&7, || unreachable!()), None);
    /// assert_eq!(users.stats().negative_hits, 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn insert_negative(&self, key: K, negative: N) {
        let expires_at = self
            .core
            .expiry
            .deadline(|| self.core.meter.clock.now_nanos(), true);
        self.put(
            key,
            Stored {
                entry: Entry::Negative(negative),
                expires_at,
                early: 0,
            },
        );
    }

    /// Removes `key`'s entry; returns whether a fresh one was there. A load of `key` in flight
    /// still answers its callers, but its result is not stored (invalidation wins).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let stock: Cache<String, u64> = Cache::builder().build()?;
    /// stock.insert("tea".to_string(), 3);
    /// assert!(stock.remove("tea"));
    /// assert!(!stock.remove("tea")); // nothing left to remove
    /// assert_eq!(stock.get("tea"), None);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.flights.invalidate(self.hash(key), key);
        if let Some(tier) = &self.core.tier {
            let owned = key.to_owned();
            tier.delete(&owned);
            tier.broadcast(Some(&owned));
        }
        self.core
            .store
            .remove(key)
            .is_some_and(|s| !self.expired(&s))
    }

    /// Removes every entry. Loads in flight answer their callers but store nothing.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let squares: Cache<u64, u64> = Cache::builder().build()?;
    /// for i in 0..10 {
    ///     squares.insert(i, i * i);
    /// }
    /// squares.clear();
    /// assert!(squares.is_empty());
    /// assert_eq!(squares.get(&3), None);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn clear(&self) {
        self.core.flights.invalidate_all();
        if let Some(tier) = &self.core.tier {
            tier.clear();
            tier.broadcast(None);
        }
        self.core.store.clear();
    }

    /// Removes every expired entry now, and returns how many.
    ///
    /// Expired entries are never returned either way. They leave when read, and inserts sweep
    /// them out (amortized: once something may have expired, every capacity/8 inserts), so they
    /// cannot hold room from live entries for long; this frees their memory at once.
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
    /// cache.insert(2, 20);
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(cache.len(), 2); // expired, but still held
    /// assert_eq!(cache.purge_expired(), 2);
    /// assert!(cache.is_empty());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn purge_expired(&self) -> u64 {
        self.core.sweep()
    }

    /// Compute-if-absent with a loader that yields a value or a negative result.
    ///
    /// On a miss, `load` runs once however many callers miss `key` at the same time; the
    /// others wait and share its outcome. `Ok` is cached with the TTL. `Err` is a negative
    /// result: with `negative_ttl` set it is cached for that long (and shared with the waiters,
    /// and counted in `negative_hits` when served); without it, it is returned to this caller
    /// only, and the waiters retry one at a time (see [`get_or_try_insert_with`]).
    ///
    /// A panic in `load` reaches this caller; the waiters are released and one of them loads.
    ///
    /// [`get_or_try_insert_with`]: Cache::get_or_try_insert_with
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound;
    ///
    /// let users: Cache<u64, String, NotFound> = Cache::builder()
    ///     .ttl(Duration::from_secs(300))
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    ///
    /// let lookup = |id: u64| if id == 1 { Ok("ada".to_string()) } else { Err(NotFound) };
    /// assert_eq!(users.get_or_load(&1, || lookup(1)), Ok("ada".to_string()));
    /// assert_eq!(users.get_or_load(&2, || lookup(2)), Err(NotFound));
    /// // The "not found" is cached: the loader does not run again.
    /// assert_eq!(users.get_or_load(&2, || unreachable!()), Err(NotFound));
    /// assert_eq!(users.stats().negative_hits, 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    pub fn get_or_load<Q>(&self, key: &Q, load: impl FnOnce() -> Result<V, N>) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.load_sync(key, || match load() {
            Ok(v) => Loaded::<V, N, Infallible>::Value(v),
            Err(n) => Loaded::Negative(n),
        }) {
            Loaded::Value(v) => Ok(v),
            Loaded::Negative(n) => Err(n),
            Loaded::Error(e) => match e {},
        }
    }

    /// The async form of [`get_or_load`](Self::get_or_load). If this future is dropped while it
    /// loads, the waiters are released and one of them loads instead.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound;
    ///
    /// async fn query(id: u64) -> Result<String, NotFound> {
    ///     if id == 1 { Ok("ada".to_string()) } else { Err(NotFound) }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let users: Cache<u64, String, NotFound> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(users.get_or_load_async(&1, || query(1)).await, Ok("ada".to_string()));
    /// assert_eq!(users.get_or_load_async(&2, || query(2)).await, Err(NotFound));
    /// assert_eq!(users.get_or_load_async(&2, || query(2)).await, Err(NotFound)); // cached
    /// assert_eq!(users.stats().loads, 2);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    pub async fn get_or_load_async<Q, F>(&self, key: &Q, load: impl FnOnce() -> F) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Result<V, N>>,
    {
        let loaded = self
            .load_async(key, || async {
                match load().await {
                    Ok(v) => Loaded::<V, N, Infallible>::Value(v),
                    Err(n) => Loaded::Negative(n),
                }
            })
            .await;
        match loaded {
            Loaded::Value(v) => Ok(v),
            Loaded::Negative(n) => Err(n),
            Loaded::Error(e) => match e {},
        }
    }

    /// The single-flight load, sync callers.
    fn load_sync<Q, E>(&self, key: &Q, load: impl FnOnce() -> Loaded<V, N, E>) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(e) = self.lookup_counted(key) {
            return e.into();
        }
        self.load_after_miss(key, load)
    }

    /// The single-flight load of a key whose lookup was counted as a miss.
    pub(crate) fn load_after_miss<Q, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Loaded<V, N, E>,
    ) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hash(key);
        loop {
            match self.core.flights.join(hash, key, true) {
                Join::Leader(leader) => {
                    // Another caller may have stored the value between our miss and now.
                    if let Some(e) = self.lookup(key) {
                        leader.complete(&e, || ());
                        return e.into();
                    }
                    let mut held = None;
                    if let Some(tier) = &self.core.tier {
                        let owned = key.to_owned();
                        if let Some(e) = tier.get(&owned) {
                            return self.fill_from_remote(leader, owned, e).into();
                        }
                        if let Some(lease) = self.core.lease {
                            match tier.lease(&owned, lease) {
                                Some(token) => held = token.map(|t| (owned, t)),
                                None => {
                                    // Another process loads it: wait for its value (bounded).
                                    if let Some(e) = tier.wait_for(&owned, lease) {
                                        return self.fill_from_remote(leader, owned, e).into();
                                    }
                                }
                            }
                        }
                    }
                    // Released when this scope ends, also by a panicking loader.
                    let _lease = self.lease_guard(held);
                    self.core.meter.stats.incr(Counter::Load);
                    let started = self.load_start();
                    let c = match self.cacheable(load(), started) {
                        Ok(c) => c,
                        Err(uncached) => {
                            self.trace_load(hash, false);
                            drop(leader);
                            return uncached;
                        }
                    };
                    self.trace_load(hash, true);
                    // The remote write comes first: an invalidation during the load then finds
                    // the key in flight and undoes it below, instead of being overtaken by it.
                    let remote = self.core.tier.as_ref().map(|t| (t, key.to_owned()));
                    if let Some((tier, k)) = &remote {
                        tier.put(k, &c.entry, remaining(c.now, c.deadline));
                    }
                    if !self.complete_local(leader, || key.to_owned(), &c)
                        && let Some((tier, k)) = &remote
                    {
                        tier.delete(k);
                    }
                    return c.entry.into();
                }
                Join::Waiter(flight, stale) => match flight.wait() {
                    Waited::Value(e) if !stale => {
                        self.core.meter.stats.incr(Counter::Joined);
                        return e.into();
                    }
                    Waited::Value(_) | Waited::Retry => {}
                    Waited::Reentrant => {
                        // The loader asked for its own key: answer uncached rather than deadlock.
                        self.core.meter.stats.incr(Counter::Load);
                        return load();
                    }
                },
            }
        }
    }

    /// The single-flight load, async callers.
    async fn load_async<Q, E, F>(&self, key: &Q, load: impl FnOnce() -> F) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Loaded<V, N, E>>,
    {
        if let Some(e) = self.lookup_counted(key) {
            return e.into();
        }
        self.load_after_miss_async(key, load).await
    }

    /// The async single-flight load of a key whose lookup was counted as a miss.
    pub(crate) async fn load_after_miss_async<Q, E, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Loaded<V, N, E>>,
    {
        let hash = self.hash(key);
        loop {
            match self.core.flights.join(hash, key, false) {
                Join::Leader(leader) => {
                    if let Some(e) = self.lookup(key) {
                        leader.complete(&e, || ());
                        return e.into();
                    }
                    let mut held = None;
                    if let Some(tier) = &self.core.tier {
                        let owned = key.to_owned();
                        if let Some(e) = tier.get_async(&owned).await {
                            return self.fill_from_remote(leader, owned, e).into();
                        }
                        if let Some(lease) = self.core.lease {
                            match tier.lease_async(&owned, lease).await {
                                Some(token) => held = token.map(|t| (owned, t)),
                                None => {
                                    if let Some(e) = tier.wait_for_async(&owned, lease).await {
                                        return self.fill_from_remote(leader, owned, e).into();
                                    }
                                }
                            }
                        }
                    }
                    // Released when this future ends or is dropped.
                    let mut lease = self.lease_guard(held);
                    self.core.meter.stats.incr(Counter::Load);
                    let started = self.load_start();
                    // If this future is dropped here, `leader` drops and abandons the flight.
                    let c = match self.cacheable(load().await, started) {
                        Ok(c) => {
                            self.trace_load(hash, true);
                            c
                        }
                        Err(uncached) => {
                            self.trace_load(hash, false);
                            drop(leader);
                            if let Some(l) = lease.as_mut() {
                                l.release_async().await;
                            }
                            return uncached;
                        }
                    };
                    let remote = self.core.tier.as_ref().map(|t| (t, key.to_owned()));
                    if let Some((tier, k)) = &remote {
                        tier.put_async(k, &c.entry, remaining(c.now, c.deadline))
                            .await;
                    }
                    if !self.complete_local(leader, || key.to_owned(), &c)
                        && let Some((tier, k)) = &remote
                    {
                        tier.delete_async(k).await;
                    }
                    if let Some(l) = lease.as_mut() {
                        l.release_async().await;
                    }
                    return c.entry.into();
                }
                Join::Waiter(flight, stale) => match Flight::wait_async(flight).await {
                    Waited::Value(e) if !stale => {
                        self.core.meter.stats.incr(Counter::Joined);
                        return e.into();
                    }
                    Waited::Value(_) | Waited::Retry | Waited::Reentrant => {}
                },
            }
        }
    }

    /// A `tracing` event for a finished load: the cache's name and the key's hash (never the
    /// key or the value, which may hold personal data).
    #[inline]
    #[allow(clippy::unused_self)]
    fn trace_load(&self, key_hash: u64, cached: bool) {
        #[cfg(feature = "tracing")]
        {
            if cached {
                tracing::debug!(cache = %self.core.name, key_hash, "cache load");
            } else {
                tracing::debug!(cache = %self.core.name, key_hash, "cache load not cached (error, negative or rejected)");
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (key_hash, cached);
    }

    /// When a load starts, for its duration (read only with early refresh on).
    fn load_start(&self) -> u64 {
        if self.core.beta > 0.0 {
            self.core.meter.clock.now_nanos()
        } else {
            0
        }
    }

    /// What a leader's outcome becomes: `Ok` with the entry to cache and its deadline, or
    /// `Err` with the outcome to return uncached (the waiters then retry, one at a time).
    /// `started` is when the load began (for early refresh).
    fn cacheable<E>(
        &self,
        out: Loaded<V, N, E>,
        started: u64,
    ) -> Result<ToCache<V, N>, Loaded<V, N, E>> {
        let now = self.core.meter.clock.now_nanos();
        let (entry, deadline) = match out {
            Loaded::Value(v) => match self.value_deadline(&v, || now) {
                Some(d) => (Entry::Value(v), d),
                // A zero TTL from `ttl_fn`: returned, not cached.
                None => return Err(Loaded::Value(v)),
            },
            Loaded::Negative(n) if self.core.expiry.has_negative_ttl() => {
                self.core.meter.stats.incr(Counter::LoadError);
                (Entry::Negative(n), self.core.expiry.deadline(|| now, true))
            }
            other => {
                self.core.meter.stats.incr(Counter::LoadError);
                return Err(other);
            }
        };
        let early = if self.core.beta > 0.0 && deadline != NEVER {
            let delta = now.saturating_sub(started);
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let w = (delta as f64 * self.core.beta * XFETCH_SPAN) as u64;
            w
        } else {
            0
        };
        Ok(ToCache {
            entry,
            now,
            deadline,
            early,
        })
    }

    /// Stores the entry in this process's store and shares it with the waiters; `false` when an
    /// invalidation arrived during the load (then nothing was stored).
    fn complete_local<F>(
        &self,
        leader: Lead<K, Entry<V, N>, F>,
        key: impl FnOnce() -> K,
        c: &ToCache<V, N>,
    ) -> bool
    where
        F: std::ops::Deref<Target = Flights<K, Entry<V, N>>>,
    {
        // What the store lets go of is dropped here, after the single-flight lock is released.
        let stored = leader.complete(&c.entry, || {
            self.core.insert(
                key(),
                Stored {
                    entry: c.entry.clone(),
                    expires_at: self.l1_deadline(c.now, c.deadline),
                    early: c.early,
                },
            )
        });
        stored.is_some()
    }

    /// Holds a fleet-wide lease until released or dropped.
    fn lease_guard(&self, held: Option<(K, String)>) -> Option<LeaseGuard<'_, K, V, N>> {
        let (key, token) = held?;
        let tier = self.core.tier.as_deref()?;
        Some(LeaseGuard {
            tier,
            key,
            token: Some(token),
        })
    }

    /// The L1 deadline of an entry whose own deadline is `deadline`: sooner with a remote tier.
    fn l1_deadline(&self, now: u64, deadline: u64) -> u64 {
        match self.core.l1_ttl {
            Some(l1) => deadline.min(now.saturating_add(l1)),
            None => deadline,
        }
    }

    /// Fills L1 from an entry the remote tier had, and ends the flight with it.
    fn fill_from_remote(
        &self,
        leader: crate::flight::Leader<'_, K, Entry<V, N>>,
        key: K,
        e: Entry<V, N>,
    ) -> Entry<V, N> {
        self.core.meter.stats.incr(Counter::RemoteHit);
        let now = self.core.meter.clock.now_nanos();
        let deadline = match &e {
            Entry::Value(v) => self.value_deadline(v, || now).unwrap_or(now),
            Entry::Negative(_) => self.core.expiry.deadline(|| now, true),
        };
        let stored = leader.complete(&e, || {
            self.core.insert(
                key,
                Stored {
                    entry: e.clone(),
                    expires_at: self.l1_deadline(now, deadline),
                    early: 0,
                },
            )
        });
        drop(stored);
        e
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
        crate::tier::LocalL1::evict_local(&*self.core, Some(key));
    }

    /// How many loads are in flight now (for tests and diagnostics).
    #[doc(hidden)]
    #[must_use]
    pub fn loads_in_flight(&self) -> usize {
        self.core.flights.len()
    }
}

/// Compute-if-absent for caches without negative results.
impl<K, V> Cache<K, V, Infallible>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Returns `key`'s value, running `load` on a miss and caching its result
    /// (compute-if-absent). Concurrent misses of `key` run `load` once and share its value.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let lengths: Cache<String, usize> = Cache::builder().build()?;
    /// assert_eq!(lengths.get_or_insert_with("hello", || "hello".len()), 5); // a miss: loads
    /// assert_eq!(lengths.get_or_insert_with("hello", || unreachable!()), 5); // a hit
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn get_or_insert_with<Q>(&self, key: &Q, load: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.get_or_load(key, || Ok(load())) {
            Ok(v) => v,
            Err(n) => match n {},
        }
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) with a fallible loader whose `Err`
    /// is never cached.
    ///
    /// The error goes to this caller alone, and callers waiting on this load then **retry one
    /// at a time**: the next becomes the leader and loads while the rest wait on it. This needs
    /// no `E: Clone`, never hands a caller an error that its own call did not meet, and still
    /// never runs two loads of one key at once. To share errors instead (and spare a failing
    /// backend), cache them: [`get_or_load`](Self::get_or_load) with `negative_ttl`.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let parsed: Cache<String, u64> = Cache::builder().build()?;
    /// assert_eq!(parsed.get_or_try_insert_with("42", || "42".parse::<u64>()), Ok(42));
    /// assert!(parsed.get_or_try_insert_with("x", || "x".parse::<u64>()).is_err());
    /// assert!(!parsed.contains_key("x")); // the error was not cached
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// `load`'s error, from this caller's own load.
    pub fn get_or_try_insert_with<Q, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.load_sync(key, || match load() {
            Ok(v) => Loaded::Value(v),
            Err(e) => Loaded::Error(e),
        }) {
            Loaded::Value(v) => Ok(v),
            Loaded::Error(e) => Err(e),
            Loaded::Negative(n) => match n {},
        }
    }

    /// The async form of [`get_or_insert_with`](Self::get_or_insert_with).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let names: Cache<u64, String> = Cache::builder().build()?;
    /// let name = names.get_or_insert_with_async(&1, || async { "ada".to_string() }).await;
    /// assert_eq!(name, "ada");
    /// let again = names.get_or_insert_with_async(&1, || async { unreachable!() }).await;
    /// assert_eq!(again, "ada"); // a hit: the future is never created
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_or_insert_with_async<Q, F>(&self, key: &Q, load: impl FnOnce() -> F) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = V>,
    {
        match self
            .get_or_load_async(key, || async { Ok(load().await) })
            .await
        {
            Ok(v) => v,
            Err(n) => match n {},
        }
    }

    /// The async form of [`get_or_try_insert_with`](Self::get_or_try_insert_with).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let names: Cache<u64, String> = Cache::builder().build()?;
    /// let failed = names.get_or_try_insert_with_async(&1, || async { Err("timeout") }).await;
    /// assert_eq!(failed, Err("timeout"));
    /// let ok = || async { Ok::<_, &str>("ada".to_string()) };
    /// assert_eq!(names.get_or_try_insert_with_async(&1, ok).await, Ok("ada".to_string()));
    /// assert_eq!(names.stats().loads, 2); // the error was not cached
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// `load`'s error, from this caller's own load.
    pub async fn get_or_try_insert_with_async<Q, E, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Result<V, E>>,
    {
        let loaded = self
            .load_async(key, || async {
                match load().await {
                    Ok(v) => Loaded::Value(v),
                    Err(e) => Loaded::Error(e),
                }
            })
            .await;
        match loaded {
            Loaded::Value(v) => Ok(v),
            Loaded::Error(e) => Err(e),
            Loaded::Negative(n) => match n {},
        }
    }
}

/// "Not found" caching for loaders that return `Option`.
impl<K, V> Cache<K, V, ()>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Like [`get_or_load`](Cache::get_or_load) for a loader that returns `None` for "not
    /// found": `None` is cached for `negative_ttl` when it is set.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// let find = |id: u64| (id == 1).then(|| "ada".to_string()); // a query
    /// assert_eq!(users.get_or_load_option(&1, || find(1)), Some("ada".to_string()));
    /// assert_eq!(users.get_or_load_option(&2, || find(2)), None);
    /// assert_eq!(users.get_or_load_option(&2, || unreachable!()), None); // "not found" is cached
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn get_or_load_option<Q>(&self, key: &Q, load: impl FnOnce() -> Option<V>) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.get_or_load(key, || load().ok_or(())).ok()
    }

    /// The async form of [`get_or_load_option`](Self::get_or_load_option).
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// async fn find(id: u64) -> Option<String> {
    ///     (id == 1).then(|| "ada".to_string()) // a query
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(users.get_or_load_option_async(&1, || find(1)).await, Some("ada".to_string()));
    /// assert_eq!(users.get_or_load_option_async(&2, || find(2)).await, None);
    /// assert_eq!(users.stats().loads, 2);
    /// assert_eq!(users.get_or_load_option_async(&2, || find(2)).await, None); // cached
    /// assert_eq!(users.stats().loads, 2);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_or_load_option_async<Q, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Option<V>>,
    {
        self.get_or_load_async(key, || async { load().await.ok_or(()) })
            .await
            .ok()
    }
}

impl<K, V, N> Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    fn stats(&self) -> CacheStats {
        self.meter.stats.snapshot(self.store.len())
    }

    /// Every store write goes through here (miss path only).
    ///
    /// Expired entries are removed when read, but an entry that is never read again could sit
    /// in a policy's protected area long after its deadline. So inserts also sweep: once an entry
    /// may have expired (`next_expiry` has passed) and an eighth of the capacity has been
    /// inserted since the last sweep, this insert removes every expired entry first. The cost is
    /// amortized to a few entry checks per insert, and an expired entry holds its room for at
    /// most capacity/8 inserts.
    fn insert(&self, key: K, stored: Stored<V, N>) -> Evictions<K, Stored<V, N>> {
        // Deadlines mostly rise, so a plain load usually shows there is nothing to lower.
        let gone_at = stored.expires_at.saturating_add(self.stale);
        if gone_at < self.next_expiry.load(Ordering::Relaxed) {
            self.next_expiry.fetch_min(gone_at, Ordering::Relaxed);
        }
        // A heuristic count: an increment lost to a race only delays a sweep by one insert, so it
        // is a plain load and store rather than a locked read-modify-write.
        let n = self.inserts_since_sweep.load(Ordering::Relaxed);
        self.inserts_since_sweep.store(n + 1, Ordering::Relaxed);
        if n >= self.sweep_interval
            && self.next_expiry.load(Ordering::Relaxed) <= self.meter.clock.now_nanos()
        {
            self.sweep();
        }
        self.store.insert(key, stored)
    }

    /// Removes every expired entry; returns how many.
    fn sweep(&self) -> u64 {
        self.inserts_since_sweep.store(0, Ordering::Relaxed);
        let now = self.meter.clock.now_nanos();
        let next = std::cell::Cell::new(NEVER);
        let removed = self.store.retain(|_, s| {
            let gone_at = s.expires_at.saturating_add(self.stale);
            let keep = gone_at > now;
            if keep {
                next.set(next.get().min(gone_at));
            }
            keep
        });
        // A concurrent insert may have lowered it meanwhile; it is then found by the next sweep,
        // due at the latest at `next`.
        self.next_expiry.store(next.get(), Ordering::Relaxed);
        self.meter.stats.add(Counter::Expiration, removed);
        removed
    }
}

impl<K, V, N> crate::tier::LocalL1<K> for Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    fn evict_local(&self, key: Option<&K>) {
        match key {
            Some(k) => {
                self.flights.invalidate(self.hasher.hash_one(k), k);
                drop(self.store.remove(k));
            }
            None => {
                self.flights.invalidate_all();
                self.store.clear();
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
}

/// Configures a [`Cache`]. Every setting is checked by [`build`](Self::build), which returns a
/// [`BuildError`] rather than panicking.
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
    name: Option<String>,
    capacity: u64,
    estimated_items: Option<usize>,
    weigher: Option<WeighFn<K, V>>,
    policy: Policy,
    ttl: Option<Duration>,
    negative_ttl: Option<Duration>,
    jitter: Option<Jitter>,
    clock: Clock,
    seed: Option<u64>,
    shards: Option<usize>,
    tier: Option<TierFactory<K, V, N>>,
    l1_ttl: Option<Duration>,
    lease: Option<Duration>,
    stale: Option<Duration>,
    early_refresh: Option<f64>,
    ttl_fn: Option<TtlFn<V>>,
    _types: PhantomData<fn() -> N>,
}

/// Makes a cache's remote tier from its name.
type TierFactory<K, V, N> = Box<dyn FnOnce(&str) -> Arc<dyn Tier<K, V, N>> + Send>;

impl<K, V, N> fmt::Debug for CacheBuilder<K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("weighted", &self.weigher.is_some())
            .field("policy", &self.policy)
            .field("ttl", &self.ttl)
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
    /// The defaults: [`DEFAULT_CAPACITY`] entries, [`Policy::S3Fifo`], no TTL.
    ///
    /// ```
    /// use cache_runtime::{Cache, CacheBuilder, DEFAULT_CAPACITY, Policy};
    ///
    /// let cache: Cache<u64, String> = CacheBuilder::new().build()?;
    /// assert_eq!(cache.policy(), Policy::S3Fifo);
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
            negative_ttl: None,
            jitter: None,
            clock: Clock::coarse(),
            seed: None,
            shards: None,
            tier: None,
            l1_ttl: None,
            lease: None,
            stale: None,
            early_refresh: None,
            ttl_fn: None,
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

    /// The eviction policy (default [`Policy::S3Fifo`]).
    ///
    /// ```
    /// use cache_runtime::{Cache, Policy};
    ///
    /// // The policy's name can come from configuration.
    /// let policy: Policy = "lfu".parse().unwrap();
    /// let cache: Cache<u64, u64> = Cache::builder().policy(policy).build()?;
    /// assert_eq!(cache.policy(), Policy::Lfu);
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

    /// Like [`redis`](CacheBuilder::redis), for a cache that also holds negative results
    /// (`N` is encoded with serde too).
    ///
    /// Adds a Redis tier (L2) behind this process's store (L1): a miss here reads Redis before
    /// loading, and every load, write-through and invalidation also goes to Redis, so several
    /// processes share results. Values travel through the [`Bincode`](crate::codec::Bincode)
    /// codec, under `<prefix>:<cache name>:<key hash>`. Redis faults never fail a call (see
    /// [`RedisBackend`](crate::RedisBackend)).
    ///
    /// ```no_run
    /// use cache_runtime::{Cache, RedisBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .name("users")
    ///     .ttl(Duration::from_secs(600))
    ///     .negative_ttl(Duration::from_secs(30))
    ///     .redis_with_negatives(redis, "myapp")
    ///     .build()?;
    /// // "No such user" is shared through Redis too, for `negative_ttl`.
    /// assert_eq!(users.get_or_load_option(&404, || None), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis_with_negatives(mut self, backend: Arc<crate::RedisBackend>, prefix: &str) -> Self
    where
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        N: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let prefix = prefix.to_owned();
        self.tier = Some(Box::new(move |name: &str| {
            Arc::new(crate::remote::RedisTier::<
                crate::codec::Bincode,
                crate::remote::WithNegatives,
            >::new(
                backend, &prefix, name, std::any::type_name::<(K, V, N)>()
            )) as Arc<dyn Tier<K, V, N>>
        }));
        self
    }

    /// With a remote tier: fleet-wide single-flight. A process that misses takes a lease on the
    /// key in Redis (`SET NX PX`, a random token) before loading; the others wait (bounded by
    /// `lease`) for its value to appear there, then load themselves if it has not. The lease
    /// is released only by its holder (compare-and-delete), or expires.
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")] {
    /// use cache_runtime::{Cache, RedisBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
    /// let reports: Cache<u64, String> = Cache::builder()
    ///     .ttl(Duration::from_secs(3600))
    ///     .redis(redis, "myapp")
    ///     .distributed_lock(Duration::from_secs(10))
    ///     .build()?;
    /// // One process of the fleet builds the report; the others wait (up to 10 s) for it.
    /// let report = reports.get_or_insert_with(&2024, || "the year's report".to_string());
    /// assert_eq!(report, "the year's report");
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn distributed_lock(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Stale-while-revalidate: for up to `window` past its TTL, an entry is still served to
    /// callers that can refresh it (`#[cached(stale = ..)]`, [`Cache::get_or_refresh`]), while
    /// one refresh per key runs in the background. A failed refresh keeps the stale value (and
    /// counts in [`CacheStats::refresh_errors`]); past the window the entry is gone.
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

    /// With a remote tier: how long an entry stays in this process (L1) before it is read from
    /// the remote tier again (default 5 s, at most the TTL). Other processes' writes and
    /// invalidations reach this process within this time.
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")] {
    /// use cache_runtime::{Cache, RedisBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
    /// let prices: Cache<String, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(600))
    ///     .redis(redis, "shop")
    ///     .l1_ttl(Duration::from_millis(500)) // other processes' updates show within 0.5 s
    ///     .build()?;
    /// assert_eq!(prices.get_or_insert_with("tea", || 3), 3);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = Some(ttl);
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

#[cfg(feature = "redis")]
impl<K, V> CacheBuilder<K, V, Infallible> {
    /// Adds a Redis tier (L2) behind this process's store (L1): a miss here reads Redis before
    /// loading, and every load, write-through and invalidation also goes to Redis, so several
    /// processes share results. Values travel through the [`Bincode`](crate::codec::Bincode)
    /// codec, under `<prefix>:<cache name>:<key hash>`. Redis faults never fail a call (see
    /// [`RedisBackend`](crate::RedisBackend)).
    ///
    /// ```no_run
    /// use cache_runtime::{Cache, RedisBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
    /// let users: Cache<u64, String> = Cache::builder()
    ///     .name("users")
    ///     .ttl(Duration::from_secs(600))
    ///     .redis(Arc::clone(&redis), "myapp") // keys `myapp:users:<key hash>`
    ///     .build()?;
    /// // A miss asks Redis before loading; a load is stored in both tiers.
    /// assert_eq!(users.get_or_insert_with(&1, || "ada".to_string()), "ada");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(mut self, backend: Arc<crate::RedisBackend>, prefix: &str) -> Self
    where
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let prefix = prefix.to_owned();
        self.tier = Some(Box::new(move |name: &str| {
            Arc::new(crate::remote::RedisTier::<
                crate::codec::Bincode,
                crate::remote::NoNegatives,
            >::new(
                backend, &prefix, name, std::any::type_name::<(K, V)>()
            )) as Arc<dyn Tier<K, V, Infallible>>
        }));
        self
    }
}

impl<K, V, N> CacheBuilder<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Builds the cache and lists it in the [`registry`](crate::registry).
    ///
    /// ```
    /// use cache_runtime::{BuildError, Cache};
    /// use std::time::Duration;
    ///
    /// let users = Cache::<u64, String>::builder().ttl(Duration::from_secs(60)).build();
    /// assert!(users.is_ok());
    /// let err = Cache::<u64, String>::builder().capacity(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroCapacity);
    /// assert_eq!(err.to_string(), "cache capacity must be at least 1");
    /// ```
    ///
    /// # Errors
    /// A zero capacity, a zero or overlong TTL, a jitter over 100% (or without a TTL), a shard
    /// count of zero or over 65,536.
    pub fn build(self) -> Result<Cache<K, V, N>, BuildError> {
        self.validate()?;
        Ok(self.build_validated())
    }

    /// Builds with these settings, or, if they are invalid, with the defaults (keeping the name
    /// and policy), returning the error too. Never fails.
    pub(crate) fn build_or_default(self) -> (Cache<K, V, N>, Option<BuildError>) {
        let Err(error) = self.validate() else {
            return (self.build_validated(), None);
        };
        // Give up as little as possible: first the jitter, then the TTLs, then the sizing.
        let mut b = self;
        b.jitter = None;
        if b.validate().is_err() {
            b.stale = b.stale.filter(|t| ttl_nanos(*t, "stale").is_ok());
            b.early_refresh = None;
        }
        if b.validate().is_err() {
            b.ttl = b.ttl.filter(|t| ttl_nanos(*t, "ttl").is_ok());
            b.negative_ttl = b
                .negative_ttl
                .filter(|t| ttl_nanos(*t, "negative_ttl").is_ok());
        }
        if b.validate().is_err() {
            b.capacity = DEFAULT_CAPACITY;
            b.shards = None;
        }
        (b.build_validated(), Some(error))
    }

    /// The checks of [`build`](Self::build), without building.
    fn validate(&self) -> Result<(), BuildError> {
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if let Some(s) = self.shards
            && (s == 0 || s > 65_536)
        {
            return Err(BuildError::InvalidShards(s));
        }
        if let Some(w) = self.stale {
            ttl_nanos(w, "stale")?;
        }
        if let Some(beta) = self.early_refresh {
            if !(beta.is_finite() && beta > 0.0 && beta <= 1e6) {
                return Err(BuildError::InvalidEarlyRefresh(beta.to_string()));
            }
            if self.ttl.is_none() && self.ttl_fn.is_none() {
                return Err(BuildError::InvalidEarlyRefresh(
                    "early refresh needs a `ttl` (or `ttl_fn`): it acts before expiry".into(),
                ));
            }
        }
        Expiry::new(self.jitter_base(), self.negative_ttl, self.jitter, 0).map(|_| ())
    }

    /// The TTL the jitter is relative to: with only a `ttl_fn`, a jitter fraction applies to
    /// each value's own TTL (as a fraction of a nominal one).
    fn jitter_base(&self) -> Option<Duration> {
        if self.ttl.is_none() && self.ttl_fn.is_some() && self.jitter.is_some() {
            Some(Duration::from_secs(3600))
        } else {
            self.ttl
        }
    }

    /// Builds settings that [`validate`](Self::validate) accepted; never fails.
    fn build_validated(mut self) -> Cache<K, V, N> {
        self.capacity = self.capacity.clamp(1, u64::MAX >> 2);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let seed = self
            .seed
            .unwrap_or_else(|| std::hash::RandomState::new().hash_one(id));
        let expiry = Expiry::new(self.jitter_base(), self.negative_ttl, self.jitter, seed)
            .unwrap_or_else(|_| Expiry::none(seed));
        self.assemble(id, seed, expiry)
    }

    /// The construction proper, from validated settings.
    fn assemble(self, id: u64, seed: u64, expiry: Expiry) -> Cache<K, V, N> {
        if self.ttl.is_some() || self.negative_ttl.is_some() || self.ttl_fn.is_some() {
            crate::clock::start_ticker();
        }
        let meter = Arc::new(Meter {
            stats: Stats::new(),
            clock: self.clock,
        });
        let estimated_items = self.estimated_items.unwrap_or_else(|| {
            let items = if self.weigher.is_some() {
                self.capacity / 64
            } else {
                self.capacity
            };
            usize::try_from(items.min(1_000_000))
                .unwrap_or(1_000_000)
                .max(1)
        });
        let weigher = Weigher(self.weigher.map(|f| {
            Arc::new(move |k: &K, s: &Stored<V, N>| match &s.entry {
                Entry::Value(v) => f(k, v),
                Entry::Negative(_) => 1,
            }) as WeighFn<K, Stored<V, N>>
        }));
        let listener_meter = Arc::clone(&meter);
        #[cfg(feature = "tracing")]
        let listener_name: Arc<str> =
            Arc::from(self.name.clone().unwrap_or_else(|| format!("cache-{id}")));
        let listener = Listener(Arc::new(move |s: &Stored<V, N>| {
            let expired = s.expires_at != NEVER && listener_meter.clock.is_past(s.expires_at);
            #[cfg(feature = "tracing")]
            tracing::trace!(cache = %listener_name, expired, "cache eviction");
            listener_meter.stats.incr(if expired {
                Counter::Expiration
            } else {
                Counter::Eviction
            });
        }));
        let hasher = FixedState::with_seed(seed);
        let store = Store::new(StoreConfig {
            policy: self.policy,
            capacity: self.capacity,
            estimated_items,
            shards: self.shards,
            hasher: hasher.clone(),
            weigher,
            listener,
        });
        let name = self.name.unwrap_or_else(|| format!("cache-{id}"));
        let tier = self.tier.map(|make| make(&name));
        let l1_ttl = tier.as_ref().map(|_| {
            let d = self.l1_ttl.unwrap_or(Duration::from_secs(5));
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        let core = Arc::new(Core {
            store,
            flights: Flights::new(shard_count(None, 4096)),
            expiry,
            meter,
            hasher,
            name,
            policy: self.policy,
            next_expiry: AtomicU64::new(NEVER),
            inserts_since_sweep: AtomicU64::new(0),
            sweep_interval: (estimated_items as u64 / 8).max(16),
            lease: tier.as_ref().and(self.lease),
            tier,
            l1_ttl,
            stale: self
                .stale
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2)),
            beta: self.early_refresh.unwrap_or(0.0),
            ttl_fn: self.ttl_fn,
        });
        if let Some(tier) = &core.tier {
            let l1: Arc<dyn crate::tier::LocalL1<K>> = core.clone();
            tier.attach(Arc::downgrade(&l1));
        }
        let report: Arc<dyn Report> = core.clone();
        let any: Arc<dyn std::any::Any + Send + Sync> = core.clone();
        registry::register(Arc::downgrade(&report), Arc::downgrade(&any));
        Cache { core }
    }
}

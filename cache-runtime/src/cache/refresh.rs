//! Stale-while-revalidate and early refresh: a caller that finds a stale (or early-drawn) value
//! serves it and holds the key's one refresh, which runs in the background or inline. The
//! refresh's outcome is stored through the same steps as a miss's load.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::lookup::{Found, hit_counter};
use super::{Cache, Core};
use crate::driver::{Async, Blocking, Io, block_on};
use crate::entry::{Entry, Loaded};
use crate::flight::{Flights, Lead};
use crate::invalidate::frame::{self, Frame, Within};
use crate::stats::Counter;

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
    /// What the refresh's loader reads and tags (see [`invalidate`](crate::invalidate)).
    frame: Frame,
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

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
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
                        frame: self.frame(),
                    },
                )
            }
            None => Lookup::Hit(e),
        }
    }

    /// Ends a refresh with its loader's outcome: stores a cacheable one (in the remote tier and
    /// in L1, as a miss's load is stored) and returns the new entry; for an outcome not to
    /// cache, counts a failed refresh, keeps the old entry and hands the outcome back.
    async fn finish_refresh<I: Io, E>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        out: Loaded<V, N, E>,
    ) -> Result<Entry<V, N>, Loaded<V, N, E>> {
        let Refresh {
            lead,
            started,
            frame,
        } = refresh;
        let c = match self.cacheable(out, (started, frame.finish())) {
            Ok(c) => c,
            Err(out) => {
                // Counted before the key's slot is released: whoever sees the refresh over
                // (`loads_in_flight`) sees it counted.
                self.refresh_failed();
                drop(lead);
                return Err(out);
            }
        };
        match self.remote_key(key) {
            (key, Some((tier, rk))) => {
                self.store_loaded::<I, _>(lead, || key, (tier, &rk), &c)
                    .await;
            }
            (key, None) => drop(self.complete_local(lead, || key, &c)),
        }
        Ok(c.entry)
    }

    /// Ends a background refresh: its loader's outcome, or (`Err`) a panic that ended it.
    async fn finish_background<I: Io, E>(
        &self,
        refresh: Refresh<K, V, N>,
        key: K,
        out: Result<Loaded<V, N, E>, ()>,
    ) {
        match out {
            Ok(out) => drop(self.finish_refresh::<I, E>(refresh, key, out).await),
            Err(()) => {
                // Counted first, then the slot released (see `finish_refresh`).
                self.refresh_failed();
                drop(refresh);
            }
        }
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
        let mut refresh = refresh;
        crate::refresh::spawn(Box::new(move || {
            let timer = cache.time_load();
            let frame = &mut refresh.frame;
            let out = catch_unwind(AssertUnwindSafe(|| frame::within(frame, load))).map_err(drop);
            // A panic counts as a failed load (and, below, a failed refresh).
            if out.is_ok() {
                timer.finish();
            } else {
                drop(timer);
            }
            block_on(cache.finish_background::<Blocking, E>(refresh, key, out));
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
        let mut refresh = refresh;
        crate::refresh::spawn_async(async move {
            let timer = cache.time_load();
            let frame = &mut refresh.frame;
            let out = crate::refresh::CatchUnwind(Box::pin(async move {
                let fut = std::pin::pin!(load());
                Within { fut, frame }.await
            }))
            .await;
            if out.is_ok() {
                timer.finish();
            } else {
                drop(timer);
            }
            cache.finish_background::<Async, E>(refresh, key, out).await;
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
        block_on(self.refresh_here::<Blocking, E, _>((refresh, key, old), || ready(load())))
    }

    /// The inline refresh of `key` (whose entry is `old`), for either driver: the new entry,
    /// or, when the outcome is not to be cached, `old` (still fresh) and a counted failed
    /// refresh. If the async caller's future is dropped, the refresh ends and `old` stays.
    pub(crate) async fn refresh_here<I: Io, E, F: Future<Output = Loaded<V, N, E>>>(
        &self,
        (mut refresh, key, old): (Refresh<K, V, N>, K, Entry<V, N>),
        load: impl FnOnce() -> F,
    ) -> Entry<V, N> {
        let timer = self.time_load();
        let fut = frame::within(&mut refresh.frame, load);
        let out = Within {
            fut: std::pin::pin!(fut),
            frame: &mut refresh.frame,
        }
        .await;
        timer.finish();
        self.finish_refresh::<I, E>(refresh, key, out)
            .await
            .unwrap_or(old)
    }

    /// Stale-while-revalidate and early refresh for direct callers: like
    /// [`get_or_load`](Self::get_or_load), but a value within the cache's
    /// [`stale_while_revalidate`](crate::CacheBuilder::stale_while_revalidate) window (or drawn for an
    /// [`early_refresh`](crate::CacheBuilder::early_refresh)) is returned at once while `load` refreshes
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
        block_on(self.serve_or_load::<Blocking, _, _>(
            key,
            load,
            |cache, r, key, load| cache.spawn_refresh(r, key, move || to_loaded(load())),
            |load| ready(load()),
        ))
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
        self.serve_or_load::<Async, _, _>(
            key,
            load,
            |cache, r, key, load| {
                cache.spawn_refresh_async(r, key, move || async move { to_loaded(load().await) });
            },
            |load| load(),
        )
        .await
    }

    /// [`get_or_refresh`](Self::get_or_refresh) for either driver: a hit is served; a stale or
    /// early one is served while `spawn` starts its refresh with `load`; a miss loads with
    /// `load_now(load)`.
    async fn serve_or_load<I: Io, L, F>(
        &self,
        key: K,
        load: L,
        spawn: impl FnOnce(&Self, Refresh<K, V, N>, K, L),
        load_now: impl FnOnce(L) -> F,
    ) -> Result<V, N>
    where
        K: Clone,
        F: Future<Output = Result<V, N>>,
    {
        match self.lookup_refresh(&key) {
            Lookup::Hit(e) => e.into_result(),
            Lookup::Refresh(e, r) => {
                spawn(self, r, key, load);
                e.into_result()
            }
            Lookup::Miss => from_loaded(
                self.load_after_miss::<I, _, _, _>(&key, None, || async {
                    to_loaded(load_now(load).await)
                })
                .await,
            ),
        }
    }
}

/// A loader's `Result` as an outcome to cache: `Err` is a negative result.
pub(super) fn to_loaded<V, N>(r: Result<V, N>) -> Loaded<V, N, Infallible> {
    match r {
        Ok(v) => Loaded::Value(v),
        Err(n) => Loaded::Negative(n),
    }
}

/// The `Result` of an outcome whose errors are all negative results.
pub(super) fn from_loaded<V, N>(l: Loaded<V, N, Infallible>) -> Result<V, N> {
    match l {
        Loaded::Value(v) => Ok(v),
        Loaded::Negative(n) => Err(n),
        Loaded::Error(e) => match e {},
    }
}

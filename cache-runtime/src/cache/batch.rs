//! Batch loading (Caffeine's `getAll`, Django's `get_many`, Rails' `fetch_multi`): the hits of a
//! batch are served from the cache, its misses go to ONE loader call, and each missing key joins
//! the key's single-flight, so that a single-key miss of the same key waits for the batch (and a
//! batch waits for a single-key load already in flight) instead of loading it again.
//!
//! Written once over the [`Io`] driver, like the miss path it shares its steps with: the remote
//! tier is asked for every missing key in one multi-get (`MGET`, pipelined `mg`), the loader runs
//! counted, timed and in a load frame, and each loaded entry is stored as a single-key load
//! stores it (L2 first, then L1 for the key's waiters).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::hash::Hash;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use super::Cache;
use super::miss::{LOAD_PANICKED, ToCache, remaining};
use crate::driver::{Async, Blocking, Io, block_on};
use crate::entry::{Entry, Loaded};
use crate::flight::{Failure, Flight, Join, Leader, Waited};
use crate::invalidate::frame::{self, Within};
use crate::invalidate::stamps::Stamps;
use crate::stats::Counter;
use crate::sync::Arc;
use crate::tier::{self, RemoteKey, Tier};

/// What the public forms of a batch differ in: what their loader returns per key, and what a
/// key it does not return is.
pub(super) struct Shape<O, V, N> {
    /// A key's outcome from what the loader returned for it.
    outcome: fn(O) -> Result<V, N>,
    /// A key the loader did not return: a negative result (cached with `negative_ttl`), or
    /// `None`: left uncached.
    absent: fn() -> Option<N>,
}

/// A key this batch loads: the key, its hash, its single-flight lead and its remote name.
struct Led<'a, K, V, N> {
    key: K,
    hash: u64,
    leader: Leader<'a, K, Entry<V, N>>,
    remote: Option<RemoteKey>,
}

/// The leads of a batch while its loader runs: when the loader panics, each lead ends with the
/// panic (its waiters panic with [`LOAD_PANICKED`], as a single-key load's would); dropped
/// otherwise (a cancelled batch), each is abandoned and its waiters load in its place.
struct Leads<'a, K, V, N> {
    led: Vec<Led<'a, K, V, N>>,
    panicked: AtomicBool,
}

impl<K, V, N> Drop for Leads<'_, K, V, N> {
    fn drop(&mut self) {
        if self.panicked.load(Ordering::Relaxed) {
            for l in self.led.drain(..) {
                l.leader.fail(Failure::Panicked);
            }
        }
    }
}

/// Sets the flag when dropped while its thread unwinds.
struct OnUnwind<'a>(&'a AtomicBool);

impl Drop for OnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A loader's future, watched for a panic in its `poll`.
struct Watched<'a, Fut> {
    fut: Pin<&'a mut Fut>,
    panicked: &'a AtomicBool,
}

impl<Fut: Future> Future for Watched<'_, Fut> {
    type Output = Fut::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let this = self.get_mut();
        let _watch = OnUnwind(this.panicked);
        this.fut.as_mut().poll(cx)
    }
}

/// A key whose load another caller leads: the flight, and whether the key was invalidated
/// during it.
type Joined<K, V, N> = (K, Arc<Flight<Entry<V, N>>>, bool);

/// A loaded entry of a batch to store in both tiers: its key, lead, remote name and entry.
type ToStore<'a, K, V, N> = (K, Leader<'a, K, Entry<V, N>>, RemoteKey, ToCache<V, N>);

/// What one round of a batch left to do.
struct Round<K> {
    /// Keys whose load (joined in another caller) ended without an outcome to share: the next
    /// round loads them.
    retry: Vec<K>,
    /// Keys led by a load on this very thread (the batch runs inside that load): loaded
    /// uncached, as a single-key re-entrant call is.
    reentrant: Vec<K>,
}

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// The batch, driven by `I`: each key's entry (handed to `put`, in no particular order),
    /// from the cache, from a load joined, from the remote tier or from `load`, which receives
    /// the keys this call leads (usually one call; another only for keys whose joined load
    /// failed or was cancelled). A key asked twice is answered twice.
    ///
    /// # Errors
    /// The loader's error: the keys it was asked for are left uncached (their waiters load).
    pub(super) async fn load_many<I: Io, E, O, F, Fut>(
        &self,
        keys: impl IntoIterator<Item = K>,
        mut load: F,
        shape: &Shape<O, V, N>,
        put: &mut impl FnMut(K, Entry<V, N>),
    ) -> Result<(), E>
    where
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<HashMap<K, O>, E>>,
    {
        // Inside another cache's load, what the batch returns is recorded as read by it.
        let recording = frame::active();
        let mut put = |key: K, e: Entry<V, N>| {
            if recording {
                self.record_stored(&key);
            }
            put(key, e);
        };
        let mut missing = Vec::new();
        for key in keys {
            match self.lookup_counted(&key) {
                Some(e) => put(key, e),
                None => missing.push(key),
            }
        }
        while !missing.is_empty() {
            let round = self
                .batch_round::<I, E, O, F, Fut>(missing, &mut load, shape, &mut put)
                .await?;
            if !round.reentrant.is_empty() {
                // Inside the load of one of these keys on this thread: answer uncached rather
                // than wait for ourselves.
                let timer = self.time_load();
                let loaded = load(round.reentrant).await;
                timer.finish();
                for (k, o) in loaded? {
                    put(
                        k,
                        (shape.outcome)(o).map_or_else(Entry::Negative, Entry::Value),
                    );
                }
            }
            missing = round.retry;
        }
        Ok(())
    }

    /// One round: leads or joins each key's flight; the leads are answered by the remote tier
    /// (one multi-get) or by one call of `load`, and stored; then the joined loads are waited
    /// for. Leads end before any wait, so that two batches overlapping on their keys never wait
    /// for each other in a cycle.
    async fn batch_round<I: Io, E, O, F, Fut>(
        &self,
        keys: Vec<K>,
        load: &mut F,
        shape: &Shape<O, V, N>,
        put: &mut impl FnMut(K, Entry<V, N>),
    ) -> Result<Round<K>, E>
    where
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<HashMap<K, O>, E>>,
    {
        let mut led = Vec::new();
        let mut joined: Vec<Joined<K, V, N>> = Vec::new();
        for key in keys {
            let hash = self.hash(&key);
            match self.core.flights.join(hash, &key, I::BLOCKING) {
                Join::Leader(leader) => {
                    // Another caller may have stored the value between our miss and now.
                    if let Some(e) = self.lookup(&key) {
                        leader.complete(&e, || ());
                        put(key, e);
                    } else {
                        led.push(Led {
                            key,
                            hash,
                            leader,
                            remote: None,
                        });
                    }
                }
                Join::Waiter(flight, stale) => joined.push((key, flight, stale)),
            }
        }
        let reachable = self.ask_remote_many::<I>(&mut led, put).await;
        if !led.is_empty() {
            self.load_led::<I, E, O, F, Fut>(led, reachable, load, shape, put)
                .await?;
        }
        let mut round = Round {
            retry: Vec::new(),
            reentrant: Vec::new(),
        };
        for (key, flight, stale) in joined {
            match I::wait(flight).await {
                Waited::Value(e) if !stale => {
                    self.core.meter.stats.incr(Counter::Joined);
                    put(key, e);
                }
                Waited::Failed(Failure::Panicked) if !stale => {
                    self.core.meter.stats.incr(Counter::Joined);
                    panic!("{LOAD_PANICKED}");
                }
                Waited::Reentrant => round.reentrant.push(key),
                // A shared error is of another caller's type: this batch loads the key itself.
                Waited::Value(_) | Waited::Failed(_) | Waited::Retry => round.retry.push(key),
            }
        }
        Ok(round)
    }

    /// Asks the remote tier for the led keys in one multi-get: each entry found fills L1 and
    /// ends its lead (and leaves `led`). `false` when the tier did not answer (the loaded
    /// entries are then kept in this process only, as a single-key load's are).
    async fn ask_remote_many<I: Io>(
        &self,
        led: &mut Vec<Led<'_, K, V, N>>,
        put: &mut impl FnMut(K, Entry<V, N>),
    ) -> bool {
        let Some(tier) = self.core.tier.as_deref() else {
            return true;
        };
        if led.is_empty() {
            return true;
        }
        for l in led.iter_mut() {
            l.remote = tier.key(&l.key);
        }
        let asked: Vec<&RemoteKey> = led.iter().filter_map(|l| l.remote.as_ref()).collect();
        let mut fetched = tier::get_many::<I, K, V, N>(tier, &asked).await.into_iter();
        drop(asked);
        let mut reachable = true;
        let mut left = Vec::with_capacity(led.len());
        for l in led.drain(..) {
            // A key that does not encode has no remote entry: it is loaded for this process.
            let answer = if l.remote.is_some() {
                fetched.next()
            } else {
                None
            };
            match answer {
                Some(tier::Fetched::Hit(e)) => {
                    let e = self.fill_from_remote(l.leader, l.key.clone(), e);
                    put(l.key, e);
                }
                Some(tier::Fetched::Fault) => {
                    reachable = false;
                    left.push(l);
                }
                _ => left.push(l),
            }
        }
        *led = left;
        reachable
    }

    /// Runs `load` once for the led keys, and stores what it returned (in the remote tier too
    /// when it is `reachable`), ending each lead.
    async fn load_led<I: Io, E, O, F, Fut>(
        &self,
        led: Vec<Led<'_, K, V, N>>,
        reachable: bool,
        load: &mut F,
        shape: &Shape<O, V, N>,
        put: &mut impl FnMut(K, Entry<V, N>),
    ) -> Result<(), E>
    where
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<HashMap<K, O>, E>>,
    {
        let keys: Vec<K> = led.iter().map(|l| l.key.clone()).collect();
        let mut leads = Leads {
            led,
            panicked: AtomicBool::new(false),
        };
        let (started, timer) = self.start_load();
        let mut frame = self.frame();
        let fut = {
            let _watch = OnUnwind(&leads.panicked);
            frame::within(&mut frame, || load(keys))
        };
        let fut = Within {
            fut: pin!(fut),
            frame: &mut frame,
        };
        let out = Watched {
            fut: pin!(fut),
            panicked: &leads.panicked,
        }
        .await;
        timer.finish();
        let stamps = frame.finish();
        let led = std::mem::take(&mut leads.led);
        drop(leads);
        let mut loaded = match out {
            Ok(loaded) => loaded,
            Err(e) => {
                // Each lead is abandoned: its waiters load the key themselves.
                self.core.meter.stats.incr(Counter::LoadError);
                return Err(e);
            }
        };
        let tier = self.core.tier.as_deref().filter(|_| reachable);
        // The entries for both tiers, written to L2 together once all are settled.
        let mut to_store = Vec::new();
        for Led {
            key,
            hash,
            leader,
            remote,
        } in led
        {
            let out = match loaded.remove(&key).map(shape.outcome) {
                Some(Ok(v)) => Loaded::Value(v),
                Some(Err(n)) => Loaded::Negative(n),
                None => match (shape.absent)() {
                    Some(n) => Loaded::Negative(n),
                    // Not returned: left uncached; the key's waiters load it themselves.
                    None => continue,
                },
            };
            let settled =
                self.settle::<Infallible>(leader, hash, out, (started, stamps.clone()), None);
            match (settled, remote.filter(|_| tier.is_some())) {
                (Ok((leader, c)), Some(rk)) => to_store.push((key, leader, rk, c)),
                (Ok((leader, c)), None) => {
                    self.complete_local(leader, || key.clone(), &c);
                    put(key, c.entry);
                }
                (Err(Loaded::Value(v)), _) => put(key, Entry::Value(v)),
                (Err(Loaded::Negative(n)), _) => put(key, Entry::Negative(n)),
                (Err(Loaded::Error(never)), _) => match never {},
            }
        }
        if let Some(tier) = tier.filter(|_| !to_store.is_empty()) {
            self.store_batch::<I>(tier, stamps.as_ref(), to_store, put)
                .await;
        }
        Ok(())
    }

    /// Stores a batch's loaded entries as [`store_loaded`](Self::store_loaded) stores one:
    /// first in the remote tier (all in one round trip where the backend can), then in L1 for
    /// each key's waiters, undoing the remote write of a key invalidated during the load.
    async fn store_batch<I: Io>(
        &self,
        tier: &dyn Tier<K, V, N>,
        stamps: Option<&Arc<Stamps>>,
        to_store: Vec<ToStore<'_, K, V, N>>,
        put: &mut impl FnMut(K, Entry<V, N>),
    ) {
        if let Some(remote) = Self::remote_stamps::<I>(tier, stamps).await {
            let items: Vec<_> = to_store
                .iter()
                .map(|(_, _, rk, c)| (rk, &c.entry, remaining(c.now, c.deadline)))
                .collect();
            tier::put_many::<I, K, V, N>(tier, &items, &remote).await;
        }
        for (key, leader, rk, c) in to_store {
            if !self.complete_local(leader, || key.clone(), &c) {
                tier::write::<I, K, V, N>(tier, &rk, None).await;
            }
            put(key, c.entry);
        }
    }

    /// Batch loading with a loader that yields, per key, a value or a negative result: the
    /// general form of [`get_or_load_many`](Cache::get_or_load_many).
    ///
    /// The hits are served from the cache; the misses go to ONE call of `load`, which receives
    /// the missing keys (each once, in no particular order) and returns what it found. Each
    /// missing key joins its single-flight: a concurrent [`get_or_load`](Self::get_or_load) of
    /// one of them waits for this batch, and this batch waits for a load of a key already in
    /// flight (another batch's, or a single key's) instead of loading it again. `Ok` values
    /// are cached with the TTL; `Err` negative results for `negative_ttl` when it is set
    /// (returned uncached otherwise); a key `load` does not return is left uncached and is
    /// absent from the answer. With a remote tier, the missing keys are looked up there in one
    /// round trip (`MGET`, or a multi-get per memcached server) before `load` runs.
    ///
    /// `load` runs again only for keys whose joined load failed or was cancelled, with those
    /// keys alone.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Gone;
    ///
    /// let users: Cache<u64, String, Gone> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(30))
    ///     .build()?;
    /// // One query for all the keys the cache does not hold: 3 is a deleted user.
    /// let query = |ids: Vec<u64>| -> Result<HashMap<u64, Result<String, Gone>>, std::io::Error> {
    ///     Ok(ids.into_iter().map(|id| (id, if id == 3 { Err(Gone) } else { Ok(format!("user {id}")) })).collect())
    /// };
    /// let got = users.get_or_load_many_with([1, 2, 3], query)?;
    /// assert_eq!(got[&1], Ok("user 1".to_string()));
    /// assert_eq!(got[&3], Err(Gone));
    /// // Now all three are cached, the "gone" one too: no query.
    /// let again = users.get_or_load_many_with([1, 2, 3], |_| -> Result<_, std::io::Error> { unreachable!() })?;
    /// assert_eq!(again.len(), 3);
    /// assert_eq!(users.stats().loads, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The loader's error; nothing it was asked for is cached.
    ///
    /// # Panics
    /// When `load` panics (the panic reaches this caller; each caller waiting on one of its
    /// keys panics with "the load of this key panicked in another caller"), or when a load
    /// this batch joined panicked.
    pub fn get_or_load_many_with<E>(
        &self,
        keys: impl IntoIterator<Item = K>,
        mut load: impl FnMut(Vec<K>) -> Result<HashMap<K, Result<V, N>>, E>,
    ) -> Result<HashMap<K, Result<V, N>>, E> {
        let mut out = HashMap::new();
        block_on(self.load_many::<Blocking, E, _, _, _>(
            keys,
            |missing| ready(load(missing)),
            &Shape::outcomes(),
            &mut |k, e| drop(out.insert(k, e.into_result())),
        ))?;
        Ok(out)
    }

    /// The async form of [`get_or_load_many_with`](Self::get_or_load_many_with). If this future
    /// is dropped while it loads, the keys it led are released and their waiters load them.
    ///
    /// # Errors
    /// The loader's error; nothing it was asked for is cached.
    pub async fn get_or_load_many_with_async<E, F>(
        &self,
        keys: impl IntoIterator<Item = K>,
        load: impl FnMut(Vec<K>) -> F,
    ) -> Result<HashMap<K, Result<V, N>>, E>
    where
        F: Future<Output = Result<HashMap<K, Result<V, N>>, E>>,
    {
        let mut out = HashMap::new();
        self.load_many::<Async, E, _, _, _>(keys, load, &Shape::outcomes(), &mut |k, e| {
            drop(out.insert(k, e.into_result()));
        })
        .await?;
        Ok(out)
    }
}

/// What a key that a batch's loader does not return becomes, by the cache's type of negative
/// results: for `Cache<K, V>` (`Infallible`), nothing (it is left uncached); for
/// `Cache<K, V, ()>`, "not found" (cached for `negative_ttl` when it is set). Sealed.
pub trait Absent: Sized + sealed::Sealed {
    /// The negative result of a key the loader did not return (`None`: left uncached).
    #[doc(hidden)]
    fn absent() -> Option<Self>;
}

impl Absent for Infallible {
    fn absent() -> Option<Self> {
        None
    }
}

impl Absent for () {
    fn absent() -> Option<Self> {
        Some(())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::convert::Infallible {}
    impl Sealed for () {}
}

/// Batch loading with a loader of values: `Cache<K, V>`, and `Cache<K, V, ()>` (the form of
/// `#[cached(batch)]` functions), where a key the loader does not return is "not found".
impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Absent + Clone + Send + Sync + 'static,
{
    /// Returns the values of `keys`, loading those the cache does not hold with ONE call of
    /// `load` (Caffeine's `getAll`, Django's `get_many`).
    ///
    /// `load` receives the missing keys (each once, in no particular order) and returns the
    /// values it found. A key it does not return is absent from the answer and, on a
    /// `Cache<K, V>`, left uncached; on a `Cache<K, V, ()>` it is "not found", cached as such
    /// for `negative_ttl` when it is set (the next batch does not ask for it again). Each
    /// missing key joins its single-flight, so a concurrent single-key load of it waits for the
    /// batch, and the batch waits for a load already in flight rather than loading the key
    /// twice. See [`get_or_load_many_with`](Cache::get_or_load_many_with) for the details.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::collections::HashMap;
    ///
    /// let squares: Cache<u64, u64> = Cache::builder().build()?;
    /// squares.insert(2, 4);
    /// let mut asked = Vec::new();
    /// let got = squares.get_or_load_many([1, 2, 3], |missing| {
    ///     asked = missing.clone();
    ///     Ok::<_, std::convert::Infallible>(missing.into_iter().map(|k| (k, k * k)).collect())
    /// })?;
    /// assert_eq!(got, HashMap::from([(1, 1), (2, 4), (3, 9)]));
    /// asked.sort();
    /// assert_eq!(asked, [1, 3]); // 2 was a hit
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// "Not found" cached:
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(30))
    ///     .build()?;
    /// let query = |ids: Vec<u64>| {
    ///     // Only even ids exist.
    ///     Ok::<_, std::io::Error>(ids.into_iter().filter(|id| id % 2 == 0).map(|id| (id, format!("user {id}"))).collect::<HashMap<_, _>>())
    /// };
    /// let got = users.get_or_load_many(1..=4, query)?;
    /// assert_eq!(got.len(), 2);
    /// // 1 and 3 are cached as "not found": a second batch asks for nothing.
    /// let again = users.get_or_load_many(1..=4, |missing| { assert!(missing.is_empty()); query(missing) })?;
    /// assert_eq!(again, got);
    /// assert_eq!(users.stats().loads, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The loader's error; nothing it was asked for is cached.
    ///
    /// # Panics
    /// As [`get_or_load_many_with`](Cache::get_or_load_many_with).
    pub fn get_or_load_many<E>(
        &self,
        keys: impl IntoIterator<Item = K>,
        mut load: impl FnMut(Vec<K>) -> Result<HashMap<K, V>, E>,
    ) -> Result<HashMap<K, V>, E> {
        let mut out = HashMap::new();
        block_on(self.load_many::<Blocking, E, _, _, _>(
            keys,
            |missing| ready(load(missing)),
            &Shape::values(N::absent),
            &mut |k, e| keep_value(&mut out, k, e),
        ))?;
        Ok(out)
    }

    /// The async form of [`get_or_load_many`](Self::get_or_load_many). If this future is
    /// dropped while it loads, the keys it led are released and their waiters load them.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::collections::HashMap;
    ///
    /// async fn fetch(ids: Vec<u64>) -> Result<HashMap<u64, String>, std::io::Error> {
    ///     Ok(ids.into_iter().map(|id| (id, format!("user {id}"))).collect()) // one query
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let users: Cache<u64, String> = Cache::builder().build()?;
    /// let got = users.get_or_load_many_async(vec![1, 2], fetch).await?;
    /// assert_eq!(got[&2], "user 2");
    /// users.get_or_load_many_async(vec![1, 2], fetch).await?; // both hits
    /// assert_eq!(users.stats().loads, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The loader's error; nothing it was asked for is cached.
    pub async fn get_or_load_many_async<E, F>(
        &self,
        keys: impl IntoIterator<Item = K>,
        load: impl FnMut(Vec<K>) -> F,
    ) -> Result<HashMap<K, V>, E>
    where
        F: Future<Output = Result<HashMap<K, V>, E>>,
    {
        let mut out = HashMap::new();
        self.load_many::<Async, E, _, _, _>(keys, load, &Shape::values(N::absent), &mut |k, e| {
            keep_value(&mut out, k, e);
        })
        .await?;
        Ok(out)
    }
}

impl<V, N> Shape<V, V, N> {
    /// A loader of values: a key it does not return is `absent()`.
    fn values(absent: fn() -> Option<N>) -> Self {
        Shape {
            outcome: Ok,
            absent,
        }
    }
}

impl<V, N> Shape<Result<V, N>, V, N> {
    /// A loader of outcomes: a key it does not return is left uncached.
    fn outcomes() -> Self {
        Shape {
            outcome: |r| r,
            absent: || None,
        }
    }
}

/// Adds a batch's value to the answer (a negative result is left out).
fn keep_value<K: Hash + Eq, V, N>(out: &mut HashMap<K, V>, k: K, e: Entry<V, N>) {
    if let Entry::Value(v) = e {
        out.insert(k, v);
    }
}

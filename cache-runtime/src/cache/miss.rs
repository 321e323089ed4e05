//! The miss path, written once for blocking and async callers: single-flight, the remote tier
//! (its value, or the fleet-wide lease, or another process's load), the loader, what is
//! cacheable and for how long, and the writes to L1 and L2. Only the [`Io`] driver differs.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;

use super::Cache;
use crate::driver::Io;
use crate::entry::{Entry, Loaded, Share};
use crate::flight::{Failure, Flights, Join, Lead, Leader, Waited};
use crate::invalidate::frame::{self, Frame, Within};
use crate::invalidate::remote as fleet;
use crate::invalidate::stamps::{Remote as RemoteStamp, Stamps};
use crate::stats::{Counter, LoadTimer};
use crate::tier::{self, Leased, RemoteKey, Tier};
use crate::ttl::NEVER;

/// What a caller waiting on a load panics with when the loader panicked in the leader's call:
/// what a panic of its own loader would have done, without running it again.
pub(crate) const LOAD_PANICKED: &str = "the load of this key panicked in another caller";

/// The longest XFetch gap, in units of `delta * beta`: `-ln(r)` for the smallest `r` drawn
/// (2^-53) is 36.7.
pub(super) const XFETCH_SPAN: f64 = 36.8;

/// The time left until `deadline`, for a remote TTL (`None`: no expiry).
pub(super) fn remaining(now: u64, deadline: u64) -> Option<std::time::Duration> {
    (deadline != NEVER)
        .then(|| std::time::Duration::from_nanos(deadline.saturating_sub(now).max(1)))
}

/// A cache's remote tier, and a key as the tier names it.
pub(super) type TierKey<'a, K, V, N> = (&'a dyn Tier<K, V, N>, RemoteKey);

/// How many times a process whose lease wait ended without a value contends for the lease again
/// before it loads without one.
const LEASE_ROUNDS: usize = 3;

/// An entry to cache: when it was loaded, its deadline and early window (coarse-clock ns).
pub(super) struct ToCache<V, N> {
    pub(super) entry: Entry<V, N>,
    pub(super) now: u64,
    pub(super) deadline: u64,
    pub(super) early: u64,
    /// What the loader read and the tags it attached.
    pub(super) stamps: Option<Arc<Stamps>>,
}

/// A fleet-wide lease held while this process loads: released by [`release`](Self::release)
/// or, failing that (a panic, a cancelled future), with a blocking call when dropped.
struct LeaseGuard<'a, K, V, N> {
    tier: &'a dyn Tier<K, V, N>,
    key: &'a RemoteKey,
    token: Option<String>,
}

impl<K, V, N> LeaseGuard<'_, K, V, N> {
    async fn release<I: Io>(mut self) {
        if let Some(token) = self.token.take() {
            tier::release::<I, K, V, N>(self.tier, self.key, &token).await;
        }
    }
}

impl<K, V, N> Drop for LeaseGuard<'_, K, V, N> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            crate::driver::block_on(tier::release::<crate::driver::Blocking, K, V, N>(
                self.tier, self.key, &token,
            ));
        }
    }
}

/// What a load is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// A miss: the leader first looks again in L1, then in the remote tier, and loads only
    /// when neither has the entry.
    Missing,
    /// A forced refresh: the leader loads whatever either tier holds, and replaces the entry
    /// with a cacheable outcome (anything else leaves it as it was).
    Fresh,
}

/// What the remote tier answered a leader before it loads.
enum Remote<'a, K, V, N> {
    /// The entry (and what it depends on): fill L1 with it.
    Found((Entry<V, N>, Vec<RemoteStamp>)),
    /// Load, holding the fleet-wide lease if one was taken.
    Load(Option<LeaseGuard<'a, K, V, N>>),
    /// The tier did not answer: load, and keep the value in this process only.
    Unreachable,
}

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// The single-flight load of a key whose lookup was counted as a miss: one leader loads
    /// (or finds the value in the remote tier, or waits for another process's load); the
    /// others wait for its outcome.
    ///
    /// An outcome that is not cached is shared too when it can be: an uncached negative result
    /// (`N: Clone`), and an error with `share`; a waiter that joined before a panic of the
    /// loader panics with [`LOAD_PANICKED`]. Only an error without `share`, an uncached value
    /// (`ttl_fn` gave it no time) or a cancelled leader leaves the waiters to retry, one at a
    /// time.
    ///
    /// Inside another cache's load, the entry this returns is recorded as read by that load
    /// (see [`invalidate`](crate::invalidate)).
    pub(crate) async fn load_after_miss<I: Io, Q, E, F>(
        &self,
        key: &Q,
        share: Option<Share<E>>,
        load: impl FnOnce() -> F,
    ) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Loaded<V, N, E>>,
    {
        if !frame::active() {
            return self
                .single_flight::<I, Q, E, F>(key, share, Want::Missing, load)
                .await;
        }
        // Inside a forced refresh of this cache (`reload`, `<fn>_refresh`), the load reloads.
        let want = if frame::take_forced_load(&self.core.scope) {
            Want::Fresh
        } else {
            Want::Missing
        };
        let out = self
            .single_flight::<I, Q, E, F>(key, share, want, load)
            .await;
        self.record_stored(key);
        out
    }

    /// A forced refresh of `key`: like [`load_after_miss`](Self::load_after_miss), but the
    /// leader loads whatever L1 or the remote tier holds, and a cacheable outcome replaces the
    /// entry in both (an outcome not to cache leaves it as it was). A load of `key` already in
    /// flight is joined instead: its outcome is as fresh as this one would be.
    pub(super) async fn reload<I: Io, Q, E, F>(
        &self,
        key: &Q,
        share: Option<Share<E>>,
        load: impl FnOnce() -> F,
    ) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Loaded<V, N, E>>,
    {
        let out = self
            .single_flight::<I, Q, E, F>(key, share, Want::Fresh, load)
            .await;
        if frame::active() {
            self.record_stored(key);
        }
        out
    }

    /// [`load_after_miss`](Self::load_after_miss), the flight itself.
    async fn single_flight<I: Io, Q, E, F>(
        &self,
        key: &Q,
        share: Option<Share<E>>,
        want: Want,
        load: impl FnOnce() -> F,
    ) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Loaded<V, N, E>>,
    {
        let hash = self.hash(key);
        loop {
            match self.core.flights.join(hash, key, I::BLOCKING) {
                Join::Leader(mut leader) => {
                    if want == Want::Missing {
                        // Another caller may have stored the value between our miss and now.
                        if let Some(e) = self.lookup(key) {
                            leader.complete(&e, || ());
                            return e.into();
                        }
                    } else {
                        self.core.meter.stats.incr(Counter::Refresh);
                    }
                    if self.core.tier.is_some() {
                        // The remote tier's steps, boxed: a cache without one keeps a small future.
                        let remote = self.lead_remote::<I, E, F>(
                            leader,
                            (hash, key.to_owned(), want),
                            share,
                            load,
                        );
                        return Box::pin(remote).await;
                    }
                    let (out, started) = self.run_loader(&mut leader, load).await;
                    return match self.settle(leader, hash, out, started, share) {
                        Ok((leader, c)) => {
                            self.complete_local(leader, || key.to_owned(), &c);
                            c.entry.into()
                        }
                        Err(uncached) => uncached,
                    };
                }
                Join::Waiter(flight, stale) => match I::wait(flight).await {
                    Waited::Value(e) if !stale => {
                        self.core.meter.stats.incr(Counter::Joined);
                        return e.into();
                    }
                    Waited::Failed(Failure::Error(shared)) if !stale => {
                        // A waiter whose type cannot rebuild the error retries.
                        if let Some(e) = share.and_then(|s| (s.from_shared)(&*shared)) {
                            self.core.meter.stats.incr(Counter::Joined);
                            return Loaded::Error(e);
                        }
                    }
                    Waited::Failed(Failure::Panicked) if !stale => {
                        self.core.meter.stats.incr(Counter::Joined);
                        panic!("{LOAD_PANICKED}");
                    }
                    Waited::Value(_) | Waited::Failed(_) | Waited::Retry => {}
                    Waited::Reentrant => {
                        // The loader asked for its own key: answer uncached rather than deadlock.
                        let timer = self.time_load();
                        let out = load().await;
                        timer.finish();
                        return out;
                    }
                },
            }
        }
    }

    /// `key`, with the remote tier and the key as it names it, if the cache has a tier (and the
    /// key encodes).
    pub(super) fn remote_key(&self, key: K) -> (K, Option<TierKey<'_, K, V, N>>) {
        let remote = self
            .core
            .tier
            .as_deref()
            .and_then(|tier| Some((tier, tier.key(&key)?)));
        (key, remote)
    }

    /// A leader's miss with a remote tier: its entry, or another process's load, or this
    /// process's load (under the fleet-wide lease when there is one), stored in both tiers.
    /// A forced refresh (`Want::Fresh`) loads at once, and stores in both tiers.
    async fn lead_remote<I: Io, E, F: Future<Output = Loaded<V, N, E>>>(
        &self,
        mut leader: Leader<'_, K, Entry<V, N>>,
        (hash, key, want): (u64, K, Want),
        share: Option<Share<E>>,
        load: impl FnOnce() -> F,
    ) -> Loaded<V, N, E> {
        let (key, remote) = self.remote_key(key);
        let (mut lease, mut reachable) = (None, true);
        // A key that does not encode has no remote entry: it is loaded for this process only.
        // A forced refresh loads whatever the remote tier holds, and needs no lease.
        if let Some((tier, rk)) = remote.as_ref().filter(|_| want == Want::Missing) {
            match self.ask_remote::<I>(*tier, rk).await {
                Remote::Found(e) => return self.fill_from_remote(leader, key, e).into(),
                Remote::Load(held) => lease = held,
                // A write would wait on it again: the caller's time is bounded by one timeout.
                Remote::Unreachable => reachable = false,
            }
        }
        let (out, started) = self.run_loader(&mut leader, load).await;
        let out = match (
            self.settle(leader, hash, out, started, share),
            remote.as_ref().filter(|_| reachable),
        ) {
            (Ok((leader, c)), Some((tier, rk))) => {
                self.store_loaded::<I, _>(leader, || key, (*tier, rk), &c)
                    .await;
                c.entry.into()
            }
            (Ok((leader, c)), None) => {
                self.complete_local(leader, || key, &c);
                c.entry.into()
            }
            (Err(uncached), _) => uncached,
        };
        if let Some(lease) = lease {
            lease.release::<I>().await;
        }
        out
    }

    /// Before loading: the remote tier's entry, else (with `distributed_lock`) the fleet-wide
    /// lease, or another process's load waited for.
    async fn ask_remote<'a, I: Io>(
        &self,
        tier: &'a dyn Tier<K, V, N>,
        rk: &'a RemoteKey,
    ) -> Remote<'a, K, V, N> {
        match tier::get::<I, K, V, N>(tier, rk).await {
            tier::Fetched::Hit(found) => return Remote::Found(found),
            // Out of reach for this call: load, and spend no more of the caller's time on it.
            tier::Fetched::Fault => return Remote::Unreachable,
            // The tier's copy may be older than this process's last write: load, and write the
            // result behind that pending write.
            tier::Fetched::Distrusted => return Remote::Load(None),
            tier::Fetched::Miss => {}
        }
        let Some(ttl) = self.core.lease else {
            return Remote::Load(None);
        };
        // Another process loads it: wait for its value (bounded by the lease). When the lease
        // ends without one (its holder died, or failed), contend for a new lease rather than
        // all load at once; after a few rounds, load.
        for _ in 0..LEASE_ROUNDS {
            match tier::lease::<I, K, V, N>(tier, rk, ttl).await {
                Leased::Held(token) => {
                    return Remote::Load(Some(LeaseGuard {
                        tier,
                        key: rk,
                        token: Some(token),
                    }));
                }
                Leased::Unknown => return Remote::Load(None),
                Leased::Busy => {
                    if let Some(e) = tier::wait_for::<I, K, V, N>(tier, rk, ttl).await {
                        return Remote::Found(e);
                    }
                }
            }
        }
        Remote::Load(None)
    }

    /// Runs the leader's loader, counted and timed, in a load frame of this cache (which follows
    /// an async loader across `.await`): its outcome, with when it started and what it read and
    /// tagged.
    async fn run_loader<E, F: Future<Output = Loaded<V, N, E>>>(
        &self,
        leader: &mut Leader<'_, K, Entry<V, N>>,
        load: impl FnOnce() -> F,
    ) -> (Loaded<V, N, E>, (u64, Option<Arc<Stamps>>)) {
        let (started, timer) = self.start_load();
        let mut frame = self.frame();
        let fut = frame::within(&mut frame, || leader.call(load));
        let fut = Within {
            fut: pin!(fut),
            frame: &mut frame,
        };
        let out = leader.watch(pin!(fut)).await;
        timer.finish();
        (out, (started, frame.finish()))
    }

    /// The frame a load of this cache runs in.
    #[inline]
    pub(super) fn frame(&self) -> Frame {
        Frame::new(&self.core.scope, self.core.depends)
    }

    /// Records, in the load running on this thread, a read of what `key` holds now.
    #[cold]
    pub(super) fn record_stored<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Inside a load, the store's copy keeps the stamps.
        let stored = self.core.store.get(key);
        let (slots, remote) = stored
            .as_ref()
            .and_then(|s| s.stamps.as_ref())
            .map_or((&[][..], &[][..]), |st| (st.slots(), st.remote()));
        frame::read(&self.core.scope, self.ident(key), (slots, remote));
    }

    /// Counts a load starting, and tells when it started (for early refresh); the timer ends
    /// when the loader returns (see [`time_load`](Self::time_load)).
    #[inline]
    pub(super) fn start_load(&self) -> (u64, LoadTimer<'_>) {
        let timer = self.time_load();
        (self.load_start(), timer)
    }

    /// Counts a loader run and times it, for the load statistics: [`LoadTimer::finish`] when
    /// the loader returns; dropped unfinished (a panic, a dropped future), it counts a failed
    /// load.
    #[inline]
    pub(super) fn time_load(&self) -> LoadTimer<'_> {
        let meter = &*self.core.meter;
        meter.stats.start_load(&meter.clock, &self.core.name)
    }

    /// What the leader's loader returned: the entry to store, with the leader, or an outcome
    /// not to cache (shared with the waiters when it can be, see [`Self::end_uncached`]).
    #[allow(clippy::type_complexity)]
    #[inline]
    pub(super) fn settle<'l, E>(
        &self,
        leader: Leader<'l, K, Entry<V, N>>,
        hash: u64,
        out: Loaded<V, N, E>,
        started: (u64, Option<Arc<Stamps>>),
        share: Option<Share<E>>,
    ) -> Result<(Leader<'l, K, Entry<V, N>>, ToCache<V, N>), Loaded<V, N, E>> {
        match self.cacheable(out, started) {
            Ok(c) => {
                self.trace_load(hash, true);
                Ok((leader, c))
            }
            Err(uncached) => {
                self.trace_load(hash, false);
                Self::end_uncached(leader, &uncached, share);
                Err(uncached)
            }
        }
    }

    /// Ends a flight whose outcome is not cached: an uncached negative result is handed to the
    /// waiters as it is (nothing is stored); an error, shared through `share`; anything else
    /// (an error without `share`, an uncached value) releases them to retry.
    #[cold]
    fn end_uncached<E>(
        leader: Leader<'_, K, Entry<V, N>>,
        out: &Loaded<V, N, E>,
        share: Option<Share<E>>,
    ) {
        match (out, share) {
            (Loaded::Negative(n), _) => {
                leader.complete(&Entry::Negative(n.clone()), || ());
            }
            (Loaded::Error(e), Some(share)) => leader.fail(Failure::Error((share.to_shared)(e))),
            _ => drop(leader),
        }
    }

    /// Stores a loaded entry: first in the remote tier (an invalidation during the load then
    /// finds the key in flight and undoes it below, instead of being overtaken by it), then in
    /// L1 for the flight's waiters; when an invalidation arrived meanwhile, nothing is kept in
    /// L1 and the remote copy is deleted.
    pub(super) async fn store_loaded<I: Io, D>(
        &self,
        leader: Lead<K, Entry<V, N>, D>,
        key: impl FnOnce() -> K,
        (tier, rk): (&dyn Tier<K, V, N>, &RemoteKey),
        c: &ToCache<V, N>,
    ) where
        D: std::ops::Deref<Target = Flights<K, Entry<V, N>>>,
    {
        let ttl = remaining(c.now, c.deadline);
        if let Some(remote) = Self::remote_stamps::<I>(tier, c.stamps.as_ref()).await {
            tier::put::<I, K, V, N>(tier, rk, &c.entry, &remote, ttl).await;
        }
        if !self.complete_local(leader, key, c) {
            tier::write::<I, K, V, N>(tier, rk, None).await;
        }
    }

    /// What a loaded entry that depends on `stamps` carries into the remote tier: the tokens of
    /// its tags' and dependencies' generation keys now. `None`: not to be written (already
    /// invalidated during its load, or its stamps cannot be read: kept out of the fleet's reach).
    pub(super) async fn remote_stamps<I: Io>(
        tier: &dyn Tier<K, V, N>,
        stamps: Option<&Arc<Stamps>>,
    ) -> Option<Vec<RemoteStamp>> {
        let Some(st) = stamps else {
            return Some(Vec::new());
        };
        let remote = if st.remote.is_empty() {
            Some(Vec::new())
        } else {
            fleet::resolve::<I>(tier.backend(), st).await
        };
        remote.filter(|_| st.fresh())
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
    #[inline]
    pub(super) fn load_start(&self) -> u64 {
        if self.core.beta > 0.0 {
            self.core.meter.clock.now_nanos()
        } else {
            0
        }
    }

    /// What a leader's outcome becomes: `Ok` with the entry to cache and its deadline, or
    /// `Err` with the outcome to return uncached (the waiters then retry, one at a time).
    /// `started` is when the load began (for early refresh).
    #[inline]
    pub(super) fn cacheable<E>(
        &self,
        out: Loaded<V, N, E>,
        (started, stamps): (u64, Option<Arc<Stamps>>),
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
            stamps,
        })
    }

    /// Stores the entry in this process's store and shares it with the waiters; `false` when an
    /// invalidation arrived during the load (then nothing was stored).
    #[inline]
    pub(super) fn complete_local<D>(
        &self,
        leader: Lead<K, Entry<V, N>, D>,
        key: impl FnOnce() -> K,
        c: &ToCache<V, N>,
    ) -> bool
    where
        D: std::ops::Deref<Target = Flights<K, Entry<V, N>>>,
    {
        // What the store lets go of is dropped here, after the single-flight lock is released.
        let stored = leader.complete(&c.entry, || {
            self.core.insert(
                key(),
                self.core.stored(
                    c.entry.clone(),
                    self.l1_deadline(c.now, c.deadline),
                    c.early,
                    c.stamps.clone(),
                ),
            )
        });
        stored.is_some()
    }

    /// The L1 deadline of an entry whose own deadline is `deadline`: sooner with a remote tier.
    #[inline]
    pub(super) fn l1_deadline(&self, now: u64, deadline: u64) -> u64 {
        match self.core.l1_ttl {
            Some(l1) => deadline.min(now.saturating_add(l1)),
            None => deadline,
        }
    }

    /// Fills L1 from an entry the remote tier had, and ends the flight with it.
    pub(super) fn fill_from_remote(
        &self,
        leader: Leader<'_, K, Entry<V, N>>,
        key: K,
        (e, remote): (Entry<V, N>, Vec<RemoteStamp>),
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
                self.core.stored(
                    e.clone(),
                    self.l1_deadline(now, deadline),
                    0,
                    fleet::local_stamps(remote),
                ),
            )
        });
        drop(stored);
        e
    }
}

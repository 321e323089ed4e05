//! Single-flight: one load per key at a time, the other callers wait for its outcome.
//!
//! The table maps a key to its in-flight load while a *leader* runs it. A caller that misses the
//! store [`join`](Flights::join)s: it becomes the leader when the key has no entry, or a waiter of
//! the load in flight. Waiters block on a condition variable (sync) or register a waker (async),
//! so both kinds of caller can share one load. The shared [`Flight`] that waiters hold is
//! allocated by the first waiter: a load nobody waits for costs one table entry and no allocation.
//!
//! The leader's [`Leader`] guard ends the load in exactly one of three ways:
//! - [`Leader::complete`] with a shareable outcome: every waiter receives a clone;
//! - [`Leader::fail`] with a [`Failure`]: an error that is not cached but can be shared, or a
//!   panic of the loader (recorded when the loader unwinds through [`Lead::call`] or
//!   [`Lead::watch`], and published when the guard is dropped): every waiter receives the
//!   failure and does not load;
//! - anything else: an error that is not cached and cannot be shared, or an async leader whose
//!   future was dropped (cancelled). The guard's `Drop` marks the flight *abandoned* and wakes
//!   every waiter; each retries from the start, so the next one to reach the table leads a fresh
//!   load while the rest wait on it. A cancellation is not a failure of the data source.
//!
//! No waiter is ever stranded and at no moment do two loads of one key run.
//!
//! The entry leaves the table in the same critical section in which the leader writes the store,
//! so a caller arriving later finds the value stored, or leads a new load; and an invalidation
//! (which marks the entry, then removes the key from the store) is ordered entirely before or
//! after that write, so a load that started before an invalidation never overwrites it.
//!
//! Locks: a table shard, then (never the reverse) the store's shard or a flight's state.

use std::any::Any;
use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use hashbrown::HashTable;

use crate::sync::{Arc, Condvar, Mutex, ThreadToken, lock, thread_token, wait};

/// One key's load in flight.
struct Entry<K, T> {
    hash: u64,
    id: u64,
    key: K,
    /// Created by the first waiter.
    flight: Option<Arc<Flight<T>>>,
    /// Set by an invalidation (remove, put, clear) during the load: its result is not stored.
    invalidated: bool,
    /// The leader's thread, when it is a sync caller: a sync waiter on the same thread would wait
    /// for itself forever (a loader that recursively asks for its own key).
    leader_thread: Option<ThreadToken>,
}

struct Shard<K, T> {
    entries: HashTable<Entry<K, T>>,
    /// The id of the next entry (unique within the shard).
    next_id: u64,
}

type Table<K, T> = Mutex<Shard<K, T>>;

pub(crate) struct Flights<K, T> {
    shards: Box<[Table<K, T>]>,
    mask: u64,
}

/// What the waiters of one load share.
pub(crate) struct Flight<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
    leader_thread: Option<ThreadToken>,
}

enum State<T> {
    Pending {
        /// The async waiters' wakers, by slot; a dropped (cancelled) waiter empties its own.
        wakers: Vec<Option<Waker>>,
        /// Sync callers blocked on the condition variable (notified only when there are some:
        /// a notify costs a system call).
        sync_waiters: usize,
    },
    Done(T),
    Failed(Failure),
    Abandoned,
}

/// How a load failed, as its waiters receive it.
#[derive(Clone)]
pub(crate) enum Failure {
    /// The loader's error, shared (not cached): the waiters rebuild it, if they can. (A plain
    /// `std` `Arc`: a payload, not one of the synchronization primitives the model checks.)
    Error(std::sync::Arc<dyn Any + Send + Sync>),
    /// The loader panicked.
    Panicked,
}

/// What a caller of [`Flights::join`] is.
pub(crate) enum Join<'a, K, T> {
    Leader(Leader<'a, K, T>),
    /// A waiter; `true` when the load was invalidated before this caller joined, so that its
    /// outcome predates what the caller must see: it is to be retried, not taken.
    Waiter(Arc<Flight<T>>, bool),
}

/// What a waiter got.
pub(crate) enum Waited<T> {
    /// The leader's shared outcome.
    Value(T),
    /// The load failed: the leader's error, or its panic.
    Failed(Failure),
    /// The leader gave up (an error it does not share, a cancellation): start over.
    Retry,
    /// The leader is this very thread: waiting would deadlock, so load without deduplication.
    Reentrant,
}

impl<K, T> Flights<K, T> {
    fn shard(&self, hash: u64) -> &Table<K, T> {
        #[allow(clippy::cast_possible_truncation)]
        let i = ((hash >> 32) & self.mask) as usize;
        &self.shards[i]
    }
}

impl<K: Hash + Eq, T: Clone> Flights<K, T> {
    pub(crate) fn new(shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        Self {
            shards: (0..n)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashTable::new(),
                        next_id: 0,
                    })
                })
                .collect(),
            mask: n as u64 - 1,
        }
    }

    /// Becomes the leader of `key`'s load, or a waiter of the one in flight.
    ///
    /// `sync_leader` records the calling thread, for re-entrancy detection by sync waiters.
    pub(crate) fn join<Q>(&self, hash: u64, key: &Q, sync_leader: bool) -> Join<'_, K, T>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut shard = lock(self.shard(hash));
        if let Some(e) = shard
            .entries
            .find_mut(hash, |e| e.hash == hash && e.key.borrow() == key)
        {
            let leader_thread = e.leader_thread;
            let stale = e.invalidated;
            let flight = e.flight.get_or_insert_with(|| {
                Arc::new(Flight {
                    state: Mutex::new(State::Pending {
                        wakers: Vec::new(),
                        sync_waiters: 0,
                    }),
                    cond: Condvar::new(),
                    leader_thread,
                })
            });
            return Join::Waiter(Arc::clone(flight), stale);
        }
        Join::Leader(self.lead(shard, hash, key, sync_leader.then(thread_token)))
    }

    /// Enters `key`'s load in the table (the caller found none) and returns its lead.
    fn lead<Q>(
        &self,
        mut shard: crate::sync::MutexGuard<'_, Shard<K, T>>,
        hash: u64,
        key: &Q,
        leader_thread: Option<ThreadToken>,
    ) -> Leader<'_, K, T>
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        let id = shard.next_id;
        shard.next_id = id.wrapping_add(1);
        let entry = Entry {
            hash,
            id,
            key: key.to_owned(),
            flight: None,
            invalidated: false,
            leader_thread,
        };
        shard.entries.insert_unique(hash, entry, |e| e.hash);
        drop(shard);
        Lead {
            flights: self,
            hash,
            id,
            finished: false,
            panicked: false,
        }
    }

    /// Becomes the leader of `key`'s load if none is in flight; `None` (and nothing changed)
    /// when one is. For refreshes: a key being loaded or refreshed is not refreshed twice.
    pub(crate) fn try_lead<Q>(&self, hash: u64, key: &Q) -> Option<Leader<'_, K, T>>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
    {
        let shard = lock(self.shard(hash));
        if shard
            .entries
            .find(hash, |e| e.hash == hash && e.key.borrow() == key)
            .is_some()
        {
            return None;
        }
        // A refresh never runs on a thread that could wait for it: it is detached.
        Some(self.lead(shard, hash, key, None))
    }

    /// Marks `key`'s in-flight load, if any, so that its result is not stored.
    ///
    /// Returns once any store write of that load has finished: a caller that then removes the key
    /// from the store cannot be overtaken by the load.
    pub(crate) fn invalidate<Q>(&self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if let Some(e) = lock(self.shard(hash))
            .entries
            .find_mut(hash, |e| e.hash == hash && e.key.borrow() == key)
        {
            e.invalidated = true;
        }
    }

    /// Marks every in-flight load so that none of their results is stored.
    pub(crate) fn invalidate_all(&self) {
        for shard in &*self.shards {
            for e in lock(shard).entries.iter_mut() {
                e.invalidated = true;
            }
        }
    }

    /// How many loads are in flight.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    /// How many callers wait on loads in flight: sync callers blocked on one, and async ones
    /// that have polled one once. The flights are listed under each shard's lock, and their
    /// states read after it is released (no lock is ever held while another is taken).
    pub(crate) fn waiting(&self) -> usize {
        let mut flights = Vec::new();
        for shard in &*self.shards {
            flights.extend(lock(shard).entries.iter().filter_map(|e| e.flight.clone()));
        }
        flights
            .iter()
            .map(|f| match &*lock(&f.state) {
                State::Pending {
                    wakers,
                    sync_waiters,
                } => wakers.iter().flatten().count() + sync_waiters,
                _ => 0,
            })
            .sum()
    }
}

impl<T: Clone> Flight<T> {
    /// Blocks until the leader finishes (sync callers).
    /// A flight led by this very thread is re-entrant while it is pending (its leader is the
    /// caller's own frame, and would never finish); once it has ended, its outcome is read like
    /// any other (a batch that joined its own lead of a key asked twice).
    pub(crate) fn wait(&self) -> Waited<T> {
        let mut state = lock(&self.state);
        if let State::Pending { sync_waiters, .. } = &mut *state {
            if self.leader_thread.is_some() && self.leader_thread == Some(thread_token()) {
                return Waited::Reentrant;
            }
            *sync_waiters += 1;
        }
        loop {
            match &*state {
                State::Done(v) => return Waited::Value(v.clone()),
                State::Failed(f) => return Waited::Failed(f.clone()),
                State::Abandoned => return Waited::Retry,
                State::Pending { .. } => state = wait(&self.cond, state),
            }
        }
    }

    /// Waits until the leader finishes (async callers). Dropping the future is always safe.
    pub(crate) fn wait_async(this: Arc<Self>) -> WaitFuture<T> {
        WaitFuture {
            flight: this,
            slot: None,
        }
    }
}

impl<T> Flight<T> {
    /// Publishes the outcome and wakes every waiter.
    fn finish(&self, outcome: State<T>) {
        let mut state = lock(&self.state);
        let old = std::mem::replace(&mut *state, outcome);
        drop(state);
        if let State::Pending {
            wakers,
            sync_waiters,
        } = old
        {
            if sync_waiters > 0 {
                self.cond.notify_all();
            }
            for w in wakers.into_iter().flatten() {
                w.wake();
            }
        }
    }
}

pub(crate) struct WaitFuture<T> {
    flight: Arc<Flight<T>>,
    /// Our index in the flight's waker list, once registered.
    slot: Option<usize>,
}

impl<T: Clone> Future for WaitFuture<T> {
    type Output = Waited<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Waited<T>> {
        let this = self.get_mut();
        let mut state = lock(&this.flight.state);
        let ready = match &mut *state {
            State::Done(v) => Waited::Value(v.clone()),
            State::Failed(f) => Waited::Failed(f.clone()),
            State::Abandoned => Waited::Retry,
            State::Pending { wakers, .. } => {
                match this.slot.and_then(|i| wakers.get_mut(i)) {
                    Some(Some(w)) => {
                        if !w.will_wake(cx.waker()) {
                            w.clone_from(cx.waker());
                        }
                    }
                    Some(empty) => *empty = Some(cx.waker().clone()),
                    None => {
                        this.slot = Some(wakers.len());
                        wakers.push(Some(cx.waker().clone()));
                    }
                }
                return Poll::Pending;
            }
        };
        // Done: nothing of ours is left in the flight for the drop to clear.
        this.slot = None;
        Poll::Ready(ready)
    }
}

impl<T> Drop for WaitFuture<T> {
    /// A waiter dropped before its load ended (a timeout, a `select!`, an aborted task) takes
    /// its waker out of the flight: it is neither woken nor counted as waiting, and the waker
    /// (with whatever task it keeps alive) is dropped now rather than when the load ends.
    fn drop(&mut self) {
        if let Some(i) = self.slot.take()
            && let State::Pending { wakers, .. } = &mut *lock(&self.flight.state)
            && let Some(w) = wakers.get_mut(i)
        {
            *w = None;
        }
    }
}

/// The leader's duty: end the load. Dropping it unfinished abandons the load, or fails it with
/// [`Failure::Panicked`] when the loader unwound through [`call`](Lead::call) or
/// [`watch`](Lead::watch).
///
/// `F` reaches the table: a borrow for a caller that loads, or an owning handle for a refresh
/// that outlives its caller.
pub(crate) struct Lead<K, T, F: Deref<Target = Flights<K, T>>> {
    flights: F,
    hash: u64,
    /// Our entry's id in its shard.
    id: u64,
    finished: bool,
    /// The loader unwound (see [`call`](Lead::call)): dropping the lead fails the flight.
    panicked: bool,
}

/// A leader that borrows the table.
pub(crate) type Leader<'a, K, T> = Lead<K, T, &'a Flights<K, T>>;

impl<K, T, F: Deref<Target = Flights<K, T>>> Lead<K, T, F> {
    /// The same lead, reaching the table through `flights` (which must reach the same table).
    pub(crate) fn transfer<G: Deref<Target = Flights<K, T>>>(
        mut self,
        flights: G,
    ) -> Lead<K, T, G> {
        self.finished = true;
        Lead {
            flights,
            hash: self.hash,
            id: self.id,
            finished: false,
            panicked: self.panicked,
        }
    }

    /// Calls the loader, recording a panic that unwinds out of it, so that the waiters, when
    /// this lead is dropped, receive [`Failure::Panicked`] instead of retrying.
    #[inline(always)]
    pub(crate) fn call<R>(&mut self, load: impl FnOnce() -> R) -> R {
        let mut guard = OnUnwind {
            flag: &mut self.panicked,
            armed: true,
        };
        let out = load();
        guard.armed = false;
        out
    }

    /// Polls the loader's future (pinned by the caller), recording a panic that unwinds out of
    /// a poll like [`call`](Self::call). A future dropped while pending (a cancelled caller)
    /// records nothing: its waiters retry.
    #[inline(always)]
    pub(crate) fn watch<'w, Fut: Future>(&'w mut self, fut: Pin<&'w mut Fut>) -> Watched<'w, Fut> {
        Watched {
            fut,
            panicked: &mut self.panicked,
        }
    }

    /// Ends the load with `failure`, shared with every waiter (nothing is stored). The waiters
    /// that joined after an invalidation retry instead (see [`Join::Waiter`]).
    pub(crate) fn fail(mut self, failure: Failure) {
        self.finished = true;
        if let Some(f) = self.take_flight() {
            f.finish(State::Failed(failure));
        }
    }

    /// Takes the load out of the table: its waiters' flight, if it has any.
    fn take_flight(&self) -> Option<Arc<Flight<T>>> {
        let mut shard = lock(self.flights.shard(self.hash));
        match shard
            .entries
            .find_entry(self.hash, |e| e.hash == self.hash && e.id == self.id)
        {
            Ok(found) => found.remove().0.flight,
            Err(_) => None,
        }
    }

    /// Ends the load with `outcome`, shared with every waiter. `store` runs first, in the same
    /// critical section that takes the load out of the table, unless an invalidation arrived
    /// during the load: then the waiters (who joined before the invalidation) still take the
    /// outcome, but the store keeps what the invalidation left, and `None` is returned. What
    /// `store` returns is handed back, to be dropped after the table's lock is released.
    ///
    /// Panic safety: if cloning the outcome or `store` panics, the waiters are released (the
    /// flight is abandoned) and the key is free for the next caller.
    pub(crate) fn complete<R>(mut self, outcome: &T, store: impl FnOnce() -> R) -> Option<R>
    where
        T: Clone,
    {
        // Cloned before anything is taken out: a panic here leaves `self` to abandon the load.
        let shared = outcome.clone();
        let (flight, stored) = {
            let mut shard = lock(self.flights.shard(self.hash));
            let Ok(found) = shard
                .entries
                .find_entry(self.hash, |e| e.hash == self.hash && e.id == self.id)
            else {
                self.finished = true;
                return None;
            };
            let (entry, _) = found.remove();
            // The entry is out of the table; should `store` unwind, this releases the waiters.
            let mut abandon = AbandonOnUnwind(entry.flight.clone());
            let stored = (!entry.invalidated).then(store);
            abandon.0 = None; // disarmed: `store` returned
            drop(abandon);
            (entry.flight, stored)
        };
        self.finished = true;
        if let Some(f) = flight {
            f.finish(State::Done(shared));
        }
        stored
    }
}

/// Abandons a flight when dropped: armed around user code that may unwind.
struct AbandonOnUnwind<T>(Option<Arc<Flight<T>>>);

impl<T> Drop for AbandonOnUnwind<T> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f.finish(State::Abandoned);
        }
    }
}

impl<K, T, F: Deref<Target = Flights<K, T>>> Drop for Lead<K, T, F> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(f) = self.take_flight() {
            f.finish(if self.panicked {
                State::Failed(Failure::Panicked)
            } else {
                State::Abandoned
            });
        }
    }
}

/// Sets its flag when dropped armed, which only an unwind does: it is disarmed on every
/// normal return.
struct OnUnwind<'a> {
    flag: &'a mut bool,
    armed: bool,
}

impl Drop for OnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            *self.flag = true;
        }
    }
}

/// The loader's future, as [`Lead::watch`] polls it: a panic out of `poll` is recorded.
pub(crate) struct Watched<'a, Fut> {
    fut: Pin<&'a mut Fut>,
    panicked: &'a mut bool,
}

impl<Fut: Future> Future for Watched<'_, Fut> {
    type Output = Fut::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let this = self.get_mut();
        let mut guard = OnUnwind {
            flag: &mut *this.panicked,
            armed: true,
        };
        let out = this.fut.as_mut().poll(cx);
        guard.armed = false;
        out
    }
}

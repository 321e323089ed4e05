//! Single-flight: one load per key at a time, the other callers wait for its outcome.
//!
//! The table maps a key to its in-flight [`Flight`] while a *leader* loads it. A caller that
//! misses the store [`join`](Flights::join)s: it becomes the leader when no flight exists, or a
//! waiter of the existing one. Waiters block on a condition variable (sync) or register a waker
//! (async), so both kinds of caller can share one flight.
//!
//! The leader's [`Leader`] guard ends the flight in exactly one of two ways:
//! - [`Leader::complete`] with a shareable outcome: every waiter receives a clone;
//! - anything else: an error that is not cached, a panic unwinding through the loader, or an async
//!   leader whose future was dropped (cancelled). The guard's `Drop` marks the flight
//!   *abandoned* and wakes every waiter; each retries from the start, so the next one to reach
//!   the table leads a fresh load while the rest wait on it. No waiter is ever stranded and at no
//!   moment do two loads of one key run.
//!
//! The flight is removed from the table before its outcome is published, so a caller arriving
//! later finds the store already filled (the leader stores first), or leads a new load.
//!
//! Lock order: a table shard, then (after releasing it) a flight's state; the leader holds a
//! flight's state while it writes the store, so that invalidations (which mark the flight first,
//! then remove from the store) cannot be overtaken by a load that started before them.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use hashbrown::HashTable;

use crate::sync::{Arc, Condvar, Mutex, MutexGuard, ThreadToken, lock, thread_token, wait};

/// One shard of the table: `(hash, key, flight)`.
type Table<K, T> = Mutex<HashTable<(u64, K, Arc<Flight<T>>)>>;

pub(crate) struct Flights<K, T> {
    shards: Box<[Table<K, T>]>,
    mask: u64,
}

pub(crate) struct Flight<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
    /// The leader's thread, when it is a sync caller: a sync waiter on the same thread would wait
    /// for itself forever (a loader that recursively asks for its own key).
    leader_thread: Option<ThreadToken>,
}

enum State<T> {
    Pending {
        wakers: Vec<Waker>,
        /// Sync callers blocked on the condition variable (notified only when there are some:
        /// a notify costs a system call).
        sync_waiters: usize,
        /// Set by an invalidation (remove, put, clear) during the load: its result is not stored.
        invalidated: bool,
    },
    Done(T),
    Abandoned,
}

/// What a caller of [`Flights::join`] is.
pub(crate) enum Join<'a, K, T> {
    Leader(Leader<'a, K, T>),
    Waiter(Arc<Flight<T>>),
}

/// What a waiter got.
pub(crate) enum Waited<T> {
    /// The leader's shared outcome.
    Value(T),
    /// The leader gave up (error, panic, cancellation): start over.
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
            shards: (0..n).map(|_| Mutex::new(HashTable::new())).collect(),
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
        let mut table = lock(self.shard(hash));
        if let Some((_, _, f)) = table.find(hash, |(h, k, _)| *h == hash && k.borrow() == key) {
            return Join::Waiter(Arc::clone(f));
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Pending {
                wakers: Vec::new(),
                sync_waiters: 0,
                invalidated: false,
            }),
            cond: Condvar::new(),
            leader_thread: sync_leader.then(thread_token),
        });
        table.insert_unique(hash, (hash, key.to_owned(), Arc::clone(&flight)), |e| e.0);
        drop(table);
        Join::Leader(Leader {
            flights: self,
            hash,
            flight,
            finished: false,
        })
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
        let flight = lock(self.shard(hash))
            .find(hash, |(h, k, _)| *h == hash && k.borrow() == key)
            .map(|(_, _, f)| Arc::clone(f));
        if let Some(f) = flight {
            f.invalidate();
        }
    }

    /// Marks every in-flight load so that none of their results is stored.
    pub(crate) fn invalidate_all(&self) {
        for shard in &*self.shards {
            let flights: Vec<_> = lock(shard).iter().map(|(_, _, f)| Arc::clone(f)).collect();
            for f in flights {
                f.invalidate();
            }
        }
    }

    /// How many loads are in flight.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

impl<T: Clone> Flight<T> {
    fn invalidate(&self) {
        if let State::Pending { invalidated, .. } = &mut *lock(&self.state) {
            *invalidated = true;
        }
    }

    /// Blocks until the leader finishes (sync callers).
    pub(crate) fn wait(&self) -> Waited<T> {
        if self.leader_thread.is_some() && self.leader_thread == Some(thread_token()) {
            return Waited::Reentrant;
        }
        let mut state = lock(&self.state);
        if let State::Pending { sync_waiters, .. } = &mut *state {
            *sync_waiters += 1;
        }
        loop {
            match &*state {
                State::Done(v) => return Waited::Value(v.clone()),
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
        match &mut *state {
            State::Done(v) => Poll::Ready(Waited::Value(v.clone())),
            State::Abandoned => Poll::Ready(Waited::Retry),
            State::Pending { wakers, .. } => {
                match this.slot.and_then(|i| wakers.get_mut(i)) {
                    Some(w) => {
                        if !w.will_wake(cx.waker()) {
                            w.clone_from(cx.waker());
                        }
                    }
                    None => {
                        this.slot = Some(wakers.len());
                        wakers.push(cx.waker().clone());
                    }
                }
                Poll::Pending
            }
        }
    }
}

/// The leader's duty: end the flight. Dropping it unfinished abandons the flight.
pub(crate) struct Leader<'a, K, T> {
    flights: &'a Flights<K, T>,
    hash: u64,
    flight: Arc<Flight<T>>,
    finished: bool,
}

impl<K, T> Leader<'_, K, T> {
    /// Ends the flight with `outcome`, shared with every waiter. `store` runs first, under the
    /// flight's lock, unless an invalidation arrived during the load: then the waiters (who
    /// joined before the invalidation) still take the outcome, but the store keeps what the
    /// invalidation left.
    pub(crate) fn complete(mut self, outcome: &T, store: impl FnOnce())
    where
        T: Clone,
    {
        self.finished = true;
        let mut state = lock(&self.flight.state);
        if let State::Pending {
            invalidated: false, ..
        } = &*state
        {
            store();
        }
        self.remove_from_table();
        // After removal nobody can join; only callers that already hold the flight can read it,
        // so the outcome is cloned only when there is one.
        let next = if Arc::strong_count(&self.flight) > 1 {
            State::Done(outcome.clone())
        } else {
            State::Abandoned
        };
        let old = std::mem::replace(&mut *state, next);
        Self::wake(&self.flight, state, old);
    }

    fn remove_from_table(&self) {
        let mut table = lock(self.flights.shard(self.hash));
        if let Ok(e) = table.find_entry(self.hash, |(_, _, f)| Arc::ptr_eq(f, &self.flight)) {
            e.remove();
        }
    }

    fn wake(flight: &Flight<T>, state: MutexGuard<'_, State<T>>, old: State<T>) {
        drop(state);
        if let State::Pending {
            wakers,
            sync_waiters,
            ..
        } = old
        {
            if sync_waiters > 0 {
                flight.cond.notify_all();
            }
            for w in wakers {
                w.wake();
            }
        }
    }
}

impl<K, T> Drop for Leader<'_, K, T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let state = lock(&self.flight.state);
        self.remove_from_table();
        let mut state = state;
        let old = std::mem::replace(&mut *state, State::Abandoned);
        Self::wake(&self.flight, state, old);
    }
}

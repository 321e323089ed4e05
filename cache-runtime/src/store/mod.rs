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
use std::hash::Hash;
use std::sync::Arc;

use foldhash::quality::FixedState;

pub use cache_policy::{Policy, UnknownPolicy};

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

/// Why an entry left a store. The store itself tells only evictions and replacements; the cache
/// adds the others, and decides whether an evicted or replaced entry had expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gone {
    Evicted,
    Replaced,
    Expired,
    Explicit,
}

/// Told of every entry that left a store, once no lock is held (see [`Evictions`]).
pub(crate) type Notify<K, T> = Arc<dyn Fn(K, T, Gone) + Send + Sync>;

/// The removal listener as a store keeps it, with a way to copy a key (`quick_cache`'s sweep
/// lends its keys only).
pub(crate) type OnRemove<K, T> = (Notify<K, T>, fn(&K) -> K);

/// Entries that left the store in one operation, kept so that they drop (running the user's
/// destructors), and are handed to the removal listener if there is one, after the store's
/// lock is released: when this list is dropped. The first is kept inline, so the usual single
/// eviction of an insert allocates nothing.
pub(crate) struct Evictions<K, T> {
    first: Option<(K, T, Gone)>,
    rest: Vec<(K, T, Gone)>,
    notify: Option<Notify<K, T>>,
    /// For `quick_cache`, which reports a replaced entry as an eviction: the inserted key's
    /// hash, until an entry with that hash left (see `quick::Lifecycle`).
    pub(crate) replacing: Option<u64>,
    /// `quick_cache` judged the inserted entry heavier than it admits.
    pub(crate) oversized: bool,
}

impl<K, T> Default for Evictions<K, T> {
    fn default() -> Self {
        Self::new(None)
    }
}

impl<K, T> Evictions<K, T> {
    pub(crate) fn new(notify: Option<Notify<K, T>>) -> Self {
        Self {
            first: None,
            rest: Vec::new(),
            notify,
            replacing: None,
            oversized: false,
        }
    }

    pub(crate) fn push(&mut self, key: K, value: T, why: Gone) {
        if self.first.is_none() {
            self.first = Some((key, value, why));
        } else {
            self.rest.push((key, value, why));
        }
    }

    /// Appends `other`'s entries (told once, with this list).
    pub(crate) fn append(&mut self, mut other: Self) {
        if let Some((k, v, why)) = other.first.take() {
            self.push(k, v, why);
        }
        for (k, v, why) in other.rest.drain(..) {
            self.push(k, v, why);
        }
    }
}

impl<K, T> Drop for Evictions<K, T> {
    fn drop(&mut self) {
        let Some(notify) = self.notify.take() else {
            return;
        };
        let first = self.first.take();
        for (k, v, why) in first.into_iter().chain(self.rest.drain(..)) {
            // A panicking listener loses its own call only: the entry is gone and counted, no
            // lock is held, and the next entries are still told.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| notify(k, v, why)));
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
    /// The removal listener, if any, with a way to copy a key (a store hands out the keys of
    /// the entries it removes; `quick_cache`'s sweep lends them only).
    pub(crate) removal: Option<OnRemove<K, T>>,
    /// Recency exact at every size, with no epochs (every reordering hit takes the write
    /// lock): what the tests against the reference models replay. `false` in every cache.
    pub(crate) exact: bool,
}

/// A store of one of the policies, dispatched without a virtual call.
pub(crate) enum Store<K, T> {
    S3Fifo(quick::QuickStore<K, T>),
    Lru(sharded::Sharded<K, T, policy::Lru>),
    Lfu(sharded::Sharded<K, T, policy::Lfu>),
    Fifo(sharded::Sharded<K, T, policy::Fifo>),
}

/// `then(found)`, out of line: the paths of a lookup other than the hit served under a read
/// lock (see [`Store::get_then`]).
#[inline(never)]
pub(crate) fn then_out_of_line<T, R>(then: impl FnOnce(T) -> R, found: T) -> R {
    then(found)
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
            Policy::Lru => Store::Lru(sharded::Sharded::new(cfg)),
            Policy::Lfu => Store::Lfu(sharded::Sharded::new(cfg)),
            Policy::Fifo => Store::Fifo(sharded::Sharded::new(cfg)),
            // `Policy` is `#[non_exhaustive]` and lives in `cache-policy`, which this crate pins
            // exactly (`=x.y.z`), so every variant is named above but the default's; a new one
            // must add its store here.
            _ => Store::S3Fifo(quick::QuickStore::new(cfg)),
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

    /// Looks `key` up and answers with `hit` or `then`, inside the arm of the store's kind.
    ///
    /// A sharded store first offers the entry it found under the shard's read lock to `hit`,
    /// by reference: an answer from it is the lookup's (a fresh entry's value, say, cloned
    /// alone rather than with the whole entry). Every other path hands `then` a copy of the
    /// entry, or `None`: a miss, an entry `hit` declined, a hit under the write lock, and every
    /// lookup of the default store (whose copy comes out of quick_cache already made).
    ///
    /// So `hit` runs under a read lock: it must be short, and take no lock of the store's. A
    /// read-locked hit calls it inline, and `then` out of line (see [`then_out_of_line`]): the
    /// hit's copy stays in registers, where merging the arms' and paths' copies first would
    /// move it through memory.
    #[inline(always)]
    pub(crate) fn get_then<Q, R>(
        &self,
        key: &Q,
        hit: impl FnOnce(&T) -> Option<R>,
        then: impl FnOnce(Option<T>) -> R,
    ) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Store::S3Fifo(s) => s.get_then(key, then),
            Store::Lru(s) => s.get_then(key, hit, then),
            Store::Lfu(s) => s.get_then(key, hit, then),
            Store::Fifo(s) => s.get_then(key, hit, then),
        }
    }

    /// Inserts; returns what left the store (evicted or replaced), to be dropped by the caller
    /// once it holds no lock.
    pub(crate) fn insert(&self, key: K, value: T) -> Evictions<K, T> {
        dispatch!(self, s => s.insert(key, value))
    }

    /// An empty list of removed entries, told to the removal listener when dropped.
    pub(crate) fn evictions(&self) -> Evictions<K, T> {
        dispatch!(self, s => Evictions::new(s.notify()))
    }

    /// Removes the entry of `key`: it is handed back, with its key, for the caller to tell the
    /// removal listener once it holds no lock.
    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<(K, T)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        dispatch!(self, s => s.remove(key))
    }

    /// Removes the entry of `key` if `pred` holds for its value (see [`remove`](Self::remove)).
    pub(crate) fn remove_if<Q>(&self, key: &Q, pred: impl FnOnce(&T) -> bool) -> Option<(K, T)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        dispatch!(self, s => s.remove_if(key, pred))
    }

    /// Keeps only the entries for which `keep` holds; returns how many were removed, and, with
    /// a removal listener, the removed entries (marked `why`).
    pub(crate) fn retain(
        &self,
        keep: impl Fn(&K, &T) -> bool,
        why: Gone,
    ) -> (u64, Evictions<K, T>) {
        dispatch!(self, s => s.retain(keep, why))
    }

    /// Removes every entry; with a removal listener, returns them (marked explicit).
    pub(crate) fn clear(&self) -> Evictions<K, T> {
        dispatch!(self, s => s.clear())
    }

    /// Copies of the entries, each entry present throughout visited once; no lock is held
    /// between two `next` calls (a shard's lock is held while one entry, or one shard's
    /// entries, are copied).
    pub(crate) fn iter(&self) -> Iter<'_, K, T>
    where
        K: Clone,
    {
        match self {
            Store::S3Fifo(s) => Iter::Quick(s.iter()),
            Store::Lru(s) => Iter::Lru(s.iter()),
            Store::Lfu(s) => Iter::Lfu(s.iter()),
            Store::Fifo(s) => Iter::Fifo(s.iter()),
        }
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

/// An iterator over copies of a store's entries (see [`Store::iter`]).
pub(crate) enum Iter<'a, K, T> {
    Quick(quick::QuickIter<'a, K, T>),
    Lru(sharded::ShardedIter<'a, K, T, policy::Lru>),
    Lfu(sharded::ShardedIter<'a, K, T, policy::Lfu>),
    Fifo(sharded::ShardedIter<'a, K, T, policy::Fifo>),
}

impl<K, T> Iterator for Iter<'_, K, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    type Item = (K, T);

    #[inline]
    fn next(&mut self) -> Option<(K, T)> {
        match self {
            Iter::Quick(i) => i.next(),
            Iter::Lru(i) => i.next(),
            Iter::Lfu(i) => i.next(),
            Iter::Fifo(i) => i.next(),
        }
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

//! The default store: `quick_cache`'s sharded S3-FIFO cache.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use foldhash::quality::FixedState;
use quick_cache::OptionsBuilder;

use std::sync::Arc;

use super::{Evictions, Gone, Notify, OnRemove, StoreConfig, Weigher};

impl<K, T> quick_cache::Weighter<K, T> for Weigher<K, T> {
    #[inline]
    fn weight(&self, key: &K, val: &T) -> u64 {
        self.weigh(key, val)
    }
}

/// Tells the listener of each eviction; the evicted entries drop with the request state, after
/// the shard lock is released.
///
/// `quick_cache` reports a replaced entry as an eviction too: an entry that leaves an insert
/// with the inserted key's hash ([`Evictions::replacing`]) is the one it replaced, unless the
/// inserted entry itself was too heavy to admit (`before_evict` is called for it then): then
/// both it and the entry it displaced count as evicted.
pub(crate) struct Lifecycle<T> {
    listener: Arc<dyn Fn(&T) + Send + Sync>,
    hasher: FixedState,
}

impl<T> Clone for Lifecycle<T> {
    fn clone(&self) -> Self {
        Self {
            listener: Arc::clone(&self.listener),
            hasher: self.hasher.clone(),
        }
    }
}

impl<K: Hash, T> quick_cache::Lifecycle<K, T> for Lifecycle<T> {
    type RequestState = Evictions<K, T>;

    fn before_evict(&self, state: &mut Self::RequestState, key: &K, _: &mut T) {
        if state
            .replacing
            .is_some_and(|h| h == self.hasher.hash_one(key))
        {
            state.oversized = true;
        }
    }

    fn on_evict(&self, state: &mut Self::RequestState, key: K, val: T) {
        if !state.oversized
            && state
                .replacing
                .is_some_and(|h| h == self.hasher.hash_one(&key))
        {
            state.replacing = None;
            state.push(key, val, Gone::Replaced);
        } else {
            (self.listener)(&val);
            state.push(key, val, Gone::Evicted);
        }
    }
}

type Inner<K, T> = quick_cache::sync::Cache<K, T, Weigher<K, T>, FixedState, Lifecycle<T>>;

/// quick_cache's iterator over copies of its entries.
pub(crate) type QuickIter<'a, K, T> =
    quick_cache::sync::Iter<'a, K, T, Weigher<K, T>, FixedState, Lifecycle<T>>;

pub(crate) struct QuickStore<K, T> {
    inner: Inner<K, T>,
    hasher: FixedState,
    removal: Option<OnRemove<K, T>>,
}

impl<K, T> QuickStore<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(cfg: StoreConfig<K, T>) -> Self {
        let lifecycle = Lifecycle {
            listener: cfg.listener.0,
            hasher: cfg.hasher.clone(),
        };
        let hasher = cfg.hasher.clone();
        let shards = super::shard_count(cfg.shards, cfg.estimated_items);
        let inner = match OptionsBuilder::new()
            .estimated_items_capacity(cfg.estimated_items)
            .weight_capacity(cfg.capacity)
            .shards(shards)
            .build()
        {
            Ok(options) => Inner::with_options(options, cfg.weigher, cfg.hasher, lifecycle),
            // `build` fails only when a size is unset, and both are set above; this arm keeps the
            // constructor total all the same, with quick_cache's default sharding.
            Err(_) => Inner::with(
                cfg.estimated_items,
                cfg.capacity,
                cfg.weigher,
                cfg.hasher,
                lifecycle,
            ),
        };
        Self {
            inner,
            hasher,
            removal: cfg.removal,
        }
    }

    /// The removal listener, for a list of removed entries.
    pub(crate) fn notify(&self) -> Option<Notify<K, T>> {
        self.removal.as_ref().map(|(n, _)| Arc::clone(n))
    }

    #[inline(always)]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.get(key)
    }

    /// [`get`](Self::get), handing what it found to `then`.
    #[inline(always)]
    pub(crate) fn get_then<Q, R>(&self, key: &Q, then: impl FnOnce(Option<T>) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        then(self.inner.get(key))
    }

    pub(crate) fn insert(&self, key: K, value: T) -> Evictions<K, T> {
        let mut evicted = Evictions::new(self.notify());
        evicted.replacing = Some(self.hasher.hash_one(&key));
        self.inner.insert_with_lifecycle(key, value, &mut evicted);
        evicted.replacing = None;
        evicted
    }

    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<(K, T)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(key)
    }

    pub(crate) fn remove_if<Q>(&self, key: &Q, pred: impl FnOnce(&T) -> bool) -> Option<(K, T)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove_if(key, pred)
    }

    /// Note: quick_cache drops the removed values inside its shard lock; with a removal
    /// listener, copies of them (and of their keys) are handed back.
    pub(crate) fn retain(
        &self,
        keep: impl Fn(&K, &T) -> bool,
        why: Gone,
    ) -> (u64, Evictions<K, T>) {
        let mut out = Evictions::new(self.notify());
        let before = self.inner.len();
        match &self.removal {
            None => self.inner.retain(keep),
            Some((_, copy_key)) => {
                let gone = std::cell::RefCell::new(Vec::new());
                self.inner.retain(|k, v| {
                    let kept = keep(k, v);
                    if !kept {
                        gone.borrow_mut().push((copy_key(k), v.clone()));
                    }
                    kept
                });
                for (k, v) in gone.into_inner() {
                    out.push(k, v, why);
                }
            }
        }
        let removed = before.saturating_sub(self.inner.len()) as u64;
        (removed, out)
    }

    pub(crate) fn clear(&self) -> Evictions<K, T> {
        // `drain` releases the shard lock between entries: each value drops outside it.
        let mut out = Evictions::new(self.notify());
        for (k, v) in self.inner.drain() {
            if self.removal.is_some() {
                out.push(k, v, Gone::Explicit);
            }
        }
        out
    }

    /// Copies of the entries: quick_cache takes a shard's read lock for one entry at a time.
    pub(crate) fn iter(&self) -> QuickIter<'_, K, T>
    where
        K: Clone,
    {
        self.inner.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.inner.capacity()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.inner.weight()
    }
}

//! The default store: `quick_cache`'s sharded S3-FIFO cache.

use std::borrow::Borrow;
use std::hash::Hash;

use foldhash::quality::FixedState;
use quick_cache::OptionsBuilder;

use std::sync::Arc;

use super::{Evictions, StoreConfig, Weigher};

impl<K, T> quick_cache::Weighter<K, T> for Weigher<K, T> {
    #[inline]
    fn weight(&self, key: &K, val: &T) -> u64 {
        self.weigh(key, val)
    }
}

/// Tells the listener of each eviction; the evicted entries drop with the request state, after
/// the shard lock is released.
pub(crate) struct Lifecycle<T> {
    listener: Arc<dyn Fn(&T) + Send + Sync>,
}

impl<T> Clone for Lifecycle<T> {
    fn clone(&self) -> Self {
        Self {
            listener: Arc::clone(&self.listener),
        }
    }
}

impl<K, T> quick_cache::Lifecycle<K, T> for Lifecycle<T> {
    type RequestState = Evictions<K, T>;

    fn on_evict(&self, state: &mut Self::RequestState, key: K, val: T) {
        (self.listener)(&val);
        state.push(key, val);
    }
}

type Inner<K, T> = quick_cache::sync::Cache<K, T, Weigher<K, T>, FixedState, Lifecycle<T>>;

/// quick_cache's iterator over copies of its entries.
pub(crate) type QuickIter<'a, K, T> =
    quick_cache::sync::Iter<'a, K, T, Weigher<K, T>, FixedState, Lifecycle<T>>;

pub(crate) struct QuickStore<K, T> {
    inner: Inner<K, T>,
}

impl<K, T> QuickStore<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(cfg: StoreConfig<K, T>) -> Self {
        let lifecycle = Lifecycle {
            listener: cfg.listener.0,
        };
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
        Self { inner }
    }

    #[inline(always)]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.get(key)
    }

    pub(crate) fn insert(&self, key: K, value: T) -> Evictions<K, T> {
        let mut evicted = Evictions::default();
        self.inner.insert_with_lifecycle(key, value, &mut evicted);
        evicted
    }

    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(key).map(|(_, v)| v)
    }

    pub(crate) fn remove_if<Q>(&self, key: &Q, pred: impl FnOnce(&T) -> bool) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove_if(key, pred).map(|(_, v)| v)
    }

    /// Note: quick_cache drops the removed values inside its shard lock.
    pub(crate) fn retain(&self, keep: impl Fn(&K, &T) -> bool) -> u64 {
        let before = self.inner.len();
        self.inner.retain(keep);
        before.saturating_sub(self.inner.len()) as u64
    }

    pub(crate) fn clear(&self) {
        // `drain` releases the shard lock between entries: each value drops outside it.
        for entry in self.inner.drain() {
            drop(entry);
        }
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

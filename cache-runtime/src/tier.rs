//! The interface of a remote tier (L2) behind a cache's in-process store (L1).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::Entry;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// This process's store of a cache, as the remote tier sees it.
pub(crate) trait LocalL1<K>: Send + Sync {
    /// Drops the local copy of `key` (`None`: of every key).
    fn evict_local(&self, key: Option<&K>);
}

/// A remote tier of typed entries. Every method is infallible: a fault is a miss or a skipped
/// write (the backend counts it), so a call never fails because of the tier.
pub(crate) trait Tier<K, V, N>: Send + Sync {
    fn get(&self, key: &K) -> Option<Entry<V, N>>;
    fn put(&self, key: &K, entry: &Entry<V, N>, ttl: Option<Duration>);
    fn delete(&self, key: &K);
    /// Removes every entry of this cache from the tier.
    fn clear(&self);
    /// Tells other processes that `key` (`None`: every key) changed.
    fn broadcast(&self, key: Option<&K>);
    /// Lets the tier evict this process's L1 copies when other processes invalidate.
    fn attach(&self, l1: std::sync::Weak<dyn LocalL1<K>>);
    fn get_async<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Option<Entry<V, N>>>;
    fn put_async<'a>(
        &'a self,
        key: &'a K,
        entry: &'a Entry<V, N>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ()>;
}

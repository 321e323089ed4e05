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
    fn delete_async<'a>(&'a self, key: &'a K) -> BoxFuture<'a, ()>;
    /// Removes every entry of this cache from the tier.
    fn clear(&self);
    /// Tries to take the fleet-wide lease of loading `key`: `Some(token)` when taken (or when
    /// Redis cannot say: fail open, load), `None` when another process holds it.
    fn lease(&self, key: &K, lease: Duration) -> Option<Option<String>>;
    fn lease_async<'a>(
        &'a self,
        key: &'a K,
        lease: Duration,
    ) -> BoxFuture<'a, Option<Option<String>>>;
    /// Releases a lease taken by [`lease`](Tier::lease) (only if still ours).
    fn release(&self, key: &K, token: &str);
    fn release_async<'a>(&'a self, key: &'a K, token: &'a str) -> BoxFuture<'a, ()>;
    /// Waits (bounded by `max`) for another process's load of `key` to appear.
    fn wait_for(&self, key: &K, max: Duration) -> Option<Entry<V, N>>;
    fn wait_for_async<'a>(
        &'a self,
        key: &'a K,
        max: Duration,
    ) -> BoxFuture<'a, Option<Entry<V, N>>>;
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

//! Visiting the entries: a snapshot iterator, and invalidation by a predicate over them.

use std::fmt;
use std::hash::Hash;

use super::Cache;
use crate::entry::{Entry, Stamp, Stored};
use crate::store;

/// An iterator over copies of a cache's live values, from [`Cache::iter`].
///
/// It holds no lock between two calls of `next`: each entry (or, for the `lru`, `lfu` and `fifo`
/// policies, each shard's entries) is copied under its shard's lock, and handed out after the
/// lock is released, so the caller's code may read or write the cache meanwhile.
pub struct Iter<'a, K, V, N = std::convert::Infallible> {
    cache: &'a Cache<K, V, N>,
    entries: store::Iter<'a, K, Stored<V, N>>,
}

impl<K, V, N> fmt::Debug for Iter<'_, K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("cache", &self.cache.core.name)
            .finish_non_exhaustive()
    }
}

impl<K, V, N> Iterator for Iter<'_, K, V, N>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            // A visit, not a read (it keeps no entry from idling).
            let (k, s) = crate::invalidate::frame::peek(|| self.entries.next())?;
            // The copy carries its stamps only when they show an invalidation or idle expiry.
            if self.cache.expired(&s) || s.stamps.as_ref().is_some_and(Stamp::is_stale) {
                continue;
            }
            if let Entry::Value(v) = s.entry {
                return Some((k, v));
            }
        }
    }
}

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Copies of the live values (fresh, not negative) with their keys, in no particular order.
    ///
    /// A snapshot taken as it goes, without blocking the cache: no lock is held while the
    /// caller's code runs (see [`Iter`]). Every entry present for the whole iteration is visited
    /// once; one inserted or removed meanwhile may be visited or not. Iterating counts no hit
    /// or miss and does not move entries in the eviction order.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let stock: Cache<String, u32> = Cache::builder().build()?;
    /// stock.insert("tea".into(), 3);
    /// stock.insert("coffee".into(), 0);
    /// let mut all: Vec<(String, u32)> = stock.iter().collect();
    /// all.sort();
    /// assert_eq!(all, [("coffee".to_string(), 0), ("tea".to_string(), 3)]);
    /// // The cache may be used while iterating: no lock is held.
    /// for (k, n) in stock.iter() {
    ///     stock.insert(k, n + 1);
    /// }
    /// assert_eq!(stock.get("tea"), Some(4));
    /// assert_eq!(stock.stats().hits, 1); // the `get` above, not the iteration
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[must_use]
    pub fn iter(&self) -> Iter<'_, K, V, N>
    where
        K: Clone,
    {
        Iter {
            cache: self,
            entries: self.core.store.iter(),
        }
    }

    /// Removes every live value for which `pred` holds (moka's `invalidate_entries_if`), as
    /// [`remove`](Self::remove) would each: a load of such a key in flight stores nothing, the
    /// remote tier's copy is deleted and the fleet told, and what was computed from the entry
    /// is invalidated (see [`invalidate`](crate::invalidate)). Returns how many were removed.
    ///
    /// `pred` sees the entries of an [`iter`](Self::iter) snapshot and runs outside every lock
    /// (it may use the cache). Negative entries are not offered to it and stay. The removal
    /// follows the judgement: an entry replaced between the two is removed too (its next read
    /// loads it again); one inserted after its shard was visited is not judged.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// #[derive(Clone)]
    /// struct Session {
    ///     user: u64,
    /// }
    ///
    /// let sessions: Cache<String, Session> = Cache::builder().build()?;
    /// sessions.insert("a".into(), Session { user: 1 });
    /// sessions.insert("b".into(), Session { user: 2 });
    /// sessions.insert("c".into(), Session { user: 1 });
    /// // User 1 logs out everywhere.
    /// assert_eq!(sessions.invalidate_if(|_id, s| s.user == 1), 2);
    /// assert!(sessions.get("a").is_none() && sessions.get("c").is_none());
    /// assert!(sessions.get("b").is_some());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn invalidate_if(&self, mut pred: impl FnMut(&K, &V) -> bool) -> usize
    where
        K: Clone,
    {
        let doomed: Vec<K> = self
            .iter()
            .filter(|(k, v)| pred(k, v))
            .map(|(k, _)| k)
            .collect();
        // `remove` invalidates the key's flight, its remote copy and its dependants.
        doomed.iter().filter(|k| self.remove(*k)).count()
    }
}

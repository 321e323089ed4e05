//! Compute-if-absent: the public loading calls, each a thin front over the miss path.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::hash::Hash;
use std::sync::Arc;

use super::Cache;
use super::refresh::{from_loaded, to_loaded};
use crate::driver::{Async, Blocking, block_on};
use crate::entry::{Loaded, Share, hit_value};

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Compute-if-absent with a loader that yields a value or a negative result.
    ///
    /// On a miss, `load` runs once however many callers miss `key` at the same time; the
    /// others wait and share its outcome. `Ok` is cached with the TTL. `Err` is a negative
    /// result: with `negative_ttl` set it is cached for that long (and shared with the waiters,
    /// and counted in `negative_hits` when served); without it, it is not cached, but the
    /// callers waiting on this load still get a clone of it and do not load again (a caller
    /// arriving later loads anew).
    ///
    /// A panic in `load` reaches this caller; each caller waiting on this load panics with the
    /// message "the load of this key panicked in another caller" without running its loader.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound;
    ///
    /// let users: Cache<u64, String, NotFound> = Cache::builder()
    ///     .ttl(Duration::from_secs(300))
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    ///
    /// let lookup = |id: u64| if id == 1 { Ok("ada".to_string()) } else { Err(NotFound) };
    /// assert_eq!(users.get_or_load(&1, || lookup(1)), Ok("ada".to_string()));
    /// assert_eq!(users.get_or_load(&2, || lookup(2)), Err(NotFound));
    /// // The "not found" is cached: the loader does not run again.
    /// assert_eq!(users.get_or_load(&2, || unreachable!()), Err(NotFound));
    /// assert_eq!(users.stats().negative_hits, 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    pub fn get_or_load<Q>(&self, key: &Q, load: impl FnOnce() -> Result<V, N>) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.lookup_counted(key) {
            Some(e) => e.into_result(),
            None => from_loaded(block_on(self.load_after_miss::<Blocking, _, _, _>(
                key,
                None,
                || ready(to_loaded(load())),
            ))),
        }
    }

    /// The async form of [`get_or_load`](Self::get_or_load). If this future is dropped while it
    /// loads, the waiters are released and one of them loads instead.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound;
    ///
    /// async fn query(id: u64) -> Result<String, NotFound> {
    ///     if id == 1 { Ok("ada".to_string()) } else { Err(NotFound) }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let users: Cache<u64, String, NotFound> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(users.get_or_load_async(&1, || query(1)).await, Ok("ada".to_string()));
    /// assert_eq!(users.get_or_load_async(&2, || query(2)).await, Err(NotFound));
    /// assert_eq!(users.get_or_load_async(&2, || query(2)).await, Err(NotFound)); // cached
    /// assert_eq!(users.stats().loads, 2);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    #[inline]
    pub async fn get_or_load_async<Q, F>(&self, key: &Q, load: impl FnOnce() -> F) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Result<V, N>>,
    {
        match self.lookup_counted(key) {
            Some(e) => e.into_result(),
            None => from_loaded(
                self.load_after_miss::<Async, _, _, _>(key, None, || async {
                    to_loaded(load().await)
                })
                .await,
            ),
        }
    }
}

/// Compute-if-absent for caches without negative results.
impl<K, V> Cache<K, V, Infallible>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Returns `key`'s value, running `load` on a miss and caching its result
    /// (compute-if-absent). Concurrent misses of `key` run `load` once and share its value.
    ///
    /// If `load` panics, the panic reaches this caller, and each caller waiting on this load
    /// panics with the message "the load of this key panicked in another caller" without
    /// running `load` (the next caller after them loads anew).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let lengths: Cache<String, usize> = Cache::builder().build()?;
    /// assert_eq!(lengths.get_or_insert_with("hello", || "hello".len()), 5); // a miss: loads
    /// assert_eq!(lengths.get_or_insert_with("hello", || unreachable!()), 5); // a hit
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn get_or_insert_with<Q>(&self, key: &Q, load: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.get_or_load(key, || Ok(load())) {
            Ok(v) => v,
            Err(n) => match n {},
        }
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) with a fallible loader whose `Err`
    /// is never cached.
    ///
    /// The error goes to this caller alone, and callers waiting on this load then **retry one
    /// at a time**: the next becomes the leader and loads while the rest wait on it. This needs
    /// no bound on `E` (with none, the error cannot be handed to anyone else), never hands a
    /// caller an error that its own call did not meet, and still never runs two loads of one
    /// key at once; but N callers waiting on a key whose loader keeps failing run N loads, one
    /// after another. To share the error with the waiters instead (and spare a failing
    /// backend), use [`try_get_with`](Self::try_get_with) (every waiter gets the same
    /// `Arc<E>`), or cache it: [`get_or_load`](Self::get_or_load) with `negative_ttl`.
    ///
    /// A panic of `load` is shared, whatever `E`: each caller waiting on this load panics with
    /// the message "the load of this key panicked in another caller" without running `load`.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let parsed: Cache<String, u64> = Cache::builder().build()?;
    /// assert_eq!(parsed.get_or_try_insert_with("42", || "42".parse::<u64>()), Ok(42));
    /// assert!(parsed.get_or_try_insert_with("x", || "x".parse::<u64>()).is_err());
    /// assert!(!parsed.contains_key("x")); // the error was not cached
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// `load`'s error, from this caller's own load.
    pub fn get_or_try_insert_with<Q, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.lookup_counted(key) {
            Some(e) => Ok(hit_value(e)),
            None => from_tried(block_on(self.load_after_miss::<Blocking, _, _, _>(
                key,
                None,
                || ready(to_tried(load())),
            ))),
        }
    }

    /// The async form of [`get_or_insert_with`](Self::get_or_insert_with).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let names: Cache<u64, String> = Cache::builder().build()?;
    /// let name = names.get_or_insert_with_async(&1, || async { "ada".to_string() }).await;
    /// assert_eq!(name, "ada");
    /// let again = names.get_or_insert_with_async(&1, || async { unreachable!() }).await;
    /// assert_eq!(again, "ada"); // a hit: the future is never created
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub async fn get_or_insert_with_async<Q, F>(&self, key: &Q, load: impl FnOnce() -> F) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = V>,
    {
        match self
            .get_or_load_async(key, || async { Ok(load().await) })
            .await
        {
            Ok(v) => v,
            Err(n) => match n {},
        }
    }

    /// The async form of [`get_or_try_insert_with`](Self::get_or_try_insert_with).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let names: Cache<u64, String> = Cache::builder().build()?;
    /// let failed = names.get_or_try_insert_with_async(&1, || async { Err("timeout") }).await;
    /// assert_eq!(failed, Err("timeout"));
    /// let ok = || async { Ok::<_, &str>("ada".to_string()) };
    /// assert_eq!(names.get_or_try_insert_with_async(&1, ok).await, Ok("ada".to_string()));
    /// assert_eq!(names.stats().loads, 2); // the error was not cached
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// `load`'s error, from this caller's own load.
    pub async fn get_or_try_insert_with_async<Q, E, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Result<V, E>>,
    {
        match self.lookup_counted(key) {
            Some(e) => Ok(hit_value(e)),
            None => from_tried(
                self.load_after_miss::<Async, _, _, _>(key, None, || async {
                    to_tried(load().await)
                })
                .await,
            ),
        }
    }
    /// Compute-if-absent with a fallible loader whose error is shared, not cached (moka's
    /// `try_get_with`): callers waiting on a load that fails get **the same** `Arc` of its
    /// error and do not load again, so a failing data source sees one load per key at a time,
    /// not one per waiting caller. A caller arriving after the failure loads anew: the error
    /// is never cached.
    ///
    /// If `load` panics, the panic reaches this caller, and each caller waiting on this load
    /// panics with the message "the load of this key panicked in another caller" (what a panic
    /// of its own loader would have done) without running `load`.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug)]
    /// struct DbDown; // no `Clone` needed
    ///
    /// let users: Cache<u64, String> = Cache::builder().build()?;
    /// let failed: Result<String, Arc<DbDown>> = users.try_get_with(&1, || Err(DbDown));
    /// assert!(failed.is_err());
    /// assert!(!users.contains_key(&1)); // the error was not cached: the next call loads
    /// assert_eq!(users.try_get_with(&1, || Ok::<_, DbDown>("ada".to_string())).unwrap(), "ada");
    /// assert_eq!(users.stats().loads, 2);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// `load`'s error, from this caller's load or from the load it waited on.
    pub fn try_get_with<Q, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
    {
        match self.lookup_counted(key) {
            Some(e) => Ok(hit_value(e)),
            None => from_tried(block_on(self.load_after_miss::<Blocking, _, _, _>(
                key,
                Some(Share::cloned()),
                || ready(to_tried(load().map_err(Arc::new))),
            ))),
        }
    }

    /// The async form of [`try_get_with`](Self::try_get_with). If this future is dropped while
    /// it loads (a cancellation, not a failure), the waiters are released and one of them loads
    /// instead.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::sync::Arc;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let names: Cache<u64, String> = Cache::builder().build()?;
    /// let failed = names.try_get_with_async(&1, || async { Err::<String, _>("timeout") }).await;
    /// assert_eq!(failed, Err(Arc::new("timeout")));
    /// let ok = || async { Ok::<_, &str>("ada".to_string()) };
    /// assert_eq!(names.try_get_with_async(&1, ok).await, Ok("ada".to_string()));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// `load`'s error, from this caller's load or from the load it waited on.
    pub async fn try_get_with_async<Q, E, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        match self.lookup_counted(key) {
            Some(e) => Ok(hit_value(e)),
            None => from_tried(
                self.load_after_miss::<Async, _, _, _>(key, Some(Share::cloned()), || async {
                    to_tried(load().await.map_err(Arc::new))
                })
                .await,
            ),
        }
    }
}

/// "Not found" caching for loaders that return `Option`.
impl<K, V> Cache<K, V, ()>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Like [`get_or_load`](Cache::get_or_load) for a loader that returns `None` for "not
    /// found": `None` is cached for `negative_ttl` when it is set.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// let find = |id: u64| (id == 1).then(|| "ada".to_string()); // a query
    /// assert_eq!(users.get_or_load_option(&1, || find(1)), Some("ada".to_string()));
    /// assert_eq!(users.get_or_load_option(&2, || find(2)), None);
    /// assert_eq!(users.get_or_load_option(&2, || unreachable!()), None); // "not found" is cached
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn get_or_load_option<Q>(&self, key: &Q, load: impl FnOnce() -> Option<V>) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.get_or_load(key, || load().ok_or(())).ok()
    }

    /// The async form of [`get_or_load_option`](Self::get_or_load_option).
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// async fn find(id: u64) -> Option<String> {
    ///     (id == 1).then(|| "ada".to_string()) // a query
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(users.get_or_load_option_async(&1, || find(1)).await, Some("ada".to_string()));
    /// assert_eq!(users.get_or_load_option_async(&2, || find(2)).await, None);
    /// assert_eq!(users.stats().loads, 2);
    /// assert_eq!(users.get_or_load_option_async(&2, || find(2)).await, None); // cached
    /// assert_eq!(users.stats().loads, 2);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_or_load_option_async<Q, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Option<V>>,
    {
        self.get_or_load_async(key, || async { load().await.ok_or(()) })
            .await
            .ok()
    }
}

/// A fallible loader's outcome: `Err` is returned uncached.
fn to_tried<V, E>(r: Result<V, E>) -> Loaded<V, Infallible, E> {
    match r {
        Ok(v) => Loaded::Value(v),
        Err(e) => Loaded::Error(e),
    }
}

/// The `Result` of a fallible loader's outcome.
fn from_tried<V, E>(l: Loaded<V, Infallible, E>) -> Result<V, E> {
    match l {
        Loaded::Value(v) => Ok(v),
        Loaded::Error(e) => Err(e),
        Loaded::Negative(n) => match n {},
    }
}

//! Forced refresh: reload an entry whatever its state (Caffeine's `refresh`, `cached`'s
//! `force_refresh`), through the same single-flight and the same stores as a miss.
//!
//! On a [`Cache`]: [`Cache::refresh`] and [`Cache::refresh_async`]. For a memoized function:
//! its `<fn>_refresh` companion, or [`reload`] / [`reload_async`] around any call of it (a
//! forced-refresh frame, see [`invalidate::frame`](crate::invalidate), whose first lookup
//! misses and whose load reloads: nothing is added to the hit path).

use std::borrow::Borrow;
use std::future::{Future, ready};
use std::hash::Hash;
use std::pin::pin;

use super::Cache;
use super::refresh::{from_loaded, to_loaded};
use crate::driver::{Async, Blocking, block_on};
use crate::invalidate::frame::{self, Frame, Within};

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Reloads `key` whatever its state (fresh, stale or absent) and returns the outcome: a
    /// value replaces the entry (in the remote tier too, when there is one), and so does a
    /// negative result with `negative_ttl` set. An outcome that is not cached (a negative
    /// result without `negative_ttl`) is returned and leaves the entry as it was, as Caffeine's
    /// `refresh` keeps the old value when the reload fails.
    ///
    /// A load of `key` already in flight (a miss's, another refresh's) is joined rather than a
    /// second one started: its outcome is returned. Counted in `refreshes` and `loads`.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let prices: Cache<&str, u64> = Cache::builder().build()?;
    /// assert_eq!(prices.get_or_insert_with(&"tea", || 3), 3);
    /// // The price changed at the source: reload it now, whatever the entry's TTL.
    /// assert_eq!(prices.refresh(&"tea", || Ok(4)), Ok(4));
    /// assert_eq!(prices.get(&"tea"), Some(4));
    /// assert_eq!(prices.stats().refreshes, 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// The negative result of the reload (or of the load it joined).
    pub fn refresh<Q>(&self, key: &Q, load: impl FnOnce() -> Result<V, N>) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        from_loaded(block_on(self.reload::<Blocking, _, _, _>(
            key,
            None,
            || ready(to_loaded(load())),
        )))
    }

    /// The async form of [`refresh`](Self::refresh). If this future is dropped while it loads,
    /// the entry stays as it was and the callers waiting on the reload retry.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let rates: Cache<&str, u64> = Cache::builder().build()?;
    /// rates.insert("eur", 108);
    /// assert_eq!(rates.refresh_async(&"eur", || async { Ok(109) }).await, Ok(109));
    /// assert_eq!(rates.get(&"eur"), Some(109));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The negative result of the reload (or of the load it joined).
    pub async fn refresh_async<Q, F>(&self, key: &Q, load: impl FnOnce() -> F) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Result<V, N>>,
    {
        from_loaded(
            self.reload::<Async, _, _, _>(key, None, || async { to_loaded(load().await) })
                .await,
        )
    }
}

/// Runs `call` as a forced refresh: the first memoized call it makes (a `#[cached]` function or
/// method, or any `get_or_load`-style call of a [`Cache`]) reloads its entry whatever its state,
/// replaces it, and returns the new result. Calls made by that loader in turn are ordinary.
/// This is what each `#[cached]` function's `<fn>_refresh` companion does; `reload` serves
/// where there is none (a method of a trait impl, a private method, a `key = ..` whose type is
/// inferred).
///
/// A load of the same key already in flight is joined instead of started again. An outcome
/// that is not cached (an `Err` or `None` without `negative_ttl`) is returned and leaves the
/// entry as it was. Nothing is added to the hit path of any cache.
///
/// ```
/// use cache_runtime::cached;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// static PRICE: AtomicU64 = AtomicU64::new(3);
///
/// #[cached]
/// fn price(item: &str) -> u64 {
///     PRICE.load(Ordering::SeqCst)
/// }
///
/// assert_eq!(price("tea"), 3);
/// PRICE.store(4, Ordering::SeqCst);
/// assert_eq!(price("tea"), 3); // cached
/// assert_eq!(cache_runtime::reload(|| price("tea")), 4); // reloaded
/// assert_eq!(price("tea"), 4);
/// assert_eq!(price_refresh("tea"), 4); // the companion does the same
/// ```
pub fn reload<R>(call: impl FnOnce() -> R) -> R {
    let mut frame = Frame::force(None);
    frame::within(&mut frame, call)
}

/// The async form of [`reload`]: the first memoized call `call` makes reloads its entry.
///
/// ```
/// use cache_runtime::cached;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// static STOCK: AtomicU64 = AtomicU64::new(10);
///
/// #[cached]
/// async fn stock(item: u64) -> u64 {
///     STOCK.load(Ordering::SeqCst) + item
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(stock(1).await, 11);
/// STOCK.store(20, Ordering::SeqCst);
/// assert_eq!(stock(1).await, 11); // cached
/// assert_eq!(cache_runtime::reload_async(stock(1)).await, 21); // reloaded
/// assert_eq!(stock_refresh(1).await, 21); // the companion
/// # });
/// ```
pub async fn reload_async<F: Future>(call: F) -> F::Output {
    let mut frame = Frame::force(None);
    let fut = pin!(call);
    Within {
        fut,
        frame: &mut frame,
    }
    .await
}

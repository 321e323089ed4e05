//! How a function's outcome is cached and rebuilt: one marker type per kind of return, and the
//! lookup and load of a memoized function, for blocking and async callers.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::hash::Hash;
use std::marker::PhantomData;

use super::{CacheKey, CacheValue};
use crate::Cache;
use crate::cache::{Lookup, Refresh};
use crate::driver::{Async, Blocking, block_on};
use crate::entry::{Entry, Loaded, Share, hit_value};

/// How a function's return value maps to what is cached: one marker per kind of return.
pub mod shape {
    /// A plain value: always cached.
    pub struct Plain;
    /// `Result`: `Ok` cached, `Err` returned uncached.
    pub struct Res;
    /// `Result` with `negative_ttl`: `Err` cached too.
    pub struct ResNeg;
    /// `Option`: `Some` cached, `None` returned uncached.
    pub struct Opt;
    /// `Option` with `negative_ttl`: `None` cached too.
    pub struct OptNeg;
}

/// How the outcome `Out` of a function is cached as an entry of `V` and `N`, and rebuilt.
pub trait Shape<V, N, Out> {
    /// What to cache of `out` (`Loaded::Error(out)`: return it uncached).
    fn loaded(out: Out) -> Loaded<V, N, Out>;
    /// The outcome again.
    fn out(l: Loaded<V, N, Out>) -> Out;
    /// The outcome of a cached entry.
    fn hit(e: Entry<V, N>) -> Out;
    /// The value `out` would cache, if any (what `unless` looks at).
    fn value(out: &Out) -> Option<&V>;
}

impl<V> Shape<V, Infallible, V> for shape::Plain {
    fn loaded(out: V) -> Loaded<V, Infallible, V> {
        Loaded::Value(out)
    }
    fn out(l: Loaded<V, Infallible, V>) -> V {
        match l {
            Loaded::Value(v) | Loaded::Error(v) => v,
            Loaded::Negative(n) => match n {},
        }
    }
    fn hit(e: Entry<V, Infallible>) -> V {
        hit_value(e)
    }
    fn value(out: &V) -> Option<&V> {
        Some(out)
    }
}

impl<V, E> Shape<V, Infallible, Result<V, E>> for shape::Res {
    fn loaded(out: Result<V, E>) -> Loaded<V, Infallible, Result<V, E>> {
        match out {
            Ok(v) => Loaded::Value(v),
            Err(e) => Loaded::Error(Err(e)),
        }
    }
    fn out(l: Loaded<V, Infallible, Result<V, E>>) -> Result<V, E> {
        match l {
            Loaded::Value(v) => Ok(v),
            Loaded::Error(o) => o,
            Loaded::Negative(n) => match n {},
        }
    }
    fn hit(e: Entry<V, Infallible>) -> Result<V, E> {
        Ok(hit_value(e))
    }
    fn value(out: &Result<V, E>) -> Option<&V> {
        out.as_ref().ok()
    }
}

impl<V, E> Shape<V, E, Result<V, E>> for shape::ResNeg {
    fn loaded(out: Result<V, E>) -> Loaded<V, E, Result<V, E>> {
        match out {
            Ok(v) => Loaded::Value(v),
            Err(e) => Loaded::Negative(e),
        }
    }
    fn out(l: Loaded<V, E, Result<V, E>>) -> Result<V, E> {
        match l {
            Loaded::Value(v) => Ok(v),
            Loaded::Negative(e) => Err(e),
            Loaded::Error(o) => o,
        }
    }
    fn hit(e: Entry<V, E>) -> Result<V, E> {
        e.into_result()
    }
    fn value(out: &Result<V, E>) -> Option<&V> {
        out.as_ref().ok()
    }
}

impl<V> Shape<V, Infallible, Option<V>> for shape::Opt {
    fn loaded(out: Option<V>) -> Loaded<V, Infallible, Option<V>> {
        match out {
            Some(v) => Loaded::Value(v),
            None => Loaded::Error(None),
        }
    }
    fn out(l: Loaded<V, Infallible, Option<V>>) -> Option<V> {
        match l {
            Loaded::Value(v) => Some(v),
            Loaded::Error(o) => o,
            Loaded::Negative(n) => match n {},
        }
    }
    fn hit(e: Entry<V, Infallible>) -> Option<V> {
        Some(hit_value(e))
    }
    fn value(out: &Option<V>) -> Option<&V> {
        out.as_ref()
    }
}

impl<V> Shape<V, (), Option<V>> for shape::OptNeg {
    fn loaded(out: Option<V>) -> Loaded<V, (), Option<V>> {
        match out {
            Some(v) => Loaded::Value(v),
            None => Loaded::Negative(()),
        }
    }
    fn out(l: Loaded<V, (), Option<V>>) -> Option<V> {
        match l {
            Loaded::Value(v) => Some(v),
            Loaded::Negative(()) => None,
            Loaded::Error(o) => o,
        }
    }
    fn hit(e: Entry<V, ()>) -> Option<V> {
        e.into_result().ok()
    }
    fn value(out: &Option<V>) -> Option<&V> {
        out.as_ref()
    }
}

/// The outcome of a hit, for shape `S`.
#[inline]
pub fn shape_hit<S: Shape<V, N, Out>, V, N, Out>(e: Entry<V, N>) -> Out {
    S::hit(e)
}

/// What to cache of `out`: nothing when `unless` holds for its value.
#[inline]
pub fn classify<S: Shape<V, N, Out>, V, N, Out>(
    out: Out,
    unless: Option<fn(&V) -> bool>,
) -> Loaded<V, N, Out> {
    if let Some(skip) = unless
        && S::value(&out).is_some_and(skip)
    {
        return Loaded::Error(out);
    }
    S::loaded(out)
}

/// The counted lookup of a call that can refresh (`stale`, `early_refresh`).
#[inline]
pub fn lookup_refresh<K, V, N, Q>(cache: &Cache<K, V, N>, key: &Q) -> Lookup<K, V, N>
where
    K: CacheKey + Borrow<Q>,
    V: CacheValue,
    N: CacheValue,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    cache.lookup_refresh(key)
}

/// The load after a miss of a blocking caller, for shape `S`: `load` gives the outcome to
/// classify (see [`classify`]); an outcome that is not cached is handed to the callers waiting
/// on this load through `share` (from [`Probe`]), or, without one, they retry.
pub fn load<S, K, V, N, Q, Out>(
    _shape: S,
    cache: &Cache<K, V, N>,
    key: &Q,
    share: Option<Share<Out>>,
    load: impl FnOnce() -> Loaded<V, N, Out>,
) -> Out
where
    S: Shape<V, N, Out>,
    K: CacheKey + Borrow<Q>,
    V: CacheValue,
    N: CacheValue,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    S::out(block_on(cache.load_after_miss::<Blocking, _, _, _>(
        key,
        share,
        || ready(load()),
    )))
}

/// The load after a miss of an async caller, for shape `S`.
pub async fn load_async<S, K, V, N, Q, Out, F>(
    _shape: S,
    cache: &Cache<K, V, N>,
    key: &Q,
    share: Option<Share<Out>>,
    load: impl FnOnce() -> F,
) -> Out
where
    S: Shape<V, N, Out>,
    K: CacheKey + Borrow<Q>,
    V: CacheValue,
    N: CacheValue,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    F: Future<Output = Loaded<V, N, Out>>,
{
    S::out(
        cache
            .load_after_miss::<Async, _, _, _>(key, share, load)
            .await,
    )
}

/// A refresh (`stale`) run in the background, for a blocking caller. The refresh functions
/// carry the key and value bounds, like [`load`], so that generated code names the types.
pub fn spawn_refresh<K, V, N, E: 'static>(
    cache: &Cache<K, V, N>,
    refresh: Refresh<K, V, N>,
    key: K,
    load: impl FnOnce() -> Loaded<V, N, E> + Send + 'static,
) where
    K: CacheKey,
    V: CacheValue,
    N: CacheValue,
{
    cache.spawn_refresh(refresh, key, load);
}

/// A refresh (`stale`) run in the background, for an async caller.
pub fn spawn_refresh_async<K, V, N, E: Send + 'static, F>(
    cache: &Cache<K, V, N>,
    refresh: Refresh<K, V, N>,
    key: K,
    load: impl FnOnce() -> F + Send + 'static,
) where
    K: CacheKey,
    V: CacheValue,
    N: CacheValue,
    F: Future<Output = Loaded<V, N, E>> + Send + 'static,
{
    cache.spawn_refresh_async(refresh, key, load);
}

/// An early refresh (`early_refresh`) run by a blocking caller: the entry to return.
pub fn refresh_inline<K, V, N, E>(
    cache: &Cache<K, V, N>,
    refresh: Refresh<K, V, N>,
    key: K,
    old: Entry<V, N>,
    load: impl FnOnce() -> Loaded<V, N, E>,
) -> Entry<V, N>
where
    K: CacheKey,
    V: CacheValue,
    N: CacheValue,
{
    cache.refresh_inline(refresh, key, old, load)
}

/// An early refresh (`early_refresh`) run by an async caller: the entry to return.
pub async fn refresh_inline_async<K, V, N, E, F>(
    cache: &Cache<K, V, N>,
    refresh: Refresh<K, V, N>,
    key: K,
    old: Entry<V, N>,
    load: impl FnOnce() -> F,
) -> Entry<V, N>
where
    K: CacheKey,
    V: CacheValue,
    N: CacheValue,
    F: Future<Output = Loaded<V, N, E>>,
{
    cache
        .refresh_here::<crate::driver::Async, E, F>((refresh, key, old), load)
        .await
}

/// Tells generated code, for the concrete type `T` of a function's outcome, how to share an
/// uncached outcome with the callers waiting on its load: `(&&Probe::<T>::new()).share()` is
/// `Some` when `T: Clone + Send + Sync + 'static` (autoref specialization: the impl on
/// `&Probe<T>` is found first when its bounds hold), `None` otherwise (the impl on `Probe<T>`,
/// one auto-dereference away). For a generic `T` whose bounds do not say `Clone`, `None`.
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// The probe.
    #[must_use]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The specialized case of [`Probe`]: a cloneable outcome is shared.
pub trait ShareCloned<T> {
    /// `Some`: share by cloning.
    fn share(&self) -> Option<Share<T>>;
}

impl<T: Clone + Send + Sync + 'static> ShareCloned<T> for &Probe<T> {
    fn share(&self) -> Option<Share<T>> {
        Some(Share::cloned())
    }
}

/// The fallback of [`Probe`]: the outcome is not shared (the waiters retry).
pub trait ShareNone<T> {
    /// `None`.
    fn share(&self) -> Option<Share<T>>;
}

impl<T> ShareNone<T> for Probe<T> {
    fn share(&self) -> Option<Share<T>> {
        None
    }
}

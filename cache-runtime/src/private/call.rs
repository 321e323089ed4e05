//! The calls of a memoized function that must not report a missing bound a second time: the
//! async ones (whose futures the generated code awaits) and those of a function whose key type
//! only the compiler knows (whose types it cannot spell at the user's tokens).
//!
//! A future's type carries the bounds of the function that made it, and awaiting it proves them
//! again, where no span of the user's can be given. So these calls dispatch on their types by
//! autoref specialization: `(&&Call::<S, K, V, N, Q, Out>::new()).load_async(..)` finds the
//! method of [`CallChecked`] (on `&Call`) when the bounds hold, and otherwise, one
//! auto-dereference away, the inert one of [`CallUnchecked`] (on `Call`), which reports
//! nothing. The bound checks at the user's tokens (`assert_key`, `assert_value`, `key_of`) then
//! report the missing trait once, and the build fails there: the inert methods are never run.

use std::borrow::Borrow;
use std::future::{Future, pending};
use std::hash::Hash;
use std::marker::PhantomData;

use super::{CacheKey, CacheValue, Configure, ErasedFnCache, Shape};
use crate::Cache;
use crate::cache::Refresh;
use crate::entry::{Entry, Loaded, Share};

/// The types of a memoized function's call: its return shape `S`, key `K`, cached value `V`
/// and negative result `N`, the type `Q` it looks the key up as, and its outcome `Out`.
pub struct Call<S, K, V, N, Q: ?Sized, Out>(PhantomData<Types<S, K, V, N, Q, Out>>);

/// The types of a [`Call`], as a marker that owns none of them (`Send` and `Sync`
/// whatever they are).
type Types<S, K, V, N, Q, Out> = (fn() -> (S, K, V, N, Out), fn(&Q));

impl<S, K, V, N, Q: ?Sized, Out> Call<S, K, V, N, Q, Out> {
    /// The call's types.
    #[must_use]
    pub const fn new() -> Self {
        Call(PhantomData)
    }
}

impl<S, K, V, N, Q: ?Sized, Out> Default for Call<S, K, V, N, Q, Out> {
    fn default() -> Self {
        Self::new()
    }
}

/// The types of a call whose key is `key` (an inferred key type: the key is its own lookup type).
#[must_use]
pub const fn call_of<S, K, V, N, Out>(_key: &K) -> Call<S, K, V, N, K, Out> {
    Call::new()
}

/// The key of a function whose key type only the compiler knows, checked where the user wrote
/// it: a key type that lacks a trait is reported at the `key` expression, once.
#[inline]
pub fn key_of<K: CacheKey>(key: K) -> K {
    key
}

/// The calls, when the bounds hold (see the [module](self)).
pub trait CallChecked<S, K, V, N, Q: ?Sized, Out> {
    /// The cache of a function with an inferred key type (see [`ErasedFnCache::get`]).
    fn erased_cache(
        &self,
        cache: &'static ErasedFnCache,
        configure: Configure<K, V, N>,
    ) -> Option<&'static Cache<K, V, N>>;

    /// [`lookup`](super::lookup).
    fn lookup(&self, cache: &Cache<K, V, N>, key: &Q) -> Option<Entry<V, N>>;

    /// [`load`](super::load).
    fn load(
        &self,
        shape: S,
        cache: &Cache<K, V, N>,
        key: &Q,
        share: Option<Share<Out>>,
        load: impl FnOnce() -> Loaded<V, N, Out>,
    ) -> Out;

    /// [`load_async`](super::load_async).
    fn load_async<'a, F>(
        &self,
        shape: S,
        cache: &'a Cache<K, V, N>,
        key: &'a Q,
        share: Option<Share<Out>>,
        load: impl FnOnce() -> F + 'a,
    ) -> impl Future<Output = Out> + 'a
    where
        F: Future<Output = Loaded<V, N, Out>> + 'a,
        S: 'a,
        Out: 'a;

    /// [`refresh_inline_async`](super::refresh_inline_async).
    fn refresh_inline_async<'a, F>(
        &self,
        cache: &'a Cache<K, V, N>,
        refresh: Refresh<K, V, N>,
        key: K,
        old: Entry<V, N>,
        load: impl FnOnce() -> F + 'a,
    ) -> impl Future<Output = Entry<V, N>> + 'a
    where
        F: Future<Output = Loaded<V, N, Out>> + 'a,
        Out: 'a;
}

impl<S, K, V, N, Q, Out> CallChecked<S, K, V, N, Q, Out> for &Call<S, K, V, N, Q, Out>
where
    S: Shape<V, N, Out>,
    K: CacheKey + Borrow<Q>,
    V: CacheValue,
    N: CacheValue,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    #[inline]
    fn erased_cache(
        &self,
        cache: &'static ErasedFnCache,
        configure: Configure<K, V, N>,
    ) -> Option<&'static Cache<K, V, N>> {
        cache.get(configure)
    }

    #[inline]
    fn lookup(&self, cache: &Cache<K, V, N>, key: &Q) -> Option<Entry<V, N>> {
        cache.get_entry(key)
    }

    #[inline]
    fn load(
        &self,
        shape: S,
        cache: &Cache<K, V, N>,
        key: &Q,
        share: Option<Share<Out>>,
        load: impl FnOnce() -> Loaded<V, N, Out>,
    ) -> Out {
        super::load(shape, cache, key, share, load)
    }

    #[inline]
    fn load_async<'a, F>(
        &self,
        shape: S,
        cache: &'a Cache<K, V, N>,
        key: &'a Q,
        share: Option<Share<Out>>,
        load: impl FnOnce() -> F + 'a,
    ) -> impl Future<Output = Out> + 'a
    where
        F: Future<Output = Loaded<V, N, Out>> + 'a,
        S: 'a,
        Out: 'a,
    {
        super::load_async(shape, cache, key, share, load)
    }

    #[inline]
    fn refresh_inline_async<'a, F>(
        &self,
        cache: &'a Cache<K, V, N>,
        refresh: Refresh<K, V, N>,
        key: K,
        old: Entry<V, N>,
        load: impl FnOnce() -> F + 'a,
    ) -> impl Future<Output = Entry<V, N>> + 'a
    where
        F: Future<Output = Loaded<V, N, Out>> + 'a,
        Out: 'a,
    {
        super::refresh_inline_async(cache, refresh, key, old, load)
    }
}

/// The calls, when a bound fails: they report nothing, and are never run, since the bound
/// checks at the user's tokens fail the build (see the [module](self)).
pub trait CallUnchecked<S, K, V, N, Q: ?Sized, Out> {
    /// Never called.
    fn erased_cache(
        &self,
        _cache: &'static ErasedFnCache,
        _configure: Configure<K, V, N>,
    ) -> Option<&'static Cache<K, V, N>> {
        None
    }

    /// Never called.
    fn lookup(&self, _cache: &Cache<K, V, N>, _key: &Q) -> Option<Entry<V, N>> {
        None
    }

    /// Never called.
    fn load(
        &self,
        _shape: S,
        _cache: &Cache<K, V, N>,
        _key: &Q,
        _share: Option<Share<Out>>,
        _load: impl FnOnce() -> Loaded<V, N, Out>,
    ) -> Out {
        unreachable!("a `#[cached]` function whose bound checks failed was built")
    }

    /// Never called.
    fn load_async<'a, F>(
        &self,
        _shape: S,
        _cache: &'a Cache<K, V, N>,
        _key: &'a Q,
        _share: Option<Share<Out>>,
        _load: impl FnOnce() -> F + 'a,
    ) -> impl Future<Output = Out> + 'a
    where
        F: Future<Output = Loaded<V, N, Out>> + 'a,
        S: 'a,
        Out: 'a,
    {
        pending()
    }

    /// Never called.
    fn refresh_inline_async<'a, F>(
        &self,
        _cache: &'a Cache<K, V, N>,
        _refresh: Refresh<K, V, N>,
        _key: K,
        _old: Entry<V, N>,
        _load: impl FnOnce() -> F + 'a,
    ) -> impl Future<Output = Entry<V, N>> + 'a
    where
        F: Future<Output = Loaded<V, N, Out>> + 'a,
        Out: 'a,
    {
        pending()
    }
}

impl<S, K, V, N, Q: ?Sized, Out> CallUnchecked<S, K, V, N, Q, Out> for Call<S, K, V, N, Q, Out> {}

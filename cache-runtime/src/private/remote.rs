//! A function with `backend = "..."`: the checks of its types, the remote tier added to its
//! builder, and its registration for [`config::verify`](crate::config::verify).
//!
//! The tier is added through [`Call`] (see [`call`](super::call)): when a bound fails, the
//! inert method is found, and the checks at the user's tokens (`assert_key`, `assert_value`,
//! [`assert_remote`]) report each missing trait once, instead of the builder's bounds reporting
//! `Send` and `Sync` a second time. Without a remote backend's feature (`redis`, `memcached`), [`assert_remote_backends`]
//! says so, and nothing else is reported.

use std::convert::Infallible;

use super::Call;
#[cfg(feature = "config")]
use super::{CacheKey, CacheValue};
use crate::CacheBuilder;

/// What a remote tier needs of its keys and values (and cached `Err`s): they are encoded.
#[cfg(feature = "config")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in the remote tier of `#[cached(backend = ...)]`",
    label = "a remote tier encodes its keys and values: they must be `Serialize + DeserializeOwned`",
    note = "derive `serde::Serialize` and `serde::Deserialize`, or leave this function's cache in memory"
)]
pub trait RemoteCodec: serde::Serialize + serde::de::DeserializeOwned {}
#[cfg(feature = "config")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> RemoteCodec for T {}

/// Without a remote backend's feature (`redis`, `memcached`) nothing is encoded ([`assert_remote_backends`] reports that the
/// feature is missing).
#[cfg(not(feature = "config"))]
pub trait RemoteCodec {}
#[cfg(not(feature = "config"))]
impl<T: ?Sized> RemoteCodec for T {}

/// Checked at the key type and the return type of a function with a backend.
pub const fn assert_remote<T: RemoteCodec>() {}

/// Adds the remote tier of `backend = "..."` to a function's builder (no negative results),
/// when the bounds hold.
///
/// A backend that was never configured is a configuration mistake: reported once, on standard
/// error and as a `tracing` error, and the function caches in this process's memory only (see
/// [`config::verify`](crate::config::verify), which finds it at startup).
pub trait RemoteChecked<K, V> {
    /// The builder with the tier.
    fn remote(
        &self,
        b: CacheBuilder<K, V, Infallible>,
        backend: &str,
    ) -> CacheBuilder<K, V, Infallible>;
}

#[cfg(feature = "config")]
impl<S, K, V, Q: ?Sized, Out> RemoteChecked<K, V> for &Call<S, K, V, Infallible, Q, Out>
where
    K: CacheKey + RemoteCodec,
    V: CacheValue + RemoteCodec,
{
    #[cold]
    fn remote(
        &self,
        b: CacheBuilder<K, V, Infallible>,
        backend: &str,
    ) -> CacheBuilder<K, V, Infallible> {
        with_backend(b, backend, CacheBuilder::remote)
    }
}

/// Adds the remote tier of `backend = "..."` to the builder of a function with `negative_ttl`,
/// when the bounds hold. A backend that was never configured: as [`RemoteChecked`].
pub trait RemoteNegativeChecked<K, V, N> {
    /// The builder with the tier.
    fn remote_negative(&self, b: CacheBuilder<K, V, N>, backend: &str) -> CacheBuilder<K, V, N>;
}

#[cfg(feature = "config")]
impl<S, K, V, N, Q: ?Sized, Out> RemoteNegativeChecked<K, V, N> for &Call<S, K, V, N, Q, Out>
where
    K: CacheKey + RemoteCodec,
    V: CacheValue + RemoteCodec,
    N: CacheValue + RemoteCodec,
{
    #[cold]
    fn remote_negative(&self, b: CacheBuilder<K, V, N>, backend: &str) -> CacheBuilder<K, V, N> {
        with_backend(b, backend, CacheBuilder::remote_with_negatives)
    }
}

/// The remote tier, when a bound fails (or without a remote backend's feature): nothing is added, and
/// nothing is reported here. Never run: the build fails at the user's tokens.
pub trait RemoteUnchecked<K, V, N> {
    /// The builder, unchanged.
    fn remote(&self, b: CacheBuilder<K, V, N>, _backend: &str) -> CacheBuilder<K, V, N> {
        b
    }

    /// The builder, unchanged.
    fn remote_negative(&self, b: CacheBuilder<K, V, N>, _backend: &str) -> CacheBuilder<K, V, N> {
        b
    }
}

impl<S, K, V, N, Q: ?Sized, Out> RemoteUnchecked<K, V, N> for Call<S, K, V, N, Q, Out> {}

/// Adds a remote tier on a backend, under a prefix.
#[cfg(feature = "config")]
type Attach<K, V, N> = fn(
    CacheBuilder<K, V, N>,
    std::sync::Arc<dyn crate::tier::Backend>,
    &str,
) -> CacheBuilder<K, V, N>;

/// Adds the configured backend `name` to `b` (`attach` adds a remote tier).
///
/// A backend that was never configured: in memory only, said once (see [`RemoteChecked`]).
#[cfg(feature = "config")]
fn with_backend<K, V, N>(
    b: CacheBuilder<K, V, N>,
    name: &str,
    attach: Attach<K, V, N>,
) -> CacheBuilder<K, V, N> {
    let function = b.name.clone().unwrap_or_default();
    match crate::registry::backend(name, &function) {
        Ok(crate::config::Installed::Memory) => b.memory_only(),
        Ok(crate::config::Installed::Remote {
            backend,
            prefix,
            l1_ttl,
        }) => attach(b, std::sync::Arc::clone(backend), prefix).l1_ttl(*l1_ttl),
        Err(message) => {
            // A configuration mistake: said once (the cache is built once), loudly, and the
            // function caches in this process only; `config::verify` finds it at startup.
            eprintln!("cache-runtime: {message}; it caches in this process's memory only");
            #[cfg(feature = "tracing")]
            tracing::error!(function = %function, backend = %name, "cache backend not configured; caching in memory only");
            b.memory_only()
        }
    }
}

/// A `#[cached(backend = "...")]` function, registered at link time so that
/// [`config::verify`](crate::config::verify) can list every function whose backend is missing.
#[cfg(feature = "config")]
#[derive(Debug)]
pub struct BackendUse {
    /// The function's cache name.
    pub function: &'static str,
    /// The backend it names.
    pub backend: &'static str,
}

#[cfg(feature = "config")]
inventory::collect!(BackendUse);

#[cfg(feature = "config")]
pub use inventory;

/// Without a remote backend's feature (`redis`, `memcached`), a registration is dropped ([`assert_remote_backends`] reports
/// that the feature is missing, and nothing else is).
#[cfg(not(feature = "config"))]
pub mod inventory {
    pub use crate::__cache_runtime_no_registration as submit;
}

/// Drops its input: a registration without a remote backend's feature (see `__private::inventory`).
#[cfg(not(feature = "config"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cache_runtime_no_registration {
    ($($tokens:tt)*) => {};
}

/// Not implemented: `backend = ...` without a remote backend's feature.
#[diagnostic::on_unimplemented(
    message = "`#[cached(backend = ...)]` needs the `redis` or `memcached` feature of `cache-runtime`",
    label = "this function names a backend",
    note = "enable one in Cargo.toml: `features = [\"redis\"]` (or `\"memcached\"`) on the `cache-runtime` dependency"
)]
pub trait RemoteBackendsEnabled {}

#[cfg(feature = "config")]
impl RemoteBackendsEnabled for () {}

/// Checked where a function names a backend.
pub const fn assert_remote_backends<T: RemoteBackendsEnabled>() {}

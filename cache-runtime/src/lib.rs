//! The memoization runtime: what `#[cached]` functions call, usable directly too.
//!
//! A [`Cache`] is a bounded, thread-safe map with an eviction [`Policy`], a time-to-live with
//! [`Jitter`], single-flight loading for sync and async callers (concurrent misses of one key run
//! the loader once), negative-result caching, and statistics listed in a process-wide
//! [`registry`].
//!
//! ```
//! use cache_runtime::{Cache, Policy};
//! use std::time::Duration;
//!
//! let cache: Cache<String, usize> = Cache::builder()
//!     .name("lengths")
//!     .capacity(10_000)
//!     .policy(Policy::Lfu)
//!     .ttl(Duration::from_secs(60))
//!     .build()?;
//!
//! // Keys are looked up by their borrowed form: a hit allocates nothing.
//! let len = cache.get_or_insert_with("hello", || "hello".len());
//! assert_eq!(len, 5);
//! assert_eq!(cache.get("hello"), Some(5));
//! cache.remove("hello");
//! assert_eq!(cache.get("hello"), None);
//! # Ok::<(), cache_runtime::BuildError>(())
//! ```
//!
//! # Caching patterns
//!
//! Write-through and invalidation on write keep a `#[cached]` function's cache in step with the
//! functions that change its data; stale-while-revalidate, early refresh, conditions, per-value
//! TTLs and warming are arguments and helpers (the README shows when to use each):
//!
//! ```
//! use cache_runtime::{cache_evict, cache_put, cached, warm};
//! use std::time::Duration;
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct User { id: u64, name: String }
//!
//! #[cached(ttl = "10m", stale = "1m", unless = |u: &User| u.name.is_empty())]
//! fn load_user(id: u64) -> Option<User> {
//!     Some(User { id, name: format!("user {id}") }) // a query
//! }
//!
//! #[cache_put(load_user, key = user.id)]
//! fn save_user(user: User) -> Result<User, String> {
//!     Ok(user) // an UPDATE
//! }
//!
//! #[cache_evict(load_user, key = id)]
//! fn delete_user(id: u64) -> Result<(), String> {
//!     Ok(()) // a DELETE
//! }
//!
//! // Warm the first 100 users before taking traffic.
//! let report = warm::warm(1..=100u64).concurrency(4).run(load_user);
//! assert_eq!(report.loaded, 100);
//!
//! save_user(User { id: 1, name: "ada".into() }).unwrap();
//! assert_eq!(load_user(1).unwrap().name, "ada"); // from the cache: written through
//! delete_user(1).unwrap();
//! assert_eq!(load_user(1).unwrap().name, "user 1"); // loaded again
//! ```
//!
//! # Layers
//!
//! - [`store`](Policy): bounded maps with eviction, knowing nothing of time;
//! - [`Clock`] and TTL: deadlines, jitter, a coarse clock and a manual test clock;
//! - single-flight: one load per key, sync and async, safe against panics and cancellation;
//! - [`Cache`]: all of the above, with [`CacheStats`];
//! - [`registry`]: every cache by name;
//! - with the `redis` feature: `codec` (serde payloads, bincode by default), `RedisBackend`
//!   (a fail-open Redis or Redis Cluster tier) and `config` (named backends for
//!   `#[cached(backend = "...")]`); with the `memcached` feature, `MemcachedBackend` (a
//!   fail-open tier on one or several memcached servers) and `config` likewise.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod bypass;
mod cache;
mod clock;
#[cfg(feature = "serde")]
pub mod codec;
#[cfg(feature = "config")]
pub mod config;
mod driver;
mod entry;
mod error;
#[cfg(feature = "metrics")]
pub mod export;
mod flight;
pub mod invalidate;
mod latency;
pub mod refresh;
pub mod registry;
mod stats;
mod store;
mod sync;
pub mod tier;
mod ttl;
pub mod warm;

pub use bypass::{Uncached, uncached, uncached_async};
pub use cache::{
    Absent, Cache, CacheBuilder, DEFAULT_CAPACITY, Iter, REFRESH_CONCURRENCY, RemovalCause, reload,
    reload_async,
};
/// Invalidation on write: after the function returns successfully (`Ok`, `Some`, or any value),
/// removes `key` (or, with `all`, every entry) from the named `#[cached]` function's cache, so
/// that the next read queries again. An `Err` or `None` evicts nothing.
///
/// ```
/// use cache_runtime::{cache_evict, cached};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static QUERIES: AtomicU32 = AtomicU32::new(0);
///
/// #[cached]
/// fn price(sku: u32) -> u64 {
///     QUERIES.fetch_add(1, Ordering::Relaxed);
///     u64::from(sku) * 10 // a SELECT
/// }
///
/// #[cache_evict(price, key = sku)]
/// fn set_price(sku: u32, _cents: u64) -> Result<(), String> {
///     Ok(()) // an UPDATE
/// }
///
/// #[cache_evict(price, all)]
/// fn reprice_everything() {}
///
/// assert_eq!((price(7), price(7)), (70, 70)); // one query
/// set_price(7, 99)?;
/// price(7); // queried again
/// reprice_everything();
/// price(7); // and again
/// assert_eq!(QUERIES.load(Ordering::Relaxed), 3);
/// # Ok::<(), String>(())
/// ```
///
/// `tags = [..]` invalidates tags (see [`cached`]'s `tags`) after success: in the target's cache
/// ([`Cache::invalidate_tag`]), beside its `key` or `all` if given; without a target, in every
/// cache ([`invalidate_tag`]).
///
/// ```
/// use cache_runtime::{cache_evict, cached};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static QUERIES: AtomicU32 = AtomicU32::new(0);
///
/// #[cached(tags = ["catalog", format!("shelf:{}", sku / 100)])]
/// fn price(sku: u32) -> u64 {
///     QUERIES.fetch_add(1, Ordering::Relaxed);
///     u64::from(sku) * 10
/// }
///
/// #[cache_evict(price, tags = [format!("shelf:{shelf}")])]
/// fn reprice_shelf(shelf: u32) {}
///
/// #[cache_evict(tags = ["catalog"])]
/// fn rebuild_catalog() -> Result<(), String> {
///     Ok(())
/// }
///
/// price(101);
/// price(205);
/// reprice_shelf(1);
/// price(101); // queried again
/// price(205); // a hit: shelf 2
/// rebuild_catalog()?;
/// price(205); // queried again
/// assert_eq!(QUERIES.load(Ordering::Relaxed), 4);
/// # Ok::<(), String>(())
/// ```
pub use cache_macros::cache_evict;
/// Write-through: after the function returns successfully (`Ok`, `Some`, or any value), stores
/// its value in the named `#[cached]` function's cache under `key`, so that the next read needs no
/// query. An `Err` or `None` stores nothing.
///
/// ```
/// use cache_runtime::{cache_put, cached};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static QUERIES: AtomicU32 = AtomicU32::new(0);
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct User { id: u64, name: String }
///
/// #[cached]
/// fn load_user(id: u64) -> Option<User> {
///     QUERIES.fetch_add(1, Ordering::Relaxed);
///     Some(User { id, name: format!("user {id}") }) // a SELECT
/// }
///
/// #[cache_put(load_user, key = user.id)]
/// fn save_user(user: User) -> Result<User, String> {
///     if user.name.is_empty() { Err("a user needs a name".into()) } else { Ok(user) } // an UPDATE
/// }
///
/// save_user(User { id: 1, name: "ada".into() })?;
/// assert_eq!(load_user(1).unwrap().name, "ada"); // written through
/// assert!(save_user(User { id: 1, name: String::new() }).is_err());
/// assert_eq!(load_user(1).unwrap().name, "ada");
/// assert_eq!(QUERIES.load(Ordering::Relaxed), 0); // never queried
/// # Ok::<(), String>(())
/// ```
///
/// `key` may also read the stored value as `result` (the `Ok` or `Some` value), for a key the
/// function computes: `#[cache_put(load_user, key = result.id)]`.
pub use cache_macros::cache_put;
/// Memoizes a function or method through this crate's runtime.
///
/// ```
/// use cache_runtime::{cached, registry};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static QUERIES: AtomicU32 = AtomicU32::new(0);
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct NotFound;
///
/// /// Looks a user's name up (pretend it is slow).
/// #[cached(name = "doc.user_name", ttl = "5m", capacity = 1_000, negative_ttl = "10s")]
/// fn user_name(id: u64) -> Result<String, NotFound> {
///     QUERIES.fetch_add(1, Ordering::Relaxed);
///     if id == 0 { Err(NotFound) } else { Ok(format!("user{id}")) }
/// }
///
/// assert_eq!(user_name(7), Ok("user7".to_string()));
/// assert_eq!(user_name(7), Ok("user7".to_string())); // a hit
/// assert_eq!(user_name(0), Err(NotFound));
/// assert_eq!(user_name(0), Err(NotFound)); // the "not found" is cached too
/// assert_eq!(QUERIES.load(Ordering::Relaxed), 2);
///
/// // The function's cache, by name: invalidate, write through, read statistics.
/// let cache = registry::get_negative::<u64, String, NotFound>("doc.user_name").unwrap();
/// cache.remove(&7);
/// cache.insert(8, "eight".to_string());
/// assert_eq!(user_name(8), Ok("eight".to_string()));
/// assert_eq!(cache.stats().negative_hits, 1);
/// ```
///
/// Arguments (all optional, all checked at compile time): `ttl = "5s"` (or a `Duration`
/// constant), `tti = "10m"` (time-to-idle, see [`CacheBuilder::time_to_idle`]), `capacity = N` (default [`DEFAULT_CAPACITY`]), `unbounded`, `policy = "lfu"` (the default) `|
/// "s3-fifo" | "lru" | "fifo"`, `key = <expr>` (any expression over the arguments; default: every
/// argument, owned), `key_type = <Type>` (optional),
/// `jitter = 0.1 | "2s"`, `negative_ttl = "1s"`, `name = "..."` (default: the function's path),
/// `returns = "result" | "option" | "value"`, `crate = path`, `tags = [..]`, `depends = false`,
/// `version = N`, `on_removal = path`, `refresh_every = "1m"` and `refresh_top = N` (scheduled
/// refresh, see [`CacheBuilder::refresh_every`]), `batch`. The README has the full table.
///
/// `batch` memoizes a function that takes a collection of keys and returns the map of those it
/// found, key by key: the body is called once, with the keys the cache misses (see
/// [`Cache::get_or_load_many`]); keys it does not return are cached as "not found" with
/// `negative_ttl`.
///
/// ```
/// use cache_runtime::cached;
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// static QUERIES: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());
///
/// #[cached(batch, ttl = "10m", negative_ttl = "1m")]
/// fn user_names(ids: &[u64]) -> HashMap<u64, String> {
///     QUERIES.lock().unwrap().push(ids.to_vec()); // SELECT .. WHERE id = ANY($1)
///     ids.iter().filter(|id| **id != 0).map(|id| (*id, format!("user{id}"))).collect()
/// }
///
/// assert_eq!(user_names(&[0, 1]).len(), 1);
/// let names = user_names(&[0, 1, 2]); // 0 is cached as "not found", 1 as a value
/// assert_eq!(names[&2], "user2");
/// assert_eq!(*QUERIES.lock().unwrap(), [vec![0, 1], vec![2]]);
/// ```
///
/// `refresh_every` reloads the keys read since the last round in the background, before they
/// expire, so that their readers never wait (a thread for a blocking function, a Tokio task for
/// an async one):
///
/// ```
/// use cache_runtime::cached;
///
/// #[cached(ttl = "5m", refresh_every = "1m", refresh_top = 100)]
/// fn price(sku: u64) -> u64 {
///     sku * 100 // a query
/// }
///
/// assert_eq!(price(3), 300); // from now on, reloaded every minute while it is read
/// ```
///
/// `on_removal = path` (or a closure) is told of each value that leaves the function's cache,
/// with its key (the cache key, see `key`) and why ([`RemovalCause`]), as
/// [`CacheBuilder::on_removal`] describes: outside every lock, never on a hit.
///
/// ```
/// use cache_runtime::{RemovalCause, cache_evict, cached};
/// use std::sync::Mutex;
///
/// static GONE: Mutex<Vec<(u64, RemovalCause)>> = Mutex::new(Vec::new());
///
/// fn log_removal(id: &u64, _name: &String, why: RemovalCause) {
///     GONE.lock().unwrap().push((*id, why));
/// }
///
/// #[cached(capacity = 2, policy = "lru", on_removal = log_removal)]
/// fn user_name(id: u64) -> String {
///     format!("user{id}")
/// }
///
/// #[cache_evict(user_name, key = id)]
/// fn rename(id: u64) {}
///
/// user_name(1);
/// user_name(2);
/// user_name(3); // evicts 1, the least recently used
/// rename(2);
/// assert_eq!(*GONE.lock().unwrap(), [(1, RemovalCause::Evicted), (2, RemovalCause::Explicit)]);
/// ```
///
/// Invalidation by group (issue 15): `tags = [..]` attaches tags to each entry, from the
/// arguments (expressions, anything `AsRef<str>`, attached as the load starts) and from the
/// value (closures over the `Ok`/`Some` value returning tags; an `Err` or `None`, cached with
/// `negative_ttl`, gets the argument tags only). [`invalidate_tag`] or
/// `#[cache_evict(tags = [..])]` then drops every entry carrying the tag. And an entry whose
/// loader called other `#[cached]` functions depends on what it read: evicting one of those
/// entries drops it too (`depends = false` turns that off).
///
/// ```
/// use cache_runtime::{cache_evict, cached, invalidate_tag};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static PAGES: AtomicU32 = AtomicU32::new(0);
///
/// #[derive(Clone)]
/// struct Product { id: u64, brand: String }
///
/// #[cached(tags = ["catalog", |p: &Product| [format!("brand:{}", p.brand)]])]
/// fn product(id: u64) -> Product {
///     Product { id, brand: if id % 2 == 0 { "acme" } else { "globex" }.to_string() }
/// }
///
/// #[cached]
/// fn stock(id: u64, store: u32) -> u32 {
///     (id as u32) * 10 + store
/// }
///
/// #[cached]
/// fn product_page(id: u64) -> String {
///     PAGES.fetch_add(1, Ordering::Relaxed);
///     let p = product(id);
///     format!("#{} by {}: {} left", p.id, p.brand, stock(id, 1))
/// }
///
/// #[cache_evict(stock, key = (id, store))]
/// fn update_stock(id: u64, store: u32) {}
///
/// product_page(1);
/// product_page(2);
/// update_stock(1, 1); // page 1 read that stock: it goes; page 2 stays
/// product_page(1);
/// product_page(2);
/// assert_eq!(PAGES.load(Ordering::Relaxed), 3);
/// invalidate_tag("brand:acme"); // product 2, and so page 2
/// product_page(1);
/// product_page(2);
/// assert_eq!(PAGES.load(Ordering::Relaxed), 4);
/// ```
///
/// Concurrent calls with one key run the body once and share its result. An outcome that is not
/// cached (an `Err` or `None` without `negative_ttl`) is shared too when the return type is
/// `Clone + Send + Sync + 'static`: the callers waiting on a failing call get its error without
/// running the body again (with a non-`Clone` error they retry, one at a time); the next call
/// after them runs it anew. If the body panics, the callers waiting on it panic with the message
/// "the load of this key panicked in another caller".
///
/// Methods taking `&self` need a `key`:
///
/// ```
/// # use cache_runtime::cached;
/// struct Repo;
///
/// impl Repo {
///     #[cached(key = id)]
///     fn load(&self, id: u64) -> String {
///         format!("row {id}")
///     }
/// }
///
/// assert_eq!(Repo.load(1), "row 1");
/// ```
pub use cache_macros::cached;
pub use entry::Entry;
pub use invalidate::{invalidate_tag, tag};
pub use latency::LoadTimes;
pub use tier::Faults;
#[cfg(any(feature = "redis", feature = "memcached"))]
pub use tier::breaker::{BREAKER_COOLDOWN, BREAKER_THRESHOLD};
#[cfg(feature = "memcached")]
pub use tier::memcached::{MemcachedBackend, MemcachedError};
#[cfg(feature = "redis")]
pub use tier::redis::{BackendError, RedisBackend};

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;
pub use clock::{Clock, ManualClock, TICK_MARGIN};
pub use error::BuildError;
pub use stats::CacheStats;
pub use store::{Policy, UnknownPolicy};
pub use ttl::Jitter;

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
//! # Layers
//!
//! - [`store`](Policy): bounded maps with eviction, knowing nothing of time;
//! - [`Clock`] and TTL: deadlines, jitter, a coarse clock and a manual test clock;
//! - single-flight: one load per key, sync and async, safe against panics and cancellation;
//! - [`Cache`]: all of the above, with [`CacheStats`];
//! - [`registry`]: every cache by name.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod bypass;
mod cache;
mod clock;
mod error;
mod flight;
pub mod registry;
mod stats;
mod store;
mod sync;
mod ttl;

pub use bypass::{Uncached, uncached, uncached_async};
pub use cache::{Cache, CacheBuilder, DEFAULT_CAPACITY, Entry};
pub use cache_macros::cached;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub use clock::{Clock, ManualClock, TICK_MARGIN};
pub use error::BuildError;
pub use stats::CacheStats;
pub use store::{Policy, UnknownPolicy};
pub use ttl::Jitter;

#[doc(hidden)]
pub use clock::precise_nanos;

//! The remote tier (L2) behind a cache's in-process store (L1).
//!
//! Three layers, each unaware of those above it:
//! - [`Backend`]: a byte store shared by the fleet (Redis in [`RedisBackend`](crate::RedisBackend),
//!   or your own). Blocking and async operations, bounded in time, never failing a caller.
//! - the typed tier (crate-internal): turns a cache's keys and entries into backend keys and
//!   payloads through a [`Codec`](crate::codec::Codec), negative entries included, and back.
//!   It does no IO itself.
//! - the operations below, written once over an IO driver: a fault is a miss or a skipped
//!   write, and a payload that does not decode is a miss.
//!
//! A cache reaches its tier only through these operations; nothing in the cache names a backend.

mod backend;
mod memory;
mod pending;
// The circuit breaker is backend-generic: Redis and memcached use it.
#[cfg(any(feature = "redis", feature = "memcached"))]
pub(crate) mod breaker;
#[cfg(feature = "memcached")]
pub(crate) mod memcached;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "serde")]
mod typed;

pub use backend::{Backend, BoxFuture, Fault, Faults, Health, InvalidationHandler};
pub use memory::MemoryBackend;
pub(crate) use pending::{DEFAULT_LIMIT as DEFAULT_PENDING_LIMIT, Pending};
#[cfg(feature = "serde")]
pub(crate) use typed::{NoNegatives, Typed, WithNegatives};

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use pending::Write;

use crate::driver::Io;
use crate::entry::Entry;
use crate::invalidate::remote as fleet;
use crate::invalidate::stamps::Remote;

/// This process's store of a cache, as the remote tier sees it.
pub(crate) trait LocalL1<K>: Send + Sync {
    /// Drops the local copy of `key` (`None`: of every key).
    fn evict_local(&self, key: Option<&K>);
}

/// A cache key as the remote tier names it.
pub(crate) struct RemoteKey {
    /// The encoded cache key, carried in the payload and checked on read.
    pub(crate) encoded: Vec<u8>,
    /// The backend key of the entry.
    pub(crate) data: String,
}

impl RemoteKey {
    /// The backend key of the key's fleet-wide lease.
    fn lease(&self) -> String {
        format!("{}:lease", self.data)
    }
}

/// What a payload read back is.
#[cfg_attr(not(feature = "serde"), allow(dead_code))] // made by the typed tier only
pub(crate) enum Decoded<T> {
    /// This key's entry.
    Hit(T),
    /// Another key's entry (a hash collision): left to its owner.
    Foreign,
    /// Not ours to read (another format, corruption): deleted.
    Corrupt,
}

/// A remote tier of typed entries, without IO: it names keys and encodes entries; the
/// operations of this module do the IO on its backend.
pub(crate) trait Tier<K, V, N>: Send + Sync {
    /// The byte store.
    fn backend(&self) -> &dyn Backend;
    /// The byte store, shared (for the caches' invalidation scopes).
    fn shared_backend(&self) -> &Arc<dyn Backend>;
    /// The prefix of the cache's keys, within the process namespace (fleet-wide tag keys
    /// start with `<prefix>:tag:`).
    fn prefix(&self) -> &str;
    /// `key` as the backend names it (`None`: the key does not encode).
    fn key(&self, key: &K) -> Option<RemoteKey>;
    /// The payload of `entry`, which depends on `stamps` (`None`: it does not encode).
    fn encode(&self, key: &RemoteKey, entry: &Entry<V, N>, stamps: &[Remote]) -> Option<Vec<u8>>;
    /// The entry of a payload, and what it depends on.
    fn decode(&self, key: &RemoteKey, bytes: &[u8]) -> Decoded<(Entry<V, N>, Vec<Remote>)>;
    /// The prefix of every backend key of this cache (`<prefix>:<name>:<type tag>:`).
    fn namespace(&self) -> &str;
    /// Lets the tier evict this process's L1 copies when other processes invalidate.
    fn attach(&self, l1: Weak<dyn LocalL1<K>>);
    /// The writes the backend did not take, retried in the background.
    fn pending(&self) -> &Arc<Pending>;
}

/// What the tier had for a key.
pub(crate) enum Fetched<T> {
    /// This key's entry.
    Hit(T),
    /// None (or a payload that is not this key's).
    Miss,
    /// The backend did not answer: for this call, the tier is out of reach.
    Fault,
    /// Not asked: a write of this key that the backend did not take is pending, so its copy
    /// may be older than this process's (see [`Pending`]).
    Distrusted,
}

/// The entry of `key` in the tier. A payload that is not this key's is a miss, and deleted
/// unless it is another key's.
pub(crate) async fn get<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
) -> Fetched<(Entry<V, N>, Vec<Remote>)> {
    if tier.pending().distrusts(&key.data) {
        return Fetched::Distrusted;
    }
    let bytes = match I::get(tier.backend(), &key.data).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Fetched::Miss,
        Err(_) => return Fetched::Fault,
    };
    match tier.decode(key, &bytes) {
        Decoded::Hit((e, stamps)) => {
            // An entry whose tags or dependencies moved on since it was stored is stale.
            if stamps.is_empty() || fleet::still_valid::<I>(tier.backend(), &stamps).await {
                Fetched::Hit((e, stamps))
            } else {
                Fetched::Miss
            }
        }
        Decoded::Foreign => Fetched::Miss,
        Decoded::Corrupt => {
            let _ = I::delete(tier.backend(), &key.data).await;
            Fetched::Miss
        }
    }
}

/// Stores a loaded `entry` under `key` for `ttl`, best effort: a fault skips the write (the
/// tier had no entry for the key, or one this process distrusts, whose pending write this one
/// then replaces).
pub(crate) async fn put<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    entry: &Entry<V, N>,
    stamps: &[Remote],
    ttl: Option<Duration>,
) {
    let Some(write) = set_of(tier, key, entry, stamps, ttl) else {
        return;
    };
    if tier.pending().queue_behind(&key.data, &key.encoded, &write) {
        return;
    }
    if let Write::Set { bytes, .. } = &write {
        let _ = I::set(tier.backend(), &key.data, bytes, ttl).await;
    }
}

/// Writes `entry` under `key` for `ttl` or, for `None`, deletes `key`'s entry: a write-through or
/// an invalidation, which must reach the tier. `true` when it did (the caller then tells the
/// other processes); a fault leaves it pending, to be retried and broadcast (see [`Pending`]).
pub(crate) async fn write<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    entry: Option<(&Entry<V, N>, Option<Duration>)>,
) -> bool {
    let write = match entry {
        Some((e, ttl)) => match set_of(tier, key, e, &[], ttl) {
            Some(w) => w,
            // An entry that does not encode cannot replace the old one: delete that instead.
            None => Write::Delete,
        },
        None => Write::Delete,
    };
    let pending = tier.pending();
    if pending.queue_behind(&key.data, &key.encoded, &write) {
        return false;
    }
    let sent = match &write {
        Write::Set { bytes, expires } => {
            let ttl = expires.map(|e| e.saturating_duration_since(Instant::now()));
            I::set(tier.backend(), &key.data, bytes, ttl).await
        }
        Write::Delete => I::delete(tier.backend(), &key.data).await,
    };
    if sent.is_err() {
        pending.record(&key.data, &key.encoded, write);
        return false;
    }
    true
}

/// The write of `entry` for `ttl` (`None`: it does not encode).
fn set_of<K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    entry: &Entry<V, N>,
    stamps: &[Remote],
    ttl: Option<Duration>,
) -> Option<Write> {
    let bytes = tier.encode(key, entry, stamps)?;
    tier.pending().extend_horizon(ttl);
    Some(Write::Set {
        bytes,
        expires: ttl.and_then(|t| Instant::now().checked_add(t)),
    })
}

/// The outcome of trying to take a key's fleet-wide lease.
pub(crate) enum Leased {
    /// Taken, with this token: this process loads.
    Held(String),
    /// Another process holds it, and loads.
    Busy,
    /// The backend could not say (a fault): load without it (fail open).
    Unknown,
}

/// Tries to take the fleet-wide lease of loading `key`, for `ttl`.
pub(crate) async fn lease<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    ttl: Duration,
) -> Leased {
    let token = lease_token();
    match I::try_lease(tier.backend(), &key.lease(), &token, ttl).await {
        Ok(true) => Leased::Held(token),
        Ok(false) => Leased::Busy,
        Err(_) => Leased::Unknown,
    }
}

/// Releases a lease taken by [`lease`] (only if still ours).
pub(crate) async fn release<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    token: &str,
) {
    let _ = I::release_lease(tier.backend(), &key.lease(), token).await;
}

/// Waits, at most `max`, for another process's load of `key` to appear.
pub(crate) async fn wait_for<I: Io, K, V, N>(
    tier: &dyn Tier<K, V, N>,
    key: &RemoteKey,
    max: Duration,
) -> Option<(Entry<V, N>, Vec<Remote>)> {
    let bytes = I::wait_for(tier.backend(), &key.data, &key.lease(), max)
        .await
        .ok()??;
    match tier.decode(key, &bytes) {
        // Just stored by another process's load: its stamps are as fresh as can be.
        Decoded::Hit(e) => Some(e),
        Decoded::Foreign | Decoded::Corrupt => None,
    }
}

/// Tells other processes that `key` (`None`: every key) changed.
pub(crate) fn broadcast<K, V, N>(tier: &dyn Tier<K, V, N>, key: Option<&RemoteKey>) {
    tier.backend()
        .publish(tier.namespace(), key.map(|k| k.encoded.as_slice()));
}

/// Removes every entry of this cache from the tier, and tells the other processes. A fault
/// leaves the clear pending: the cache uses L1 only until it went through (see [`Pending`]).
pub(crate) fn clear<K, V, N>(tier: &dyn Tier<K, V, N>) {
    if tier.backend().clear_prefix(tier.namespace()).is_ok() {
        tier.pending().cleared();
        broadcast(tier, None);
    } else {
        tier.pending().record_clear();
    }
}

/// A random token identifying one lease holder.
fn lease_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    let s = RandomState::new();
    format!(
        "{:016x}{:016x}",
        s.hash_one(std::process::id()),
        s.hash_one(std::time::SystemTime::now())
    )
}

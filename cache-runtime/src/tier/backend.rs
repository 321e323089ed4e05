//! The byte-level interface of a remote backend (L2): what Redis, memcached or a backend of
//! your own implements. Everything typed (the codec, negative entries, key prefixes, fail-open
//! accounting) is written once above it, in [`tier`](crate::tier).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

/// A boxed future, as the async methods of [`Backend`] return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Called with the encoded key that another process invalidated (`None`: every key of the
/// namespace).
pub type InvalidationHandler = dyn Fn(Option<&[u8]>) + Send + Sync;

/// Why one backend operation did not succeed. The cache treats each as a miss or a skipped
/// write: a fault never fails a caller.
///
/// ```
/// use cache_runtime::tier::Fault;
///
/// assert_ne!(Fault::Timeout, Fault::Open);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// No connection could be made.
    Connect,
    /// The operation took longer than its timeout.
    Timeout,
    /// The connection broke.
    Error,
    /// The server answered with an error, or with something of the wrong type.
    Reply,
    /// Not tried: the circuit breaker is open.
    Open,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "could not connect",
            Self::Timeout => "timed out",
            Self::Error => "the connection broke",
            Self::Reply => "unexpected reply",
            Self::Open => "circuit breaker open",
        })
    }
}

impl std::error::Error for Fault {}

/// Faults met so far, by kind: what the statistics
/// ([`registry::caches`](crate::registry::caches)) and the Prometheus text
/// ([`registry::prometheus_text`](crate::registry::prometheus_text)) report of a cache's backend.
///
/// ```
/// use cache_runtime::tier::{Backend, Faults, MemoryBackend};
///
/// let f: Faults = MemoryBackend::new().health().faults;
/// assert_eq!(f, Faults::default()); // an in-process store never faults
/// assert_eq!(f.connect + f.timeout + f.error + f.short_circuited, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// Connections that could not be made.
    pub connect: u64,
    /// Operations that took longer than the timeout.
    pub timeout: u64,
    /// Operations that the server answered with an error (or with something that is not its
    /// protocol), or a connection that broke.
    pub error: u64,
    /// Operations skipped because the breaker was open.
    pub short_circuited: u64,
}

impl Faults {
    /// Both counts added up (a backend of several servers).
    #[must_use]
    pub(crate) fn plus(&self, other: &Self) -> Self {
        Self {
            connect: self.connect + other.connect,
            timeout: self.timeout + other.timeout,
            error: self.error + other.error,
            short_circuited: self.short_circuited + other.short_circuited,
        }
    }
}

/// What a backend says of its own state, for diagnostics and readiness probes.
///
/// ```
/// use cache_runtime::tier::Health;
///
/// let h = Health::default();
/// assert!(!h.breaker_open && !h.half_open && !h.listening);
/// assert_eq!(h.faults.timeout, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// The circuit breaker is open: operations are skipped at no cost for now.
    pub breaker_open: bool,
    /// The circuit breaker is half-open: one trial operation is let through, the others are
    /// still skipped, until the trial succeeds.
    pub half_open: bool,
    /// Subscribed, right now, to other processes' invalidations.
    pub listening: bool,
    /// Faults met so far (zero for a backend that does not count them).
    pub faults: Faults,
}

/// A remote store of bytes shared by a fleet of processes: the plug-in interface of a cache's
/// second tier.
///
/// Keys are strings made by the typed tier: `<prefix>:<cache name>:<type tag>:<key hash>`. A
/// backend whose keys have limits (memcached: 250 bytes, no spaces) maps them itself. Every
/// operation is bounded in time and reports a [`Fault`] instead of waiting or panicking.
/// Blocking and async forms of each operation differ only in how they wait: callers above this
/// trait are written once.
///
/// The invalidation channel is optional: a backend that cannot broadcast keeps the defaults of
/// [`publish`](Backend::publish), [`subscribe`](Backend::subscribe) and
/// [`broadcasts`](Backend::broadcasts), and other processes' L1 copies then live until their
/// `l1_ttl`.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The value under `key`, `Ok(None)` when there is none.
    ///
    /// # Errors
    /// The fault that prevented the read.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Fault>;
    /// The async form of [`get`](Backend::get).
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>>;

    /// The values under `keys`: one slot per key, in the order of `keys` (`None` where there is
    /// none; a key named twice has two slots). An empty `keys` is answered without IO.
    ///
    /// A batch is one answer: the fault of any part of it faults the whole batch, whose keys the
    /// caller then treats as it would after a fault of [`get`](Backend::get).
    ///
    /// The default asks [`get`](Backend::get) for each key in turn, stopping at the first fault;
    /// a server backend overrides it with one round trip (the Redis backend sends one `MGET`,
    /// the memcached backend one pipelined request per server, all servers at once).
    ///
    /// ```
    /// use cache_runtime::tier::{Backend, MemoryBackend};
    ///
    /// let store = MemoryBackend::new();
    /// store.set("a", b"1", None)?;
    /// store.set("c", b"3", None)?;
    /// let got = store.get_many(&["a", "b", "c", "a"])?;
    /// assert_eq!(got, [Some(b"1".to_vec()), None, Some(b"3".to_vec()), Some(b"1".to_vec())]);
    /// assert!(store.get_many(&[])?.is_empty());
    /// # Ok::<(), cache_runtime::tier::Fault>(())
    /// ```
    ///
    /// # Errors
    /// The fault that prevented the read of any of the keys.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Fault> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// The async form of [`get_many`](Backend::get_many), with the same answer. The default
    /// awaits [`get_async`](Backend::get_async) for each key in turn.
    ///
    /// ```
    /// use cache_runtime::tier::{Backend, MemoryBackend};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryBackend::new();
    /// store.set_async("a", b"1", None).await?;
    /// let got = store.get_many_async(&["a", "b"]).await?;
    /// assert_eq!(got, [Some(b"1".to_vec()), None]);
    /// # Ok::<(), cache_runtime::tier::Fault>(())
    /// # }).unwrap();
    /// ```
    fn get_many_async<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Fault>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get_async(key).await?);
            }
            Ok(values)
        })
    }

    /// Stores `value` under `key`, expiring after `ttl` (never, for `None`).
    ///
    /// # Errors
    /// The fault that prevented the write.
    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Fault>;
    /// The async form of [`set`](Backend::set).
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Fault>>;

    /// Stores each item: its value under its key, expiring after its own TTL (never, for
    /// `None`), as [`set`](Backend::set) stores one; the items of one batch have TTLs of their own
    /// (jitter). An empty `items` is answered without IO. A key named twice is written twice, in
    /// order where the backend keeps the order (one server, one connection).
    ///
    /// Best effort: a fault means that some items may not have been written (and others may
    /// have); the caller then treats every key of the batch as it would after a fault of
    /// [`set`](Backend::set).
    ///
    /// The default calls [`set`](Backend::set) for each item in turn, stopping at the first
    /// fault; a server backend overrides it with one round trip (the Redis backend sends one
    /// pipeline of `SET`s, the memcached backend one pipelined request of quiet `ms` per server,
    /// all servers at once).
    ///
    /// ```
    /// use cache_runtime::tier::{Backend, MemoryBackend};
    /// use std::time::Duration;
    ///
    /// let store = MemoryBackend::new();
    /// let hour = Some(Duration::from_secs(3_600));
    /// store.set_many(&[("a", b"1", hour), ("b", b"2", None)])?;
    /// assert_eq!(store.get_many(&["a", "b"])?, [Some(b"1".to_vec()), Some(b"2".to_vec())]);
    /// store.set_many(&[])?; // nothing to do
    /// # Ok::<(), cache_runtime::tier::Fault>(())
    /// ```
    ///
    /// # Errors
    /// The fault that prevented the write of some of the items.
    fn set_many(&self, items: &[(&str, &[u8], Option<Duration>)]) -> Result<(), Fault> {
        items
            .iter()
            .try_for_each(|&(key, value, ttl)| self.set(key, value, ttl))
    }
    /// The async form of [`set_many`](Backend::set_many), with the same outcome. The default
    /// awaits [`set_async`](Backend::set_async) for each item in turn.
    ///
    /// ```
    /// use cache_runtime::tier::{Backend, MemoryBackend};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryBackend::new();
    /// store.set_many_async(&[("a", b"1", None)]).await?;
    /// assert_eq!(store.get_async("a").await?, Some(b"1".to_vec()));
    /// # Ok::<(), cache_runtime::tier::Fault>(())
    /// # }).unwrap();
    /// ```
    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8], Option<Duration>)],
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(async move {
            for &(key, value, ttl) in items {
                self.set_async(key, value, ttl).await?;
            }
            Ok(())
        })
    }

    /// Deletes `key`.
    ///
    /// # Errors
    /// The fault that prevented the delete.
    fn delete(&self, key: &str) -> Result<(), Fault>;
    /// The async form of [`delete`](Backend::delete).
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Fault>>;

    /// Makes every key that starts with `prefix` unreachable (deleted, or left to age out).
    ///
    /// # Errors
    /// The fault that stopped the sweep.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Fault>;

    /// Takes the lease `key` for `ttl` with `token` unless someone holds it: `Ok(true)` when
    /// this caller now holds it.
    ///
    /// # Errors
    /// The fault that prevented the attempt.
    fn try_lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Fault>;
    /// The async form of [`try_lease`](Backend::try_lease).
    fn try_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Fault>>;

    /// Releases the lease `key` if it still holds `token` (only its holder releases it).
    ///
    /// # Errors
    /// The fault that prevented the release (the lease then runs out by itself).
    fn release_lease(&self, key: &str, token: &str) -> Result<(), Fault>;
    /// The async form of [`release_lease`](Backend::release_lease).
    fn release_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), Fault>>;

    /// Waits, at most `max`, for a value to appear under `key` while the lease `lease_key` is
    /// held by another process; `Ok(None)` when the lease ended or `max` passed without one.
    ///
    /// # Errors
    /// The fault that ended the wait.
    fn wait_for(&self, key: &str, lease_key: &str, max: Duration)
    -> Result<Option<Vec<u8>>, Fault>;
    /// The async form of [`wait_for`](Backend::wait_for).
    fn wait_for_async<'a>(
        &'a self,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>>;

    /// Whether this backend carries invalidations between processes.
    fn broadcasts(&self) -> bool {
        false
    }

    /// Tells the other processes that `key` (encoded; `None`: every key) of the cache at
    /// `namespace` changed, so that they drop their L1 copies. Fire and forget.
    fn publish(&self, namespace: &str, key: Option<&[u8]>) {
        let _ = (namespace, key);
    }

    /// Calls `handler` for other processes' invalidations of `namespace`, from now on, for as
    /// long as the handler lives.
    fn subscribe(&self, namespace: &str, handler: Weak<InvalidationHandler>) {
        let _ = (namespace, handler);
    }

    /// The backend's state now.
    fn health(&self) -> Health;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::testing::Probe;

    /// A backend with the default batch operations: each `set` recorded, the key `bad` a fault.
    fn looping() -> Probe {
        let b = Probe::default();
        b.refuse("bad");
        b
    }

    #[test]
    fn the_default_batch_write_sets_each_item_in_order_and_stops_at_the_first_fault() {
        let b = looping();
        let hour = Some(Duration::from_secs(3_600));
        b.set_many(&[("a", b"1", hour), ("b", b"2", None), ("a", b"3", None)])
            .unwrap();
        assert_eq!(b.sets(), ["a", "b", "a"]);
        assert_eq!(
            b.get_many(&["a", "b"]).unwrap(),
            [Some(b"3".to_vec()), Some(b"2".to_vec())]
        );

        let items: [(&str, &[u8], Option<Duration>); 3] =
            [("c", b"c", hour), ("bad", b"x", None), ("d", b"d", None)];
        assert_eq!(b.set_many(&items), Err(Fault::Timeout));
        assert_eq!(b.sets(), ["c", "bad"], "nothing after the fault");
        assert_eq!(
            b.get("c").unwrap(),
            Some(b"c".to_vec()),
            "written before it"
        );
        assert_eq!(b.get("d").unwrap(), None);

        let asynchronous = crate::driver::block_on(b.set_many_async(&items));
        assert_eq!(asynchronous, Err(Fault::Timeout));
        assert_eq!(b.sets(), ["c", "bad"]);
        crate::driver::block_on(b.set_many_async(&[("e", b"e", hour)])).unwrap();
        assert_eq!(b.get("e").unwrap(), Some(b"e".to_vec()));

        b.set_many(&[]).unwrap();
        crate::driver::block_on(b.set_many_async(&[])).unwrap();
        assert_eq!(b.sets(), ["e"], "an empty batch sets nothing");
    }
}

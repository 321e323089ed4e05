//! A memcached tier that speaks bytes: one or several memcached 1.6+ servers (keys spread over
//! them by a ketama-compatible ring), reached through the meta protocol, for sync and async
//! callers, never failing a caller.
//!
//! Every operation is bounded by a timeout (default 50 ms). Blocking callers run it on their own
//! thread, on a pooled connection driven by a small runtime of its own (no hop to another
//! thread, and no runtime needed of the caller), and read (`get`, a one-server `get_many`) on a
//! pooled plain blocking socket (`blocking`: no runtime and no timer at all); async callers of any executor run it on the
//! backend's own one-thread Tokio runtime (and so do blocking callers that are inside a Tokio
//! runtime already, where no other runtime can be driven). A fault reads as a miss or a skipped
//! write (fail-open), counted by kind ([`MemcachedBackend::faults`]); each server has a circuit
//! breaker of its own ([`BREAKER_THRESHOLD`](crate::BREAKER_THRESHOLD) consecutive faults open it
//! for [`BREAKER_COOLDOWN`](crate::BREAKER_COOLDOWN), then one trial goes through), so a server that
//! is down costs nothing and the others go on serving.
//!
//! In seven parts: `keys` (keys memcached accepts, generations, expiries), `ring` (which server
//! holds a key), `commands` (each operation built once, as an exchange), `conn` (the connections
//! and the two ways of running an exchange), `blocking` (the third: reads on a blocking socket),
//! `pipe` (the plain connections of batch writes and blocking reads, and their parser),
//! `batch` (batch reads and writes over several servers), and here the backend.
//!
//! memcached has no pub/sub: without an invalidation channel
//! ([`with_invalidations`](MemcachedBackend::with_invalidations)), a write or invalidation
//! reaches memcached at once, and other processes' L1 copies live until their `l1_ttl`.

mod batch;
mod blocking;
mod commands;
mod conn;
mod keys;
mod pipe;
mod ring;

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_memcached::Client;

use self::commands::{Exchange, Generations};
use self::conn::{Conn, Server};
use self::ring::Ring;
use crate::tier::breaker::{Breaker, Faults};
use crate::tier::{Backend, BoxFuture, Fault, Health, InvalidationHandler};

/// The values of a batch read, one slot per key.
type Batch = Vec<Option<Vec<u8>>>;

/// The port of a `memcached://host` URL without one.
pub const DEFAULT_PORT: u16 = 11211;

/// One or several memcached servers (1.6 or newer), as a remote tier.
///
/// ```no_run
/// use cache_runtime::{Cache, MemcachedBackend};
/// use std::{sync::Arc, time::Duration};
///
/// // Keys are spread over the servers by a ketama-compatible ring.
/// let servers = ["memcached://127.0.0.1:11211", "memcached://127.0.0.1:11212"];
/// let memcached = Arc::new(MemcachedBackend::new(&servers, Duration::from_millis(50))?);
/// let users: Cache<u64, String> = Cache::builder()
///     .name("users")
///     // memcached cannot tell other processes of a write: their copies live 1 s at most.
///     .l1_ttl(Duration::from_secs(1))
///     .remote(memcached.clone(), "myapp")
///     .build()?;
/// users.insert(1, "ada".to_string()); // also stored in memcached, for the other processes
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `clear_prefix` clears a namespace (what the typed tier passes: `<prefix>:<cache>:<tag>:`):
/// memcached cannot delete by prefix, so the namespace's generation, which every key of it
/// carries, is replaced on every server, and the old entries age out unread.
pub struct MemcachedBackend {
    servers: Arc<[Server]>,
    ring: Ring,
    generations: Arc<Generations>,
    /// One breaker a server: a server that is down does not stop the others.
    breakers: Vec<Breaker>,
    timeout: Duration,
    invalidations: Option<Arc<dyn Backend>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedBackend")
            .field(
                "servers",
                &self.servers.iter().map(|s| &s.addr).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("faults", &self.faults())
            .finish_non_exhaustive()
    }
}

impl Drop for MemcachedBackend {
    fn drop(&mut self) {
        // Never block (this may run inside an async context).
        if let Some(rt) = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            rt.shutdown_background();
        }
    }
}

/// Why a memcached backend could not be created, or was refused by its server.
///
/// ```
/// use cache_runtime::{MemcachedBackend, MemcachedError};
/// use std::time::Duration;
///
/// let t = Duration::from_millis(50);
/// let err = MemcachedBackend::new(&["redis://127.0.0.1/"], t).unwrap_err();
/// assert!(matches!(err, MemcachedError::Url(_)));
/// assert!(err.to_string().starts_with("invalid memcached URL"));
/// assert!(matches!(MemcachedBackend::new(&["memcached://127.0.0.1"], Duration::ZERO), Err(MemcachedError::Setting(_))));
/// assert!(MemcachedBackend::new(&[], t).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemcachedError {
    /// A URL is not `memcached://host[:port]`.
    Url(String),
    /// A setting that would leave memcached unused (a zero timeout, port 0, no server), or a
    /// server that cannot serve (not memcached, or older than 1.6).
    Setting(String),
    /// The backend's runtime thread could not start.
    Runtime(String),
}

impl std::fmt::Display for MemcachedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(e) => write!(f, "invalid memcached URL: {e}"),
            Self::Setting(e) => write!(f, "invalid memcached backend setting: {e}"),
            Self::Runtime(e) => write!(f, "could not start the memcached backend's runtime: {e}"),
        }
    }
}

impl std::error::Error for MemcachedError {}

impl MemcachedBackend {
    /// A backend for the servers at `urls` (`memcached://host[:port]`, port 11211 by default)
    /// with a per-operation `timeout`. Nothing is connected until the first operation.
    ///
    /// ```
    /// use cache_runtime::MemcachedBackend;
    /// use std::time::Duration;
    ///
    /// let one = MemcachedBackend::new(&["memcached://127.0.0.1"], Duration::from_millis(50))?;
    /// assert_eq!(one.servers(), ["127.0.0.1:11211"]);
    /// // Not a URL, another scheme, port 0:
    /// assert!(MemcachedBackend::new(&["127.0.0.1:11211"], Duration::from_millis(50)).is_err());
    /// assert!(MemcachedBackend::new(&["memcached://127.0.0.1:0"], Duration::from_millis(50)).is_err());
    /// # Ok::<(), cache_runtime::MemcachedError>(())
    /// ```
    ///
    /// # Errors
    /// A malformed URL, no server, a zero timeout, or no thread for the backend's runtime.
    pub fn new(urls: &[&str], timeout: Duration) -> Result<Self, MemcachedError> {
        if timeout.is_zero() {
            // Every operation would time out at once: memcached would never be used.
            return Err(MemcachedError::Setting(
                "the operation timeout must be longer than zero".into(),
            ));
        }
        let addrs = urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(MemcachedError::Setting("no server named".into()));
        }
        for (i, a) in addrs.iter().enumerate() {
            if addrs[..i].contains(a) {
                return Err(MemcachedError::Setting(format!("`{a}` is named twice")));
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cache-runtime-memcached")
            .enable_all()
            .build()
            .map_err(|e| MemcachedError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        Ok(Self {
            ring: Ring::new(&addrs),
            breakers: addrs.iter().map(|_| Breaker::new()).collect(),
            servers: addrs.into_iter().map(Server::new).collect(),
            generations: Arc::default(),
            timeout,
            invalidations: None,
            runtime: Mutex::new(Some(runtime)),
            handle,
        })
    }

    /// Carries invalidations through `channel` (a [`RedisBackend`](crate::RedisBackend), whose
    /// pub/sub channel memcached lacks): a write or invalidation in one process then evicts the
    /// other processes' L1 copies at once, as with Redis alone. Only the channel of `channel` is
    /// used; the data stays in memcached.
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")] {
    /// use cache_runtime::{MemcachedBackend, RedisBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let t = Duration::from_millis(50);
    /// let channel = Arc::new(RedisBackend::new("redis://127.0.0.1/", t)?);
    /// let memcached = MemcachedBackend::new(&["memcached://127.0.0.1"], t)?.with_invalidations(channel);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_invalidations(mut self, channel: Arc<dyn Backend>) -> Self {
        self.invalidations = Some(channel);
        self
    }

    /// The servers, as `host:port`, in the order given.
    ///
    /// ```
    /// use cache_runtime::MemcachedBackend;
    /// use std::time::Duration;
    ///
    /// let urls = ["memcached://127.0.0.1:11211", "memcached://127.0.0.1:11212/"];
    /// let b = MemcachedBackend::new(&urls, Duration::from_millis(50))?;
    /// assert_eq!(b.servers(), ["127.0.0.1:11211", "127.0.0.1:11212"]);
    /// # Ok::<(), cache_runtime::MemcachedError>(())
    /// ```
    #[must_use]
    pub fn servers(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.addr.as_str()).collect()
    }

    /// Asks every server, within the timeout, for its version: `Ok(true)` when all answer as
    /// memcached 1.6 or newer, `Ok(false)` when one cannot be reached now (no error: the
    /// backend fails open until it can). [`config`](crate::config) runs it when it installs a
    /// backend.
    ///
    /// ```
    /// use cache_runtime::MemcachedBackend;
    /// use std::time::Duration;
    ///
    /// // Nothing listens on port 1: not reachable now, and not an error.
    /// let b = MemcachedBackend::new(&["memcached://127.0.0.1:1"], Duration::from_millis(50))?;
    /// assert!(!b.check()?);
    /// # Ok::<(), cache_runtime::MemcachedError>(())
    /// ```
    ///
    /// # Errors
    /// [`MemcachedError::Setting`] when a server answers, but not as memcached, or as a
    /// memcached older than 1.6 (without the meta protocol).
    pub fn check(&self) -> Result<bool, MemcachedError> {
        let mut all = true;
        for (i, server) in self.servers.iter().enumerate() {
            match self.run_unguarded(i, commands::version(), self.timeout) {
                Ok(v) => supported(&server.addr, &v)?,
                Err(Fault::Reply) => {
                    return Err(MemcachedError::Setting(format!(
                        "`{}` does not answer as memcached",
                        server.addr
                    )));
                }
                Err(_) => all = false,
            }
        }
        Ok(all)
    }

    /// Faults met so far, all servers together.
    ///
    /// ```
    /// use cache_runtime::{Faults, MemcachedBackend};
    /// use std::time::Duration;
    ///
    /// let b = MemcachedBackend::new(&["memcached://127.0.0.1"], Duration::from_millis(50))?;
    /// assert_eq!(b.faults(), Faults::default()); // nothing tried yet
    /// # Ok::<(), cache_runtime::MemcachedError>(())
    /// ```
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.breakers
            .iter()
            .map(Breaker::faults)
            .fold(Faults::default(), |a, b| a.plus(&b))
    }

    /// Whether the breaker of some server is open now (that server is being skipped).
    ///
    /// ```
    /// use cache_runtime::MemcachedBackend;
    /// use std::time::Duration;
    ///
    /// let b = MemcachedBackend::new(&["memcached://127.0.0.1"], Duration::from_millis(50))?;
    /// assert!(!b.is_open());
    /// # Ok::<(), cache_runtime::MemcachedError>(())
    /// ```
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.breakers.iter().any(Breaker::is_open)
    }

    /// The server that holds `key` (a lease, with its entry).
    fn server_of(&self, key: &str) -> usize {
        self.ring.server(key.strip_suffix(":lease").unwrap_or(key))
    }

    /// Runs `op` on `server` for a blocking caller, through the server's breaker.
    fn run<T: Send + 'static, C: Conn>(
        &self,
        server: usize,
        op: Exchange<T, C>,
        within: Duration,
    ) -> Result<T, Fault> {
        self.guarded(server, || self.run_unguarded(server, op, within))
    }

    /// `run` through the server's breaker.
    fn guarded<T>(
        &self,
        server: usize,
        run: impl FnOnce() -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let breaker = self.breakers.get(server).ok_or(Fault::Error)?;
        breaker.admit()?;
        breaker.record(run())
    }

    /// Runs the read `op` on `server` for a blocking caller, through the server's breaker: on a
    /// plain blocking socket when this thread is outside any Tokio runtime (`blocking`: no
    /// runtime and no timer on the way), else as [`run`](Self::run) does (`op_in_runtime`).
    fn read<T: Send + 'static>(
        &self,
        server: usize,
        op: impl FnOnce() -> Exchange<T, blocking::Wire>,
        op_in_runtime: impl FnOnce() -> Exchange<T>,
    ) -> Result<T, Fault> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return self.run(server, op_in_runtime(), self.timeout);
        }
        let op = op();
        self.guarded(server, || {
            let s = self.servers.get(server).ok_or(Fault::Error)?;
            s.run_blocking(&op, self.timeout)
        })
    }

    /// Runs `op` on `server` for a blocking caller: on this thread, or on the backend's runtime
    /// when this thread is inside a Tokio runtime (which cannot drive another).
    fn run_unguarded<T: Send + 'static, C: Conn>(
        &self,
        server: usize,
        op: Exchange<T, C>,
        within: Duration,
    ) -> Result<T, Fault> {
        if tokio::runtime::Handle::try_current().is_err() {
            let server = self.servers.get(server).ok_or(Fault::Error)?;
            return server.run_here(&op, within);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(server, op, within, move |r| {
            let _ = tx.send(r);
        });
        // The task answers within its bound; the margin covers scheduling only.
        let margin = (within / 4).min(Duration::from_millis(100));
        rx.recv_timeout(within.saturating_add(margin))
            .unwrap_or(Err(Fault::Timeout))
    }

    /// Runs `op` on `server` for an async caller (of any executor), on the backend's runtime.
    async fn run_async<T: Send + 'static, C: Conn>(
        &self,
        server: usize,
        op: Exchange<T, C>,
        within: Duration,
    ) -> Result<T, Fault> {
        let breaker = self.breakers.get(server).ok_or(Fault::Error)?;
        breaker.admit()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(server, op, within, move |r| {
            let _ = tx.send(r);
        });
        breaker.record(rx.await.unwrap_or(Err(Fault::Error)))
    }

    /// Starts `op` on the backend's runtime, which hands its outcome to `reply`.
    fn spawn<T: Send + 'static, C: Conn>(
        &self,
        server: usize,
        op: Exchange<T, C>,
        within: Duration,
        reply: impl FnOnce(Result<T, Fault>) + Send + 'static,
    ) {
        let servers = Arc::clone(&self.servers);
        self.handle.spawn(async move {
            let r = match servers.get(server) {
                Some(s) => s.run_async(&op, within).await,
                None => Err(Fault::Error),
            };
            reply(r);
        });
    }
}

impl Backend for MemcachedBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        let s = self.server_of(key);
        self.read(
            s,
            || commands::get(&self.generations, s, key),
            || commands::get(&self.generations, s, key),
        )
    }
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        let s = self.server_of(key);
        Box::pin(self.run_async(
            s,
            commands::get::<Client>(&self.generations, s, key),
            self.timeout,
        ))
    }
    /// One round trip per server, all servers at once (see `batch`); a fault of any server
    /// faults the whole batch.
    fn get_many(&self, keys: &[&str]) -> Result<Batch, Fault> {
        self.read_batch(keys)
    }
    fn get_many_async<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Batch, Fault>> {
        Box::pin(self.read_batch_async(keys))
    }
    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Fault> {
        let s = self.server_of(key);
        let op = commands::set(&self.generations, s, key, value, ttl);
        self.run(s, op, self.timeout)
    }
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        let s = self.server_of(key);
        let op = commands::set(&self.generations, s, key, value, ttl);
        Box::pin(self.run_async(s, op, self.timeout))
    }
    /// One round trip per server, all servers at once (see `batch`): each server's items in
    /// one pipelined request of quiet `ms`, then `mn`. A fault of any server faults the batch
    /// (the other servers' items may be written).
    fn set_many(&self, items: &[(&str, &[u8], Option<Duration>)]) -> Result<(), Fault> {
        self.write_batch(items)
    }
    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8], Option<Duration>)],
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(self.write_batch_async(items))
    }
    fn delete(&self, key: &str) -> Result<(), Fault> {
        let s = self.server_of(key);
        self.run(s, commands::delete(&self.generations, s, key), self.timeout)
    }
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Fault>> {
        let s = self.server_of(key);
        let op = commands::delete(&self.generations, s, key);
        Box::pin(self.run_async(s, op, self.timeout))
    }
    /// Replaces the generation of the namespace `prefix` on every server (see the type's
    /// documentation); the first fault, if any server could not be reached.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Fault> {
        let mut result = Ok(());
        for s in 0..self.servers.len() {
            let op = commands::clear(&self.generations, s, prefix);
            if let Err(f) = self.run(s, op, self.timeout) {
                result = result.and(Err(f));
            }
        }
        result
    }
    fn try_lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Fault> {
        let s = self.server_of(key);
        self.run(s, commands::try_lease(key, token, ttl), self.timeout)
    }
    fn try_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Fault>> {
        let s = self.server_of(key);
        Box::pin(self.run_async(s, commands::try_lease(key, token, ttl), self.timeout))
    }
    fn release_lease(&self, key: &str, token: &str) -> Result<(), Fault> {
        let s = self.server_of(key);
        self.run(s, commands::release_lease(key, token), self.timeout)
    }
    fn release_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        let s = self.server_of(key);
        Box::pin(self.run_async(s, commands::release_lease(key, token), self.timeout))
    }
    fn wait_for(
        &self,
        key: &str,
        lease_key: &str,
        max: Duration,
    ) -> Result<Option<Vec<u8>>, Fault> {
        let s = self.server_of(key);
        let op = commands::wait_for(&self.generations, s, key, lease_key, max);
        self.run(s, op, max.saturating_add(self.timeout))
    }
    fn wait_for_async<'a>(
        &'a self,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        let s = self.server_of(key);
        let op = commands::wait_for(&self.generations, s, key, lease_key, max);
        Box::pin(self.run_async(s, op, max.saturating_add(self.timeout)))
    }
    fn broadcasts(&self) -> bool {
        self.invalidations.as_ref().is_some_and(|c| c.broadcasts())
    }
    fn publish(&self, namespace: &str, key: Option<&[u8]>) {
        if let Some(c) = &self.invalidations {
            c.publish(namespace, key);
        }
    }
    fn subscribe(&self, namespace: &str, handler: Weak<InvalidationHandler>) {
        if let Some(c) = &self.invalidations {
            c.subscribe(namespace, handler);
        }
    }
    fn health(&self) -> Health {
        Health {
            breaker_open: self.is_open(),
            half_open: self.breakers.iter().any(Breaker::is_half_open),
            listening: self
                .invalidations
                .as_ref()
                .is_some_and(|c| c.health().listening),
            faults: self.faults(),
        }
    }
}

/// `host:port` of a `memcached://host[:port][/]` URL.
fn parse_url(url: &str) -> Result<String, MemcachedError> {
    let bad = |why: &str| MemcachedError::Url(format!("`{url}`: {why}"));
    let rest = url
        .trim()
        .strip_prefix("memcached://")
        .ok_or_else(|| bad("expected `memcached://host[:port]`"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("a memcached URL has a host and a port only"));
    }
    if rest.starts_with('[') {
        return Err(bad(
            "IPv6 addresses are not supported; name the host or an IPv4 address",
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
        ),
        None => (rest, DEFAULT_PORT),
    };
    if host.is_empty() || host.contains(':') || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("no host"));
    }
    if port == 0 {
        return Err(MemcachedError::Setting(format!("`{url}` names port 0")));
    }
    Ok(format!("{host}:{port}"))
}

/// Checks a `version` answer: memcached 1.6 or newer (the meta protocol).
fn supported(addr: &str, version: &str) -> Result<(), MemcachedError> {
    let v = version.trim();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= (1, 6) => Ok(()),
        (Some(_), Some(_)) => Err(MemcachedError::Setting(format!(
            "`{addr}` runs memcached {v}; the meta protocol needs 1.6 or newer"
        ))),
        _ => Err(MemcachedError::Setting(format!(
            "`{addr}` does not answer as memcached (version `{v}`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_host_and_a_port() {
        assert_eq!(
            parse_url("memcached://127.0.0.1").unwrap(),
            "127.0.0.1:11211"
        );
        assert_eq!(
            parse_url(" memcached://cache-1:11212/ ").unwrap(),
            "cache-1:11212"
        );
        for bad in [
            "127.0.0.1:11211",
            "memcached://",
            "memcached://:11211",
            "memcached://h:port",
            "memcached://h:70000",
            "memcached://h/db",
            "memcached://[::1]:11211",
            "memcached://user@h",
        ] {
            assert!(
                matches!(parse_url(bad), Err(MemcachedError::Url(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_url("memcached://h:0"),
            Err(MemcachedError::Setting(_))
        ));
        let twice = MemcachedBackend::new(
            &["memcached://h", "memcached://h:11211"],
            Duration::from_millis(50),
        );
        assert!(matches!(twice, Err(MemcachedError::Setting(_))));
    }

    #[test]
    fn versions_before_1_6_are_refused() {
        assert!(supported("h", "1.6.18").is_ok());
        assert!(supported("h", "1.10.0").is_ok());
        assert!(supported("h", "2.0").is_ok());
        assert!(
            supported("h", "1.5.22")
                .unwrap_err()
                .to_string()
                .contains("1.6")
        );
        assert!(
            supported("h", "+PONG")
                .unwrap_err()
                .to_string()
                .contains("does not answer")
        );
    }
}

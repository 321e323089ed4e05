//! A Redis tier that speaks bytes: `get`, `set` with an expiry, `delete`, for sync and async
//! callers, and never fails a caller.
//!
//! Every operation is bounded by a timeout (default 50 ms, well under a typical loader) and
//! runs on the backend's own one-thread tokio runtime, so sync callers need no runtime and async
//! callers of any executor can await it. A fault (Redis down, slow, restarted, or answering
//! something unexpected) reads as a miss or a skipped write: the caller's function runs uncached
//! (fail-open). A circuit breaker counts consecutive faults; after
//! [`BREAKER_THRESHOLD`](crate::BREAKER_THRESHOLD) of them it opens for
//! [`BREAKER_COOLDOWN`](crate::BREAKER_COOLDOWN), during which operations cost nothing (no network), then
//! lets one trial operation through (half-open): its success closes the breaker, so caching
//! resumes by itself when Redis comes back, and its failure opens it again. Each kind
//! of fault is counted ([`RedisBackend::faults`]).
//!
//! In five parts: `conn` (the connections: pooled blocking ones, one multiplexed async one),
//! `commands` (each operation built once, as an `Op`), `listener` (the invalidation channel),
//! `heartbeat` (how the listener finds a deaf subscription, without IO), and here the backend
//! with its two runners, one for blocking callers and one for async callers, through which
//! every operation of its [`Backend`] implementation goes. The circuit breaker is shared by
//! backends (`tier::breaker`).

mod commands;
mod conn;
mod heartbeat;
mod listener;

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use self::commands::Op;
use self::conn::{Connections, Target};
use self::heartbeat::Heartbeat;
use self::listener::Listener;
use crate::tier::breaker::{Breaker, Faults};
use crate::tier::{Backend, BoxFuture, Fault, Health, InvalidationHandler};

/// A Redis server reached through one multiplexed connection (reconnected as needed).
///
/// ```no_run
/// use cache_runtime::{Cache, RedisBackend};
/// use std::{sync::Arc, time::Duration};
///
/// // One backend (one connection) for all of a process's caches.
/// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
/// let users: Cache<u64, String> = Cache::builder()
///     .name("users")
///     .remote(redis.clone(), "myapp")
///     .build()?;
/// let prices: Cache<String, u64> = Cache::builder()
///     .name("prices")
///     .remote(redis.clone(), "myapp")
///     .build()?;
/// users.insert(1, "ada".to_string()); // also stored in Redis, for the other processes
/// assert_eq!(prices.get_or_insert_with("tea", || 3), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisBackend {
    conns: Arc<Connections>,
    listener: Arc<Listener>,
    heartbeat: Heartbeat,
    breaker: Breaker,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("timeout", &self.conns.timeout())
            .field("heartbeat_every", &self.heartbeat.every)
            .field("deaf_after", &self.heartbeat.deaf_after)
            .field("faults", &self.faults())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        // Never block (this may run inside an async context): let the runtime wind down alone.
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

/// Why a backend could not be created.
///
/// ```
/// use cache_runtime::{BackendError, RedisBackend};
/// use std::time::Duration;
///
/// let err = RedisBackend::new("http://127.0.0.1/", Duration::from_millis(50)).unwrap_err();
/// assert!(matches!(err, BackendError::Url(_)));
/// assert!(err.to_string().starts_with("invalid Redis URL"));
/// // Settings that would leave Redis unused are refused, not accepted silently:
/// let zero = RedisBackend::new("redis://127.0.0.1/", Duration::ZERO).unwrap_err();
/// assert!(matches!(zero, BackendError::Setting(_)));
/// let port0 = RedisBackend::new("redis://127.0.0.1:0/", Duration::from_millis(50)).unwrap_err();
/// assert!(port0.to_string().contains("port 0"));
/// let nodes = ["redis://127.0.0.1:7000/", "redis://127.0.0.1:0/"];
/// assert!(matches!(RedisBackend::cluster(&nodes, Duration::from_millis(50)), Err(BackendError::Setting(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BackendError {
    /// The URL is not a Redis URL.
    Url(String),
    /// The backend's runtime thread could not start.
    Runtime(String),
    /// A setting that would disable the backend or a part of it: a zero timeout, port 0, or a
    /// heartbeat that could not tell a deaf subscription from a live one.
    Setting(String),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(e) => write!(f, "invalid Redis URL: {e}"),
            Self::Runtime(e) => write!(f, "could not start the Redis backend's runtime: {e}"),
            Self::Setting(e) => write!(f, "invalid Redis backend setting: {e}"),
        }
    }
}

impl std::error::Error for BackendError {}

impl RedisBackend {
    /// A backend for `url` (`redis://host:port/db`) with a per-operation `timeout`. Nothing is
    /// connected until the first operation.
    ///
    /// ```
    /// use cache_runtime::RedisBackend;
    /// use std::time::Duration;
    ///
    /// let redis = RedisBackend::new("redis://127.0.0.1:6379/0", Duration::from_millis(50))?;
    /// assert!(!redis.is_open()); // nothing is connected yet
    /// // Not a URL:
    /// assert!(RedisBackend::new("127.0.0.1:6379", Duration::from_millis(50)).is_err());
    /// # Ok::<(), cache_runtime::BackendError>(())
    /// ```
    ///
    /// # Errors
    /// A malformed URL, or no thread for the backend's runtime.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, BackendError> {
        let client = open(url)?;
        Self::with_target(Target::Single(client), timeout)
    }

    /// A backend for a Redis Cluster reached through the nodes at `urls` (any of them; the
    /// client learns the slot map), with a per-operation `timeout`. Invalidations travel by
    /// `PUBLISH`, which a cluster forwards to every node.
    ///
    /// ```
    /// use cache_runtime::{Faults, RedisBackend};
    /// use std::time::Duration;
    ///
    /// let nodes = ["redis://127.0.0.1:7000/", "redis://127.0.0.1:7001/", "redis://127.0.0.1:7002/"];
    /// let cluster = RedisBackend::cluster(&nodes, Duration::from_millis(50))?; // connects lazily
    /// assert_eq!(cluster.faults(), Faults::default());
    /// assert!(RedisBackend::cluster(&[], Duration::from_millis(50)).is_err());
    /// # Ok::<(), cache_runtime::BackendError>(())
    /// ```
    ///
    /// # Errors
    /// A malformed URL, or no thread for the backend's runtime.
    pub fn cluster(urls: &[&str], timeout: Duration) -> Result<Self, BackendError> {
        let nodes = urls
            .iter()
            .map(|u| open(u))
            .collect::<Result<Vec<_>, _>>()?;
        let client = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // No retry loops (redis-rs sleeps between them): a call stays within its timeout.
            .retries(0)
            .build()
            .map_err(|e| BackendError::Url(e.to_string()))?;
        if nodes.is_empty() {
            return Err(BackendError::Url(
                "a cluster needs at least one node".into(),
            ));
        }
        Self::with_target(
            Target::Cluster {
                client: Box::new(client),
                nodes,
            },
            timeout,
        )
    }

    /// Sets how the invalidation listener checks that its subscription still delivers: while
    /// subscribed, it publishes a probe every `every` (through the command connection) and must
    /// hear one back within `deaf_after`. Past that, the subscription is deaf (say, a failover
    /// behind a stable address that black-holes the old connection):
    /// [`is_listening`](Self::is_listening) turns false, the listener drops the subscription and
    /// the command connections and subscribes again (with backoff), and when it is back, the L1
    /// copies of the caches on this backend are dropped (they may have missed invalidations).
    /// Other processes' writes are thus seen within about `deaf_after` even then, rather than
    /// within `l1_ttl`. Default: a probe every second, deaf after three seconds. Set it before
    /// the first cache is built on the backend.
    ///
    /// ```
    /// use cache_runtime::{BackendError, RedisBackend};
    /// use std::time::Duration;
    ///
    /// let redis = RedisBackend::new("redis://127.0.0.1:6379/", Duration::from_millis(50))?
    ///     .with_heartbeat(Duration::from_millis(500), Duration::from_millis(1_500))?;
    /// assert!(!redis.is_listening()); // no cache yet: nothing is connected
    /// // A zero interval, or a deaf-after time within one interval, is refused:
    /// let url = "redis://127.0.0.1:6379/";
    /// let zero = RedisBackend::new(url, Duration::from_millis(50))?
    ///     .with_heartbeat(Duration::ZERO, Duration::from_secs(3));
    /// assert!(matches!(zero, Err(BackendError::Setting(_))));
    /// let short = RedisBackend::new(url, Duration::from_millis(50))?
    ///     .with_heartbeat(Duration::from_secs(1), Duration::from_secs(1));
    /// assert!(matches!(short, Err(BackendError::Setting(_))));
    /// # Ok::<(), BackendError>(())
    /// ```
    ///
    /// # Errors
    /// [`BackendError::Setting`] for a zero `every`, or a `deaf_after` no longer than `every`.
    pub fn with_heartbeat(
        mut self,
        every: Duration,
        deaf_after: Duration,
    ) -> Result<Self, BackendError> {
        self.heartbeat = Heartbeat::new(every, deaf_after)?;
        Ok(self)
    }

    fn with_target(target: Target, timeout: Duration) -> Result<Self, BackendError> {
        if timeout.is_zero() {
            // Every operation would time out at once: Redis would never be used.
            return Err(BackendError::Setting(
                "the operation timeout must be longer than zero".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cache-runtime-redis")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        Ok(Self {
            conns: Arc::new(Connections::new(target, timeout)),
            listener: Arc::new(Listener::new()),
            heartbeat: Heartbeat::default(),
            breaker: Breaker::new(),
            runtime: Mutex::new(Some(runtime)),
            handle,
        })
    }

    /// Connects once, within the timeout, to check what only the server can say: that it
    /// accepts the URL's settings (a database number it has, a password). `Ok(false)` when the
    /// server cannot be reached now, which is no error: the backend fails open until it can.
    /// [`config`](crate::config) runs it when it installs a backend.
    ///
    /// ```
    /// use cache_runtime::RedisBackend;
    /// use std::time::Duration;
    ///
    /// // Nothing listens on port 1: not reachable now, and not an error.
    /// let redis = RedisBackend::new("redis://127.0.0.1:1/", Duration::from_millis(50))?;
    /// assert!(!redis.check()?);
    /// # Ok::<(), cache_runtime::BackendError>(())
    /// ```
    ///
    /// # Errors
    /// [`BackendError::Setting`] when the server refuses the connection (a database number it
    /// does not have, a wrong password).
    pub fn check(&self) -> Result<bool, BackendError> {
        let refused = |e: redis::RedisError| {
            if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() {
                Ok(false)
            } else {
                Err(BackendError::Setting(format!(
                    "the server refused the connection: {e}"
                )))
            }
        };
        let client = self.conns.subscriber();
        match client.get_connection_with_timeout(self.conns.timeout()) {
            Ok(mut c) => match redis::cmd("PING").query::<String>(&mut c) {
                Ok(_) => Ok(true),
                Err(e) => refused(e),
            },
            Err(e) => refused(e),
        }
    }

    /// Whether this backend is subscribed, right now, to the channel on which processes
    /// announce their writes and invalidations. Listening starts when the first cache is built on
    /// the backend, and takes a round trip to Redis; until it is subscribed (and
    /// while it reconnects after a fault), other processes' writes do not evict this process's
    /// L1 copies, which then live until their `l1_ttl`. A subscription that stops delivering
    /// (found by the heartbeat: see [`with_heartbeat`](Self::with_heartbeat)) no longer counts
    /// as listening. A readiness probe can wait for it.
    ///
    /// ```no_run
    /// use cache_runtime::{Cache, RedisBackend};
    /// use std::{sync::Arc, time::{Duration, Instant}};
    ///
    /// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
    /// let users: Cache<u64, String> = Cache::builder()
    ///     .l1_ttl(Duration::from_secs(60))
    ///     .remote(redis.clone(), "myapp")
    ///     .build()?;
    /// let start = Instant::now();
    /// while !redis.is_listening() && start.elapsed() < Duration::from_secs(5) {
    ///     std::thread::sleep(Duration::from_millis(5));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_listening(&self) -> bool {
        self.listener.is_subscribed()
    }

    /// Faults met so far.
    ///
    /// ```no_run
    /// use cache_runtime::{Cache, RedisBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
    /// let users: Cache<u64, String> = Cache::builder()
    ///     .remote(redis.clone(), "myapp")
    ///     .build()?;
    /// // Redis is down: the call is answered by its loader, and the failed connection counted.
    /// assert_eq!(users.get_or_insert_with(&1, || "ada".to_string()), "ada");
    /// assert!(redis.faults().connect > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.breaker.faults()
    }

    /// Whether the breaker is open now (Redis is being skipped).
    ///
    /// ```no_run
    /// use cache_runtime::{Cache, RedisBackend};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let redis = Arc::new(RedisBackend::new("redis://127.0.0.1/", Duration::from_millis(50))?);
    /// let users: Cache<u64, String> = Cache::builder()
    ///     .remote(redis.clone(), "myapp")
    ///     .build()?;
    /// for id in 0..10 {
    ///     users.get_or_insert_with(&id, || format!("user {id}")); // Redis is down
    /// }
    /// assert!(redis.is_open());
    /// assert!(redis.faults().short_circuited > 0); // later calls skipped Redis: no waiting
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs `op` for a blocking caller: its single command on a pooled blocking connection
    /// (bounded by socket timeouts), or else the whole operation on the backend's runtime.
    fn run<T: redis::FromRedisValue + Send + 'static>(&self, op: Op<T>) -> Result<T, Fault> {
        self.run_then(op, Ok)
    }

    /// [`run`](Self::run), whose reply `then` reads before the breaker counts the outcome (a
    /// reply that `then` refuses is a fault).
    fn run_then<T: redis::FromRedisValue + Send + 'static, U>(
        &self,
        op: Op<T>,
        then: impl FnOnce(T) -> Result<U, Fault>,
    ) -> Result<U, Fault> {
        self.breaker.admit()?;
        let pooled = match &op {
            Op::Pooled(request, _) => self.conns.pooled_call(request),
            Op::OnRuntime { .. } => None,
        };
        let r = pooled.unwrap_or_else(|| {
            if let Op::Pooled(..) = &op {
                // No pooled connection: one is made off this caller's path, for the next.
                self.conns.refill(&self.handle);
            }
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let within = self.spawn(op, move |r| {
                let _ = tx.send(r);
            });
            // The task answers within its bound; the margin covers scheduling only.
            let margin = (within / 4).min(Duration::from_millis(100));
            rx.recv_timeout(within.saturating_add(margin))
                .unwrap_or(Err(Fault::Timeout))
        });
        self.breaker.record(r.and_then(then))
    }

    /// Runs `op` for an async caller (of any executor), on the backend's runtime.
    async fn run_async<T: redis::FromRedisValue + Send + 'static>(
        &self,
        op: Op<T>,
    ) -> Result<T, Fault> {
        self.run_async_then(op, Ok).await
    }

    /// [`run_async`](Self::run_async), whose reply `then` reads as in
    /// [`run_then`](Self::run_then).
    async fn run_async_then<T: redis::FromRedisValue + Send + 'static, U>(
        &self,
        op: Op<T>,
        then: impl FnOnce(T) -> Result<U, Fault>,
    ) -> Result<U, Fault> {
        self.breaker.admit()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(op, move |r| {
            let _ = tx.send(r);
        });
        let r = rx.await.unwrap_or(Err(Fault::Error));
        self.breaker.record(r.and_then(then))
    }

    /// Starts `op` on the backend's runtime, which hands its outcome to `reply`; returns the
    /// operation's bound.
    fn spawn<T: redis::FromRedisValue + Send + 'static>(
        &self,
        op: Op<T>,
        reply: impl FnOnce(Result<T, Fault>) + Send + 'static,
    ) -> Duration {
        let (exchange, within) = op.on_runtime();
        let within = within.unwrap_or(self.conns.timeout());
        let conns = Arc::clone(&self.conns);
        self.handle.spawn(async move {
            reply(conns.call(within, &exchange).await);
        });
        within
    }
}

impl Backend for RedisBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        self.run(commands::get(key))
    }
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        Box::pin(self.run_async(commands::get(key)))
    }
    /// One `MGET` for the whole batch, through the timeout, the breaker and the fault counts of
    /// every operation; a reply that is not one string or nil per key is a fault
    /// ([`Fault::Reply`]). On a cluster the batch costs one `MGET` per hash slot among its keys
    /// (a cluster refuses keys of several slots in one `MGET`, even on one node), all sent at
    /// once: the wait is about one round trip to the slowest node, within the one timeout, but
    /// the commands are not fewer (a batch of `n` keys spread over 16,384 slots is close to `n`
    /// one-key `MGET`s while `n` is small against 16,384).
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Fault> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let n = keys.len();
        let op = commands::mget(keys, self.conns.cluster_nodes().is_some());
        self.run_then(op, |reply| commands::values(reply, n))
    }
    fn get_many_async<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Fault>> {
        if keys.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let n = keys.len();
        let op = commands::mget(keys, self.conns.cluster_nodes().is_some());
        Box::pin(self.run_async_then(op, move |reply| commands::values(reply, n)))
    }
    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Fault> {
        self.run(commands::set(key, value, ttl))
    }
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(self.run_async(commands::set(key, value, ttl)))
    }
    /// One pipeline of `SET`s (each exactly what [`set`](Backend::set) sends) for the whole
    /// batch: one round trip, through the timeout, the breaker and the fault counts of every
    /// operation; a reply that is not `OK` for each item is a fault ([`Fault::Reply`]), after
    /// which some items may be written and others not. On a cluster, one pipeline per hash slot
    /// among the keys (a cluster connection refuses a pipeline whose keys span slots), all sent
    /// at once: the wait is about one round trip to the slowest node, within the one timeout.
    fn set_many(&self, items: &[(&str, &[u8], Option<Duration>)]) -> Result<(), Fault> {
        if items.is_empty() {
            return Ok(());
        }
        let n = items.len();
        let op = commands::set_many(items, self.conns.cluster_nodes().is_some());
        self.run_then(op, |reply| commands::stored(&reply, n))
    }
    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8], Option<Duration>)],
    ) -> BoxFuture<'a, Result<(), Fault>> {
        if items.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        let n = items.len();
        let op = commands::set_many(items, self.conns.cluster_nodes().is_some());
        Box::pin(self.run_async_then(op, move |reply| commands::stored(&reply, n)))
    }
    fn delete(&self, key: &str) -> Result<(), Fault> {
        self.run(commands::delete(key))
    }
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(self.run_async(commands::delete(key)))
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Fault> {
        let pattern = commands::prefix_pattern(prefix);
        let timeout = self.conns.timeout();
        match self.conns.cluster_nodes() {
            Some(nodes) => commands::delete_matching_on_nodes(nodes, &pattern, timeout),
            None => self.run(commands::delete_matching(pattern, timeout)),
        }
    }
    fn try_lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Fault> {
        self.run(commands::try_lease(key, token, ttl))
    }
    fn try_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Fault>> {
        Box::pin(self.run_async(commands::try_lease(key, token, ttl)))
    }
    fn release_lease(&self, key: &str, token: &str) -> Result<(), Fault> {
        self.run(commands::release_lease(key, token))
    }
    fn release_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(self.run_async(commands::release_lease(key, token)))
    }
    fn wait_for(
        &self,
        key: &str,
        lease_key: &str,
        max: Duration,
    ) -> Result<Option<Vec<u8>>, Fault> {
        self.run(commands::wait_for(
            key,
            lease_key,
            max,
            self.conns.timeout(),
        ))
    }
    fn wait_for_async<'a>(
        &'a self,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        Box::pin(self.run_async(commands::wait_for(
            key,
            lease_key,
            max,
            self.conns.timeout(),
        )))
    }
    fn broadcasts(&self) -> bool {
        true
    }
    fn publish(&self, namespace: &str, key: Option<&[u8]>) {
        // Fire and forget: a lost message leaves other processes' L1 copies to their `l1_ttl`.
        let _ = self.run(self.listener.publish(namespace, key));
    }
    fn subscribe(&self, namespace: &str, handler: Weak<InvalidationHandler>) {
        // Listening starts with the first registration and reconnects by itself.
        if self.listener.register(namespace, handler) {
            let listener = Arc::clone(&self.listener);
            let subscriber = self.conns.listener_client();
            // First contact within the operation timeout, and at least a second.
            let first_contact = self.conns.timeout().max(Duration::from_secs(1));
            self.handle.spawn(listener.listen(
                subscriber,
                Arc::clone(&self.conns),
                first_contact,
                self.heartbeat,
            ));
        }
    }
    fn health(&self) -> Health {
        Health {
            breaker_open: self.is_open(),
            half_open: self.breaker.is_half_open(),
            listening: self.is_listening(),
            faults: self.faults(),
        }
    }
}

/// A client for `url`, which must name a reachable kind of address (port 0 never is).
fn open(url: &str) -> Result<redis::Client, BackendError> {
    let client = redis::Client::open(url).map_err(|e| BackendError::Url(e.to_string()))?;
    if let redis::ConnectionAddr::Tcp(_, 0) | redis::ConnectionAddr::TcpTls { port: 0, .. } =
        client.get_connection_info().addr()
    {
        return Err(BackendError::Setting(format!("`{url}` names port 0")));
    }
    Ok(client)
}

//! A Redis tier that speaks bytes: `get`, `set` with an expiry, `delete`, for sync and async
//! callers, and never fails a caller.
//!
//! Every operation is bounded by a timeout (default 50 ms, well under a typical loader) and
//! runs on the backend's own one-thread tokio runtime, so sync callers need no runtime and async
//! callers of any executor can await it. A fault (Redis down, slow, restarted, or answering
//! something unexpected) reads as a miss or a skipped write: the caller's function runs uncached
//! (fail-open). A circuit breaker counts consecutive faults; after [`BREAKER_THRESHOLD`] of them
//! it opens for [`BREAKER_COOLDOWN`], during which operations cost nothing (no network), then
//! lets operations through again, so caching resumes by itself when Redis comes back. Each kind
//! of fault is counted ([`RedisBackend::faults`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::tier::breaker::{Breaker, Faults};

pub(crate) use crate::tier::{Fault, InvalidationHandler as Handler};

/// Where a backend's Redis is.
enum Target {
    Single(redis::Client),
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        /// The configured nodes, for `SUBSCRIBE` and per-node `SCAN`.
        nodes: Vec<redis::Client>,
    },
}

/// An async connection to either kind of target.
#[derive(Clone)]
pub(crate) enum AsyncConn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for AsyncConn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A blocking connection to either kind of target.
enum SyncConn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl redis::ConnectionLike for SyncConn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        match self {
            Self::Single(c) => c.req_command(cmd),
            Self::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Self::Single(c) => c.check_connection(),
            Self::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Self::Single(c) => c.is_open(),
            Self::Cluster(c) => c.is_open(),
        }
    }
}

/// The channel every backend publishes invalidations on and listens to.
const CHANNEL: &str = "cache-runtime:invalidations";

struct Inner {
    /// This backend's id in invalidation messages: it skips its own.
    id: u64,
    /// Caches (by namespace) told of other processes' invalidations.
    handlers: Mutex<Vec<(String, std::sync::Weak<Handler>)>>,
    listening: std::sync::atomic::AtomicBool,
    /// Subscribed to the invalidation channel right now (set once the subscription is
    /// confirmed, cleared when the connection ends).
    subscribed: std::sync::atomic::AtomicBool,
    /// Blocking connections for sync callers (no hop to the runtime thread), reused.
    blocking: Mutex<Vec<SyncConn>>,
    target: Target,
    conn: tokio::sync::Mutex<Option<AsyncConn>>,
    timeout: Duration,
    breaker: Breaker,
}

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
    inner: Arc<Inner>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("timeout", &self.inner.timeout)
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
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BackendError {
    /// The URL is not a Redis URL.
    Url(String),
    /// The backend's runtime thread could not start.
    Runtime(String),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(e) => write!(f, "invalid Redis URL: {e}"),
            Self::Runtime(e) => write!(f, "could not start the Redis backend's runtime: {e}"),
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
        let client = redis::Client::open(url).map_err(|e| BackendError::Url(e.to_string()))?;
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
    /// let nodes = ["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/", "redis://10.0.0.3:7000/"];
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
            .map(|u| redis::Client::open(*u).map_err(|e| BackendError::Url(e.to_string())))
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

    fn with_target(target: Target, timeout: Duration) -> Result<Self, BackendError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cache-runtime-redis")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        Ok(Self {
            inner: Arc::new(Inner {
                id: std::hash::BuildHasher::hash_one(
                    &std::hash::RandomState::new(),
                    std::process::id(),
                ),
                handlers: Mutex::new(Vec::new()),
                listening: std::sync::atomic::AtomicBool::new(false),
                subscribed: std::sync::atomic::AtomicBool::new(false),
                blocking: Mutex::new(Vec::new()),
                target,
                conn: tokio::sync::Mutex::new(None),
                timeout,
                breaker: Breaker::new(),
            }),
            runtime: Mutex::new(Some(runtime)),
            handle,
        })
    }

    /// Whether this backend is subscribed, right now, to the channel on which processes
    /// announce their writes and invalidations. Listening starts when the first cache is built on
    /// the backend, and takes a round trip to Redis; until it is subscribed (and
    /// while it reconnects after a fault), other processes' writes do not evict this process's
    /// L1 copies, which then live until their `l1_ttl`. A readiness probe can wait for it.
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
        self.inner.subscribed.load(Ordering::Acquire)
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
        self.inner.breaker.faults()
    }

    /// Tells `handler` of other processes' invalidations of the cache at `namespace`, from now
    /// on (listening starts with the first registration and reconnects by itself).
    pub(crate) fn on_invalidation(&self, namespace: &str, handler: std::sync::Weak<Handler>) {
        {
            let mut all = self
                .inner
                .handlers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            all.retain(|(_, h)| h.strong_count() > 0);
            all.push((namespace.to_owned(), handler));
        }
        if !self.inner.listening.swap(true, Ordering::AcqRel) {
            let inner = Arc::clone(&self.inner);
            self.handle.spawn(async move { inner.listen().await });
        }
    }

    /// Tells the other processes that `key` (encoded; `None`: everything) of the cache at
    /// `namespace` changed, so that they drop their L1 copies.
    pub(crate) fn publish_invalidation(&self, namespace: &str, key: Option<&[u8]>) {
        let mut msg = Vec::with_capacity(16 + namespace.len() + key.map_or(0, <[u8]>::len));
        msg.extend_from_slice(&self.inner.id.to_le_bytes());
        msg.extend_from_slice(
            &u32::try_from(namespace.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        msg.extend_from_slice(namespace.as_bytes());
        match key {
            Some(k) => {
                msg.push(1);
                msg.extend_from_slice(k);
            }
            None => msg.push(0),
        }
        let cmd = redis::cmd("PUBLISH").arg(CHANNEL).arg(msg).clone();
        let _ = self.run_sync(move |mut c| {
            let cmd = cmd.clone();
            async move { cmd.query_async::<()>(&mut c).await }
        });
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
        self.inner.breaker.is_open()
    }

    /// `GET key`: `Ok(None)` for a miss; `Err` for a fault.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        self.run_blocking(redis::cmd("GET").arg(key))
    }

    /// `SET key value PX ttl` (no expiry without a TTL).
    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Fault> {
        self.run_blocking(&set_cmd(key, value, ttl))
    }

    /// `DEL key`.
    pub(crate) fn delete(&self, key: &str) -> Result<(), Fault> {
        self.run_blocking(redis::cmd("DEL").arg(key))
    }

    /// Deletes every key matching `pattern` (`SCAN` + `DEL`, in batches; the whole sweep is
    /// bounded by 20 operation timeouts).
    pub(crate) fn delete_matching(&self, pattern: &str) -> Result<(), Fault> {
        if let Target::Cluster { nodes, .. } = &self.inner.target {
            // Each node SCANs and deletes its own keys.
            let mut result = Ok(());
            for node in nodes {
                let Ok(mut con) = node.get_connection_with_timeout(self.inner.timeout) else {
                    result = Err(Fault::Connect);
                    continue;
                };
                let _ = con.set_read_timeout(Some(self.inner.timeout.saturating_mul(20)));
                let mut cursor: u64 = 0;
                loop {
                    let Ok((next, keys)) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query::<(u64, Vec<String>)>(&mut con)
                    else {
                        result = Err(Fault::Error);
                        break;
                    };
                    for k in &keys {
                        let _ = redis::cmd("DEL").arg(k).query::<()>(&mut con);
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            return result;
        }
        let pattern = pattern.to_owned();
        self.run_sync_within(self.inner.timeout.saturating_mul(20), move |mut c| {
            let pattern = pattern.clone();
            async move {
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await?;
                    if !keys.is_empty() {
                        redis::cmd("DEL")
                            .arg(&keys)
                            .query_async::<()>(&mut c)
                            .await?;
                    }
                    if next == 0 {
                        return Ok(());
                    }
                    cursor = next;
                }
            }
        })
    }

    /// `SET key token NX PX lease`: `Ok(true)` when this caller now holds the lease.
    pub(crate) fn try_lease(&self, key: &str, token: &str, lease: Duration) -> Result<bool, Fault> {
        let cmd = lease_cmd(key, token, lease);
        self.run_sync(move |mut c| {
            let cmd = cmd.clone();
            async move {
                cmd.query_async::<Option<String>>(&mut c)
                    .await
                    .map(|r| r.is_some())
            }
        })
    }

    /// The async form of [`try_lease`](Self::try_lease).
    pub(crate) async fn try_lease_async(
        &self,
        key: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, Fault> {
        let cmd = lease_cmd(key, token, lease);
        self.run_async(move |mut c| {
            let cmd = cmd.clone();
            async move {
                cmd.query_async::<Option<String>>(&mut c)
                    .await
                    .map(|r| r.is_some())
            }
        })
        .await
    }

    /// Deletes `key` only if it still holds `token` (a lease is released only by its holder).
    pub(crate) fn release_lease(&self, key: &str, token: &str) -> Result<(), Fault> {
        let cmd = release_cmd(key, token);
        self.run_sync(move |mut c| {
            let cmd = cmd.clone();
            async move { cmd.query_async::<i64>(&mut c).await.map(|_| ()) }
        })
    }

    /// The async form of [`release_lease`](Self::release_lease).
    pub(crate) async fn release_lease_async(&self, key: &str, token: &str) -> Result<(), Fault> {
        let cmd = release_cmd(key, token);
        self.run_async(move |mut c| {
            let cmd = cmd.clone();
            async move { cmd.query_async::<i64>(&mut c).await.map(|_| ()) }
        })
        .await
    }

    /// `GET key` every `every`, until a value appears or `max` passes (`Ok(None)`).
    pub(crate) fn poll_get(
        &self,
        key: &str,
        lease: &str,
        max: Duration,
        every: Duration,
    ) -> Result<Option<Vec<u8>>, Fault> {
        let (key, lease) = (key.to_owned(), lease.to_owned());
        self.run_sync_within(max.saturating_add(self.inner.timeout), move |c| {
            poll_op(c, key.clone(), lease.clone(), max, every)
        })
    }

    /// The async form of [`poll_get`](Self::poll_get).
    pub(crate) async fn poll_get_async(
        &self,
        key: &str,
        lease: &str,
        max: Duration,
        every: Duration,
    ) -> Result<Option<Vec<u8>>, Fault> {
        let (key, lease) = (key.to_owned(), lease.to_owned());
        self.run_async_within(max.saturating_add(self.inner.timeout), move |c| {
            poll_op(c, key.clone(), lease.clone(), max, every)
        })
        .await
    }

    /// The async form of [`get`](Self::get).
    pub(crate) async fn get_async(&self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        let cmd = redis::cmd("GET").arg(key).clone();
        self.run_async(move |mut c| {
            let cmd = cmd.clone();
            async move { cmd.query_async::<Option<Vec<u8>>>(&mut c).await }
        })
        .await
    }

    /// The async form of [`set`](Self::set).
    pub(crate) async fn set_async(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), Fault> {
        let cmd = set_cmd(key, value, ttl);
        self.run_async(move |mut c| {
            let cmd = cmd.clone();
            async move { cmd.query_async::<()>(&mut c).await }
        })
        .await
    }

    /// The async form of [`delete`](Self::delete).
    pub(crate) async fn delete_async(&self, key: &str) -> Result<(), Fault> {
        let cmd = redis::cmd("DEL").arg(key).clone();
        self.run_async(move |mut c| {
            let cmd = cmd.clone();
            async move { cmd.query_async::<()>(&mut c).await }
        })
        .await
    }

    /// Runs `cmd` on a pooled blocking connection, bounded by the timeout (socket timeouts).
    fn run_blocking<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Fault> {
        self.inner.breaker.admit()?;
        let r = self.inner.blocking_call(cmd);
        self.inner.breaker.record(r)
    }

    fn run_sync<T, F, Fut>(&self, op: F) -> Result<T, Fault>
    where
        T: Send + 'static,
        F: Fn(AsyncConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        self.run_sync_within(self.inner.timeout, op)
    }

    fn run_sync_within<T, F, Fut>(&self, timeout: Duration, op: F) -> Result<T, Fault>
    where
        T: Send + 'static,
        F: Fn(AsyncConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        self.inner.breaker.admit()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let inner = Arc::clone(&self.inner);
        self.handle.spawn(async move {
            let _ = tx.send(inner.call(timeout, op).await);
        });
        // The task answers within the timeout; the margin covers scheduling only.
        let r = rx
            .recv_timeout(timeout.saturating_add(Duration::from_millis(100)))
            .unwrap_or(Err(Fault::Timeout));
        self.inner.breaker.record(r)
    }

    async fn run_async<T, F, Fut>(&self, op: F) -> Result<T, Fault>
    where
        T: Send + 'static,
        F: Fn(AsyncConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        self.run_async_within(self.inner.timeout, op).await
    }

    async fn run_async_within<T, F, Fut>(&self, timeout: Duration, op: F) -> Result<T, Fault>
    where
        T: Send + 'static,
        F: Fn(AsyncConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        self.inner.breaker.admit()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = Arc::clone(&self.inner);
        self.handle.spawn(async move {
            let _ = tx.send(inner.call(timeout, op).await);
        });
        let r = rx.await.unwrap_or(Err(Fault::Error));
        self.inner.breaker.record(r)
    }
}

use std::future::Future;

fn lease_cmd(key: &str, token: &str, lease: Duration) -> redis::Cmd {
    let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
    redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(ms)
        .clone()
}

/// Compare-and-delete, atomically, in Redis.
fn release_cmd(key: &str, token: &str) -> redis::Cmd {
    redis::cmd("EVAL")
        .arg("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end")
        .arg(1)
        .arg(key)
        .arg(token)
        .clone()
}

/// Polls `key` until it has a value, `lease` is gone (its holder finished without writing, or
/// gave up), or `max` passes.
async fn poll_op(
    mut c: AsyncConn,
    key: String,
    lease: String,
    max: Duration,
    every: Duration,
) -> redis::RedisResult<Option<Vec<u8>>> {
    let start = tokio::time::Instant::now();
    loop {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut c).await?;
        if v.is_some() || start.elapsed() >= max {
            return Ok(v);
        }
        let held: bool = redis::cmd("EXISTS").arg(&lease).query_async(&mut c).await?;
        if !held {
            // One last look: the holder may have written just before releasing.
            return redis::cmd("GET").arg(&key).query_async(&mut c).await;
        }
        tokio::time::sleep(every).await;
    }
}

fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        cmd.arg("PX").arg(ms);
    }
    cmd
}

impl Inner {
    fn blocking_call<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Fault> {
        match self.blocking_try(cmd, true) {
            // A pooled connection that broke (a restarted server): once more on a fresh one.
            Err(Fault::Error) => self.blocking_try(cmd, false),
            other => other,
        }
    }

    fn blocking_try<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        pooled: bool,
    ) -> Result<T, Fault> {
        let pooled = pooled
            .then(|| {
                self.blocking
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
            })
            .flatten();
        let mut con = match pooled {
            Some(c) => c,
            None => match &self.target {
                Target::Single(client) => {
                    let c = client
                        .get_connection_with_timeout(self.timeout)
                        .map_err(|_| Fault::Connect)?;
                    c.set_read_timeout(Some(self.timeout))
                        .map_err(|_| Fault::Connect)?;
                    c.set_write_timeout(Some(self.timeout))
                        .map_err(|_| Fault::Connect)?;
                    SyncConn::Single(c)
                }
                Target::Cluster { client, .. } => SyncConn::Cluster(Box::new(
                    client.get_connection().map_err(|_| Fault::Connect)?,
                )),
            },
        };
        match cmd.query::<T>(&mut con) {
            Ok(v) => {
                let mut pool = self.blocking.lock().unwrap_or_else(PoisonError::into_inner);
                if pool.len() < 16 {
                    pool.push(con);
                }
                Ok(v)
            }
            // The connection is dropped: it may be broken or mid-reply.
            Err(e) if e.is_timeout() => Err(Fault::Timeout),
            Err(e) if e.is_io_error() || e.is_connection_dropped() => Err(Fault::Error),
            Err(_) => Err(Fault::Reply),
        }
    }

    /// Listens for invalidations for as long as the backend lives; reconnects after faults.
    async fn listen(self: Arc<Self>) {
        use futures_util::StreamExt;
        loop {
            let subscriber = match &self.target {
                Target::Single(c) => c,
                Target::Cluster { nodes, .. } => &nodes[0],
            };
            if let Ok(mut pubsub) = subscriber.get_async_pubsub().await
                && pubsub.subscribe(CHANNEL).await.is_ok()
            {
                self.subscribed.store(true, Ordering::Release);
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    self.dispatch(msg.get_payload_bytes());
                }
                self.subscribed.store(false, Ordering::Release);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Hands one message to the caches it names, unless this backend sent it.
    fn dispatch(&self, msg: &[u8]) {
        let Some((id, rest)) = msg.split_first_chunk::<8>() else {
            return;
        };
        if u64::from_le_bytes(*id) == self.id {
            return;
        }
        let Some((len, rest)) = rest.split_first_chunk::<4>() else {
            return;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len + 1 {
            return;
        }
        let (namespace, rest) = rest.split_at(len);
        let key = match rest.split_first() {
            Some((1, key)) => Some(key),
            Some((0, _)) => None,
            _ => return,
        };
        let handlers: Vec<Arc<Handler>> = self
            .handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(ns, _)| ns.as_bytes() == namespace)
            .filter_map(|(_, h)| h.upgrade())
            .collect();
        for h in handlers {
            h(key);
        }
    }

    /// Runs `op` on a (re)connected connection, within the timeout. Runs on the backend runtime.
    async fn call<T, F, Fut>(&self, timeout: Duration, op: F) -> Result<T, Fault>
    where
        F: Fn(AsyncConn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            // A connection that broke (a restarted server) fails its next command: reconnect
            // and try once more, within the same timeout.
            match self.attempt(&op).await {
                Err(Fault::Error) => self.attempt(&op).await,
                other => other,
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                // A slow server: start afresh next time rather than queue behind it.
                *self.conn.lock().await = None;
                Err(Fault::Timeout)
            }
        }
    }

    /// One try of `op` on the current connection (made if there is none).
    async fn attempt<T, F, Fut>(&self, op: &F) -> Result<T, Fault>
    where
        F: Fn(AsyncConn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        {
            let conn = {
                let mut slot = self.conn.lock().await;
                if let Some(c) = slot.as_ref() {
                    c.clone()
                } else {
                    let c = match &self.target {
                        Target::Single(client) => AsyncConn::Single(
                            client
                                .get_multiplexed_async_connection()
                                .await
                                .map_err(|_| Fault::Connect)?,
                        ),
                        Target::Cluster { client, .. } => AsyncConn::Cluster(
                            client
                                .get_async_connection()
                                .await
                                .map_err(|_| Fault::Connect)?,
                        ),
                    };
                    *slot = Some(c.clone());
                    c
                }
            };
            match op(conn).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                        // Reconnect on the next try.
                        *self.conn.lock().await = None;
                        Err(Fault::Error)
                    } else {
                        Err(Fault::Reply)
                    }
                }
            }
        }
    }
}

impl crate::tier::Backend for RedisBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        RedisBackend::get(self, key)
    }
    fn get_async<'a>(
        &'a self,
        key: &'a str,
    ) -> crate::tier::BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        Box::pin(RedisBackend::get_async(self, key))
    }
    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Fault> {
        RedisBackend::set(self, key, value, ttl)
    }
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> crate::tier::BoxFuture<'a, Result<(), Fault>> {
        Box::pin(RedisBackend::set_async(self, key, value, ttl))
    }
    fn delete(&self, key: &str) -> Result<(), Fault> {
        RedisBackend::delete(self, key)
    }
    fn delete_async<'a>(&'a self, key: &'a str) -> crate::tier::BoxFuture<'a, Result<(), Fault>> {
        Box::pin(RedisBackend::delete_async(self, key))
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Fault> {
        self.delete_matching(&format!("{}*", glob_escape(prefix)))
    }
    fn try_lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Fault> {
        RedisBackend::try_lease(self, key, token, ttl)
    }
    fn try_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> crate::tier::BoxFuture<'a, Result<bool, Fault>> {
        Box::pin(RedisBackend::try_lease_async(self, key, token, ttl))
    }
    fn release_lease(&self, key: &str, token: &str) -> Result<(), Fault> {
        RedisBackend::release_lease(self, key, token)
    }
    fn release_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
    ) -> crate::tier::BoxFuture<'a, Result<(), Fault>> {
        Box::pin(RedisBackend::release_lease_async(self, key, token))
    }
    fn wait_for(
        &self,
        key: &str,
        lease_key: &str,
        max: Duration,
    ) -> Result<Option<Vec<u8>>, Fault> {
        self.poll_get(key, lease_key, max, POLL_EVERY)
    }
    fn wait_for_async<'a>(
        &'a self,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> crate::tier::BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        Box::pin(self.poll_get_async(key, lease_key, max, POLL_EVERY))
    }
    fn broadcasts(&self) -> bool {
        true
    }
    fn publish(&self, namespace: &str, key: Option<&[u8]>) {
        self.publish_invalidation(namespace, key);
    }
    fn subscribe(&self, namespace: &str, handler: std::sync::Weak<Handler>) {
        self.on_invalidation(namespace, handler);
    }
    fn health(&self) -> crate::tier::Health {
        crate::tier::Health {
            breaker_open: self.is_open(),
            listening: self.is_listening(),
        }
    }
}

/// How often a process waiting on another's lease looks for the value.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Escapes the glob characters of a `SCAN MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

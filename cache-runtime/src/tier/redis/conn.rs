//! The connections of a Redis backend: blocking ones, pooled, for sync callers' single
//! commands, and one multiplexed async connection for everything run on the backend's runtime.
//! Both reconnect once after a connection broke, and map redis-rs errors to [`Fault`]s.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::commands::Request;
use crate::tier::Fault;

/// Keepalive on the listener's connection: the first probe after 5 s of silence, then one a
/// second, and the connection is dropped after 3 unanswered ones (where the system lets the
/// interval and count be set), or after 8 s of unacknowledged data (Linux).
fn listener_tcp() -> redis::io::tcp::TcpSettings {
    use redis::io::tcp::socket2::TcpKeepalive;
    let keepalive = TcpKeepalive::new().with_time(Duration::from_secs(5));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let keepalive = keepalive
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    let settings = redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let settings = settings.set_user_timeout(Duration::from_secs(8));
    settings
}

/// Where a backend's Redis is.
pub(super) enum Target {
    Single(redis::Client),
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        /// The configured nodes, for `SUBSCRIBE` and per-node `SCAN`.
        nodes: Vec<redis::Client>,
    },
}

/// An async connection to either kind of target.
#[derive(Clone)]
pub(super) enum AsyncConn {
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

/// A backend's connections to its target.
pub(super) struct Connections {
    target: Target,
    /// The per-operation timeout.
    timeout: Duration,
    /// Blocking connections for sync callers (no hop to the runtime thread), reused.
    blocking: Mutex<Vec<SyncConn>>,
    /// A blocking connection is being made for the pool.
    refilling: AtomicBool,
    /// The async connection (made when first needed, dropped after a fault).
    conn: tokio::sync::Mutex<Option<AsyncConn>>,
}

impl Connections {
    /// Connections to `target`, none made yet.
    pub(super) fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            timeout,
            blocking: Mutex::new(Vec::new()),
            refilling: AtomicBool::new(false),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The per-operation timeout.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The node that `SUBSCRIBE`s to invalidations.
    pub(super) fn subscriber(&self) -> &redis::Client {
        match &self.target {
            Target::Single(c) => c,
            Target::Cluster { nodes, .. } => &nodes[0],
        }
    }

    /// A client for the listener's subscription, to the node that `SUBSCRIBE`s: its connection
    /// has TCP keepalive (and `TCP_USER_TIMEOUT` on Linux), so that a peer gone without a word
    /// is noticed by the kernel too, not only by the listener's heartbeat, and no Nagle delay.
    pub(super) fn listener_client(&self) -> redis::Client {
        let subscriber = self.subscriber();
        let info = subscriber
            .get_connection_info()
            .clone()
            .set_tcp_settings(listener_tcp());
        redis::Client::open(info).unwrap_or_else(|_| subscriber.clone())
    }

    /// A cluster's configured nodes (`None` for a single server).
    pub(super) fn cluster_nodes(&self) -> Option<&[redis::Client]> {
        match &self.target {
            Target::Single(_) => None,
            Target::Cluster { nodes, .. } => Some(nodes),
        }
    }

    /// Sends `cmd` on a pooled blocking connection, bounded by the timeout (socket timeouts);
    /// `None` when no pooled connection is at hand (or the one taken was broken): the caller
    /// then runs it on the backend's runtime, and [`refill`](Self::refill) makes one off its
    /// path. A caller never waits on a connection attempt of its own.
    pub(super) fn pooled_call<T: redis::FromRedisValue>(
        &self,
        request: &Request,
    ) -> Option<Result<T, Fault>> {
        let mut con = self
            .blocking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()?;
        let reply = match request {
            Request::Cmd(cmd) => cmd.query::<T>(&mut con),
            Request::Pipe(pipe) => pipe.query::<T>(&mut con),
        };
        match reply {
            Ok(v) => {
                self.put_back(con);
                Some(Ok(v))
            }
            // The connection is dropped: it may be broken or mid-reply.
            Err(e) if e.is_timeout() => Some(Err(Fault::Timeout)),
            // A pooled connection that broke (a restarted server): the runtime's connection
            // (reconnected within the bound) answers instead.
            Err(e) if e.is_io_error() || e.is_connection_dropped() => None,
            Err(_) => Some(Err(Fault::Reply)),
        }
    }

    /// Drops every connection made so far (the pooled blocking ones and the async one): the
    /// next operations connect afresh. For when the listener found its subscription deaf, as
    /// after a failover behind a stable address: the other connections made to the old server
    /// would time out, one operation each, before being replaced.
    pub(super) async fn reset(&self) {
        self.blocking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        *self.conn.lock().await = None;
    }

    /// Returns a blocking connection to the pool (at most 16 are kept).
    fn put_back(&self, con: SyncConn) {
        let mut pool = self.blocking.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < 16 {
            pool.push(con);
        }
    }

    /// Makes one blocking connection for the pool, on a blocking thread of `runtime`, unless
    /// one is being made already (connecting, with its handshake, may take several round trips:
    /// never on a caller's path).
    pub(super) fn refill(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let conns = Arc::clone(self);
        drop(runtime.spawn_blocking(move || {
            if let Ok(con) = conns.connect_blocking() {
                conns.put_back(con);
            }
            conns.refilling.store(false, Ordering::Release);
        }));
    }

    /// A new blocking connection, with the per-operation timeout on its socket.
    fn connect_blocking(&self) -> Result<SyncConn, Fault> {
        Ok(match &self.target {
            Target::Single(client) => {
                let c = client
                    .get_connection_with_timeout(self.timeout)
                    .map_err(|_| Fault::Connect)?;
                c.set_read_timeout(Some(self.timeout))
                    .and_then(|()| c.set_write_timeout(Some(self.timeout)))
                    .map_err(|_| Fault::Connect)?;
                SyncConn::Single(c)
            }
            Target::Cluster { client, .. } => SyncConn::Cluster(Box::new(
                client.get_connection().map_err(|_| Fault::Connect)?,
            )),
        })
    }

    /// Runs `op` on a (re)connected async connection, within `timeout`. Runs on the backend's
    /// runtime.
    pub(super) async fn call<T, F, Fut>(&self, timeout: Duration, op: F) -> Result<T, Fault>
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

//! The settings of a Redis backend, and their installation.

use std::sync::Arc;
use std::time::Duration;

use super::{ConfigError, Installed, Spec};
use crate::RedisBackend;

/// Settings of a Redis backend: start with [`Redis::url`].
///
/// ```
/// use cache_runtime::config::{Redis, RedisSpec};
/// use std::time::Duration;
///
/// let url = "redis://127.0.0.1:6379/";
/// let spec: RedisSpec = Redis::url(url).prefix("shop").timeout(Duration::from_millis(20));
/// // The defaults: prefix `cache`, 50 ms per operation, 5 s in each process's memory, and the
/// // listener's heartbeat: a probe every second, deaf after three.
/// let defaults = Redis::url(url).prefix("cache").timeout(Duration::from_millis(50));
/// let defaults = defaults.heartbeat(Duration::from_secs(1), Duration::from_secs(3));
/// assert_eq!(Redis::url(url), defaults.l1_ttl(Duration::from_secs(5)));
/// assert_ne!(spec, Redis::url(url));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RedisSpec {
    pub(super) url: String,
    prefix: String,
    timeout: Duration,
    l1_ttl: Duration,
    heartbeat_every: Duration,
    deaf_after: Duration,
}

/// Builds [`RedisSpec`]s.
///
/// ```
/// use cache_runtime::config::{self, Redis};
///
/// config::configure()
///     .backend("shared", Redis::url("redis://127.0.0.1:6379/").prefix("shop"))
///     .install()?;
/// // Nothing is connected until a `#[cached(backend = "shared")]` function is first called.
/// # Ok::<(), config::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct Redis;

impl Redis {
    /// Redis at `url` (`redis://host:port/db`), key prefix `cache`, 50 ms per operation, 5 s in
    /// each process's L1. Several comma-separated URLs name the nodes of a Redis Cluster.
    ///
    /// ```
    /// use cache_runtime::config::{self, Redis};
    ///
    /// // A single server, or the nodes of a Redis Cluster.
    /// let single = Redis::url("redis://127.0.0.1:6379/0");
    /// let cluster = Redis::url("redis://127.0.0.1:7000/,redis://127.0.0.1:7001/");
    /// config::configure()
    ///     .backend("sessions", single)
    ///     .backend("catalog", cluster)
    ///     .install()?;
    /// # Ok::<(), config::ConfigError>(())
    /// ```
    #[must_use]
    pub fn url(url: impl Into<String>) -> RedisSpec {
        RedisSpec {
            url: url.into(),
            prefix: "cache".into(),
            timeout: Duration::from_millis(50),
            l1_ttl: Duration::from_secs(5),
            heartbeat_every: Duration::from_secs(1),
            deaf_after: Duration::from_secs(3),
        }
    }
}

impl RedisSpec {
    /// The first part of every key: `<prefix>:<cache name>:<key hash>`.
    ///
    /// ```
    /// use cache_runtime::config::Redis;
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// let shop = Redis::url(url).prefix("shop"); // keys `shop:<cache name>:<key hash>`
    /// assert_ne!(shop, Redis::url(url));
    /// // The default:
    /// assert_eq!(Redis::url(url).prefix("cache"), Redis::url(url));
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound of each Redis operation (default 50 ms); past it the call goes on uncached.
    ///
    /// ```
    /// use cache_runtime::config::Redis;
    /// use std::time::Duration;
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// let near = Redis::url(url).timeout(Duration::from_millis(10)); // Redis in the same rack
    /// assert_ne!(near, Redis::url(url));
    /// // The default:
    /// assert_eq!(Redis::url(url).timeout(Duration::from_millis(50)), Redis::url(url));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long an entry stays in each process's memory before Redis is asked again (default
    /// 5 s): the longest that other processes' writes and invalidations go unseen while the
    /// invalidation listener is down (while it is up, they are seen at once, or, if its
    /// subscription goes deaf, within the [`heartbeat`](Self::heartbeat)'s deaf-after time).
    ///
    /// ```
    /// use cache_runtime::config::Redis;
    /// use std::time::Duration;
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// // Other processes' updates are seen within 0.5 s:
    /// let fresher = Redis::url(url).l1_ttl(Duration::from_millis(500));
    /// assert_ne!(fresher, Redis::url(url));
    /// // The default:
    /// assert_eq!(Redis::url(url).l1_ttl(Duration::from_secs(5)), Redis::url(url));
    /// ```
    #[must_use]
    pub fn l1_ttl(mut self, l1_ttl: Duration) -> Self {
        self.l1_ttl = l1_ttl;
        self
    }

    /// How the invalidation listener checks that its subscription delivers (default: a probe
    /// every second, deaf after three seconds without hearing one back): while the listener is
    /// up, other processes' writes are seen within about `deaf_after`, even after a failover
    /// that leaves its old connection open and silent. See
    /// [`RedisBackend::with_heartbeat`](crate::RedisBackend::with_heartbeat).
    ///
    /// ```
    /// use cache_runtime::config::{self, ConfigError, Redis};
    /// use std::time::Duration;
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// let quick = Redis::url(url).heartbeat(Duration::from_millis(250), Duration::from_secs(1));
    /// assert_ne!(quick, Redis::url(url));
    /// // A zero interval, or a deaf-after time within one interval, is refused at installation:
    /// let bad = Redis::url(url).heartbeat(Duration::from_secs(1), Duration::from_millis(500));
    /// let refused = config::configure().backend("shared", bad).install();
    /// assert!(matches!(refused, Err(ConfigError::Invalid { .. })));
    /// ```
    #[must_use]
    pub fn heartbeat(mut self, every: Duration, deaf_after: Duration) -> Self {
        self.heartbeat_every = every;
        self.deaf_after = deaf_after;
        self
    }
}

impl From<RedisSpec> for Spec {
    fn from(r: RedisSpec) -> Self {
        Spec::Redis(r)
    }
}

impl RedisSpec {
    /// Creates and checks the backend named `name`.
    pub(super) fn install(self, name: &str) -> Result<Installed, ConfigError> {
        // Several comma-separated URLs: the nodes of a Redis Cluster.
        let urls: Vec<&str> = self.url.split(',').map(str::trim).collect();
        let backend = if urls.len() > 1 {
            RedisBackend::cluster(&urls, self.timeout)
        } else {
            RedisBackend::new(&self.url, self.timeout)
        };
        let invalid = |e: crate::BackendError| ConfigError::Invalid {
            name: name.to_owned(),
            why: e.to_string(),
        };
        let backend = backend
            .and_then(|b| b.with_heartbeat(self.heartbeat_every, self.deaf_after))
            .map_err(invalid)?;
        // What only the server can refuse (a database it does not have) is refused now; a
        // server that is down now is used once it answers (fail open).
        if !backend.check().map_err(invalid)? {
            super::unreachable_now(name);
        }
        Ok(Installed::Remote {
            backend: Arc::new(backend),
            prefix: self.prefix,
            l1_ttl: self.l1_ttl,
        })
    }
}

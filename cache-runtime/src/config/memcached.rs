//! The settings of a memcached backend, and their installation.

use std::sync::Arc;
use std::time::Duration;

use super::{ConfigError, Installed, Spec};
use crate::MemcachedBackend;

/// How long an entry stays in each process's memory by default when memcached cannot tell the
/// other processes of a write (no invalidation channel): short, since it is how long another
/// process may serve a value that was changed or invalidated.
pub const L1_TTL_ALONE: Duration = Duration::from_secs(1);
/// The default with an invalidation channel (which evicts other processes' copies at once):
/// as for Redis.
pub const L1_TTL_WITH_CHANNEL: Duration = Duration::from_secs(5);

/// Settings of a memcached backend: start with [`Memcached::url`].
///
/// ```
/// use cache_runtime::config::{Memcached, MemcachedSpec};
/// use std::time::Duration;
///
/// let url = "memcached://127.0.0.1:11211";
/// let spec: MemcachedSpec = Memcached::url(url).prefix("shop").timeout(Duration::from_millis(20));
/// // The defaults: prefix `cache`, 50 ms per operation (and 1 s in each process's memory, or
/// // 5 s with an invalidation channel).
/// let defaults = Memcached::url(url).prefix("cache").timeout(Duration::from_millis(50));
/// assert_eq!(Memcached::url(url), defaults);
/// assert_ne!(spec, Memcached::url(url));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MemcachedSpec {
    urls: String,
    prefix: String,
    timeout: Duration,
    l1_ttl: Option<Duration>,
    invalidations: Option<String>,
}

/// Builds [`MemcachedSpec`]s.
///
/// ```no_run
/// use cache_runtime::config::{self, Memcached};
///
/// config::configure()
///     .backend("shared", Memcached::url("memcached://127.0.0.1:11211").prefix("shop"))
///     .install()?; // asks the server its version, within the timeout
/// # Ok::<(), config::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct Memcached;

impl Memcached {
    /// memcached at `urls` (`memcached://host[:port]`, port 11211 by default; several servers
    /// separated by commas, over which keys are spread by a ketama-compatible ring), key prefix
    /// `cache`, 50 ms per operation, 1 s in each process's L1 ([`L1_TTL_ALONE`]: memcached cannot
    /// broadcast invalidations).
    ///
    /// ```
    /// use cache_runtime::config::{self, ConfigError, Memcached};
    ///
    /// let one = Memcached::url("memcached://127.0.0.1:11211");
    /// let three = Memcached::url("memcached://127.0.0.1:11211,memcached://127.0.0.1:11212");
    /// assert_ne!(one, three);
    /// // A malformed URL is an error of `install` (which connects to nothing then):
    /// let bad = config::configure().backend("m", Memcached::url("memcache://127.0.0.1")).install();
    /// assert!(matches!(bad, Err(ConfigError::Invalid { .. })));
    /// ```
    #[must_use]
    pub fn url(urls: impl Into<String>) -> MemcachedSpec {
        MemcachedSpec {
            urls: urls.into(),
            prefix: "cache".into(),
            timeout: Duration::from_millis(50),
            l1_ttl: None,
            invalidations: None,
        }
    }
}

impl MemcachedSpec {
    /// The first part of every key: `<prefix>:<cache name>:...`.
    ///
    /// ```
    /// use cache_runtime::config::Memcached;
    ///
    /// let url = "memcached://127.0.0.1";
    /// assert_eq!(Memcached::url(url).prefix("cache"), Memcached::url(url));
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound of each memcached operation (default 50 ms); past it the call goes on uncached.
    ///
    /// ```
    /// use cache_runtime::config::Memcached;
    /// use std::time::Duration;
    ///
    /// let url = "memcached://127.0.0.1";
    /// assert_eq!(Memcached::url(url).timeout(Duration::from_millis(50)), Memcached::url(url));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long an entry stays in each process's memory before memcached is asked again: the
    /// longest that another process's write or invalidation goes unseen here (default
    /// [`L1_TTL_ALONE`], or [`L1_TTL_WITH_CHANNEL`] with an invalidation channel).
    ///
    /// ```
    /// use cache_runtime::config::Memcached;
    /// use std::time::Duration;
    ///
    /// let url = "memcached://127.0.0.1";
    /// assert_ne!(Memcached::url(url).l1_ttl(Duration::from_millis(200)), Memcached::url(url));
    /// ```
    #[must_use]
    pub fn l1_ttl(mut self, l1_ttl: Duration) -> Self {
        self.l1_ttl = Some(l1_ttl);
        self
    }

    /// Carries invalidations through the pub/sub channel of the Redis at `redis_url`
    /// (`redis://...`; the data stays in memcached): a write or invalidation in one process then
    /// evicts the other processes' L1 copies at once. Needs the `redis` feature too.
    ///
    /// ```
    /// use cache_runtime::config::{self, ConfigError, Memcached};
    ///
    /// let spec = Memcached::url("memcached://127.0.0.1:1").invalidations("redis://127.0.0.1:1/");
    /// // Without the `redis` feature, `install` refuses it; with it, the servers (here: nothing
    /// // listens on port 1) are warned about and the caches fail open.
    /// let installed = config::configure().backend("m", spec).install();
    /// assert!(installed.is_ok() || matches!(installed, Err(ConfigError::Invalid { .. })));
    /// ```
    #[must_use]
    pub fn invalidations(mut self, redis_url: impl Into<String>) -> Self {
        self.invalidations = Some(redis_url.into());
        self
    }

    /// Creates and checks the backend named `name`.
    pub(super) fn install(self, name: &str) -> Result<Installed, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid {
            name: name.to_owned(),
            why,
        };
        let urls: Vec<&str> = self.urls.split(',').map(str::trim).collect();
        let mut backend =
            MemcachedBackend::new(&urls, self.timeout).map_err(|e| invalid(e.to_string()))?;
        // A server that is not memcached (or too old) is refused now; one that is down now is
        // used once it answers (fail open).
        if !backend.check().map_err(|e| invalid(e.to_string()))? {
            super::unreachable_now(name);
        }
        if let Some(url) = &self.invalidations {
            backend = backend.with_invalidations(channel(name, url, self.timeout)?);
        }
        let l1_ttl = self.l1_ttl.unwrap_or(if self.invalidations.is_some() {
            L1_TTL_WITH_CHANNEL
        } else {
            L1_TTL_ALONE
        });
        Ok(Installed::Remote {
            backend: Arc::new(backend),
            prefix: self.prefix,
            l1_ttl,
        })
    }
}

/// The Redis backend whose pub/sub channel carries a memcached backend's invalidations.
#[cfg(feature = "redis")]
fn channel(
    name: &str,
    url: &str,
    timeout: Duration,
) -> Result<Arc<dyn crate::tier::Backend>, ConfigError> {
    let invalid = |e: crate::BackendError| ConfigError::Invalid {
        name: name.to_owned(),
        why: format!("invalidation channel: {e}"),
    };
    let redis = crate::RedisBackend::new(url, timeout).map_err(invalid)?;
    if !redis.check().map_err(invalid)? {
        super::unreachable_now(name);
    }
    Ok(Arc::new(redis))
}

/// Without the `redis` feature, there is no channel to carry invalidations.
#[cfg(not(feature = "redis"))]
fn channel(
    name: &str,
    _url: &str,
    _timeout: Duration,
) -> Result<Arc<dyn crate::tier::Backend>, ConfigError> {
    Err(ConfigError::Invalid {
        name: name.to_owned(),
        why: "an invalidation channel on Redis needs the `redis` feature of cache-runtime".into(),
    })
}

impl From<MemcachedSpec> for Spec {
    fn from(m: MemcachedSpec) -> Self {
        Spec::Memcached(m)
    }
}

//! Startup configuration: named backends, installed once at the start of `main`.
//!
//! ```no_run
//! use cache_runtime::config::{self, Redis};
//! use std::time::Duration;
//!
//! config::configure()
//!     .backend("shared", Redis::url("redis://127.0.0.1/").prefix("myapp").l1_ttl(Duration::from_secs(2)))
//!     .install()
//!     .expect("valid cache configuration");
//! // #[cached(backend = "shared", ...)] functions now share results through Redis.
//! ```
//!
//! With no configuration at all, every cache is in-memory: the quickstart needs no set-up.
//! Installing twice is an error. A `#[cached(backend = "...")]` function whose backend was never
//! configured is found by [`verify`] (call it after [`Configure::install`]: every such function
//! of the program registers its backend's name at link time); if it runs anyway, its first call
//! says so once (standard error and a `tracing` error) and it caches in this process only.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::RedisBackend;

/// A backend's settings.
///
/// ```
/// use cache_runtime::config::{Redis, Spec};
///
/// let spec: Spec = Redis::url("redis://127.0.0.1:6379/").into();
/// assert!(matches!(spec, Spec::Redis(_)));
/// assert_ne!(spec, Spec::Memory);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Spec {
    /// This process's memory only (what every cache uses without configuration).
    Memory,
    /// Redis, as a second tier behind each process's memory.
    Redis(RedisSpec),
}

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
    url: String,
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

/// Why a configuration was refused.
///
/// ```
/// use cache_runtime::config::{self, ConfigError, Spec};
///
/// let twice = config::configure()
///     .backend("local", Spec::Memory)
///     .backend("local", Spec::Memory)
///     .install();
/// assert_eq!(twice, Err(ConfigError::Duplicate("local".to_string())));
/// assert_eq!(twice.unwrap_err().to_string(), "backend `local` is configured twice");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`Configure::install`] was already called in this process.
    AlreadyInstalled,
    /// Two backends have this name.
    Duplicate(String),
    /// A backend's settings are invalid (a malformed URL, say).
    Invalid {
        /// The backend's name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The environment variable is malformed.
    Env(String),
    /// Functions name backends that are not configured: `(function, backend)` pairs.
    Missing(Vec<(String, String)>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyInstalled => f.write_str("the cache configuration is already installed"),
            Self::Duplicate(n) => write!(f, "backend `{n}` is configured twice"),
            Self::Invalid { name, why } => write!(f, "backend `{name}`: {why}"),
            Self::Env(why) => write!(f, "{ENV_VAR}: {why}"),
            Self::Missing(uses) => {
                f.write_str("cache backends not configured:")?;
                for (function, backend) in uses {
                    write!(f, " `{function}` uses `{backend}`;")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The environment variable read by [`Configure::from_env`]: `name=url` pairs separated by
/// `;`, where the url is `memory` or `redis://...`, e.g.
/// `CACHE_RUNTIME_BACKENDS="shared=redis://127.0.0.1:6379/;local=memory"`.
///
/// ```
/// use cache_runtime::config::{self, ENV_VAR};
///
/// assert_eq!(ENV_VAR, "CACHE_RUNTIME_BACKENDS");
/// // What it may hold, as `from_spec_list` reads it:
/// config::configure()
///     .from_spec_list("shared=redis://127.0.0.1:6379/;local=memory")
///     .install()?;
/// # Ok::<(), config::ConfigError>(())
/// ```
pub const ENV_VAR: &str = "CACHE_RUNTIME_BACKENDS";

/// A configuration being built: see [`configure`].
///
/// ```
/// use cache_runtime::config::{self, ConfigError, Configure};
///
/// // Mistakes are collected, and reported by `install` (which then installs nothing).
/// let config: Configure = config::configure().from_spec_list("shared=postgres://db/");
/// assert!(matches!(config.install(), Err(ConfigError::Env(_))));
/// ```
#[derive(Debug, Default)]
#[must_use = "a configuration does nothing until installed"]
pub struct Configure {
    backends: Vec<(String, Spec)>,
    errors: Vec<ConfigError>,
}

/// Starts a configuration.
///
/// ```
/// use cache_runtime::config::{self, ConfigError, Spec};
///
/// // At the start of `main`:
/// config::configure().backend("local", Spec::Memory).install()?;
/// assert_eq!(config::configure().install(), Err(ConfigError::AlreadyInstalled));
/// # Ok::<(), ConfigError>(())
/// ```
pub fn configure() -> Configure {
    Configure::default()
}

impl Configure {
    /// Adds a backend under `name`, for `#[cached(backend = "name")]`.
    ///
    /// ```
    /// use cache_runtime::config::{self, ConfigError, Redis, Spec};
    ///
    /// let config = config::configure()
    ///     .backend("shared", Redis::url("redis://127.0.0.1:6379/"))
    ///     .backend("local", Spec::Memory)
    ///     .backend("local", Spec::Memory); // a name can be configured once
    /// assert_eq!(config.install(), Err(ConfigError::Duplicate("local".to_string())));
    /// // An empty name, which no function can use, is refused too:
    /// let unnamed = config::configure().backend("", Spec::Memory).install();
    /// assert!(matches!(unnamed, Err(ConfigError::Invalid { .. })));
    /// ```
    pub fn backend(mut self, name: impl Into<String>, spec: impl Into<Spec>) -> Self {
        let name = name.into();
        if name.trim().is_empty() {
            self.errors.push(ConfigError::Invalid {
                name,
                why: "a backend needs a name (`#[cached(backend = \"...\")]` names it)".into(),
            });
        } else if self.backends.iter().any(|(n, _)| *n == name) {
            self.errors.push(ConfigError::Duplicate(name));
        } else {
            self.backends.push((name, spec.into()));
        }
        self
    }

    /// Adds the backends named in [`ENV_VAR`] (nothing if it is unset).
    ///
    /// ```
    /// use cache_runtime::config::{self, Spec};
    ///
    /// // The deployment may set CACHE_RUNTIME_BACKENDS="shared=redis://10.0.0.5:6379/".
    /// config::configure()
    ///     .backend("local", Spec::Memory)
    ///     .from_env() // adds nothing when it is unset
    ///     .install()?;
    /// # Ok::<(), config::ConfigError>(())
    /// ```
    pub fn from_env(self) -> Self {
        match std::env::var(ENV_VAR) {
            Ok(v) => self.from_spec_list(&v),
            Err(_) => self,
        }
    }

    /// Adds backends from a `name=url;name=url` list, as [`ENV_VAR`] holds.
    ///
    /// ```
    /// use cache_runtime::config::{self, ConfigError};
    ///
    /// let bad = config::configure().from_spec_list("shared=postgres://db/").install();
    /// assert!(matches!(bad, Err(ConfigError::Env(_)))); // neither `memory` nor `redis://`
    /// config::configure()
    ///     .from_spec_list("shared=redis://127.0.0.1:6379/; local=memory")
    ///     .install()?;
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn from_spec_list(mut self, list: &str) -> Self {
        for part in list.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, url)) = part.split_once('=') else {
                self.errors
                    .push(ConfigError::Env(format!("`{part}` is not `name=url`")));
                continue;
            };
            let (name, url) = (name.trim(), url.trim());
            let spec = if url == "memory" {
                Spec::Memory
            } else if url.starts_with("redis://") || url.starts_with("rediss://") {
                Spec::Redis(Redis::url(url))
            } else {
                self.errors.push(ConfigError::Env(format!(
                    "backend `{name}`: `{url}` is neither `memory` nor a `redis://` URL"
                )));
                continue;
            };
            self = self.backend(name, spec);
        }
        self
    }

    /// Installs the configuration for the whole process.
    ///
    /// ```
    /// use cache_runtime::config::{self, ConfigError, Redis};
    ///
    /// config::configure()
    ///     .backend("shared", Redis::url("redis://127.0.0.1:6379/"))
    ///     .install()?; // connects nothing yet
    /// // Once per process:
    /// assert_eq!(config::configure().install(), Err(ConfigError::AlreadyInstalled));
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError`] for a second installation, a duplicate name, an invalid backend or a
    /// malformed environment variable; nothing is installed then.
    pub fn install(self) -> Result<(), ConfigError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        if crate::registry::backends_installed() {
            return Err(ConfigError::AlreadyInstalled);
        }
        let mut installed = BTreeMap::new();
        for (name, spec) in self.backends {
            let backend = match spec {
                Spec::Memory => Installed::Memory,
                Spec::Redis(r) => {
                    // Several comma-separated URLs: the nodes of a Redis Cluster.
                    let urls: Vec<&str> = r.url.split(',').map(str::trim).collect();
                    let backend = if urls.len() > 1 {
                        RedisBackend::cluster(&urls, r.timeout)
                    } else {
                        RedisBackend::new(&r.url, r.timeout)
                    };
                    let invalid = |e: crate::BackendError| ConfigError::Invalid {
                        name: name.clone(),
                        why: e.to_string(),
                    };
                    let backend = backend
                        .and_then(|b| b.with_heartbeat(r.heartbeat_every, r.deaf_after))
                        .map_err(invalid)?;
                    // What only the server can refuse (a database it does not have) is refused
                    // now; a server that is down now is used once it answers (fail open).
                    if !backend.check().map_err(invalid)? {
                        eprintln!(
                            "cache-runtime: backend `{name}` cannot be reached now; caching in \
                             each process's memory until it answers"
                        );
                    }
                    Installed::Remote {
                        backend: Arc::new(backend),
                        prefix: r.prefix,
                        l1_ttl: r.l1_ttl,
                    }
                }
            };
            installed.insert(name, backend);
        }
        if crate::registry::install_backends(installed) {
            Ok(())
        } else {
            Err(ConfigError::AlreadyInstalled)
        }
    }
}

/// An installed backend.
pub(crate) enum Installed {
    Memory,
    Remote {
        backend: Arc<dyn crate::tier::Backend>,
        prefix: String,
        l1_ttl: Duration,
    },
}

/// Checks that every `#[cached(backend = "...")]` function of the program names a backend that
/// is installed: call it at startup, after [`Configure::install`] (with no configuration, every
/// named backend is missing). The functions register their backend's name at link time, so the
/// check covers functions that were never called.
///
/// ```
/// use cache_runtime::{cached, config::{self, ConfigError, Spec}};
///
/// #[cached(backend = "reports")]
/// fn report(year: u32) -> String {
///     format!("report {year}")
/// }
///
/// config::configure().backend("users", Spec::Memory).install()?;
/// match config::verify() {
///     Err(ConfigError::Missing(uses)) => {
///         assert!(uses.iter().any(|(f, b)| f.ends_with("report") && b == "reports"));
///     }
///     other => panic!("{other:?}"),
/// }
/// // Run anyway, it caches in this process's memory only (and says so once).
/// assert_eq!(report(2024), "report 2024");
/// # Ok::<(), ConfigError>(())
/// ```
///
/// # Errors
/// [`ConfigError::Missing`] with every `(function, backend)` pair whose backend is not installed.
pub fn verify() -> Result<(), ConfigError> {
    let mut missing: Vec<(String, String)> = inventory::iter::<crate::__private::BackendUse>
        .into_iter()
        .filter(|u| !crate::registry::backend_installed(u.backend))
        .map(|u| (u.function.to_owned(), u.backend.to_owned()))
        .collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Missing(missing))
    }
}

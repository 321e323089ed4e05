//! Startup configuration: named backends, installed once at the start of `main`.
//!
//! ```no_run
//! use cache_runtime::config;
//! use std::time::Duration;
//!
//! let mut setup = config::configure();
//! #[cfg(feature = "redis")]
//! {
//!     use cache_runtime::config::Redis;
//!     let redis = Redis::url("redis://127.0.0.1/").prefix("myapp");
//!     setup = setup.backend("shared", redis.l1_ttl(Duration::from_secs(2)));
//! }
//! #[cfg(feature = "memcached")]
//! {
//!     use cache_runtime::config::Memcached;
//!     setup = setup.backend("sessions", Memcached::url("memcached://127.0.0.1:11211").prefix("myapp"));
//! }
//! setup.install().expect("valid cache configuration");
//! // #[cached(backend = "shared", ...)] functions now share results through Redis, and
//! // #[cached(backend = "sessions", ...)] ones through memcached.
//! ```
//!
//! With no configuration at all, every cache is in-memory: the quickstart needs no set-up.
//! Installing twice is an error. A `#[cached(backend = "...")]` function whose backend was never
//! configured is found by [`verify`] (call it after [`Configure::install`]: every such function
//! of the program registers its backend's name at link time); if it runs anyway, its first call
//! says so once (standard error and a `tracing` error) and it caches in this process only.
//!
//! A backend whose URL is malformed, or whose server refuses what it was given (a Redis database
//! it lacks, a server that is not memcached), is an error of [`Configure::install`]; a server
//! that cannot be reached now is a warning, and the caches fail open (in each process's memory)
//! until it answers. Either way `install` returns within a few operation timeouts.

#[cfg(feature = "memcached")]
mod memcached;
#[cfg(feature = "redis")]
mod redis;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "memcached")]
pub use self::memcached::{L1_TTL_ALONE, L1_TTL_WITH_CHANNEL, Memcached, MemcachedSpec};
#[cfg(feature = "redis")]
pub use self::redis::{Redis, RedisSpec};

/// A backend's settings.
///
/// ```
/// use cache_runtime::config::Spec;
///
/// assert_eq!(Spec::Memory, Spec::Memory);
/// # #[cfg(feature = "redis")] {
/// use cache_runtime::config::Redis;
/// let spec: Spec = Redis::url("redis://127.0.0.1:6379/").into();
/// assert!(matches!(spec, Spec::Redis(_)));
/// assert_ne!(spec, Spec::Memory);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Spec {
    /// This process's memory only (what every cache uses without configuration).
    Memory,
    /// Redis, as a second tier behind each process's memory.
    #[cfg(feature = "redis")]
    Redis(RedisSpec),
    /// memcached (one or several servers), as a second tier behind each process's memory.
    #[cfg(feature = "memcached")]
    Memcached(MemcachedSpec),
}

/// Says that the backend `name` cannot be reached now (a warning: it fails open).
fn unreachable_now(name: &str) {
    eprintln!(
        "cache-runtime: backend `{name}` cannot be reached now; caching in each process's \
         memory until it answers"
    );
    #[cfg(feature = "tracing")]
    tracing::warn!(backend = %name, "cache backend cannot be reached now; failing open");
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
/// `;`, where the url is `memory`, `redis://...` or `memcached://...` (several servers separated
/// by commas), e.g. `CACHE_RUNTIME_BACKENDS="shared=redis://127.0.0.1:6379/;local=memory"`.
///
/// ```
/// use cache_runtime::config::{self, ENV_VAR};
///
/// assert_eq!(ENV_VAR, "CACHE_RUNTIME_BACKENDS");
/// // What it may hold, as `from_spec_list` reads it (here, memory backends only):
/// config::configure()
///     .from_spec_list("local=memory;other=memory")
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

/// Sets the process-wide namespace of every remote key (a release id, say): every L2 key of
/// the caches built afterwards starts with `<namespace>/`, so that a deploy can start with a
/// clean namespace without flushing the servers, and rolling back finds its own entries again.
/// Call it at the start of `main`, before the first cached call. Tags and dependencies live in
/// the namespace too.
///
/// ```
/// use cache_runtime::{Cache, config, tier::MemoryBackend};
/// use std::sync::Arc;
///
/// let backend = Arc::new(MemoryBackend::new());
/// let build = |name: &str| -> Result<Cache<u64, String>, cache_runtime::BuildError> {
///     Cache::builder().name(name).remote(backend.clone(), "app").build()
/// };
/// config::namespace("release-41");
/// let old = build("users-ns-doc")?;
/// old.insert(1, "ada".to_string());
/// config::namespace("release-42");
/// let new = build("users-ns-doc")?;
/// // The new release does not see the old one's entries.
/// assert_eq!(new.get_or_insert_with(&1, || "grace".to_string()), "grace");
/// # config::namespace("");
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub fn namespace(namespace: &str) {
    crate::invalidate::version::set_namespace(namespace);
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
    /// use cache_runtime::config::{self, ConfigError, Spec};
    ///
    /// let config = config::configure()
    ///     .backend("shared", Spec::Memory) // or `Redis::url(...)`, `Memcached::url(...)`
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
    /// assert!(matches!(bad, Err(ConfigError::Env(_)))); // not `memory`, `redis://`, `memcached://`
    /// config::configure()
    ///     .from_spec_list("local=memory; other=memory")
    ///     .install()?;
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// With both backends built in:
    ///
    /// ```no_run
    /// # use cache_runtime::config::{self, ConfigError};
    /// config::configure()
    ///     .from_spec_list("shared=redis://127.0.0.1:6379/; sessions=memcached://127.0.0.1:11211")
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
            match spec_of(url) {
                Ok(spec) => self = self.backend(name, spec),
                Err(why) => self
                    .errors
                    .push(ConfigError::Env(format!("backend `{name}`: `{url}` {why}"))),
            }
        }
        self
    }

    /// Installs the configuration for the whole process.
    ///
    /// ```
    /// use cache_runtime::config::{self, ConfigError, Spec};
    ///
    /// config::configure()
    ///     .backend("local", Spec::Memory)
    ///     .install()?; // a remote backend is checked now: one connection, bounded in time
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
                #[cfg(feature = "redis")]
                Spec::Redis(r) => r.install(&name)?,
                #[cfg(feature = "memcached")]
                Spec::Memcached(m) => m.install(&name)?,
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

/// The backend that `url` names in a spec list (or why none).
fn spec_of(url: &str) -> Result<Spec, &'static str> {
    let redis = url.starts_with("redis://") || url.starts_with("rediss://");
    let memcached = url.starts_with("memcached://");
    if url == "memory" {
        return Ok(Spec::Memory);
    }
    #[cfg(feature = "redis")]
    if redis {
        return Ok(Spec::Redis(Redis::url(url)));
    }
    #[cfg(feature = "memcached")]
    if memcached {
        return Ok(Spec::Memcached(Memcached::url(url)));
    }
    Err(if redis {
        "needs the `redis` feature of cache-runtime"
    } else if memcached {
        "needs the `memcached` feature of cache-runtime"
    } else {
        "is neither `memory` nor a `redis://` or `memcached://` URL"
    })
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

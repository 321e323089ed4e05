//! The process-wide registry of caches, for statistics and metrics export.
//!
//! Every cache registers itself when built. The registry holds weak references, so a dropped cache
//! disappears from it; dead entries are pruned whenever a cache registers, which keeps the list as
//! long as the number of live caches.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::{Cache, CacheStats};

/// What the registry needs of a cache: its name and statistics.
pub(crate) trait Report: Send + Sync {
    fn name(&self) -> &str;
    fn stats(&self) -> CacheStats;
}

struct Registered {
    report: Weak<dyn Report>,
    any: Weak<dyn Any + Send + Sync>,
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

pub(crate) fn register(report: Weak<dyn Report>, any: Weak<dyn Any + Send + Sync>) {
    let mut all = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|r| r.report.strong_count() > 0);
    all.push(Registered { report, any });
}

/// Why [`get`] found no cache.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupError {
    /// No live cache has this name.
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// Caches of this name exist, but none of the types asked for.
    WrongType {
        /// The name asked for.
        name: String,
        /// The type asked for.
        expected: &'static str,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { name } => write!(
                f,
                "no cache named `{name}` (a `#[cached]` function's cache exists once it has been called)"
            ),
            Self::WrongType { name, expected } => write!(
                f,
                "the cache named `{name}` is not a `{expected}`: check the key, value and negative types"
            ),
        }
    }
}

impl std::error::Error for LookupError {}

/// The cache named `name`, typed: how user code reaches a `#[cached]` function's cache to
/// invalidate, clear, write through or read statistics, whatever kind of function it is.
///
/// `K` is the key type and `V` the cached value (the `Ok` or `Some` type for functions returning
/// `Result` or `Option`). For a cache of negative results too (`negative_ttl`), use
/// [`get_negative`].
///
/// ```
/// use cache_runtime::{Cache, registry};
///
/// let prices: Cache<String, u64> = Cache::builder().name("doc.prices").build().unwrap();
/// prices.insert("tea".to_string(), 3);
///
/// let same = registry::get::<String, u64>("doc.prices").unwrap();
/// assert!(same.remove("tea"));
/// assert_eq!(prices.get("tea"), None);
/// assert!(registry::get::<u64, u64>("doc.prices").is_err());
/// ```
///
/// # Errors
/// [`LookupError`] when no live cache has that name and those types.
pub fn get<K, V>(name: &str) -> Result<Cache<K, V>, LookupError>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    get_negative(name)
}

/// Like [`get`], for a cache that also holds negative results of type `N`: the `Err` type `E`
/// of a `Result` function, or `()` for an `Option` function, with `negative_ttl`.
///
/// # Errors
/// [`LookupError`] when no live cache has that name and those types.
pub fn get_negative<K, V, N>(name: &str) -> Result<Cache<K, V, N>, LookupError>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    N: Send + Sync + 'static,
{
    let candidates: Vec<Arc<dyn Any + Send + Sync>> = REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|r| r.report.upgrade().is_some_and(|c| c.name() == name))
        .filter_map(|r| r.any.upgrade())
        .collect();
    if candidates.is_empty() {
        return Err(LookupError::NotFound { name: name.into() });
    }
    candidates
        .into_iter()
        .find_map(Cache::from_any)
        .ok_or_else(|| LookupError::WrongType {
            name: name.into(),
            expected: std::any::type_name::<Cache<K, V, N>>(),
        })
}

/// One registered cache, as [`caches`] reports it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CacheReport {
    /// The cache's name ([`CacheBuilder::name`](crate::CacheBuilder::name)).
    pub name: String,
    /// Its statistics at the moment of the call.
    pub stats: CacheStats,
}

/// Every live cache in this process with its statistics, in the order they were built.
///
/// ```
/// use cache_runtime::{Cache, registry};
///
/// let users: Cache<u64, String> = Cache::builder().name("doc.users").build().unwrap();
/// users.insert(1, "ada".to_string());
/// assert_eq!(users.get(&1).as_deref(), Some("ada"));
///
/// let report = registry::caches().into_iter().find(|c| c.name == "doc.users").unwrap();
/// assert_eq!(report.stats.hits, 1);
/// assert_eq!(report.stats.entries, 1);
/// ```
#[must_use]
pub fn caches() -> Vec<CacheReport> {
    let live: Vec<_> = REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(|r| r.report.upgrade())
        .collect();
    // Statistics are read outside the registry lock.
    live.iter()
        .map(|c| CacheReport {
            name: c.name().to_owned(),
            stats: c.stats(),
        })
        .collect()
}

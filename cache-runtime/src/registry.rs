//! The process-wide registry of caches, for statistics and metrics export.
//!
//! Every cache registers itself when built. The registry holds weak references, so a dropped cache
//! disappears from it; dead entries are pruned whenever a cache registers, which keeps the list as
//! long as the number of live caches.

use std::sync::{Mutex, PoisonError, Weak};

use crate::CacheStats;

/// What the registry needs of a cache: its name and statistics.
pub(crate) trait Report: Send + Sync {
    fn name(&self) -> &str;
    fn stats(&self) -> CacheStats;
}

static REGISTRY: Mutex<Vec<Weak<dyn Report>>> = Mutex::new(Vec::new());

pub(crate) fn register(cache: Weak<dyn Report>) {
    let mut all = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|w| w.strong_count() > 0);
    all.push(cache);
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
        .filter_map(Weak::upgrade)
        .collect();
    // Statistics are read outside the registry lock.
    live.iter()
        .map(|c| CacheReport {
            name: c.name().to_owned(),
            stats: c.stats(),
        })
        .collect()
}

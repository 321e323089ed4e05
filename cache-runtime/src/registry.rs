//! The process-wide registry: every live cache (for statistics, metrics export and lookup by
//! name), the cache of each memoized function (shared with its `cache_put` / `cache_evict`
//! companions), and the named backends installed at startup by [`config`](crate::config).
//!
//! Every cache registers itself when built. The registry holds weak references to them, so a
//! dropped cache disappears from it; dead entries are pruned whenever a cache registers, which
//! keeps the list as long as the number of live caches. A memoized function's cache lives as long
//! as the process.
//!
//! ```
//! use cache_runtime::{cached, registry};
//!
//! #[cached(name = "prices")]
//! fn price(sku: u32) -> u64 {
//!     u64::from(sku) * 10 // a query
//! }
//!
//! price(7);
//! // The function's cache, by name: invalidate, write through, read statistics.
//! let cache = registry::get::<u32, u64>("prices").unwrap();
//! cache.insert(7, 99);
//! assert_eq!(price(7), 99);
//! assert_eq!(cache.stats().loads, 1);
//! assert!(registry::prometheus_text().contains(r#"cache_hits_total{cache="prices"} 1"#));
//! ```

use std::any::Any;
#[cfg(feature = "config")]
use std::collections::BTreeMap;
use std::fmt;
#[cfg(feature = "config")]
use std::sync::OnceLock;
use std::sync::{Arc, Mutex, PoisonError, Weak};

#[cfg(feature = "config")]
use crate::config::Installed;

use crate::tier::{Faults, Health};
use crate::{Cache, CacheStats};

/// What the registry needs of a cache: its name and statistics.
pub(crate) trait Report: Send + Sync {
    fn name(&self) -> &str;
    fn stats(&self) -> CacheStats;
    /// Its remote tier's backend (an identity, shared by the caches on one backend) and health.
    fn remote(&self) -> Option<(usize, Health)>;
}

struct Registered {
    report: Weak<dyn Report>,
    any: Weak<dyn Any + Send + Sync>,
}

/// The one registry of the process.
struct Registry {
    /// Every cache built, by weak reference.
    caches: Mutex<Vec<Registered>>,
    /// The cache of each memoized function, by the attribute's site.
    sites: Mutex<Vec<(&'static str, Box<dyn Any + Send + Sync>)>>,
    /// The named backends, installed once.
    #[cfg(feature = "config")]
    backends: OnceLock<BTreeMap<String, Installed>>,
}

static REGISTRY: Registry = Registry {
    caches: Mutex::new(Vec::new()),
    sites: Mutex::new(Vec::new()),
    #[cfg(feature = "config")]
    backends: OnceLock::new(),
};

pub(crate) fn register(report: Weak<dyn Report>, any: Weak<dyn Any + Send + Sync>) {
    let mut all = REGISTRY
        .caches
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    all.retain(|r| r.report.strong_count() > 0);
    all.push(Registered { report, any });
}

/// The cache of the memoized function at `site`: built by `build` the first time, the same one
/// afterwards (for the function and its companions). A site asked for with other types
/// (impossible for one attribute) gets a cache of its own.
#[cold]
pub(crate) fn site_cache<K, V, N>(
    site: &'static str,
    build: impl FnOnce() -> Cache<K, V, N>,
) -> Cache<K, V, N>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    N: Send + Sync + 'static,
{
    let find = || {
        REGISTRY
            .sites
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(s, _)| *s == site)
            .find_map(|(_, c)| c.downcast_ref::<Cache<K, V, N>>().cloned())
    };
    if let Some(c) = find() {
        return c;
    }
    // Built outside the lock: building runs the attribute's setting expressions, which may call
    // other memoized functions for the first time.
    let built = build();
    let mut all = REGISTRY
        .sites
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Another thread may have built this site's cache meanwhile: one cache a site.
    if let Some(c) = all
        .iter()
        .filter(|(s, _)| *s == site)
        .find_map(|(_, c)| c.downcast_ref::<Cache<K, V, N>>())
    {
        return c.clone();
    }
    all.push((site, Box::new(built.clone())));
    built
}

/// Installs the named backends; `false` when some were installed already.
#[cfg(feature = "config")]
pub(crate) fn install_backends(backends: BTreeMap<String, Installed>) -> bool {
    REGISTRY.backends.set(backends).is_ok()
}

/// Whether named backends were installed.
#[cfg(feature = "config")]
pub(crate) fn backends_installed() -> bool {
    REGISTRY.backends.get().is_some()
}

/// Whether a backend named `name` is installed.
#[cfg(feature = "config")]
pub(crate) fn backend_installed(name: &str) -> bool {
    REGISTRY
        .backends
        .get()
        .is_some_and(|all| all.contains_key(name))
}

/// The backend named `name`; on failure, the message that `function`'s first call reports.
#[cfg(feature = "config")]
pub(crate) fn backend(name: &str, function: &str) -> Result<&'static Installed, String> {
    let Some(all) = REGISTRY.backends.get() else {
        return Err(format!(
            "`{function}` uses the cache backend `{name}`, but no cache configuration is installed: \
             call `cache_runtime::config::configure().backend(\"{name}\", ...).install()` at the \
             start of `main`"
        ));
    };
    all.get(name).ok_or_else(|| {
        let names: Vec<_> = all.keys().map(|k| format!("`{k}`")).collect();
        format!(
            "`{function}` uses the cache backend `{name}`, which is not configured (configured: {})",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        )
    })
}

/// Why [`get`] found no cache.
///
/// ```
/// use cache_runtime::{Cache, registry::{self, LookupError}};
///
/// let users: Cache<u64, String> = Cache::builder().name("users").build()?;
/// let missing = registry::get::<u64, String>("userz").unwrap_err();
/// assert_eq!(missing, LookupError::NotFound { name: "userz".to_string() });
/// let wrong = registry::get::<String, String>("users").unwrap_err();
/// assert!(matches!(wrong, LookupError::WrongType { .. }));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
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
/// ```
/// use cache_runtime::{cached, registry};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct NotFound;
///
/// #[cached(name = "users", negative_ttl = "30s")]
/// fn user(id: u64) -> Result<String, NotFound> {
///     if id == 0 { Err(NotFound) } else { Ok(format!("user {id}")) }
/// }
///
/// assert_eq!(user(0), Err(NotFound));
/// let cache = registry::get_negative::<u64, String, NotFound>("users").unwrap();
/// assert_eq!(cache.stats().loads, 1);
/// assert!(cache.remove(&0)); // the cached "not found" goes
/// ```
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
        .caches
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
///
/// ```
/// use cache_runtime::{Cache, registry};
///
/// let users: Cache<u64, String> = Cache::builder().name("users").build()?;
/// users.insert(1, "ada".to_string());
/// for report in registry::caches() {
///     println!("{}: {} entries", report.name, report.stats.entries);
/// }
/// let report = registry::caches().into_iter().find(|c| c.name == "users").unwrap();
/// assert_eq!(report.stats.entries, 1);
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CacheReport {
    /// The cache's name ([`CacheBuilder::name`](crate::CacheBuilder::name)).
    pub name: String,
    /// Its statistics at the moment of the call.
    pub stats: CacheStats,
    /// With a remote tier: its backend's health, with the faults met so far (by every cache
    /// on that backend: a fault is the backend's, not one cache's).
    pub remote: Option<Health>,
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
        .caches
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
            remote: c.remote().map(|(_, h)| h),
        })
        .collect()
}

/// A metric: its name, help text, kind (`"counter"` or `"gauge"`) and the field it reads.
///
/// ```
/// use cache_runtime::{Cache, registry::{self, Metric}};
///
/// let users: Cache<u64, String> = Cache::builder().build()?;
/// users.insert(1, "ada".to_string());
/// let metrics = registry::metric_descriptions();
/// let entries: &Metric = metrics.iter().find(|m| m.0 == "cache_entries").unwrap();
/// let (_, _, kind, read) = entries;
/// assert_eq!((*kind, read(&users.stats())), ("gauge", 1));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CacheStats) -> u64,
);

/// The counters of [`CacheStats`] as Prometheus metrics: name, help, type, and the field.
const METRICS: &[Metric] = &[
    (
        "cache_hits_total",
        "Lookups answered by a fresh value.",
        "counter",
        |s| s.hits,
    ),
    (
        "cache_misses_total",
        "Lookups that found nothing fresh.",
        "counter",
        |s| s.misses,
    ),
    (
        "cache_negative_hits_total",
        "Lookups answered by a cached negative result.",
        "counter",
        |s| s.negative_hits,
    ),
    (
        "cache_stale_hits_total",
        "Hits served stale while a refresh ran.",
        "counter",
        |s| s.stale_hits,
    ),
    (
        "cache_remote_hits_total",
        "Misses answered by the remote tier.",
        "counter",
        |s| s.remote_hits,
    ),
    ("cache_loads_total", "Loader runs.", "counter", |s| s.loads),
    (
        "cache_load_errors_total",
        "Loader runs that failed or returned a negative result.",
        "counter",
        |s| s.load_errors,
    ),
    (
        "cache_joined_total",
        "Calls that waited for another caller's load of the same key.",
        "counter",
        |s| s.joined,
    ),
    (
        "cache_refreshes_total",
        "Refreshes started (stale-while-revalidate, early refresh).",
        "counter",
        |s| s.refreshes,
    ),
    (
        "cache_refresh_errors_total",
        "Refreshes that failed and kept the old value.",
        "counter",
        |s| s.refresh_errors,
    ),
    (
        "cache_remote_write_failures_total",
        "Writes and invalidations the remote tier did not take at once (then retried).",
        "counter",
        |s| s.remote_write_failures,
    ),
    (
        "cache_pending_remote_writes",
        "Keys whose write or invalidation waits for a retry; not read from the remote tier.",
        "gauge",
        |s| s.pending_remote_writes,
    ),
    (
        "cache_l1_only",
        "1 while the cache does not use its remote tier (its pending writes overflowed).",
        "gauge",
        |s| u64::from(s.l1_only),
    ),
    (
        "cache_evictions_total",
        "Entries removed to make room.",
        "counter",
        |s| s.evictions,
    ),
    (
        "cache_expirations_total",
        "Entries removed because their TTL passed.",
        "counter",
        |s| s.expirations,
    ),
    ("cache_entries", "Entries held now.", "gauge", |s| s.entries),
];

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Every live cache's statistics in the Prometheus text exposition format (version 0.0.4), one
/// series per cache name (caches sharing a name are summed): serve it from a `/metrics`
/// endpoint. No dependency needed; with the `metrics` feature, `cache_runtime::export` feeds the
/// `metrics` facade instead.
///
/// Load times are a Prometheus histogram, `cache_load_duration_seconds`: cumulative
/// `_bucket{le="..."}` series (100 µs to 100 s by 1 / 2.5 / 5, then `+Inf`), `_sum` in seconds
/// and `_count` (see [`LoadTimes`](crate::LoadTimes)).
///
/// ```
/// use cache_runtime::{Cache, Clock, ManualClock, registry};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let users: Cache<u64, String> =
///     Cache::builder().name("doc.prom").clock(Clock::manual(&clock)).build().unwrap();
/// users.insert(1, "ada".to_string());
/// users.get(&1);
/// users.get_or_insert_with(&2, || {
///     clock.advance(Duration::from_millis(20)); // a 20 ms query
///     "grace".to_string()
/// });
/// let text = registry::prometheus_text();
/// assert!(text.contains("# TYPE cache_hits_total counter"));
/// assert!(text.contains(r#"cache_hits_total{cache="doc.prom"} 1"#));
/// assert!(text.contains(r#"cache_entries{cache="doc.prom"} 2"#));
/// assert!(text.contains("# TYPE cache_load_duration_seconds histogram"));
/// assert!(text.contains(r#"cache_load_duration_seconds_bucket{cache="doc.prom",le="0.01"} 0"#));
/// assert!(text.contains(r#"cache_load_duration_seconds_bucket{cache="doc.prom",le="0.025"} 1"#));
/// assert!(text.contains(r#"cache_load_duration_seconds_bucket{cache="doc.prom",le="+Inf"} 1"#));
/// assert!(text.contains(r#"cache_load_duration_seconds_sum{cache="doc.prom"} 0.02"#));
/// assert!(text.contains(r#"cache_load_duration_seconds_count{cache="doc.prom"} 1"#));
/// ```
#[must_use]
pub fn prometheus_text() -> String {
    use std::fmt::Write as _;
    let by_name = stats_by_name();
    let mut out = String::new();
    for (metric, help, kind, get) in METRICS {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for (name, stats) in &by_name {
            let _ = writeln!(out, "{metric}{{cache=\"{}\"}} {}", label(name), get(stats));
        }
    }
    load_histograms(&mut out, &by_name);
    let remote = remote_by_name();
    if !remote.is_empty() {
        let _ = writeln!(
            out,
            "# HELP cache_remote_faults_total Remote tier operations that faulted (the call went \
             on without the tier), by kind, on the cache's backend."
        );
        let _ = writeln!(out, "# TYPE cache_remote_faults_total counter");
        for (name, r) in &remote {
            for (kind, n) in [
                ("connect", r.faults.connect),
                ("timeout", r.faults.timeout),
                ("error", r.faults.error),
                ("short_circuited", r.faults.short_circuited),
            ] {
                let _ = writeln!(
                    out,
                    "cache_remote_faults_total{{cache=\"{}\",kind=\"{kind}\"}} {n}",
                    label(name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP cache_remote_breaker_open Backends of the cache whose circuit breaker is open \
             now (the remote tier is skipped)."
        );
        let _ = writeln!(out, "# TYPE cache_remote_breaker_open gauge");
        for (name, r) in &remote {
            let _ = writeln!(
                out,
                "cache_remote_breaker_open{{cache=\"{}\"}} {}",
                label(name),
                r.breakers_open
            );
        }
    }
    out
}

/// The load-time histogram of each cache name, as Prometheus histograms: cumulative
/// `_bucket{le}` series ending at `+Inf`, `_sum` in seconds, `_count`.
fn load_histograms(out: &mut String, by_name: &[(String, CacheStats)]) {
    use crate::latency::{LOAD_DURATION, LOAD_DURATION_HELP};
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {LOAD_DURATION} {LOAD_DURATION_HELP}");
    let _ = writeln!(out, "# TYPE {LOAD_DURATION} histogram");
    for (name, stats) in by_name {
        let name = label(name);
        let t = &stats.load_time;
        for (le, n) in t.prometheus_buckets() {
            let le = le.map_or_else(|| "+Inf".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "{LOAD_DURATION}_bucket{{cache=\"{name}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "{LOAD_DURATION}_sum{{cache=\"{name}\"}} {}",
            t.total().as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{LOAD_DURATION}_count{{cache=\"{name}\"}} {}",
            t.count()
        );
    }
}

/// A cache name's remote backends, as Prometheus reports them.
#[derive(Default)]
pub(crate) struct RemoteReport {
    /// Faults of its distinct backends, added up.
    pub(crate) faults: Faults,
    /// How many of its distinct backends have their breaker open.
    pub(crate) breakers_open: u64,
}

/// The remote backends of every live cache by cache name, each backend counted once per name
/// (caches of one name on one backend share its faults), in build order.
pub(crate) fn remote_by_name() -> Vec<(String, RemoteReport)> {
    let live: Vec<_> = REGISTRY
        .caches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(|r| r.report.upgrade())
        .collect();
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut by_name: Vec<(String, RemoteReport)> = Vec::new();
    for c in &live {
        let Some((backend, health)) = c.remote() else {
            continue;
        };
        let name = c.name().to_owned();
        if seen.iter().any(|(n, b)| *n == name && *b == backend) {
            continue;
        }
        seen.push((name.clone(), backend));
        let at = match by_name.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                by_name.push((name, RemoteReport::default()));
                by_name.len() - 1
            }
        };
        let r = &mut by_name[at].1;
        r.faults = r.faults.plus(&health.faults);
        r.breakers_open += u64::from(health.breaker_open);
    }
    by_name
}

/// Every live cache's statistics by name, caches sharing a name summed, in build order.
pub(crate) fn stats_by_name() -> Vec<(String, CacheStats)> {
    let mut by_name: Vec<(String, CacheStats)> = Vec::new();
    for c in caches() {
        match by_name.iter_mut().find(|(n, _)| *n == c.name) {
            Some((_, s)) => *s = sum(s, &c.stats),
            None => by_name.push((c.name, c.stats)),
        }
    }
    by_name
}

/// Two caches' counters added up.
fn sum(a: &CacheStats, b: &CacheStats) -> CacheStats {
    CacheStats {
        hits: a.hits + b.hits,
        misses: a.misses + b.misses,
        loads: a.loads + b.loads,
        load_errors: a.load_errors + b.load_errors,
        load_time: a.load_time.plus(&b.load_time),
        joined: a.joined + b.joined,
        evictions: a.evictions + b.evictions,
        expirations: a.expirations + b.expirations,
        negative_hits: a.negative_hits + b.negative_hits,
        remote_hits: a.remote_hits + b.remote_hits,
        stale_hits: a.stale_hits + b.stale_hits,
        refreshes: a.refreshes + b.refreshes,
        refresh_errors: a.refresh_errors + b.refresh_errors,
        remote_write_failures: a.remote_write_failures + b.remote_write_failures,
        pending_remote_writes: a.pending_remote_writes + b.pending_remote_writes,
        l1_only: a.l1_only || b.l1_only,
        entries: a.entries + b.entries,
    }
}

/// The metrics [`prometheus_text`] reports, with their help and type, for exporters of other
/// formats: `(name, help, "counter" | "gauge", field)`.
///
/// ```
/// use cache_runtime::{Cache, registry};
///
/// let users: Cache<u64, String> = Cache::builder().name("users").build()?;
/// users.get(&1);
/// // StatsD lines, say:
/// let stats = users.stats();
/// let lines: Vec<String> = registry::metric_descriptions()
///     .iter()
///     .map(|(name, _help, kind, read)| format!("{name}.users:{}|{}", read(&stats), &kind[..1]))
///     .collect();
/// assert!(lines.contains(&"cache_misses_total.users:1|c".to_string()));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
#[must_use]
pub fn metric_descriptions() -> &'static [Metric] {
    METRICS
}

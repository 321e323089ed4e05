//! Every cache's statistics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): counters and gauges labelled with the cache's name, for whatever recorder the
//! application installs (Prometheus, StatsD, ...).
//!
//! The hit path never touches the facade: [`record`] reads the striped counters and publishes
//! absolute values, so call it where your exporter scrapes, or let [`spawn`] do it periodically.
//! Load times are the exception, as a histogram can only be fed observations: each load (a
//! miss's or a refresh's, never a hit) records its duration in seconds in the histogram
//! `cache_load_duration_seconds{cache = <name>}` when it ends.
//!
//! ```
//! use cache_runtime::{Cache, export};
//!
//! let users: Cache<u64, String> = Cache::builder().name("doc.export").build().unwrap();
//! users.insert(1, "ada".into());
//! users.get(&1);
//! export::describe(); // once: help texts
//! export::record();   // publishes `cache_hits_total{cache="doc.export"}` = 1, ...
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::registry;

/// Registers each metric's help text and unit with the installed recorder.
///
/// ```
/// use cache_runtime::{export, registry};
///
/// // At startup, once the recorder (a Prometheus exporter, say) is installed:
/// export::describe();
/// // It describes these metrics:
/// let names: Vec<&str> = registry::metric_descriptions().iter().map(|m| m.0).collect();
/// assert!(names.contains(&"cache_hits_total"));
/// ```
pub fn describe() {
    for (name, help, kind, _) in registry::metric_descriptions() {
        if *kind == "gauge" {
            metrics::describe_gauge!(*name, *help);
        } else {
            metrics::describe_counter!(*name, *help);
        }
    }
    metrics::describe_histogram!(
        crate::latency::LOAD_DURATION,
        metrics::Unit::Seconds,
        crate::latency::LOAD_DURATION_HELP
    );
    metrics::describe_counter!(
        "cache_remote_faults_total",
        "Remote tier operations that faulted (the call went on without the tier), by kind."
    );
    metrics::describe_gauge!(
        "cache_remote_breaker_open",
        "Backends of the cache whose circuit breaker is open now."
    );
}

/// Publishes every live cache's statistics now: counters as absolute values, `cache_entries` as
/// a gauge, each labelled `cache = <name>` (caches sharing a name are summed); for a cache with
/// a remote tier, its backend's faults (`cache_remote_faults_total`, labelled `kind` too) and
/// whether its breaker is open (`cache_remote_breaker_open`).
///
/// ```
/// use cache_runtime::{Cache, export};
///
/// let users: Cache<u64, String> = Cache::builder().name("users").build()?;
/// users.insert(1, "ada".to_string());
/// users.get(&1);
/// // In the scrape handler, before rendering the recorder's metrics:
/// export::record(); // cache_hits_total{cache="users"} = 1, cache_entries{cache="users"} = 1, ...
/// assert_eq!((users.stats().hits, users.stats().entries), (1, 1)); // the values published
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub fn record() {
    for (cache, stats) in registry::stats_by_name() {
        for (name, _, kind, get) in registry::metric_descriptions() {
            let v = get(&stats);
            if *kind == "gauge" {
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!(*name, "cache" => cache.clone()).set(v as f64);
            } else {
                metrics::counter!(*name, "cache" => cache.clone()).absolute(v);
            }
        }
    }
    // A cache with a remote tier: its backend's faults, by kind, and its breaker.
    for (cache, r) in registry::remote_by_name() {
        for (kind, n) in [
            ("connect", r.faults.connect),
            ("timeout", r.faults.timeout),
            ("error", r.faults.error),
            ("short_circuited", r.faults.short_circuited),
        ] {
            metrics::counter!("cache_remote_faults_total", "cache" => cache.clone(), "kind" => kind)
                .absolute(n);
        }
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("cache_remote_breaker_open", "cache" => cache).set(r.breakers_open as f64);
    }
}

/// A background thread calling [`record`] every `every`, until the returned guard is dropped.
///
/// ```
/// use cache_runtime::export;
/// use std::time::{Duration, Instant};
///
/// // Publish every 10 s for as long as `exporter` lives (keep it in `main`).
/// let exporter = export::spawn(Duration::from_secs(10));
/// let stopping = Instant::now();
/// drop(exporter); // stops the thread at once, without waiting for the period
/// assert!(stopping.elapsed() < Duration::from_secs(5));
/// ```
#[must_use = "the exporter stops when this guard is dropped"]
pub fn spawn(every: Duration) -> Exporter {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("cache-metrics".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                record();
                std::thread::park_timeout(every);
            }
        })
        .ok();
    Exporter { stop, thread }
}

/// Stops the exporter thread of [`spawn`] when dropped.
///
/// ```
/// use cache_runtime::export::{self, Exporter};
/// use std::time::Duration;
///
/// struct App {
///     _metrics: Exporter, // stops with the app
/// }
///
/// let app = App { _metrics: export::spawn(Duration::from_secs(15)) };
/// drop(app); // joins the exporter thread
/// ```
#[derive(Debug)]
pub struct Exporter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

//! Scheduled refresh (`refresh_every`): every period (with jitter), the keys read since the last
//! round, at most `refresh_top` of them by how often they were read, are reloaded in the
//! background through the key's single-flight ([`Cache::reload`](super::Cache)), so that readers
//! of a hot key never wait for it nor see it expire. A key not read in a round is left alone
//! (and expires at its deadline).
//!
//! One thread per refreshing cache keeps the time and picks the keys; the reloads run on it
//! (with up to `REFRESH_CONCURRENCY` scoped threads) for a blocking loader, or as tasks on the
//! Tokio runtime the cache was built on for an async one. The thread holds the cache weakly: it
//! ends when the cache is dropped, and with the process.

use std::future::{Future, ready};
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Cache, Core};
use crate::driver::{Async, Blocking, block_on};
use crate::entry::Loaded;

/// How many keys one round reloads at once.
pub const REFRESH_CONCURRENCY: usize = 4;

/// The number of keys a round reloads at most, unless `refresh_top` says otherwise.
pub(crate) const DEFAULT_REFRESH_TOP: usize = 1_000;

/// A round's delay is the period, moved by up to this fraction either way (so that caches
/// started together do not refresh together).
const ROUND_JITTER: f64 = 0.1;

/// A future of a scheduled reload.
pub(crate) type ReloadFuture<V, N> = Pin<Box<dyn Future<Output = Loaded<V, N, ()>> + Send>>;

/// A blocking loader of a scheduled reload.
pub(crate) type BlockingReload<K, V, N> = Arc<dyn Fn(&K) -> Loaded<V, N, ()> + Send + Sync>;

/// What reloads one key in a scheduled refresh.
pub(crate) enum Reloader<K, V, N> {
    /// A blocking loader: run on the refresh thread.
    Blocking(BlockingReload<K, V, N>),
    /// An async loader: its futures run on the Tokio runtime the cache was built on.
    Async(Arc<dyn Fn(K) -> ReloadFuture<V, N> + Send + Sync>),
}

impl<K, V, N> Clone for Reloader<K, V, N> {
    fn clone(&self) -> Self {
        match self {
            Reloader::Blocking(f) => Reloader::Blocking(Arc::clone(f)),
            Reloader::Async(f) => Reloader::Async(Arc::clone(f)),
        }
    }
}

/// A cache's scheduled refresh, as the builder holds it.
pub(crate) struct Schedule<K, V, N> {
    pub(crate) every: Duration,
    pub(crate) top: usize,
    pub(crate) reloader: Reloader<K, V, N>,
}

/// What starts a cache's scheduled refresh once it is built (see `CacheBuilder::schedule`).
pub(super) fn starter<K, V, N>(
    every: Duration,
    reloader: Reloader<K, V, N>,
) -> super::builder::ScheduleStart<K, V, N>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    Box::new(move |core: &Arc<Core<K, V, N>>, top: usize| {
        start(
            core,
            Schedule {
                every,
                top,
                reloader,
            },
        );
    })
}

/// Starts the refresh thread of the cache whose core is `core`.
pub(crate) fn start<K, V, N>(core: &Arc<Core<K, V, N>>, schedule: Schedule<K, V, N>)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    let weak = Arc::downgrade(core);
    // The first round's time, from now (not from when the thread gets to run).
    let first = core
        .meter
        .clock
        .now_nanos()
        .saturating_add(delay(core, schedule.every));
    // Async reloads run on the runtime the cache is built on (a `#[cached]` async function's
    // first call runs on one); without one, on the refresh thread itself.
    let runtime = tokio::runtime::Handle::try_current().ok();
    let name = format!("cache-refresh:{}", core.name);
    let spawned = std::thread::Builder::new()
        .name(name)
        .spawn(move || run(&weak, &schedule, first, runtime.as_ref()));
    if let Err(e) = spawned {
        // Never fail the caller: the cache works, without its scheduled refresh.
        eprintln!("cache-runtime: cannot start the scheduled refresh ({e}); none will run");
    }
}

/// The refresh thread: waits for each round's time by the cache's clock (a manual clock moves
/// when a test advances it, so it is watched rather than slept on), then runs the round.
fn run<K, V, N>(
    core: &Weak<Core<K, V, N>>,
    schedule: &Schedule<K, V, N>,
    mut due: u64,
    runtime: Option<&tokio::runtime::Handle>,
) where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    let Some(clock) = core.upgrade().map(|c| c.meter.clock.clone()) else {
        return;
    };
    loop {
        loop {
            let now = clock.now_nanos();
            if now >= due {
                break;
            }
            if core.strong_count() == 0 {
                return;
            }
            let wait = if clock.is_manual() {
                Duration::from_millis(2)
            } else {
                Duration::from_nanos(due - now).min(Duration::from_millis(250))
            };
            std::thread::sleep(wait);
        }
        let Some(core) = core.upgrade() else {
            return;
        };
        // The next round is due a period after this one starts, not after it ends: a clock
        // that moves while the round runs (a slow loader, a test advancing a manual clock)
        // does not push the next round a period further.
        let started = clock.now_nanos();
        let period = delay(&core, schedule.every);
        due = started.saturating_add(period);
        let cache = Cache { core };
        cache.refresh_round(schedule, runtime);
        // A round that outlasted its period (a slow or failing source) is followed by the next
        // only after a tenth of a period, so that the reloads do not run back to back against
        // a source that struggles. (A manual clock moves only when a test says so: there the
        // period counts from the start alone.)
        if !clock.is_manual() {
            due = due.max(clock.now_nanos().saturating_add(period / MIN_PAUSE_DIVISOR));
        }
    }
}

/// After a round that outlasted its period, the next waits at least this fraction of a period
/// (one in ten).
const MIN_PAUSE_DIVISOR: u64 = 10;

/// The time to the next round: the period, moved by up to [`ROUND_JITTER`] either way.
fn delay<K, V, N>(core: &Core<K, V, N>, every: Duration) -> u64 {
    let every = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
    #[allow(clippy::cast_precision_loss)]
    let r = (core.expiry.next_random() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let d = (every as f64 * (1.0 + ROUND_JITTER * (2.0 * r - 1.0))) as u64;
    d.max(1)
}

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// One round: the hottest keys read since the last round, reloaded.
    fn refresh_round(
        &self,
        schedule: &Schedule<K, V, N>,
        runtime: Option<&tokio::runtime::Handle>,
    ) {
        let keys = self.hot_keys(schedule.top);
        if keys.is_empty() {
            return;
        }
        match &schedule.reloader {
            Reloader::Blocking(load) => self.reload_blocking(&keys, load),
            Reloader::Async(load) => self.reload_async_keys(keys, load, runtime),
        }
    }

    /// The keys read since the last round, at most `top` of them, the most read first; the
    /// count of every entry starts again. Entries past their deadline (or stale) are left out:
    /// a round keeps hot entries fresh, it does not bring back the expired.
    fn hot_keys(&self, top: usize) -> Vec<K> {
        let mut hot: Vec<(u32, K)> = Vec::new();
        // A visit, not a read: it counts nothing, and the copies carry their stamps.
        crate::invalidate::frame::peek(|| {
            for (k, s) in self.core.store.iter() {
                let Some(st) = &s.stamps else { continue };
                let n = st.take_reads();
                if n > 0 && !self.expired(&s) && !st.is_stale() {
                    hot.push((n, k));
                }
            }
        });
        if hot.len() > top {
            hot.select_nth_unstable_by(top - 1, |a, b| b.0.cmp(&a.0));
            hot.truncate(top);
        }
        hot.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
        hot.into_iter().map(|(_, k)| k).collect()
    }

    /// Reloads `keys` with a blocking loader, [`REFRESH_CONCURRENCY`] at a time.
    fn reload_blocking(&self, keys: &[K], load: &BlockingReload<K, V, N>) {
        let next = AtomicUsize::new(0);
        let work = || {
            while let Some(key) = keys.get(next.fetch_add(1, Ordering::Relaxed)) {
                // A panicking loader fails its refresh (the old value stays), not the thread.
                let done = catch_unwind(AssertUnwindSafe(|| {
                    block_on(self.reload::<Blocking, K, (), _>(key, None, || ready(load(key))))
                }));
                self.count_scheduled(done.ok());
            }
        };
        let helpers = keys.len().min(REFRESH_CONCURRENCY) - 1;
        std::thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(work);
            }
            work();
        });
    }

    /// Reloads `keys` with an async loader: [`REFRESH_CONCURRENCY`] tasks on `runtime` take
    /// the keys in turn (without a runtime, the futures run on this thread one at a time).
    fn reload_async_keys(
        &self,
        keys: Vec<K>,
        load: &Arc<dyn Fn(K) -> ReloadFuture<V, N> + Send + Sync>,
        runtime: Option<&tokio::runtime::Handle>,
    ) {
        let keys = Arc::new(keys);
        let next = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (cache, load) = (self.clone(), Arc::clone(load));
            let (keys, next) = (Arc::clone(&keys), Arc::clone(&next));
            move || {
                let (cache, load, keys, next) = (
                    cache.clone(),
                    Arc::clone(&load),
                    Arc::clone(&keys),
                    Arc::clone(&next),
                );
                async move {
                    while let Some(key) = keys.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let reload =
                            cache.reload::<Async, K, (), _>(key, None, || load(key.clone()));
                        let done = crate::refresh::CatchUnwind(Box::pin(reload)).await;
                        cache.count_scheduled(done.ok());
                    }
                }
            }
        };
        let tasks: Vec<_> = match runtime {
            Some(rt) => (0..keys.len().min(REFRESH_CONCURRENCY))
                .map(|_| rt.spawn(worker()))
                .collect(),
            None => Vec::new(),
        };
        for task in tasks {
            // A task the runtime dropped (it shut down) leaves its keys to the loop below.
            drop(block_on(task));
        }
        // Whatever the tasks did not reach (no runtime, or one that shut down) runs here.
        block_on(worker());
    }

    /// Counts the outcome of a scheduled reload (`None`: its loader panicked).
    fn count_scheduled(&self, out: Option<Loaded<V, N, ()>>) {
        match out {
            Some(Loaded::Value(_)) => {}
            Some(Loaded::Negative(_)) if self.core.expiry.has_negative_ttl() => {}
            _ => self.refresh_failed(),
        }
    }
}

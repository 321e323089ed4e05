//! Cache warming: load a list of keys ahead of traffic, with bounded concurrency and progress.
//!
//! Warming calls the memoized function (or any loader) once per argument, so each result lands
//! in the cache the normal way: single-flight, TTL, negative caching and the remote tier all
//! apply. Run it at startup, before the service takes traffic.
//!
//! ```
//! use cache_runtime::{cached, warm};
//!
//! #[cached(capacity = 1_000)]
//! fn price(sku: u32) -> u64 {
//!     u64::from(sku) * 10 // a database query, say
//! }
//!
//! let report = warm::warm(1..=100u32)
//!     .concurrency(4)
//!     .on_progress(|p| {
//!         if p.done % 50 == 0 {
//!             eprintln!("warming: {}/{:?}", p.done, p.total);
//!         }
//!     })
//!     .run(price);
//! assert_eq!((report.loaded, report.failed), (100, 0));
//! ```

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::refresh::CatchUnwind;

/// Where warming stands, given to [`Warmer::on_progress`] after each item.
///
/// ```
/// use cache_runtime::warm::{self, Progress};
///
/// let mut last: Option<Progress> = None;
/// warm::warm(0..10u64).on_progress(|p| last = Some(*p)).run(|id| id * 2);
/// let last = last.unwrap();
/// assert_eq!((last.done, last.failed, last.total), (10, 0, Some(10)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Items finished (loaded or failed).
    pub done: u64,
    /// Items that failed (an `Err` with `try_run`, or a panic).
    pub failed: u64,
    /// The number of items, when the iterator knows it exactly.
    pub total: Option<u64>,
    /// Time since warming started.
    pub elapsed: Duration,
}

/// What warming did.
///
/// ```
/// use cache_runtime::{Cache, warm};
///
/// let prices: Cache<u32, u64> = Cache::builder().build()?;
/// let report = warm::warm(1..=100u32)
///     .run(|sku| prices.get_or_insert_with(&sku, || u64::from(sku) * 10));
/// assert_eq!((report.loaded, report.failed), (100, 0));
/// assert_eq!(prices.len(), 100);
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmReport {
    /// Items loaded successfully.
    pub loaded: u64,
    /// Items that failed (an `Err` with `try_run`, or a panic); their keys stay uncached.
    pub failed: u64,
    /// How long warming took.
    pub elapsed: Duration,
}

type ProgressFn<'a> = Box<dyn FnMut(&Progress) + Send + 'a>;

/// Warms a cache from `items` (the arguments to load); see the [module docs](self).
///
/// ```
/// use cache_runtime::{Cache, warm};
///
/// let pages: Cache<String, String> = Cache::builder().build()?;
/// let report = warm::warm(["/", "/about", "/pricing"])
///     .run(|path| pages.get_or_insert_with(path, || format!("<h1>{path}</h1>")));
/// assert_eq!(report.loaded, 3);
/// assert!(pages.contains_key("/pricing"));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub fn warm<'a, I: IntoIterator>(items: I) -> Warmer<'a, I::IntoIter> {
    Warmer {
        items: items.into_iter(),
        concurrency: 8,
        progress: None,
    }
}

/// A warming run being configured: [`concurrency`](Self::concurrency),
/// [`on_progress`](Self::on_progress), then `run`, `try_run` or their async forms.
///
/// ```
/// use cache_runtime::warm;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// let loads = AtomicU32::new(0);
/// let warmer = warm::warm(1..=3u32).concurrency(2); // nothing runs yet
/// assert_eq!(loads.load(Ordering::Relaxed), 0);
/// let report = warmer.run(|_| loads.fetch_add(1, Ordering::Relaxed));
/// assert_eq!((report.loaded, loads.load(Ordering::Relaxed)), (3, 3));
/// ```
pub struct Warmer<'a, I> {
    items: I,
    concurrency: usize,
    progress: Option<ProgressFn<'a>>,
}

impl<I> std::fmt::Debug for Warmer<'_, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warmer")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Counts and reports.
struct Tally<'a> {
    started: Instant,
    done: u64,
    failed: u64,
    total: Option<u64>,
    progress: Option<ProgressFn<'a>>,
}

impl Tally<'_> {
    fn record(&mut self, ok: bool) {
        self.done += 1;
        self.failed += u64::from(!ok);
        if let Some(p) = &mut self.progress {
            let now = Progress {
                done: self.done,
                failed: self.failed,
                total: self.total,
                elapsed: self.started.elapsed(),
            };
            // A panicking progress callback must not stop warming.
            let _ = catch_unwind(AssertUnwindSafe(|| p(&now)));
        }
    }

    fn report(&self) -> WarmReport {
        WarmReport {
            loaded: self.done - self.failed,
            failed: self.failed,
            elapsed: self.started.elapsed(),
        }
    }
}

impl<'a, I: Iterator> Warmer<'a, I> {
    /// At most `n` loads at a time (default 8; at least 1). Bound it by what the data source
    /// behind the cache can take.
    ///
    /// ```
    /// use cache_runtime::warm;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    /// warm::warm(0..32).concurrency(2).run(|_| {
    ///     let now = running.fetch_add(1, Ordering::SeqCst) + 1;
    ///     peak.fetch_max(now, Ordering::SeqCst);
    ///     std::thread::sleep(std::time::Duration::from_millis(1)); // a query
    ///     running.fetch_sub(1, Ordering::SeqCst);
    /// });
    /// assert!(peak.load(Ordering::SeqCst) <= 2); // never more than 2 queries at once
    /// ```
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Called after each item with the [`Progress`] so far (from the loading threads, one call
    /// at a time).
    ///
    /// ```
    /// use cache_runtime::warm;
    ///
    /// let mut done = Vec::new();
    /// warm::warm(0..4u32)
    ///     .on_progress(|p| done.push(p.done))
    ///     .run(|x| x + 1);
    /// assert_eq!(done, [1, 2, 3, 4]);
    /// ```
    #[must_use]
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    fn tally(&mut self) -> Tally<'a> {
        let (lo, hi) = self.items.size_hint();
        Tally {
            started: Instant::now(),
            done: 0,
            failed: 0,
            total: (Some(lo) == hi).then_some(lo as u64),
            progress: self.progress.take(),
        }
    }

    /// Calls `load` on every item, on up to `concurrency` threads; every call counts as loaded
    /// unless it panics.
    ///
    /// ```
    /// use cache_runtime::{cached, warm};
    ///
    /// #[cached(capacity = 10_000)]
    /// fn user_name(id: u64) -> String {
    ///     format!("user {id}") // a query
    /// }
    ///
    /// let report = warm::warm(1..=1_000u64).concurrency(4).run(user_name);
    /// assert_eq!((report.loaded, report.failed), (1_000, 0));
    /// ```
    pub fn run<T>(self, load: impl Fn(I::Item) -> T + Sync) -> WarmReport
    where
        I: Send,
        I::Item: Send,
    {
        self.try_run(|item| Ok::<T, std::convert::Infallible>(load(item)))
    }

    /// Calls `load` on every item, on up to `concurrency` threads; an `Err` (or a panic) counts
    /// as failed, and warming goes on.
    ///
    /// ```
    /// use cache_runtime::{cached, warm};
    ///
    /// #[cached]
    /// fn profile(id: u64) -> Result<String, String> {
    ///     if id % 10 == 0 { Err(format!("{id}: timed out")) } else { Ok(format!("profile {id}")) }
    /// }
    ///
    /// let report = warm::warm(1..=100u64).try_run(profile);
    /// assert_eq!((report.loaded, report.failed), (90, 10)); // errors are counted, not cached
    /// ```
    pub fn try_run<T, E>(mut self, load: impl Fn(I::Item) -> Result<T, E> + Sync) -> WarmReport
    where
        I: Send,
        I::Item: Send,
    {
        let tally = Mutex::new(self.tally());
        let items = Mutex::new(self.items);
        let worker = || {
            loop {
                let next = items.lock().unwrap_or_else(PoisonError::into_inner).next();
                let Some(item) = next else { break };
                let ok = matches!(catch_unwind(AssertUnwindSafe(|| load(item))), Ok(Ok(_)));
                tally
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(ok);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..self.concurrency {
                s.spawn(worker);
            }
            worker();
        });
        tally
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .report()
    }

    /// The async form of [`run`](Self::run): up to `concurrency` loads in flight at once,
    /// driven by the calling task.
    ///
    /// ```
    /// use cache_runtime::{cached, warm};
    ///
    /// #[cached]
    /// async fn avatar(id: u64) -> Vec<u8> {
    ///     vec![id as u8; 16] // an HTTP fetch
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = warm::warm(1..=50u64).concurrency(8).run_async(avatar).await;
    /// assert_eq!((report.loaded, report.failed), (50, 0));
    /// # });
    /// ```
    pub async fn run_async<T, F>(self, load: impl FnMut(I::Item) -> F) -> WarmReport
    where
        F: Future<Output = T>,
    {
        let mut load = load;
        self.try_run_async(move |item| {
            let fut = load(item);
            async move { Ok::<T, std::convert::Infallible>(fut.await) }
        })
        .await
    }

    /// The async form of [`try_run`](Self::try_run).
    ///
    /// ```
    /// use cache_runtime::{cached, warm};
    ///
    /// #[cached]
    /// async fn profile(id: u64) -> Result<String, String> {
    ///     if id == 13 { Err("timed out".to_string()) } else { Ok(format!("profile {id}")) }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = warm::warm(1..=20u64).concurrency(4).try_run_async(profile).await;
    /// assert_eq!((report.loaded, report.failed), (19, 1));
    /// # });
    /// ```
    pub async fn try_run_async<T, E, F>(mut self, mut load: impl FnMut(I::Item) -> F) -> WarmReport
    where
        F: Future<Output = Result<T, E>>,
    {
        let mut tally = self.tally();
        let mut running: Vec<Pin<Box<CatchUnwind<F>>>> = Vec::with_capacity(self.concurrency);
        let mut exhausted = false;
        std::future::poll_fn(|cx| {
            loop {
                while !exhausted && running.len() < self.concurrency {
                    match self.items.next() {
                        Some(item) => running.push(Box::pin(CatchUnwind(Box::pin(load(item))))),
                        None => exhausted = true,
                    }
                }
                let mut finished = false;
                let mut i = 0;
                while i < running.len() {
                    if let Poll::Ready(out) = running[i].as_mut().poll(cx) {
                        drop(running.swap_remove(i));
                        tally.record(matches!(out, Ok(Ok(_))));
                        finished = true;
                    } else {
                        i += 1;
                    }
                }
                if exhausted && running.is_empty() {
                    return Poll::Ready(());
                }
                if !finished {
                    return Poll::Pending;
                }
            }
        })
        .await;
        tally.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrency_is_bounded_and_every_item_runs_once() {
        let live = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let seen = Mutex::new(Vec::new());
        let mut calls = 0u64;
        let report = warm(0..200u32)
            .concurrency(3)
            .on_progress(|p| {
                calls += 1;
                assert_eq!(p.total, Some(200));
                assert_eq!(p.done, calls);
            })
            .try_run(|i| {
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
                seen.lock().unwrap().push(i);
                live.fetch_sub(1, Ordering::SeqCst);
                if i % 10 == 0 { Err("odd one") } else { Ok(i) }
            });
        assert_eq!(calls, 200);
        assert_eq!((report.loaded, report.failed), (180, 20));
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "peak concurrency {peak}");
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_item_counts_as_failed() {
        let report = warm([1, 2, 3]).concurrency(2).run(|i| {
            assert!(i != 2, "boom");
            i
        });
        assert_eq!((report.loaded, report.failed), (2, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_concurrency_is_bounded() {
        let live = std::sync::Arc::new(AtomicUsize::new(0));
        let peak = std::sync::Arc::new(AtomicUsize::new(0));
        let report = warm(0..50u32)
            .concurrency(5)
            .try_run_async(|i| {
                let (live, peak) = (live.clone(), peak.clone());
                async move {
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    tokio::task::yield_now().await;
                    live.fetch_sub(1, Ordering::SeqCst);
                    if i == 7 { Err(()) } else { Ok(i) }
                }
            })
            .await;
        assert_eq!((report.loaded, report.failed), (49, 1));
        assert_eq!(peak.load(Ordering::SeqCst), 5);
    }
}

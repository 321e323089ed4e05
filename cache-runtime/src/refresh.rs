//! Where background refreshes run (stale-while-revalidate).
//!
//! A sync function's refresh is a job: by default a thread of its own (at most one per key is
//! ever in flight), or whatever [`set_executor`] installs (a thread pool, say). An async
//! function's refresh is a task on the Tokio runtime of the caller; outside of one it runs on a
//! thread of its own that drives the future.
//!
//! ```
//! use cache_runtime::{Cache, Clock, ManualClock, refresh};
//! use std::{sync::mpsc, time::Duration};
//!
//! // Queue refreshes instead of starting a thread each; a worker (here: this thread) runs them.
//! let (queue, jobs) = mpsc::channel::<refresh::Job>();
//! refresh::set_executor(move |job| drop(queue.send(job))).unwrap();
//!
//! let clock = ManualClock::new();
//! let rates: Cache<&str, f64> = Cache::builder()
//!     .ttl(Duration::from_secs(60))
//!     .stale_while_revalidate(Duration::from_secs(60))
//!     .clock(Clock::manual(&clock))
//!     .build()?;
//! rates.insert("eur", 1.08);
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(rates.get_or_refresh("eur", || Ok(1.09)), Ok(1.08)); // stale; refresh queued
//! jobs.recv().unwrap()(); // the worker runs it
//! assert_eq!(rates.get("eur"), Some(1.09));
//! # Ok::<(), cache_runtime::BuildError>(())
//! ```

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// A refresh to run: a loader call and the store of its result.
///
/// ```
/// use cache_runtime::refresh::Job;
/// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
///
/// let ran = Arc::new(AtomicBool::new(false));
/// let flag = Arc::clone(&ran);
/// let job: Job = Box::new(move || flag.store(true, Ordering::Relaxed));
/// std::thread::spawn(job).join().unwrap(); // any executor: a job is a plain closure
/// assert!(ran.load(Ordering::Relaxed));
/// ```
pub type Job = Box<dyn FnOnce() + Send + 'static>;

type Executor = Box<dyn Fn(Job) + Send + Sync>;

static EXECUTOR: OnceLock<Executor> = OnceLock::new();

/// [`set_executor`] was called before.
///
/// ```
/// use cache_runtime::refresh::{self, ExecutorAlreadySet};
///
/// refresh::set_executor(|job| job()).unwrap(); // inline, on the caller's thread
/// assert_eq!(refresh::set_executor(|job| job()), Err(ExecutorAlreadySet));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorAlreadySet;

impl std::fmt::Display for ExecutorAlreadySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the refresh executor was already set")
    }
}

impl std::error::Error for ExecutorAlreadySet {}

/// Runs sync functions' background refreshes with `executor` instead of a thread each. Set it
/// once, at startup, before the first refresh.
///
/// ```
/// use cache_runtime::refresh;
///
/// // Run refreshes on the rayon-like pool of your choice; here, a named thread.
/// refresh::set_executor(|job| {
///     std::thread::Builder::new()
///         .name("my-refresher".into())
///         .spawn(job)
///         .map(drop)
///         .unwrap_or(()); // a job that cannot start is dropped: the stale value stays
/// })
/// .unwrap();
/// ```
///
/// # Errors
/// [`ExecutorAlreadySet`] when an executor was set before.
pub fn set_executor(
    executor: impl Fn(Job) + Send + Sync + 'static,
) -> Result<(), ExecutorAlreadySet> {
    EXECUTOR
        .set(Box::new(executor))
        .map_err(|_| ExecutorAlreadySet)
}

/// Runs `job` in the background. A job that cannot be started is dropped, which ends its
/// refresh (the old value stays, the key is free).
pub(crate) fn spawn(job: Job) {
    match EXECUTOR.get() {
        Some(run) => run(job),
        None => {
            drop(
                std::thread::Builder::new()
                    .name("cache-refresh".into())
                    .spawn(job),
            );
        }
    }
}

/// Runs `fut` in the background: on the caller's Tokio runtime, or else on a thread.
pub(crate) fn spawn_async(fut: impl Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        drop(handle.spawn(fut));
        return;
    }
    spawn(Box::new(move || crate::driver::block_on(fut)));
}

/// Polls `fut` to completion, catching a panic: `Err` when it panicked.
pub(crate) struct CatchUnwind<F>(pub(crate) Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

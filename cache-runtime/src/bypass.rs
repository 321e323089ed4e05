//! Calling memoized functions without their caches.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static BYPASS: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is inside [`uncached`] (or polling inside [`uncached_async`]).
#[inline]
pub(crate) fn bypassed() -> bool {
    BYPASS.try_with(Cell::get).unwrap_or(false)
}

/// Restores the previous flag on drop, also when unwinding.
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = BYPASS.try_with(|b| b.set(self.0));
    }
}

fn set() -> Restore {
    Restore(BYPASS.try_with(|b| b.replace(true)).unwrap_or(false))
}

/// Runs `f` with every `#[cached]` function bypassing its cache: each runs its body, and
/// neither reads nor writes its cache (nor counts in its statistics).
///
/// The bypass covers everything `f` calls on this thread, nested memoized calls included.
///
/// ```
/// use cache_runtime::uncached;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static RUNS: AtomicU32 = AtomicU32::new(0);
///
/// #[cache_runtime::cached]
/// fn square(x: u64) -> u64 {
///     RUNS.fetch_add(1, Ordering::Relaxed);
///     x * x
/// }
///
/// assert_eq!(square(3), 9);
/// assert_eq!(square(3), 9); // cached
/// assert_eq!(uncached(|| square(3)), 9); // runs the body again
/// assert_eq!(RUNS.load(Ordering::Relaxed), 2);
/// ```
pub fn uncached<R>(f: impl FnOnce() -> R) -> R {
    let _restore = set();
    f()
}

/// The async form of [`uncached`]: `future` bypasses every cache whenever it is polled.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// #[cache_runtime::cached]
/// async fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// assert_eq!(cache_runtime::uncached_async(double(4)).await, 8);
/// # }
/// ```
pub fn uncached_async<F: Future>(future: F) -> Uncached<F> {
    Uncached {
        inner: Box::pin(future),
    }
}

/// The future of [`uncached_async`].
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static RUNS: AtomicU32 = AtomicU32::new(0);
///
/// #[cache_runtime::cached]
/// async fn price(sku: u32) -> u64 {
///     RUNS.fetch_add(1, Ordering::Relaxed);
///     u64::from(sku) * 10
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(price(7).await, 70);
/// let fresh: cache_runtime::Uncached<_> = cache_runtime::uncached_async(price(7));
/// assert_eq!(fresh.await, 70); // the body ran again
/// assert_eq!(RUNS.load(Ordering::Relaxed), 2);
/// # });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Uncached<F> {
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Uncached<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Uncached")
    }
}

impl<F: Future> Future for Uncached<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _restore = set();
        self.inner.as_mut().poll(cx)
    }
}

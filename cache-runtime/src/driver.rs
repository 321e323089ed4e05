//! How a call waits and does IO: the one place where blocking and async callers differ.
//!
//! The miss path, refreshes and the remote tier's operations are written once, as `async` code
//! generic over an [`Io`] driver. [`Async`] awaits the backend's async operations and parks the
//! task on a single-flight wait; [`Blocking`] performs each operation as a blocking call whose
//! future is ready at once, so [`block_on`] completes that same code in a single poll, on the
//! caller's thread, with no runtime and no allocation.

use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use crate::flight::{Flight, Waited};
use crate::tier::{Backend, BoxFuture, Fault};

/// What a caller's driver does where sync and async callers differ: wait for another caller's
/// load, and reach the remote backend.
pub(crate) trait Io: Send + Sync + 'static {
    /// Whether the caller is a thread (a waiter on the leader's own thread is then a
    /// re-entrant call, answered without waiting).
    const BLOCKING: bool;

    /// Waits for the leader of `flight` to finish.
    fn wait<T: Clone + Send + 'static>(
        flight: Arc<Flight<T>>,
    ) -> impl Future<Output = Waited<T>> + Send;

    /// [`Backend::get`].
    fn get<'a>(
        b: &'a dyn Backend,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Fault>> + Send + 'a;

    /// [`Backend::get_many`].
    fn get_many<'a>(
        b: &'a dyn Backend,
        keys: &'a [&'a str],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, Fault>> + Send + 'a;

    /// [`Backend::set`].
    fn set<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), Fault>> + Send + 'a;

    /// [`Backend::set_many`].
    fn set_many<'a>(
        b: &'a dyn Backend,
        items: &'a [(&'a str, &'a [u8], Option<Duration>)],
    ) -> impl Future<Output = Result<(), Fault>> + Send + 'a;

    /// [`Backend::delete`].
    fn delete<'a>(
        b: &'a dyn Backend,
        key: &'a str,
    ) -> impl Future<Output = Result<(), Fault>> + Send + 'a;

    /// [`Backend::try_lease`].
    fn try_lease<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Fault>> + Send + 'a;

    /// [`Backend::release_lease`].
    fn release_lease<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        token: &'a str,
    ) -> impl Future<Output = Result<(), Fault>> + Send + 'a;

    /// [`Backend::wait_for`].
    fn wait_for<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Fault>> + Send + 'a;
}

/// The driver of blocking callers: every operation completes before its future is returned.
pub(crate) struct Blocking;

/// The driver of async callers.
pub(crate) struct Async;

#[allow(refining_impl_trait)]
impl Io for Blocking {
    const BLOCKING: bool = true;

    fn wait<T: Clone + Send + 'static>(flight: Arc<Flight<T>>) -> Ready<Waited<T>> {
        ready(flight.wait())
    }

    fn get<'a>(b: &'a dyn Backend, key: &'a str) -> Ready<Result<Option<Vec<u8>>, Fault>> {
        ready(b.get(key))
    }

    fn get_many<'a>(
        b: &'a dyn Backend,
        keys: &'a [&'a str],
    ) -> Ready<Result<Vec<Option<Vec<u8>>>, Fault>> {
        ready(b.get_many(keys))
    }

    fn set<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> Ready<Result<(), Fault>> {
        ready(b.set(key, value, ttl))
    }

    fn set_many<'a>(
        b: &'a dyn Backend,
        items: &'a [(&'a str, &'a [u8], Option<Duration>)],
    ) -> Ready<Result<(), Fault>> {
        ready(b.set_many(items))
    }

    fn delete<'a>(b: &'a dyn Backend, key: &'a str) -> Ready<Result<(), Fault>> {
        ready(b.delete(key))
    }

    fn try_lease<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> Ready<Result<bool, Fault>> {
        ready(b.try_lease(key, token, ttl))
    }

    fn release_lease<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        token: &'a str,
    ) -> Ready<Result<(), Fault>> {
        ready(b.release_lease(key, token))
    }

    fn wait_for<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> Ready<Result<Option<Vec<u8>>, Fault>> {
        ready(b.wait_for(key, lease_key, max))
    }
}

#[allow(refining_impl_trait)]
impl Io for Async {
    const BLOCKING: bool = false;

    fn wait<T: Clone + Send + 'static>(
        flight: Arc<Flight<T>>,
    ) -> impl Future<Output = Waited<T>> + Send {
        Flight::wait_async(flight)
    }

    fn get<'a>(b: &'a dyn Backend, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        b.get_async(key)
    }

    fn get_many<'a>(
        b: &'a dyn Backend,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Fault>> {
        b.get_many_async(keys)
    }

    fn set<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        b.set_async(key, value, ttl)
    }

    fn set_many<'a>(
        b: &'a dyn Backend,
        items: &'a [(&'a str, &'a [u8], Option<Duration>)],
    ) -> BoxFuture<'a, Result<(), Fault>> {
        b.set_many_async(items)
    }

    fn delete<'a>(b: &'a dyn Backend, key: &'a str) -> BoxFuture<'a, Result<(), Fault>> {
        b.delete_async(key)
    }

    fn try_lease<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Fault>> {
        b.try_lease_async(key, token, ttl)
    }

    fn release_lease<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        b.release_lease_async(key, token)
    }

    fn wait_for<'a>(
        b: &'a dyn Backend,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        b.wait_for_async(key, lease_key, max)
    }
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread. Code driven by [`Blocking`] (and a blocking
/// caller's loader) is ready at the first poll, which needs no waker of its own; anything else
/// parks the thread until woken.
#[inline(always)]
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    if let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return out;
    }
    park_until_ready(fut)
}

/// The rest of [`block_on`], for a future that was not ready at once.
#[cold]
fn park_until_ready<F: Future>(mut fut: std::pin::Pin<&mut F>) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_drives_a_future_woken_from_another_thread() {
        use std::sync::Mutex;
        // (done, the waker of the latest poll), as a well-behaved future keeps it.
        let shared = Arc::new(Mutex::new((false, None::<Waker>)));
        let other = Arc::clone(&shared);
        let waker_thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let waker = {
                let mut s = other.lock().unwrap();
                s.0 = true;
                s.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        let out = block_on(std::future::poll_fn(|cx| {
            let mut s = shared.lock().unwrap();
            if s.0 {
                return Poll::Ready(7);
            }
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }));
        assert_eq!(out, 7);
        waker_thread.join().unwrap();
    }

    #[test]
    fn both_drivers_write_a_batch_through_the_backend() {
        use crate::tier::MemoryBackend;

        let store = MemoryBackend::new();
        let items: [(&str, &[u8], Option<Duration>); 2] = [
            ("a", b"1", Some(Duration::from_secs(60))),
            ("b", b"2", None),
        ];
        block_on(<Blocking as Io>::set_many(&store, &items[..1])).unwrap();
        block_on(<Async as Io>::set_many(&store, &items[1..])).unwrap();
        let got = block_on(<Blocking as Io>::get_many(&store, &["a", "b"])).unwrap();
        assert_eq!(got, [Some(b"1".to_vec()), Some(b"2".to_vec())]);
    }

    #[test]
    fn block_on_completes_ready_code_in_one_poll() {
        let polls = std::cell::Cell::new(0);
        let out = block_on(std::future::poll_fn(|_| {
            polls.set(polls.get() + 1);
            Poll::Ready(polls.get())
        }));
        assert_eq!((out, polls.get()), (1, 1));
    }
}

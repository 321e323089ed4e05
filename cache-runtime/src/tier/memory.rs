//! An in-process [`Backend`]: a byte store that the caches of one process share, as they would
//! share a remote server.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{Backend, BoxFuture, Fault, Health};

/// A [`Backend`] in this process's memory: a second tier without a server, for tests, examples
/// and single-process deployments that want a remote tier's behaviour (payloads through the
/// codec, negative entries, leases, a shared store behind several caches). Expiry is exact
/// (read with [`Instant`]); it never faults; it does not broadcast (there is no other process).
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use cache_runtime::{Cache, tier::MemoryBackend};
/// use std::sync::Arc;
///
/// let shared = Arc::new(MemoryBackend::new());
/// let a: Cache<u64, String> = Cache::builder().name("users").remote(shared.clone(), "app").build()?;
/// let b: Cache<u64, String> = Cache::builder().name("users").remote(shared.clone(), "app").build()?;
/// a.insert(1, "ada".to_string());
/// // `b` has no copy of its own: it finds `a`'s value in the shared tier.
/// assert_eq!(b.get_or_insert_with(&1, || unreachable!()), "ada");
/// assert_eq!(b.stats().remote_hits, 1);
/// # }
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

/// Each key's bytes and deadline.
type Entries = HashMap<String, (Vec<u8>, Option<Instant>)>;

#[derive(Debug, Default)]
struct Inner {
    entries: Mutex<Entries>,
    /// Notified on every write and delete (for lease waits).
    changed: Condvar,
}

impl MemoryBackend {
    /// An empty store.
    ///
    /// ```
    /// use cache_runtime::tier::{Backend, MemoryBackend};
    ///
    /// let store = MemoryBackend::new();
    /// store.set("k", b"v", None)?;
    /// assert_eq!(store.get("k")?, Some(b"v".to_vec()));
    /// # Ok::<(), cache_runtime::tier::Fault>(())
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys it holds (live or expired but not yet read).
    ///
    /// ```
    /// use cache_runtime::tier::{Backend, MemoryBackend};
    ///
    /// let store = MemoryBackend::new();
    /// store.set("a", b"1", None)?;
    /// assert_eq!(store.len(), 1);
    /// # Ok::<(), cache_runtime::tier::Fault>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether it holds no key.
    ///
    /// ```
    /// use cache_runtime::tier::MemoryBackend;
    ///
    /// assert!(MemoryBackend::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live value of `key` (an expired one is removed).
    fn live(map: &mut Entries, key: &str) -> Option<Vec<u8>> {
        match map.get(key) {
            Some((_, Some(deadline))) if *deadline <= Instant::now() => {
                map.remove(key);
                None
            }
            Some((v, _)) => Some(v.clone()),
            None => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let deadline = ttl.and_then(|t| Instant::now().checked_add(t));
        self.lock()
            .insert(key.to_owned(), (value.to_vec(), deadline));
        self.changed.notify_all();
    }

    /// Every item stored under one lock, in order (a key named twice keeps its last value).
    fn set_many(&self, items: &[(&str, &[u8], Option<Duration>)]) {
        if items.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut map = self.lock();
        for &(key, value, ttl) in items {
            let deadline = ttl.and_then(|t| now.checked_add(t));
            map.insert(key.to_owned(), (value.to_vec(), deadline));
        }
        drop(map);
        self.changed.notify_all();
    }

    fn delete(&self, key: &str) {
        self.lock().remove(key);
        self.changed.notify_all();
    }

    fn wait_for(&self, key: &str, lease_key: &str, max: Duration) -> Option<Vec<u8>> {
        let end = Instant::now().checked_add(max);
        let mut map = self.lock();
        loop {
            if let Some(v) = Self::live(&mut map, key) {
                return Some(v);
            }
            // The lease ended without a value: stop waiting.
            Self::live(&mut map, lease_key)?;
            let left = end.map_or(max, |e| e.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return None;
            }
            // Woken by writes; a lease's expiry is noticed within 10 ms.
            map = self
                .changed
                .wait_timeout(map, left.min(Duration::from_millis(10)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The outcome of a blocking wait run on a thread of its own, for an async caller.
struct Handoff<T> {
    slot: Mutex<(Option<T>, Option<Waker>)>,
}

/// Awaits a [`Handoff`].
struct Awaited<T>(Arc<Handoff<T>>);

impl<T> Future for Awaited<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        Ok(Inner::live(&mut self.inner.lock(), key))
    }

    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        Box::pin(std::future::ready(self.get(key)))
    }

    /// Every key read under one lock: a batch sees one state of the store.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Fault> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut map = self.inner.lock();
        Ok(keys.iter().map(|k| Inner::live(&mut map, k)).collect())
    }

    fn get_many_async<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Fault>> {
        Box::pin(std::future::ready(self.get_many(keys)))
    }

    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Fault> {
        self.inner.set(key, value, ttl);
        Ok(())
    }

    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(std::future::ready(self.set(key, value, ttl)))
    }

    /// Every item stored under one lock: a reader sees all of the batch or none of it.
    fn set_many(&self, items: &[(&str, &[u8], Option<Duration>)]) -> Result<(), Fault> {
        self.inner.set_many(items);
        Ok(())
    }

    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8], Option<Duration>)],
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(std::future::ready(self.set_many(items)))
    }

    fn delete(&self, key: &str) -> Result<(), Fault> {
        self.inner.delete(key);
        Ok(())
    }

    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(std::future::ready(self.delete(key)))
    }

    fn clear_prefix(&self, prefix: &str) -> Result<(), Fault> {
        self.inner.lock().retain(|k, _| !k.starts_with(prefix));
        self.inner.changed.notify_all();
        Ok(())
    }

    fn try_lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Fault> {
        let mut map = self.inner.lock();
        if Inner::live(&mut map, key).is_some() {
            return Ok(false);
        }
        let deadline = Instant::now().checked_add(ttl);
        map.insert(key.to_owned(), (token.as_bytes().to_vec(), deadline));
        Ok(true)
    }

    fn try_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Fault>> {
        Box::pin(std::future::ready(self.try_lease(key, token, ttl)))
    }

    fn release_lease(&self, key: &str, token: &str) -> Result<(), Fault> {
        let mut map = self.inner.lock();
        if Inner::live(&mut map, key).is_some_and(|held| held == token.as_bytes()) {
            map.remove(key);
        }
        drop(map);
        self.inner.changed.notify_all();
        Ok(())
    }

    fn release_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(std::future::ready(self.release_lease(key, token)))
    }

    fn wait_for(
        &self,
        key: &str,
        lease_key: &str,
        max: Duration,
    ) -> Result<Option<Vec<u8>>, Fault> {
        Ok(self.inner.wait_for(key, lease_key, max))
    }

    /// Waits on a thread of its own, so that the caller's executor is never blocked.
    fn wait_for_async<'a>(
        &'a self,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        let handoff = Arc::new(Handoff {
            slot: Mutex::new((None, None)),
        });
        let (inner, done) = (Arc::clone(&self.inner), Arc::downgrade(&handoff));
        let (key, lease_key) = (key.to_owned(), lease_key.to_owned());
        let spawned = std::thread::Builder::new()
            .name("cache-memory-wait".into())
            .spawn(move || hand_over(&done, inner.wait_for(&key, &lease_key, max)));
        if spawned.is_err() {
            return Box::pin(std::future::ready(Err(Fault::Error)));
        }
        Box::pin(async move { Ok(Awaited(handoff).await) })
    }

    fn health(&self) -> Health {
        Health::default()
    }
}

/// Hands `value` to the awaiting task, if it still waits.
fn hand_over<T>(handoff: &Weak<Handoff<T>>, value: T) {
    let Some(h) = handoff.upgrade() else { return };
    let waker = {
        let mut slot = h.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.0 = Some(value);
        slot.1.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_and_leases_are_released_only_by_their_holder() {
        let m = MemoryBackend::new();
        m.set("k", b"v", Some(Duration::from_millis(500))).unwrap();
        assert_eq!(m.get("k").unwrap(), Some(b"v".to_vec()));
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(m.get("k").unwrap(), None);

        assert!(m.try_lease("l", "t1", Duration::from_secs(5)).unwrap());
        assert!(!m.try_lease("l", "t2", Duration::from_secs(5)).unwrap());
        m.release_lease("l", "t2").unwrap(); // not the holder: still held
        assert!(!m.try_lease("l", "t3", Duration::from_secs(5)).unwrap());
        m.release_lease("l", "t1").unwrap();
        assert!(m.try_lease("l", "t4", Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn a_lease_wait_ends_with_the_holders_value_or_its_release() {
        let m = Arc::new(MemoryBackend::new());
        assert!(m.try_lease("k:lease", "t", Duration::from_secs(5)).unwrap());
        let writer = Arc::clone(&m);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer.set("k", b"loaded", None).unwrap();
        });
        let got = m.wait_for("k", "k:lease", Duration::from_secs(5)).unwrap();
        assert_eq!(got, Some(b"loaded".to_vec()));
        t.join().unwrap();
        // Released without a value: the wait ends at once with nothing.
        m.release_lease("k:lease", "t").unwrap();
        let start = Instant::now();
        assert_eq!(
            m.wait_for("x", "k:lease", Duration::from_secs(5)).unwrap(),
            None
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_async_lease_wait_does_not_block_its_executor() {
        let m = Arc::new(MemoryBackend::new());
        assert!(m.try_lease("k:lease", "t", Duration::from_secs(5)).unwrap());
        let writer = Arc::clone(&m);
        let got = crate::driver::block_on(async {
            let wait = m.wait_for_async("k", "k:lease", Duration::from_secs(5));
            writer.set("k", b"v", None).unwrap();
            wait.await
        });
        assert_eq!(got.unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn a_batch_answers_each_key_in_order_and_skips_expired_values() {
        let m = MemoryBackend::new();
        m.set("a", b"1", None).unwrap();
        m.set("gone", b"x", Some(Duration::from_millis(1))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let got = m.get_many(&["gone", "a", "none", "a"]).unwrap();
        assert_eq!(got, [None, Some(b"1".to_vec()), None, Some(b"1".to_vec())]);
        assert_eq!(m.len(), 1, "the expired value was removed");
        let async_got = crate::driver::block_on(m.get_many_async(&["a"])).unwrap();
        assert_eq!(async_got, [Some(b"1".to_vec())]);
    }

    #[test]
    fn a_batch_write_stores_each_item_with_its_own_ttl() {
        let m = MemoryBackend::new();
        m.set("old", b"0", None).unwrap();
        let short = Some(Duration::from_millis(1));
        let long = Some(Duration::from_secs(600));
        m.set_many(&[
            ("a", b"1", long),
            ("gone", b"x", short),
            ("forever", b"f", None),
            ("old", b"new", long),
            ("a", b"2", None),
        ])
        .unwrap();
        assert_eq!(m.len(), 4);
        std::thread::sleep(Duration::from_millis(5));
        let got = m.get_many(&["a", "gone", "forever", "old"]).unwrap();
        let expected = [Some(&b"2"[..]), None, Some(b"f"), Some(b"new")];
        assert_eq!(
            got,
            expected.map(|v| v.map(<[u8]>::to_vec)),
            "the last write of a key wins"
        );
        // The deadlines: `a` was written again without one; `old` has its item's.
        {
            let map = m.inner.lock();
            assert_eq!(map["a"].1, None);
            assert_eq!(map["forever"].1, None);
            let left = map["old"]
                .1
                .unwrap()
                .saturating_duration_since(Instant::now());
            assert!(
                left > Duration::from_secs(590) && left <= Duration::from_secs(600),
                "{left:?}"
            );
        }
        m.set_many(&[]).unwrap();
        assert_eq!(m.len(), 3, "an empty batch changes nothing");
        crate::driver::block_on(m.set_many_async(&[("b", b"3", long)])).unwrap();
        assert_eq!(m.get("b").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn a_batch_write_wakes_a_lease_waiter() {
        let m = Arc::new(MemoryBackend::new());
        assert!(m.try_lease("k:lease", "t", Duration::from_secs(5)).unwrap());
        let writer = Arc::clone(&m);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer
                .set_many(&[("j", b"1", None), ("k", b"loaded", None)])
                .unwrap();
        });
        let start = Instant::now();
        let got = m.wait_for("k", "k:lease", Duration::from_secs(5)).unwrap();
        assert_eq!(got, Some(b"loaded".to_vec()));
        assert!(start.elapsed() < Duration::from_secs(1));
        t.join().unwrap();
    }

    #[test]
    fn clear_prefix_leaves_other_prefixes() {
        let m = MemoryBackend::new();
        m.set("a:1", b"1", None).unwrap();
        m.set("a:2", b"2", None).unwrap();
        m.set("b:1", b"3", None).unwrap();
        m.clear_prefix("a:").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("b:1").unwrap(), Some(b"3".to_vec()));
    }
}

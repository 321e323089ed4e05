//! The one test double of the unit tests of the tier: a [`Backend`] over a [`MemoryBackend`]
//! that records what it is asked and faults on demand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use super::{Backend, BoxFuture, Fault, Health, InvalidationHandler, MemoryBackend};

/// A memory backend that records the keys read and set and the keys published, faults every
/// operation ([`Fault::Timeout`]) while [`down`](Probe::set_down), and faults the writes (`set`, `delete`) of the
/// keys [`refuse`](Probe::refuse)d ([`Fault::Timeout`]). It keeps the trait's default batch
/// operations (`get_many`, `set_many` and their async forms: one operation per key, in turn),
/// and its async operations do what the blocking ones do. A [`broadcasting`](Probe::broadcasting)
/// one keeps its subscribers, and hands them what was published when the test says
/// ([`deliver`](Probe::deliver)).
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// The store behind it, to set up and inspect without being recorded or faulted.
    pub(crate) inner: MemoryBackend,
    down: AtomicBool,
    refused: Mutex<Vec<String>>,
    reads: Mutex<Vec<String>>,
    sets: Mutex<Vec<String>>,
    /// Each message published: its namespace and key.
    published: Mutex<Vec<(String, Option<Vec<u8>>)>>,
    broadcasts: bool,
    /// The handlers subscribed (when broadcasting), by namespace.
    subscribers: Mutex<Vec<(String, Weak<InvalidationHandler>)>>,
}

impl Probe {
    /// Makes every operation fault from now on (`true`), or none (`false`).
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes the writes of `key` fault from now on.
    pub(crate) fn refuse(&self, key: &str) {
        self.refused.lock().unwrap().push(key.to_owned());
    }

    /// The keys read (`get`) since the last call, in order.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))] // the tier's tests need serde
    pub(crate) fn reads(&self) -> Vec<String> {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }

    /// The keys set (`set`) since the last call, in order.
    pub(crate) fn sets(&self) -> Vec<String> {
        std::mem::take(&mut *self.sets.lock().unwrap())
    }

    /// The keys published so far (`None`: every key), in order.
    pub(crate) fn published(&self) -> Vec<Option<Vec<u8>>> {
        let published = self.published.lock().unwrap();
        published.iter().map(|(_, key)| key.clone()).collect()
    }

    /// A probe that carries invalidations: it keeps its subscribers, for [`deliver`](Self::deliver).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))] // the caches' tests need serde
    pub(crate) fn broadcasting() -> Self {
        Probe {
            broadcasts: true,
            ..Probe::default()
        }
    }

    /// How many live handlers are subscribed to `namespace`.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn listeners(&self, namespace: &str) -> usize {
        let subscribers = self.subscribers.lock().unwrap();
        subscribers
            .iter()
            .filter(|(ns, h)| ns == namespace && h.strong_count() > 0)
            .count()
    }

    /// Hands the messages published since the last call to the handlers subscribed to their
    /// namespace, in order, as a channel would (this probe skips none of its own).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn deliver(&self) {
        let messages = std::mem::take(&mut *self.published.lock().unwrap());
        for (namespace, key) in messages {
            let handlers: Vec<_> = self
                .subscribers
                .lock()
                .unwrap()
                .iter()
                .filter(|(ns, _)| *ns == namespace)
                .filter_map(|(_, h)| h.upgrade())
                .collect();
            for h in handlers {
                h(key.as_deref());
            }
        }
    }

    fn up(&self) -> Result<(), Fault> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Fault::Timeout);
        }
        Ok(())
    }

    fn writable(&self, key: &str) -> Result<(), Fault> {
        self.up()?;
        if self.refused.lock().unwrap().iter().any(|k| k == key) {
            return Err(Fault::Timeout);
        }
        Ok(())
    }
}

impl Backend for Probe {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        self.reads.lock().unwrap().push(key.to_owned());
        self.up()?;
        self.inner.get(key)
    }
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        Box::pin(async move { self.get(key) })
    }
    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Fault> {
        self.sets.lock().unwrap().push(key.to_owned());
        self.writable(key)?;
        self.inner.set(key, value, ttl)
    }
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(async move { self.set(key, value, ttl) })
    }
    fn delete(&self, key: &str) -> Result<(), Fault> {
        self.writable(key)?;
        self.inner.delete(key)
    }
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(async move { self.delete(key) })
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Fault> {
        self.up()?;
        self.inner.clear_prefix(prefix)
    }
    fn try_lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Fault> {
        self.up()?;
        self.inner.try_lease(key, token, ttl)
    }
    fn try_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Fault>> {
        Box::pin(async move { self.try_lease(key, token, ttl) })
    }
    fn release_lease(&self, key: &str, token: &str) -> Result<(), Fault> {
        self.up()?;
        self.inner.release_lease(key, token)
    }
    fn release_lease_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), Fault>> {
        Box::pin(async move { self.release_lease(key, token) })
    }
    fn wait_for(
        &self,
        key: &str,
        lease_key: &str,
        max: Duration,
    ) -> Result<Option<Vec<u8>>, Fault> {
        self.up()?;
        self.inner.wait_for(key, lease_key, max)
    }
    fn wait_for_async<'a>(
        &'a self,
        key: &'a str,
        lease_key: &'a str,
        max: Duration,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Fault>> {
        Box::pin(async move {
            self.up()?;
            self.inner.wait_for_async(key, lease_key, max).await
        })
    }
    fn broadcasts(&self) -> bool {
        self.broadcasts
    }
    fn publish(&self, namespace: &str, key: Option<&[u8]>) {
        self.published
            .lock()
            .unwrap()
            .push((namespace.to_owned(), key.map(<[u8]>::to_vec)));
    }
    fn subscribe(&self, namespace: &str, handler: Weak<InvalidationHandler>) {
        if self.broadcasts {
            self.subscribers
                .lock()
                .unwrap()
                .push((namespace.to_owned(), handler));
        }
    }
    fn health(&self) -> Health {
        Health::default()
    }
}

//! Writes the remote tier did not take: remembered, retried in the background, and distrusted
//! meanwhile. Fail-open must never mean stale.
//!
//! A write-through insert or an invalidation that meets a fault (a timeout, a refused
//! connection, an open breaker) would otherwise leave the old value in the tier, to come back in
//! this process and in the fleet until its remote TTL. Instead the write is kept here, per cache,
//! and retried by one background thread with backoff (100 ms doubling to 1 s) until it succeeds
//! (it is then broadcast to the other processes) or until the entry it replaces has expired from
//! the tier anyway. Until then:
//! - this process does not read that key from the tier: its reads load instead;
//! - later writes of the key queue behind the pending one (replacing it), so they land in order.
//!
//! The list is bounded. When more keys are pending than the limit, a clear of the cache's
//! namespace takes the place of the list (it covers every key, including those dropped) and the
//! cache runs on L1 only until that clear reaches the tier: its statistics say so
//! ([`CacheStats::l1_only`](crate::CacheStats::l1_only)). A clear that fails does the same.
//!
//! What is pending lives in this process's memory: a process that exits before the tier is
//! back leaves the old entries to their remote TTL, as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::Backend;

/// Keys a cache keeps pending before it falls back to L1 only (see
/// [`CacheBuilder::max_pending_writes`](crate::CacheBuilder::max_pending_writes)).
pub(crate) const DEFAULT_LIMIT: usize = 10_000;

/// The first wait before a retry, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Operations a retry round sends before it lets the other caches' turns come (the rest follow
/// at once in the next round).
const ROUND: usize = 256;

/// A write the tier did not take.
#[derive(Clone)]
pub(crate) enum Write {
    /// Delete the key's entry (an invalidation).
    Delete,
    /// Store this payload until `expires` (`None`: no expiry).
    Set {
        bytes: Vec<u8>,
        expires: Option<Instant>,
    },
}

struct Op {
    write: Write,
    /// The encoded cache key, for the broadcast once the write is through.
    encoded: Vec<u8>,
    /// After this the tier's old entry has expired anyway: the op is dropped (`None`: never).
    until: Option<Instant>,
    /// Which write of the key this is: a retry only removes the op it sent.
    version: u64,
}

#[derive(Default)]
struct State {
    /// By backend key.
    ops: HashMap<String, Op>,
    /// The whole namespace must be cleared (a failed clear, or an overflow); no ops meanwhile.
    clear: bool,
    backoff: Duration,
    /// When the next retry is due (`None`: nothing pending).
    due: Option<Instant>,
    versions: u64,
}

/// One cache's writes that the tier did not take.
pub(crate) struct Pending {
    backend: Arc<dyn Backend>,
    namespace: String,
    limit: AtomicUsize,
    /// The longest remote TTL of this cache's entries (ns; `u64::MAX`: unbounded): how long a
    /// delete that could not be sent matters.
    horizon: AtomicU64,
    /// Anything pending: the one load a read pays when nothing is.
    active: AtomicBool,
    /// Keys pending now.
    len: AtomicUsize,
    /// A clear of the namespace is pending: the tier is not used.
    l1_only: AtomicBool,
    /// Writes that met a fault since the cache was built (or its counters reset).
    failures: AtomicU64,
    /// Handed to the retry thread.
    registered: AtomicBool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("namespace", &self.namespace)
            .field("len", &self.len())
            .field("l1_only", &self.l1_only())
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// An empty list for the cache at `namespace` of `backend`.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))] // made by the typed tier only
    pub(crate) fn new(backend: Arc<dyn Backend>, namespace: String) -> Self {
        Self {
            backend,
            namespace,
            limit: AtomicUsize::new(DEFAULT_LIMIT),
            horizon: AtomicU64::new(u64::MAX),
            active: AtomicBool::new(false),
            len: AtomicUsize::new(0),
            l1_only: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            registered: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// Sets the limit of pending keys and the longest remote TTL of the cache's entries (`None`:
    /// unbounded), when the cache is built.
    pub(crate) fn configure(&self, limit: usize, horizon: Option<Duration>) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
        let h = horizon.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        self.horizon.store(h, Ordering::Relaxed);
    }

    /// Keys pending now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the cache runs on L1 only (a clear of its namespace is pending).
    pub(crate) fn l1_only(&self) -> bool {
        self.l1_only.load(Ordering::Acquire)
    }

    /// Writes that met a fault.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn reset_failures(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the tier's copy of `data` may be older than what this process wrote.
    #[inline]
    pub(crate) fn distrusts(&self, data: &str) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return false;
        }
        let s = self.lock();
        s.clear || s.ops.contains_key(data)
    }

    /// `write` of `data`, if a write of it is pending: it takes that one's place (so that the
    /// two land in order) and `true` is returned. Also `true` while the cache is L1-only (the
    /// pending clear covers it).
    pub(crate) fn queue_behind(&self, data: &str, encoded: &[u8], write: &Write) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return false;
        }
        let mut s = self.lock();
        if s.clear {
            return true;
        }
        if !s.ops.contains_key(data) {
            return false;
        }
        let op = self.op(&mut s, encoded, write.clone());
        s.ops.insert(data.to_owned(), op);
        true
    }

    /// Remembers `write` of `data`, which met a fault, for the retry thread.
    pub(crate) fn record(self: &Arc<Self>, data: &str, encoded: &[u8], write: Write) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        {
            let mut s = self.lock();
            if s.clear {
                return;
            }
            if s.ops.len() >= self.limit.load(Ordering::Relaxed) && !s.ops.contains_key(data) {
                self.overflow(&mut s);
            } else {
                let op = self.op(&mut s, encoded, write);
                s.ops.insert(data.to_owned(), op);
                self.len.store(s.ops.len(), Ordering::Relaxed);
            }
            self.activate(&mut s);
        }
        retrier().schedule(self);
    }

    /// Remembers a clear of the whole namespace that met a fault.
    pub(crate) fn record_clear(self: &Arc<Self>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        {
            let mut s = self.lock();
            self.overflow(&mut s);
            self.activate(&mut s);
        }
        retrier().schedule(self);
    }

    /// A clear of the namespace went through: nothing written before it is pending any more.
    pub(crate) fn cleared(&self) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        s.ops.clear();
        s.clear = false;
        self.settle(&mut s);
    }

    /// Makes an op of `write` now, extending the horizon to its TTL.
    fn op(&self, s: &mut State, encoded: &[u8], write: Write) -> Op {
        let now = Instant::now();
        let mut until = self.until(now);
        if let Write::Set { expires, .. } = &write {
            until = match (until, *expires) {
                (Some(u), Some(e)) => Some(u.max(e)),
                _ => None,
            };
        }
        s.versions += 1;
        Op {
            write,
            encoded: encoded.to_vec(),
            until,
            version: s.versions,
        }
    }

    /// Notes that an entry of this cache was written with `ttl` (`None`: none): a delete that
    /// could not be sent matters at least that long.
    pub(crate) fn extend_horizon(&self, ttl: Option<Duration>) {
        let n = ttl.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        if n > self.horizon.load(Ordering::Relaxed) {
            self.horizon.fetch_max(n, Ordering::Relaxed);
        }
    }

    fn until(&self, now: Instant) -> Option<Instant> {
        match self.horizon.load(Ordering::Relaxed) {
            u64::MAX => None,
            h => now.checked_add(Duration::from_nanos(h)),
        }
    }

    /// Replaces every op by a clear of the namespace, and stops using the tier until it is done.
    #[cold]
    fn overflow(&self, s: &mut State) {
        s.ops.clear();
        s.clear = true;
        self.len.store(0, Ordering::Relaxed);
        self.l1_only.store(true, Ordering::Release);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            namespace = %self.namespace,
            "remote tier: writes pending over the limit, or a clear that failed; this cache uses L1 only until a clear of its remote entries goes through"
        );
    }

    fn activate(&self, s: &mut State) {
        self.active.store(true, Ordering::Release);
        if s.due.is_none() {
            s.backoff = BACKOFF_MIN;
            s.due = Some(Instant::now() + BACKOFF_MIN);
        }
    }

    /// After ops left: clears the flags when nothing is pending any more.
    fn settle(&self, s: &mut State) {
        self.len.store(s.ops.len(), Ordering::Relaxed);
        self.l1_only.store(s.clear, Ordering::Release);
        if s.ops.is_empty() && !s.clear {
            s.due = None;
            self.active.store(false, Ordering::Release);
        }
    }

    /// One retry round, if one is due at `now`: sends pending writes until one fails (then
    /// backs off). Returns when the next round is due (`None`: nothing pending).
    fn retry(&self, now: Instant) -> Option<Instant> {
        let batch = {
            let mut s = self.lock();
            match s.due {
                None => return None,
                Some(due) if due > now => return Some(due),
                Some(_) => {}
            }
            if s.clear {
                None
            } else {
                // Ops past their horizon matter no more: the old entry has expired.
                s.ops.retain(|_, op| op.until.is_none_or(|u| u > now));
                self.settle(&mut s);
                Some(
                    s.ops
                        .iter()
                        .take(ROUND)
                        .map(|(k, op)| {
                            (k.clone(), op.write.clone(), op.encoded.clone(), op.version)
                        })
                        .collect::<Vec<_>>(),
                )
            }
        };
        let ok = match batch {
            None => self.retry_clear(),
            Some(batch) => self.retry_ops(now, batch),
        };
        let mut s = self.lock();
        if s.due.is_some() {
            if ok {
                s.backoff = BACKOFF_MIN;
                s.due = Some(now);
            } else {
                s.backoff = (s.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                s.due = Some(Instant::now() + s.backoff);
            }
        }
        s.due
    }

    fn retry_clear(&self) -> bool {
        if self.backend.clear_prefix(&self.namespace).is_err() {
            return false;
        }
        {
            let mut s = self.lock();
            s.clear = false;
            s.ops.clear();
            self.settle(&mut s);
        }
        self.backend.publish(&self.namespace, None);
        true
    }

    fn retry_ops(&self, now: Instant, batch: Vec<(String, Write, Vec<u8>, u64)>) -> bool {
        for (data, write, encoded, version) in batch {
            let sent = match &write {
                Write::Delete => self.backend.delete(&data),
                Write::Set {
                    expires: Some(e), ..
                } if *e <= now => self.backend.delete(&data),
                Write::Set { bytes, expires } => {
                    let ttl = expires.map(|e| e.saturating_duration_since(now));
                    self.backend.set(&data, bytes, ttl)
                }
            };
            if sent.is_err() {
                return false;
            }
            {
                let mut s = self.lock();
                if s.ops.get(&data).is_some_and(|op| op.version == version) {
                    s.ops.remove(&data);
                }
                self.settle(&mut s);
            }
            self.backend.publish(&self.namespace, Some(&encoded));
        }
        true
    }
}

/// The one thread that retries every cache's pending writes.
struct Retrier {
    queues: Mutex<Vec<Weak<Pending>>>,
    /// Set when a queue needs a look sooner than the thread planned.
    kicked: Mutex<bool>,
    wake: Condvar,
    started: AtomicBool,
}

fn retrier() -> &'static Retrier {
    static RETRIER: OnceLock<Retrier> = OnceLock::new();
    RETRIER.get_or_init(|| Retrier {
        queues: Mutex::new(Vec::new()),
        kicked: Mutex::new(false),
        wake: Condvar::new(),
        started: AtomicBool::new(false),
    })
}

impl Retrier {
    fn schedule(&'static self, pending: &Arc<Pending>) {
        if !pending.registered.swap(true, Ordering::AcqRel) {
            let mut q = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            q.retain(|w| w.strong_count() > 0);
            q.push(Arc::downgrade(pending));
        }
        if !self.started.swap(true, Ordering::AcqRel) {
            let spawned = std::thread::Builder::new()
                .name("cache-runtime-retry".into())
                .spawn(move || self.run());
            if spawned.is_err() {
                // Try again with the next failed write.
                self.started.store(false, Ordering::Release);
            }
        }
        *self.kicked.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let queues: Vec<Arc<Pending>> = self
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            let now = Instant::now();
            let next = queues.iter().filter_map(|q| q.retry(now)).min();
            drop(queues);
            let mut kicked = self.kicked.lock().unwrap_or_else(PoisonError::into_inner);
            while !*kicked {
                match next {
                    None => {
                        kicked = self
                            .wake
                            .wait(kicked)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    Some(t) => {
                        let wait = t.saturating_duration_since(Instant::now());
                        if wait.is_zero() {
                            break;
                        }
                        kicked = self
                            .wake
                            .wait_timeout(kicked, wait)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                }
            }
            *kicked = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::testing::Probe;

    fn set(bytes: &[u8]) -> Write {
        Write::Set {
            bytes: bytes.to_vec(),
            expires: None,
        }
    }

    fn wait_until(what: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn setup(limit: usize) -> (Arc<Probe>, Arc<Pending>) {
        let backend = Arc::new(Probe::default());
        let dyn_backend: Arc<dyn Backend> = backend.clone();
        let pending = Arc::new(Pending::new(dyn_backend, "ns:".into()));
        pending.configure(limit, None);
        (backend, pending)
    }

    #[test]
    fn a_failed_write_is_distrusted_retried_in_order_and_broadcast() {
        let (backend, pending) = setup(100);
        backend.inner.set("ns:a", b"old", None).unwrap();
        backend.set_down(true);
        assert!(!pending.distrusts("ns:a"));
        pending.record("ns:a", b"a", Write::Delete);
        assert!(pending.distrusts("ns:a") && !pending.distrusts("ns:b"));
        // A later write of the key queues behind (and replaces) the pending one.
        assert!(pending.queue_behind("ns:a", b"a", &set(b"new")));
        assert!(!pending.queue_behind("ns:b", b"b", &set(b"x")));
        assert_eq!((pending.len(), pending.failures()), (1, 1));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            backend.inner.get("ns:a").unwrap().as_deref(),
            Some(&b"old"[..])
        );
        backend.set_down(false);
        assert!(
            wait_until(|| pending.len() == 0),
            "retried once the tier is back"
        );
        assert_eq!(
            backend.inner.get("ns:a").unwrap().as_deref(),
            Some(&b"new"[..])
        );
        assert!(!pending.distrusts("ns:a"));
        assert_eq!(backend.published(), vec![Some(b"a".to_vec())]);
    }

    #[test]
    fn an_overflow_falls_back_to_l1_only_until_a_clear_goes_through() {
        let (backend, pending) = setup(3);
        backend.inner.set("ns:k9", b"old", None).unwrap();
        backend.inner.set("other:k", b"kept", None).unwrap();
        backend.set_down(true);
        for i in 0..3 {
            pending.record(&format!("ns:k{i}"), b"k", Write::Delete);
        }
        assert!(!pending.l1_only());
        pending.record("ns:k3", b"k", Write::Delete);
        assert!(pending.l1_only(), "over the limit");
        assert!(pending.distrusts("ns:anything"));
        assert!(pending.queue_behind("ns:k5", b"k", &Write::Delete));
        assert_eq!((pending.len(), pending.failures()), (0, 4));
        backend.set_down(false);
        assert!(wait_until(|| !pending.l1_only()), "the clear went through");
        assert_eq!(
            backend.inner.get("ns:k9").unwrap(),
            None,
            "the namespace was cleared"
        );
        assert_eq!(
            backend.inner.get("other:k").unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(backend.published(), vec![None]);
        assert!(!pending.distrusts("ns:k0"));
    }

    #[test]
    fn an_op_past_its_horizon_is_dropped() {
        let (backend, pending) = setup(10);
        pending.configure(10, Some(Duration::from_millis(50)));
        backend.set_down(true);
        pending.record("ns:a", b"a", Write::Delete);
        assert!(pending.distrusts("ns:a"));
        // The retry thread drops it at its first round after the horizon, tier or not.
        assert!(wait_until(|| pending.len() == 0));
        assert!(!pending.distrusts("ns:a"));
        // A longer TTL written since extends the horizon.
        pending.extend_horizon(Some(Duration::from_secs(3600)));
        pending.record("ns:b", b"b", Write::Delete);
        std::thread::sleep(Duration::from_millis(400));
        assert!(pending.distrusts("ns:b"));
    }

    #[test]
    fn a_successful_clear_drops_what_was_pending() {
        let (backend, pending) = setup(10);
        backend.set_down(true);
        pending.record("ns:a", b"a", set(b"v"));
        pending.cleared();
        assert!(!pending.distrusts("ns:a"));
        assert_eq!(pending.len(), 0);
    }
}

//! What a cache holds for a key: a value or a negative result, with its deadline and early-refresh
//! window; and what a loader's outcome becomes.

use std::sync::Arc;

use crate::invalidate::frame;
use crate::invalidate::stamps::{Idle, Remote, Stamps};

/// A cached result: a value, or a negative result ("not found", an error) kept for
/// `negative_ttl`. A negative result is never confused with a value.
///
/// ```
/// use cache_runtime::{Cache, Entry};
/// use std::time::Duration;
///
/// let users: Cache<u64, String, &str> = Cache::builder()
///     .negative_ttl(Duration::from_secs(10))
///     .build()?;
/// users.insert(1, "ada".to_string());
/// users.insert_negative(2, "no such user");
/// assert_eq!(users.get_entry(&1), Some(Entry::Value("ada".to_string())));
/// assert_eq!(users.get_entry(&2), Some(Entry::Negative("no such user")));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry<V, N> {
    /// A successfully loaded value.
    Value(V),
    /// A cached negative result.
    Negative(N),
}

impl<V, N> Entry<V, N> {
    /// The value, or `Err` with the negative result.
    ///
    /// ```
    /// use cache_runtime::Entry;
    ///
    /// assert_eq!(Entry::<u32, &str>::Value(7).into_result(), Ok(7));
    /// assert_eq!(Entry::<u32, &str>::Negative("not found").into_result(), Err("not found"));
    /// ```
    ///
    /// # Errors
    /// The cached negative result.
    pub fn into_result(self) -> Result<V, N> {
        match self {
            Entry::Value(v) => Ok(v),
            Entry::Negative(n) => Err(n),
        }
    }
}

/// What the store holds: the entry and its deadline (coarse-clock nanoseconds; `NEVER` = no TTL).
///
/// Built by [`Stored::new`] only, which takes the entry's stamps whole: in a cache with a
/// time-to-idle they carry its idle record (`Core::stored` adds it), so no way of storing an
/// entry can leave it out.
pub(crate) struct Stored<V, N> {
    pub(crate) entry: Entry<V, N>,
    pub(crate) expires_at: u64,
    /// With early refresh: how long before `expires_at` a hit starts drawing whether to refresh
    /// (the longest XFetch gap the entry's load time allows; 0 = never early).
    pub(crate) early: u64,
    /// What the entry was computed from (its tags, the entries its loader read), and when it was
    /// last read in a cache with a time-to-idle: it is stale once one of them was invalidated,
    /// or once it was left unread for that long. `None` for most entries: nothing to check.
    pub(crate) stamps: Option<Stamp>,
    /// Keeps struct literals out of other modules (zero-sized).
    _built: Built,
}

/// See [`Stored::_built`].
struct Built;

impl<V, N> Stored<V, N> {
    /// An entry to store, with all its stamps (see `Stamps::with_idle`).
    pub(crate) fn new(
        entry: Entry<V, N>,
        expires_at: u64,
        early: u64,
        stamps: Option<Arc<Stamps>>,
    ) -> Self {
        Stored {
            entry,
            expires_at,
            early,
            stamps: stamps.map(Stamp),
            _built: Built,
        }
    }

    /// Whether the entry was left unread for its time-to-idle.
    #[inline]
    pub(crate) fn idle_expired(&self) -> bool {
        self.stamps.as_ref().is_some_and(|s| s.0.idle_expired())
    }

    /// When the entry leaves the cache at the latest, unless read before: its deadline plus the
    /// `stale` window, or sooner, its idle deadline.
    #[inline]
    pub(crate) fn gone_at(&self, stale: u64) -> u64 {
        let gone = self.expires_at.saturating_add(stale);
        match self.stamps.as_ref().and_then(|s| s.0.idle.as_ref()) {
            Some(idle) => gone.min(idle.deadline()),
            None => gone,
        }
    }
}

/// An entry's stamps (what it was computed from, and its idle record). The store holds them;
/// the copy a lookup gets has them only when it must look at them: when they show an
/// invalidation or an idle expiry, or inside a load (which records what it reads). Otherwise the
/// copy has none: a hit of a fresh tagged (or idle-tracked) entry copies no reference count, and
/// a hit of any entry tests one pointer.
pub(crate) struct Stamp(Arc<Stamps>);

impl Stamp {
    /// Whether an invalidation reached the entry, or it was left unread for its time-to-idle.
    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        !self.0.fresh() || self.0.idle_expired()
    }

    /// The local slots.
    pub(crate) fn slots(&self) -> &[u16] {
        &self.0.slots
    }

    /// The remote stamps.
    pub(crate) fn remote(&self) -> &[Remote] {
        &self.0.remote
    }

    /// What a copy of the entry carries (see [`Stamp`]). A copy is a read: with a time-to-idle,
    /// the read is recorded (once per clock tick), or, past the idle deadline, the copy carries
    /// the stamps so that the lookup removes the entry.
    /// With a scheduled refresh, the read is counted. Inside a frame (a load, or a visit of the
    /// entries that is not a read: `frame::peek`), the copy always carries the stamps.
    #[inline]
    fn for_copy(&self) -> Option<Stamp> {
        let st = &*self.0;
        if frame::active() {
            return Some(self.copy_in_frame());
        }
        let idle_out = st.idle.as_ref().is_some_and(Idle::read);
        if let Some(reads) = &st.reads {
            reads.read();
        }
        if idle_out || !st.fresh() {
            Some(Stamp(Arc::clone(&self.0)))
        } else {
            None
        }
    }

    /// [`for_copy`](Self::for_copy) inside a frame: a read (recorded) unless the frame peeks.
    #[cold]
    fn copy_in_frame(&self) -> Stamp {
        if !frame::peeking() {
            let st = &*self.0;
            let _ = st.idle.as_ref().is_some_and(Idle::read);
            if let Some(reads) = &st.reads {
                reads.read();
            }
        }
        Stamp(Arc::clone(&self.0))
    }

    /// The reads counted since the last call (0 without a scheduled refresh).
    pub(crate) fn take_reads(&self) -> u32 {
        self.0.reads.as_ref().map_or(0, |r| r.take())
    }
}

impl<V: Clone, N: Clone> Clone for Stored<V, N> {
    #[inline]
    fn clone(&self) -> Self {
        Stored {
            entry: self.entry.clone(),
            expires_at: self.expires_at,
            early: self.early,
            stamps: self.stamps.as_ref().and_then(Stamp::for_copy),
            _built: Built,
        }
    }
}

/// A loader's outcome: cached as a value, cached as a negative result (if `negative_ttl` is set),
/// or an outcome returned to its caller only.
#[doc(hidden)]
#[derive(Debug)]
pub enum Loaded<V, N, E> {
    /// Cached as a value.
    Value(V),
    /// Cached as a negative result (with `negative_ttl`), else returned uncached.
    Negative(N),
    /// Returned to its caller only, never cached.
    Error(E),
}

impl<V, N, E> From<Entry<V, N>> for Loaded<V, N, E> {
    fn from(e: Entry<V, N>) -> Self {
        match e {
            Entry::Value(v) => Loaded::Value(v),
            Entry::Negative(n) => Loaded::Negative(n),
        }
    }
}

/// How the uncached outcome of a load (`Loaded::Error`) is shared with the callers waiting on
/// it: copied into a type-erased `Arc` by the leader, and rebuilt by each waiter, which then
/// returns it without loading. A load without one leaves its waiters to retry.
#[doc(hidden)]
pub struct Share<E> {
    pub(crate) to_shared: fn(&E) -> std::sync::Arc<dyn std::any::Any + Send + Sync>,
    pub(crate) from_shared: fn(&(dyn std::any::Any + Send + Sync)) -> Option<E>,
}

impl<E> Clone for Share<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Share<E> {}

impl<E: Clone + Send + Sync + 'static> Share<E> {
    /// Shares an outcome by cloning it (once into the `Arc`, once per waiter out of it).
    #[must_use]
    pub fn cloned() -> Self {
        Share {
            to_shared: |e| std::sync::Arc::new(e.clone()),
            from_shared: |a| a.downcast_ref::<E>().cloned(),
        }
    }
}

/// The value of a hit in a cache without negative results.
#[inline(always)]
pub(crate) fn hit_value<V>(e: Entry<V, std::convert::Infallible>) -> V {
    match e {
        Entry::Value(v) => v,
        Entry::Negative(n) => match n {},
    }
}

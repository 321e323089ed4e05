//! What a cache holds for a key: a value or a negative result, with its deadline and early-refresh
//! window; and what a loader's outcome becomes.

use std::sync::Arc;

use crate::invalidate::frame;
use crate::invalidate::stamps::{Idle, Remote, Stamps};
use crate::ttl::NEVER;

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
    /// The deadline and the early-refresh window, in one word (see [`When`]).
    when: When,
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
            when: When::new(expires_at, early),
            stamps: stamps.map(Stamp),
            _built: Built,
        }
    }

    /// The entry's deadline (coarse-clock nanoseconds; [`NEVER`]: none),
    /// rounded down to a multiple of 64 ns.
    #[inline]
    pub(crate) fn expires_at(&self) -> u64 {
        self.when.deadline()
    }

    /// With early refresh: how long before [`expires_at`](Self::expires_at) a hit starts drawing
    /// whether to refresh (the longest XFetch gap the entry's load time allows, rounded up by
    /// at most 1/32, and cut at 102 days; 0 = never early).
    #[inline]
    pub(crate) fn early(&self) -> u64 {
        self.when.early()
    }

    /// When a hit starts drawing whether to refresh early: the deadline moved earlier by the
    /// early-refresh window (the deadline itself without one; [`NEVER`] without a deadline).
    /// What a hit checks, in one decode of the word.
    #[inline]
    pub(crate) fn draw_start(&self) -> u64 {
        self.when.draw_start()
    }

    /// Whether a hit can take the entry as it is, without a look at anything else: no stamps
    /// to check, no early-refresh window, and a deadline after `bound` (a [`hit_bound`] of the
    /// clock's; [`NEVER`] is after every bound). One mask and one comparison of the packed
    /// word: the hit path of the sharded stores, under the read lock. Anything else is judged
    /// in full (`Cache::judge`), which also handles an entry this says no to.
    #[inline(always)]
    pub(crate) fn plainly_fresh(&self, bound: u64) -> bool {
        self.stamps.is_none() && self.when.0 & EARLY_MASK == 0 && self.when.0 > bound
    }

    /// Moves the deadline to `expires_at`, the early-refresh window unchanged.
    pub(crate) fn set_expires_at(&mut self, expires_at: u64) {
        self.when = When::new(expires_at, self.when.early());
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
        let gone = self.expires_at().saturating_add(stale);
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
    #[inline(always)]
    fn clone(&self) -> Self {
        Stored {
            entry: self.entry.clone(),
            when: self.when,
            stamps: self.stamps.as_ref().and_then(Stamp::for_copy),
            _built: Built,
        }
    }
}

/// An entry's deadline and early-refresh window, packed in one word so that an entry costs 8
/// bytes less: the deadline in its high 54 bits, in units of 64 ns (rounded down: an entry
/// expires at most 63 ns early, far below the coarse clock's tick; 2^54 units are 36 years of
/// the process's clock; all ones is [`NEVER`]), and the window in its low 10 bits as a small
/// float (5 bits of exponent, 5 of mantissa, in units of 65,536 ns: 2 ms to 102 days, rounded
/// up by at most 1/32; 0 is no window). The window only scales a random draw (XFetch), so
/// neither rounding changes what a caller can observe beyond the clock's own precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct When(u64);

/// Bits of [`When`] that hold the early-refresh window.
const EARLY_BITS: u32 = 10;
/// The early-refresh window's bits of [`When`].
const EARLY_MASK: u64 = (1 << EARLY_BITS) - 1;
/// The unit of [`When`]'s deadline: `1 << DEADLINE_SHIFT` ns.
const DEADLINE_SHIFT: u32 = 6;
/// The deadline field's largest value: [`NEVER`].
const DEADLINE_NEVER: u64 = (1 << (64 - EARLY_BITS)) - 1;
/// The unit of the early-refresh window (ns), as a shift.
const EARLY_UNIT_SHIFT: u32 = 16;

impl When {
    fn new(deadline: u64, early: u64) -> Self {
        let d = if deadline == NEVER {
            DEADLINE_NEVER
        } else {
            // A deadline beyond the field (36 years of the clock) becomes the farthest one: a
            // `ManualClock` moved past that would see every new entry expire at once.
            (deadline >> DEADLINE_SHIFT).min(DEADLINE_NEVER - 1)
        };
        When((d << EARLY_BITS) | u64::from(early_code(early)))
    }

    #[inline]
    fn deadline(self) -> u64 {
        match self.0 >> EARLY_BITS {
            DEADLINE_NEVER => NEVER,
            d => d << DEADLINE_SHIFT,
        }
    }

    #[inline]
    fn draw_start(self) -> u64 {
        match self.deadline() {
            NEVER => NEVER,
            deadline => deadline.saturating_sub(self.early()),
        }
    }

    #[inline]
    fn early(self) -> u64 {
        #[allow(clippy::cast_possible_truncation)] // the low 10 bits
        early_ns((self.0 & EARLY_MASK) as u16)
    }
}

/// The bound that [`Stored::plainly_fresh`] compares a packed [`When`] with, for a clock that
/// knows no deadline after `beyond_ns` (ns) to be past: a word without an early-refresh window
/// is above it exactly when its deadline is after `beyond_ns` or is [`NEVER`]. (A deadline
/// field is a multiple of 64 ns, so `d > beyond` is `d / 64 > beyond / 64`; every finite
/// deadline is stored below the all-ones field, so `NEVER` stays above the largest bound.)
pub(crate) const fn hit_bound(beyond_ns: u64) -> u64 {
    let units = beyond_ns >> DEADLINE_SHIFT;
    let units = if units < DEADLINE_NEVER - 1 {
        units
    } else {
        DEADLINE_NEVER - 1
    };
    (units << EARLY_BITS) | EARLY_MASK
}

/// The 10-bit code of an early-refresh window of `ns` nanoseconds: the smallest window the code
/// holds that is at least `ns` (up to the largest, 102 days: a longer window is cut to it); 0 for
/// none. A code `e << 5 | m` (not 0) is `(32 + m) << e` units of 65,536 ns.
fn early_code(ns: u64) -> u16 {
    if ns == 0 {
        return 0;
    }
    let units = ns.div_ceil(1 << EARLY_UNIT_SHIFT).max(32);
    // The exponent that puts the leading bit at 2^5; the mantissa rounded up.
    let e = (63 - units.leading_zeros()).saturating_sub(5);
    let mut m = units.div_ceil(1 << e);
    let mut e = e;
    if m == 64 {
        (m, e) = (32, e + 1);
    }
    if e > 31 {
        return (31 << 5) | 31;
    }
    #[allow(clippy::cast_possible_truncation)] // e <= 31 and 32 <= m < 64
    let code = ((e << 5) | (m - 32) as u32) as u16;
    code.max(1)
}

/// The window (ns) that an [`early_code`] stands for.
fn early_ns(code: u16) -> u64 {
    if code == 0 {
        return 0;
    }
    let (e, m) = (u32::from(code >> 5), u64::from(code & 31));
    ((32 + m) << e) << EARLY_UNIT_SHIFT
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

#[cfg(test)]
mod when_tests {
    use super::*;

    #[test]
    fn an_entry_is_its_value_and_two_words() {
        use std::convert::Infallible;
        use std::mem::size_of;
        assert_eq!(size_of::<Stored<u64, Infallible>>(), 24);
        assert_eq!(size_of::<Stored<String, Infallible>>(), 40);
    }

    #[test]
    fn a_deadline_is_kept_to_64_ns_below_and_never_is_never() {
        for d in [
            0,
            1,
            63,
            64,
            65,
            10_000_000,
            1 << 40,
            (1 << 40) + 17,
            3 << 55,
        ] {
            let w = When::new(d, 0);
            assert!(w.deadline() <= d && d - w.deadline() < 64, "{d}");
            assert_eq!(w.early(), 0);
        }
        assert_eq!(When::new(NEVER, 0).deadline(), NEVER);
        assert_eq!(
            When::new(NEVER, 5_000_000).early(),
            When::new(1, 5_000_000).early()
        );
        // Past the field (36 years of the clock): the farthest deadline, not "never".
        let far = When::new(NEVER - 1, 0).deadline();
        assert!(far != NEVER && far > 36 * 365 * 86_400 * 1_000_000_000);
        // Later deadlines never read as earlier ones.
        let mut last = 0;
        for d in (0..100_000u64).map(|i| i * 37) {
            let w = When::new(d, 7).deadline();
            assert!(w >= last);
            last = w;
        }
    }

    #[test]
    fn a_window_is_rounded_up_by_at_most_a_32nd_within_its_range() {
        assert_eq!(When::new(0, 0).early(), 0);
        let mut last = 0;
        let mut ns = 1u64;
        while ns < 100 * 3_600 * 1_000_000_000 {
            let got = When::new(123_456, ns).early();
            assert!(got >= ns.min(early_ns((31 << 5) | 31)), "{ns} -> {got}");
            if ns >= 32 << EARLY_UNIT_SHIFT && ns <= early_ns((31 << 5) | 31) {
                assert!(
                    got - ns <= ns / 32 + (1 << EARLY_UNIT_SHIFT),
                    "{ns} -> {got}"
                );
            }
            assert!(got >= last, "monotone: {ns}");
            last = got;
            ns = ns * 9 / 8 + 1;
        }
        // The range: 2 ms (at least) to 102 days (at most).
        assert_eq!(When::new(0, 1).early(), 33 << EARLY_UNIT_SHIFT);
        assert!(early_ns((31 << 5) | 31) > 102 * 86_400 * 1_000_000_000);
        assert_eq!(When::new(0, u64::MAX).early(), early_ns((31 << 5) | 31));
        // The deadline and the window do not spill into each other.
        let w = When::new(1 << 50, 1 << 40);
        assert_eq!(w.deadline(), 1 << 50);
        assert!(w.early() >= 1 << 40);
    }

    fn stored(deadline: u64, early: u64) -> Stored<u64, std::convert::Infallible> {
        Stored::new(Entry::Value(1), deadline, early, None)
    }

    #[test]
    fn a_plain_hit_is_the_full_checks_answer_whenever_it_gives_one() {
        // The bound's comparison is the deadline's against the clock's bound, exactly: the
        // hit's own answer (fresh) is never given to an entry the full check would not find
        // fresh, and is given to every entry without a window that it would.
        let points = [
            0,
            1,
            63,
            64,
            65,
            127,
            128,
            10_000_000,
            (1 << 40) - 1,
            1 << 40,
            (1 << 40) + 1,
            3 << 55,
            NEVER - 1,
            NEVER,
        ];
        for beyond in points {
            let bound = hit_bound(beyond);
            for deadline in points {
                let s = stored(deadline, 0);
                let fresh = s.draw_start() == NEVER || s.draw_start() > beyond;
                assert_eq!(s.plainly_fresh(bound), fresh, "{deadline} vs {beyond}");
                // With an early-refresh window: always judged in full.
                assert!(!stored(deadline, 5_000_000).plainly_fresh(bound));
            }
        }
        // No ticker (the bound of `u64::MAX`): only an entry without a deadline.
        assert!(stored(NEVER, 0).plainly_fresh(hit_bound(u64::MAX)));
        assert!(!stored(NEVER - 1, 0).plainly_fresh(hit_bound(u64::MAX)));
        // An entry with stamps to look at: judged in full.
        let stamped = Stored {
            stamps: Some(Stamp(
                Arc::new(crate::invalidate::stamps::Stamps::default()),
            )),
            ..stored(NEVER, 0)
        };
        assert!(!stamped.plainly_fresh(hit_bound(0)));
    }
}

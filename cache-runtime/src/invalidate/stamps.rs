//! Generation stamps: what lets one write invalidate any number of entries at once.
//!
//! Every tag of a cache, every entry that other entries were computed from, and every cache as a
//! whole maps to one of [`BUCKETS`] generation slots. Invalidating it bumps its slot to a new
//! value of a process-wide epoch; an entry records the epoch at which its load started and the
//! slots it depends on, and is stale as soon as one of them moved past that epoch. Nothing walks
//! the entries: invalidation is O(1) in their number, and a read checks a few atomics.
//!
//! Two names that share a slot only make each other's entries reload once: never stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Clock;

/// The number of generation slots (a power of two).
pub(crate) const BUCKETS: usize = 1 << 16;

/// The process-wide epoch: bumped by every invalidation.
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// The epoch of each slot's last invalidation (0: never).
static SLOTS: [AtomicU64; BUCKETS] = [const { AtomicU64::new(0) }; BUCKETS];

/// The epoch now: an entry whose load starts now records it.
#[inline]
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

/// Invalidates every entry that depends on `slot`.
pub(crate) fn bump(slot: u16) {
    let e = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
    SLOTS[usize::from(slot)].fetch_max(e, Ordering::SeqCst);
}

/// FNV-1a over `parts`, as one byte string: the same name hashes alike in every process.
pub(crate) fn name_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The slot of a 64-bit name.
#[inline]
pub(crate) fn slot_of(hash: u64) -> u16 {
    // The high bits: FNV's low bits mix worst, and a key hash's are the store's shard index.
    #[allow(clippy::cast_possible_truncation)]
    let s = (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16;
    s
}

/// Whether one of `slots` was invalidated after epoch `since`.
#[inline]
pub(crate) fn moved_since(since: u64, slots: &[u16]) -> bool {
    slots
        .iter()
        .any(|&s| SLOTS[usize::from(s)].load(Ordering::Acquire) > since)
}

/// What one entry was computed from, checked on every read of it: the epoch its load started
/// at, and the slots of its tags and of the entries it read; in a cache with a time-to-idle,
/// also when it was last read (every entry of such a cache has stamps, see [`Idle`]).
#[derive(Debug, Default)]
pub(crate) struct Stamps {
    pub(crate) since: u64,
    /// The first few slots, inline: a read of an entry with few tags follows one pointer.
    head: [u16; HEAD],
    pub(crate) slots: Box<[u16]>,
    /// With a remote tier: what the entry's L2 copy is checked against (see [`Remote`]).
    pub(crate) remote: Box<[Remote]>,
    /// With a time-to-idle: when the entry was last read.
    pub(crate) idle: Option<Idle>,
    /// With a scheduled refresh: how often the entry was read since the last round.
    pub(crate) reads: Option<Reads>,
}

/// How many slots [`Stamps`] keeps inline.
const HEAD: usize = 4;

impl Stamps {
    pub(crate) fn new(since: u64, slots: Box<[u16]>, remote: Box<[Remote]>) -> Self {
        let mut head = [0u16; HEAD];
        let n = slots.len().min(HEAD);
        head[..n].copy_from_slice(&slots[..n]);
        Stamps {
            since,
            head,
            slots,
            remote,
            idle: None,
            reads: None,
        }
    }

    /// These stamps, with the idle record `idle` and (`reads`) a read counter (neither:
    /// unchanged). Stamps are shared once stored, so the slots are copied when someone else
    /// holds them too (the miss path only).
    pub(crate) fn with_access(
        st: Option<Arc<Stamps>>,
        idle: Option<Idle>,
        reads: bool,
    ) -> Option<Arc<Stamps>> {
        if idle.is_none() && !reads {
            return st;
        }
        let mut own = match st.map(Arc::try_unwrap) {
            None => Stamps::default(),
            Some(Ok(own)) => own,
            Some(Err(shared)) => {
                Stamps::new(shared.since, shared.slots.clone(), shared.remote.clone())
            }
        };
        own.idle = idle;
        own.reads = reads.then(Reads::default);
        Some(Arc::new(own))
    }

    /// Whether the entry was left unread for its time-to-idle (never, without one).
    #[inline]
    pub(crate) fn idle_expired(&self) -> bool {
        self.idle.as_ref().is_some_and(Idle::expired)
    }

    /// Whether no slot of the entry was invalidated since its load started.
    #[inline]
    pub(crate) fn fresh(&self) -> bool {
        let n = self.slots.len();
        if n <= HEAD {
            !moved_since(self.since, &self.head[..n])
        } else {
            !moved_since(self.since, &self.slots)
        }
    }
}

/// When an entry of a cache with a time-to-idle was last read, and how long it may stay unread.
///
/// A read of the entry (the copy a hit takes, see `entry::Stamp`) checks `last + tti` against the
/// clock's tick and, when the tick moved since, stores it: at most one store per entry per tick
/// (10 ms for the coarse clock), however many threads read it; the other reads load only.
/// Expiry is exact to within a tick.
#[derive(Debug)]
pub(crate) struct Idle {
    /// The clock's time of the entry's last (recorded) read.
    last: AtomicU64,
    /// The time-to-idle (ns).
    tti: u64,
    clock: Clock,
}

impl Idle {
    /// The record of an entry stored at `now`.
    pub(crate) fn new(now: u64, tti: u64, clock: Clock) -> Self {
        Idle {
            last: AtomicU64::new(now),
            tti,
            clock,
        }
    }

    /// The time the entry expires unless read before.
    #[inline]
    pub(crate) fn deadline(&self) -> u64 {
        self.last.load(Ordering::Relaxed).saturating_add(self.tti)
    }

    /// Whether the entry was left unread for the time-to-idle.
    #[inline]
    pub(crate) fn expired(&self) -> bool {
        self.clock.is_past(self.deadline())
    }

    /// A read of the entry: `true` if it had already expired (then nothing is recorded), else
    /// the read is recorded if the clock's tick moved since the last one recorded.
    #[inline]
    pub(crate) fn read(&self) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        if self.clock.is_past(last.saturating_add(self.tti)) {
            return true;
        }
        let now = self.clock.tick_nanos();
        if now > last {
            self.last.store(now, Ordering::Relaxed);
        }
        false
    }
}

/// How often an entry of a cache with a scheduled refresh was read since the refresh's last
/// round (which takes the count). Counted by the hit's copy with a relaxed load and store, not
/// a read-modify-write: concurrent reads may count once, a hint that costs no contention.
#[derive(Debug, Default)]
pub(crate) struct Reads(std::sync::atomic::AtomicU32);

impl Reads {
    /// Counts a read.
    #[inline]
    pub(crate) fn read(&self) {
        let n = self.0.load(Ordering::Relaxed);
        self.0.store(n.saturating_add(1), Ordering::Relaxed);
    }

    /// The reads since the last call, and starts counting again.
    pub(crate) fn take(&self) -> u32 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// What an L2 entry depends on, as the fleet names it: a generation key, and the token it held
/// when the entry was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    pub(crate) kind: RemoteKind,
    pub(crate) key: String,
    pub(crate) token: u64,
}

/// What a [`Remote`] stamp's key is the generation of. Each key holds an 8-byte token, replaced
/// by every invalidation (absent reads as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteKind {
    /// A tag of one cache (`<namespace>tag:<tag>`), or an entry that this one read
    /// (`<namespace>dep:<key hash>`): also a local slot, the hash of the key's name.
    Local = 0,
    /// A tag of every cache of a prefix (`<prefix>:tag:<tag>`): remote only (locally, a fleet
    /// invalidation bumps each cache's own tag slot).
    Global = 1,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bumped_slot_stales_older_entries_only() {
        let slot = slot_of(name_hash(&[b"stamps-test", b"tag:a"]));
        let older = Stamps::new(epoch(), vec![slot].into(), Box::default());
        assert!(older.fresh());
        bump(slot);
        assert!(!older.fresh());
        let newer = Stamps::new(epoch(), vec![slot].into(), Box::default());
        assert!(newer.fresh());
    }

    #[test]
    fn names_hash_alike_whatever_their_split() {
        assert_eq!(name_hash(&[b"ab", b"c"]), name_hash(&[b"a", b"bc"]));
        assert_ne!(name_hash(&[b"abc"]), name_hash(&[b"abd"]));
    }
}

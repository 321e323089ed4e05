//! Generation stamps: what lets one write invalidate any number of entries at once.
//!
//! Every tag of a cache, every entry that other entries were computed from, and every cache as a
//! whole maps to one of [`BUCKETS`] generation slots. Invalidating it bumps its slot to a new
//! value of a process-wide epoch; an entry records the epoch at which its load started and the
//! slots it depends on, and is stale as soon as one of them moved past that epoch. Nothing walks
//! the entries: invalidation is O(1) in their number, and a read checks a few atomics.
//!
//! Two names that share a slot only make each other's entries reload once: never stale.

use std::sync::atomic::{AtomicU64, Ordering};

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
/// at, and the slots of its tags and of the entries it read.
#[derive(Debug, Default)]
pub(crate) struct Stamps {
    pub(crate) since: u64,
    /// The first few slots, inline: a read of an entry with few tags follows one pointer.
    head: [u16; HEAD],
    pub(crate) slots: Box<[u16]>,
    /// With a remote tier: what the entry's L2 copy is checked against (see [`Remote`]).
    pub(crate) remote: Box<[Remote]>,
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
        }
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

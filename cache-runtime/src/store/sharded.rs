//! A sharded map with a pluggable eviction policy, for `lru`, `lfu` and `fifo`.
//!
//! Each shard is a read-write lock over a hash table of slot indices, a slab of nodes and the
//! policy's intrusive lists. A key is stored once (in its node); the table holds 4-byte indices.
//!
//! A hit first takes the shard's read lock: most hits need nothing more (see [`Epoch`]: an
//! entry already moved to the front in the current epoch, and every `fifo` hit), and several
//! threads then read one shard at once. The rest (the first hit of an entry in an epoch, a
//! promotion) take the write lock and reorder as an exact policy would.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU8;
use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::RwLock;

use foldhash::quality::FixedState;
use hashbrown::HashTable;

use super::{Evictions, Gone, Listener, Notify, StoreConfig, Weigher};

/// No node: the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

pub(crate) struct Node<K, T> {
    pub(crate) key: K,
    pub(crate) value: T,
    /// The entry's weight, saturated at `u32::MAX` (the shard's totals use this same value).
    pub(crate) weight: u32,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    /// Reads of the entry not yet added to the policy's frequency sketch (`lfu`, saturating at
    /// 15, the sketch's own ceiling): a hit counts here, in the node it has just found, and the
    /// sketch is brought up to date when the entry leaves or the sketch ages. Fits in the
    /// node's padding: no byte more an entry. Atomic, as a hit under the shard's read lock
    /// counts here too (a relaxed load and store: two such hits at once may count one, a
    /// hint lost, as a lossy read buffer would lose it).
    pub(crate) reads: AtomicU8,
    /// The [`Epoch`] in which the policy last moved the node to the front (of `lru`'s list, of
    /// `lfu`'s window or protected segment), or (`lru`) inserted it. Written under the shard's
    /// write lock only.
    pub(crate) stamp: u16,
    /// Which of the policy's lists holds the node, plus one: never zero, so that
    /// `Option<Node>` needs no tag of its own (8 bytes less per slot).
    queue: NonZeroU8,
}

impl<K, T> Node<K, T> {
    /// Which of the policy's lists holds the node ([`UNLINKED`]: none).
    #[inline]
    pub(crate) fn queue(&self) -> u8 {
        self.queue.get() - 1
    }

    /// Marks the node as held by list `q` (a policy's finer state of the same list).
    #[inline]
    pub(crate) fn set_queue(&mut self, q: u8) {
        self.queue = NonZeroU8::new(q.saturating_add(1)).unwrap_or(NonZeroU8::MAX);
    }

    /// The reads held back from the sketch (under the write lock).
    #[inline]
    pub(crate) fn held_reads(&mut self) -> &mut u8 {
        self.reads.get_mut()
    }

    /// Counts a read under the shard's read lock, below `limit` (the policy's: 0 when it
    /// counts no reads yet, else 15, the sketch's ceiling); lossy under a race.
    ///
    /// One condition, on the node's count and a limit the policy keeps as a number: once a
    /// hot entry's count is saturated the branch always goes the same way, whether or not the
    /// shard counts yet. Testing whether the shard counts first, where some shards do and
    /// others not yet, mispredicted on about half of the hits (`hitcost`, BENCHMARKS.md).
    #[inline(always)]
    pub(crate) fn count_shared_read(&self, limit: u8) {
        let r = self.reads.load(Ordering::Relaxed);
        if r < limit {
            self.reads.store(r + 1, Ordering::Relaxed);
        }
    }
}

/// The `lru` stores of at least this capacity (weight) keep recency by [`Epoch`]s; smaller ones
/// are exact (every hit that reorders takes the write lock), so that a small cache, where a
/// user can follow the order by hand, is exactly LRU (per shard: a cache of fewer than 64
/// entries has one). `lfu` keeps epochs at every size ([`Policy::EPOCH_FLOOR`]): nobody follows
/// W-TinyLFU's order by hand, and a small cache's hits then take the read lock too.
pub(crate) const EPOCH_FLOOR: u64 = 1_024;

/// The width of a shard's [`Epoch`] in a store of `total` capacity whose shard holds
/// `capacity`: 1/64 of the shard, at least 1; 0 (exact) below `floor` (a policy's
/// [`Policy::EPOCH_FLOOR`]).
pub(crate) fn epoch_width(total: u64, capacity: u64, floor: u64) -> u64 {
    if total < floor {
        0
    } else {
        (capacity / 64).max(1)
    }
}

/// The epochs in which hits reorder a shard's recency lists (`lru`'s list, `lfu`'s window and
/// protected segment): an epoch ends every 1/64 of the shard's capacity of inserted weight
/// (see [`epoch_width`]). A hit moves
/// its entry to the front only the first time in an epoch (under the write lock), and stamps
/// it with the epoch; its later hits in the same epoch take only the read lock and move
/// nothing. The order is then exact between epochs (an entry last hit in an earlier epoch is
/// behind every entry hit in a later one) and by first hit within one: LRU up to 1/64 of the
/// capacity. Measured with `lfusim` (`lfu`) and `hitratio` (`lru`): see BENCHMARKS.md.
#[derive(Debug)]
pub(crate) struct Epoch {
    /// The current epoch (wrapping: an entry left unmoved for exactly a multiple of 65,536
    /// epochs, 1,024 capacities of inserts, reads as current for that one epoch, and its hits
    /// in it do not move it).
    now: u16,
    /// Weight inserted in this epoch.
    since: u64,
    /// The weight of an epoch; 0: exact (no epochs).
    width: u64,
}

impl Epoch {
    pub(crate) fn new(width: u64) -> Self {
        Self {
            now: 0,
            since: 0,
            width,
        }
    }

    /// `weight` was inserted.
    #[inline]
    pub(crate) fn advance(&mut self, weight: u64) {
        if self.width == 0 {
            return;
        }
        self.since = self.since.saturating_add(weight);
        if self.since >= self.width {
            #[allow(clippy::cast_possible_truncation)]
            let by = (self.since / self.width) as u16;
            self.now = self.now.wrapping_add(by);
            self.since %= self.width;
        }
    }

    /// Whether `n` was moved to the front in this epoch already (never, when exact).
    #[inline(always)]
    pub(crate) fn is_current<K, T>(&self, n: &Node<K, T>) -> bool {
        self.width != 0 && n.stamp == self.now
    }

    /// Stamps node `i` as moved to the front now.
    #[inline]
    pub(crate) fn stamp<K, T>(&self, slab: &mut Slab<K, T>, i: u32) {
        if let Some(n) = slab.get_mut(i) {
            n.stamp = self.now;
        }
    }
}

/// Nodes addressed by `u32` index, with a free list.
pub(crate) struct Slab<K, T> {
    nodes: Vec<Option<Node<K, T>>>,
    free: Vec<u32>,
    /// The most nodes the shard is expected to hold at once (its entries, plus the one being
    /// inserted before the policy evicts): growth by doubling stops there instead of
    /// overshooting it by up to 2x, then doubles again only if the estimate was short.
    expected: usize,
}

impl<K, T> Slab<K, T> {
    fn new(items: usize) -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            expected: items.saturating_add(1),
        }
    }

    /// Stores `node`; `None` when the shard already holds `u32::MAX - 1` nodes.
    fn insert(&mut self, node: Node<K, T>) -> Option<u32> {
        if let Some(i) = self.free.pop()
            && let Some(slot) = self.nodes.get_mut(i as usize)
        {
            *slot = Some(node);
            return Some(i);
        }
        let len = self.nodes.len();
        let i = u32::try_from(len).ok().filter(|&i| i != NIL)?;
        if len == self.nodes.capacity() {
            let doubled = len.saturating_mul(2).max(4);
            let target = if len < self.expected {
                doubled.min(self.expected)
            } else {
                doubled
            };
            self.nodes.reserve_exact(target - len);
        }
        self.nodes.push(Some(node));
        Some(i)
    }

    fn remove(&mut self, i: u32) -> Option<Node<K, T>> {
        let node = self.nodes.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(node)
    }

    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<&Node<K, T>> {
        self.nodes.get(i as usize)?.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: u32) -> Option<&mut Node<K, T>> {
        self.nodes.get_mut(i as usize)?.as_mut()
    }

    /// Every node held.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Node<K, T>> {
        self.nodes.iter().flatten()
    }

    /// Every node held, to change.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Node<K, T>> {
        self.nodes.iter_mut().flatten()
    }
}

/// An intrusive doubly-linked list over a slab: front = most recent.
#[derive(Debug)]
pub(crate) struct List {
    head: u32,
    tail: u32,
    pub(crate) weight: u64,
    pub(crate) len: usize,
    id: u8,
}

impl List {
    pub(crate) const fn new(id: u8) -> Self {
        Self {
            head: NIL,
            tail: NIL,
            weight: 0,
            len: 0,
            id,
        }
    }

    /// The least recent node.
    #[inline]
    pub(crate) fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// The most recently pushed entry.
    pub(crate) fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    pub(crate) fn push_front<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        let old_head = self.head;
        let Some(n) = slab.get_mut(i) else { return };
        n.prev = NIL;
        n.next = old_head;
        n.set_queue(self.id);
        let w = u64::from(n.weight);
        if let Some(h) = slab.get_mut(old_head) {
            h.prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
        self.len += 1;
        self.weight += w;
    }

    pub(crate) fn unlink<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        let Some(n) = slab.get(i) else { return };
        let (prev, next, w) = (n.prev, n.next, u64::from(n.weight));
        match slab.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match slab.get_mut(next) {
            Some(nx) => nx.prev = prev,
            None => self.tail = prev,
        }
        if let Some(n) = slab.get_mut(i) {
            n.prev = NIL;
            n.next = NIL;
            n.set_queue(UNLINKED);
        }
        self.len -= 1;
        self.weight -= w;
    }

    /// Moves `i` (in this list) to the front: only the links change (the list's length and
    /// weight and the node's queue stay), which is all a hit in `lru` or `lfu` pays for here.
    #[inline]
    pub(crate) fn move_to_front<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        let old_head = self.head;
        if old_head == i {
            return;
        }
        let Some(n) = slab.get(i) else { return };
        let (prev, next) = (n.prev, n.next);
        // Not the head: it has a predecessor.
        if let Some(p) = slab.get_mut(prev) {
            p.next = next;
        }
        match slab.get_mut(next) {
            Some(nx) => nx.prev = prev,
            None => self.tail = prev,
        }
        if let Some(h) = slab.get_mut(old_head) {
            h.prev = i;
        }
        if let Some(n) = slab.get_mut(i) {
            n.prev = NIL;
            n.next = old_head;
        }
        self.head = i;
    }
}

/// An eviction policy over a shard's slab.
pub(crate) trait Policy: Send + Sync + 'static {
    /// A policy for a shard holding up to `capacity` weight and about `items` entries, whose
    /// recency epochs are `epoch_width` of inserted weight (0: exact; see [`Epoch`]).
    fn new(capacity: u64, items: usize, epoch_width: u64) -> Self;
    /// The capacity from which the store has recency epochs (see [`epoch_width`]).
    const EPOCH_FLOOR: u64 = EPOCH_FLOOR;
    /// A hit on `n` (linked) under the shard's read lock: records it and returns `true` if the
    /// policy needs nothing more (no reordering); else `false`, and the hit is retried under
    /// the write lock ([`on_hit`](Self::on_hit)).
    fn on_shared_hit<K, T>(&self, n: &Node<K, T>) -> bool;
    /// Whether [`on_shared_hit`](Self::on_shared_hit) can ever return `true` with epochs of
    /// `epoch_width` (0: exact): if not, hits go straight to the write lock (one lookup, not
    /// two).
    fn shares_hits(epoch_width: u64) -> bool;
    /// `i` (linked) was read. Nodes store no hash: a policy that needs one rehashes keys with
    /// `hasher` (off the hit's own path).
    fn on_hit<K: Hash, T>(&mut self, slab: &mut Slab<K, T>, i: u32, hasher: &FixedState);
    /// `i` (unlinked, new), whose key hashes to `hash`, was inserted; link it, and push the nodes
    /// to evict (unlinked) on `out`. `out` may receive `i` itself (not admitted). Nodes store no
    /// hash: a policy that needs another node's rehashes its key with `hasher`.
    fn on_insert<K: Hash, T>(
        &mut self,
        slab: &mut Slab<K, T>,
        i: u32,
        hash: u64,
        hasher: &FixedState,
        out: &mut Vec<u32>,
    );
    /// `i`, whose key hashes to `hash`, is being removed: unlink it.
    fn on_remove<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, hash: u64);
    /// How many nodes the policy's lists hold.
    #[cfg(test)]
    fn held(&self) -> usize;
}

/// Aligned to 128 bytes (two cache lines, as the adjacent-line prefetcher pairs them): the
/// lock word of `RwLock<Shard>`, which every hit writes, then has its lines to itself, and the
/// shard's fields that a hit only reads (the table, the slab, the epoch) are not invalidated in
/// other cores' caches by another thread's lock and unlock.
#[repr(align(128))]
pub(crate) struct Shard<K, T, P> {
    /// Nodes store no hash (8 bytes an entry): the table's resize and removals rehash the key.
    hasher: FixedState,
    table: HashTable<u32>,
    slab: Slab<K, T>,
    policy: P,
    capacity: u64,
    items: usize,
    epoch_width: u64,
    weight: u64,
    victims: Vec<u32>,
}

impl<K: Hash + Eq, T: Clone, P: Policy> Shard<K, T, P> {
    /// A shard that is the whole store.
    #[cfg(test)]
    pub(crate) fn new(capacity: u64, items: usize, hasher: FixedState) -> Self {
        Self::with_epochs(
            capacity,
            items,
            hasher,
            epoch_width(capacity, capacity, P::EPOCH_FLOOR),
        )
    }

    pub(crate) fn with_epochs(
        capacity: u64,
        items: usize,
        hasher: FixedState,
        epoch_width: u64,
    ) -> Self {
        Self {
            hasher,
            table: HashTable::new(),
            slab: Slab::new(items),
            policy: P::new(capacity, items, epoch_width),
            capacity,
            items,
            epoch_width,
            weight: 0,
            victims: Vec::new(),
        }
    }

    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slab = &self.slab;
        self.table
            .find(hash, |&i| {
                slab.get(i).is_some_and(|n| n.key.borrow() == key)
            })
            .copied()
    }

    /// A lookup under the read lock: the hit's value (to copy while the lock is held) when the
    /// policy recorded it there, [`Shared::Miss`], or [`Shared::Locked`] (retry with
    /// [`get`](Self::get)). A reference, so that the hit path holds it in a register rather
    /// than moving a copy of the value through an enum.
    #[inline(always)]
    pub(crate) fn get_shared<Q>(&self, hash: u64, key: &Q) -> Shared<&T>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(n) = self.find(hash, key).and_then(|i| self.slab.get(i)) else {
            return Shared::Miss;
        };
        if self.policy.on_shared_hit(n) {
            Shared::Hit(&n.value)
        } else {
            Shared::Locked
        }
    }

    /// A lookup under the write lock.
    pub(crate) fn get<Q>(&mut self, hash: u64, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.find(hash, key)?;
        self.policy.on_hit(&mut self.slab, i, &self.hasher);
        self.slab.get(i).map(|n| n.value.clone())
    }

    /// Removes node `i` from table, policy and slab.
    fn take(&mut self, i: u32) -> Option<Node<K, T>> {
        let hash = self.hasher.hash_one(&self.slab.get(i)?.key);
        if let Ok(e) = self.table.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        if self.slab.get(i)?.queue() != UNLINKED {
            self.policy.on_remove(&mut self.slab, i, hash);
        }
        let node = self.slab.remove(i)?;
        self.weight -= u64::from(node.weight);
        Some(node)
    }

    /// Inserts or replaces; pushes evicted entries on `evicted`.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: T,
        weight: u64,
        listener: &Listener<T>,
        evicted: &mut Evictions<K, T>,
    ) {
        if let Some(old) = self.find(hash, &key)
            && let Some(n) = self.take(old)
        {
            // A replacement is not an eviction (no listener), but it leaves with the evictions,
            // to be dropped outside the lock.
            evicted.push(n.key, n.value, Gone::Replaced);
        }
        if weight > self.capacity {
            (listener.0)(&value);
            evicted.push(key, value, Gone::Evicted);
            return;
        }
        let weight = u32::try_from(weight).unwrap_or(u32::MAX);
        let node = Node {
            key,
            value,
            weight,
            prev: NIL,
            next: NIL,
            reads: AtomicU8::new(0),
            stamp: 0,
            queue: NonZeroU8::MAX, // UNLINKED
        };
        let Some(i) = self.slab.insert(node) else {
            return;
        };
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            slab.get(j).map_or(0, |n| hasher.hash_one(&n.key))
        });
        self.weight += u64::from(weight);
        // A buffer kept by the shard: evicting allocates nothing once it has grown.
        let mut victims = std::mem::take(&mut self.victims);
        self.policy
            .on_insert(&mut self.slab, i, hash, &self.hasher, &mut victims);
        for v in victims.drain(..) {
            // The policy has unlinked it already.
            if let Some(n) = self.take(v) {
                (listener.0)(&n.value);
                evicted.push(n.key, n.value, Gone::Evicted);
            }
        }
        self.victims = victims;
    }

    pub(crate) fn remove_if<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        pred: impl FnOnce(&T) -> bool,
    ) -> Option<(K, T)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.find(hash, key)?;
        if !pred(&self.slab.get(i)?.value) {
            return None;
        }
        self.take(i).map(|n| (n.key, n.value))
    }

    /// Removes the entries `keep` rejects, returning them (to be dropped outside the lock).
    fn retain(&mut self, keep: &impl Fn(&K, &T) -> bool) -> Vec<Node<K, T>> {
        let doomed: Vec<u32> = self
            .table
            .iter()
            .copied()
            .filter(|&i| self.slab.get(i).is_some_and(|n| !keep(&n.key, &n.value)))
            .collect();
        doomed.into_iter().filter_map(|i| self.take(i)).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    pub(crate) fn policy(&self) -> &P {
        &self.policy
    }

    #[cfg(test)]
    pub(crate) fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// The reads node `key` holds back from the policy's sketch.
    #[cfg(test)]
    pub(crate) fn held_reads(&self, hash: u64, key: &K) -> Option<u8> {
        self.find(hash, key)
            .and_then(|i| self.slab.get(i))
            .map(|n| n.reads.load(Ordering::Relaxed))
    }

    /// Every entry, moved out (of a shard taken out of the store).
    fn into_entries(mut self) -> Vec<(K, T)> {
        let slots: Vec<u32> = self.table.iter().copied().collect();
        slots
            .into_iter()
            .filter_map(|i| self.slab.remove(i))
            .map(|n| (n.key, n.value))
            .collect()
    }

    /// Copies of every entry (for iteration outside the lock).
    fn copy_entries(&self) -> Vec<(K, T)>
    where
        K: Clone,
    {
        self.table
            .iter()
            .filter_map(|&i| self.slab.get(i))
            .map(|n| (n.key.clone(), n.value.clone()))
            .collect()
    }
}

/// Iterates over copies of a sharded store's entries, one shard at a time: a shard's lock is
/// held while its entries are copied, never while the caller handles them.
pub(crate) struct ShardedIter<'a, K, T, P> {
    shards: &'a [RwLock<Shard<K, T, P>>],
    next: usize,
    copied: std::vec::IntoIter<(K, T)>,
}

impl<K: Hash + Eq + Clone, T: Clone, P: Policy> Iterator for ShardedIter<'_, K, T, P> {
    type Item = (K, T);

    fn next(&mut self) -> Option<(K, T)> {
        loop {
            if let Some(e) = self.copied.next() {
                return Some(e);
            }
            let shard = self.shards.get(self.next)?;
            self.next += 1;
            let copied = shard.read().copy_entries();
            self.copied = copied.into_iter();
        }
    }
}

/// What a lookup under a shard's read lock found.
pub(crate) enum Shared<T> {
    /// A hit, recorded.
    Hit(T),
    /// No entry.
    Miss,
    /// An entry whose hit needs the write lock.
    Locked,
}

/// The `queue` of a node that is in no list.
pub(crate) const UNLINKED: u8 = u8::MAX - 1;

pub(crate) struct Sharded<K, T, P> {
    shards: Box<[RwLock<Shard<K, T, P>>]>,
    mask: u64,
    hasher: FixedState,
    weigher: Weigher<K, T>,
    listener: Listener<T>,
    capacity: u64,
    removal: Option<Notify<K, T>>,
    /// Whether a hit tries the read lock first (see [`Policy::shares_hits`]).
    shares_hits: bool,
}

impl<K, T, P> Sharded<K, T, P>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    P: Policy,
{
    pub(crate) fn new(cfg: StoreConfig<K, T>) -> Self {
        let n = super::shard_count(cfg.shards, cfg.estimated_items);
        let n64 = n as u64;
        let per_shard = cfg.capacity.div_ceil(n64).max(1);
        let items = cfg.estimated_items.div_ceil(n).max(1);
        let floor = if cfg.exact { u64::MAX } else { P::EPOCH_FLOOR };
        let width = epoch_width(cfg.capacity, per_shard, floor);
        Self {
            shards: (0..n)
                .map(|_| {
                    RwLock::new(Shard::with_epochs(
                        per_shard,
                        items,
                        cfg.hasher.clone(),
                        width,
                    ))
                })
                .collect(),
            mask: n64 - 1,
            hasher: cfg.hasher,
            weigher: cfg.weigher,
            listener: cfg.listener,
            capacity: per_shard.saturating_mul(n64),
            removal: cfg.removal.map(|(n, _)| n),
            shares_hits: P::shares_hits(width),
        }
    }

    /// The removal listener, for a list of removed entries.
    pub(crate) fn notify(&self) -> Option<Notify<K, T>> {
        self.removal.clone()
    }

    #[inline]
    fn lock_of(&self, hash: u64) -> &RwLock<Shard<K, T, P>> {
        // Middle bits: hashbrown uses the low bits for the bucket and the top 7 for the tag.
        #[allow(clippy::cast_possible_truncation)]
        let i = ((hash >> 32) & self.mask) as usize;
        &self.shards[i]
    }

    /// The shard of `hash`, locked for writing.
    #[inline]
    fn shard(&self, hash: u64) -> parking_lot::RwLockWriteGuard<'_, Shard<K, T, P>> {
        self.lock_of(hash).write()
    }

    /// A lookup: under the shard's read lock when the policy can record the hit there, else
    /// (out of line) under its write lock.
    #[inline(always)]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_then(key, |v| Some(Some(v.clone())), |v| v)
    }

    /// [`get`](Self::get), answered by `hit` (offered the entry under the read lock) or by
    /// `then` (handed a copy, or `None`): see [`Store::get_then`](super::Store::get_then).
    #[inline(always)]
    pub(crate) fn get_then<Q, R>(
        &self,
        key: &Q,
        hit: impl FnOnce(&T) -> Option<R>,
        then: impl FnOnce(Option<T>) -> R,
    ) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        if self.shares_hits {
            let shard = self.lock_of(hash).read();
            match shard.get_shared(hash, key) {
                Shared::Hit(v) => {
                    if let Some(r) = hit(v) {
                        drop(shard);
                        return r;
                    }
                    let v = v.clone();
                    drop(shard);
                    return super::then_out_of_line(then, Some(v));
                }
                Shared::Miss => {
                    drop(shard);
                    return super::then_out_of_line(then, None);
                }
                Shared::Locked => {}
            }
            // The read guard is dropped at the end of this block, before the write lock is
            // taken.
        }
        super::then_out_of_line(then, self.get_locked(hash, key))
    }

    /// A lookup under the write lock: a hit that the policy records there.
    #[inline(never)]
    fn get_locked<Q>(&self, hash: u64, key: &Q) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(hash).get(hash, key)
    }

    pub(crate) fn insert(&self, key: K, value: T) -> Evictions<K, T> {
        let hash = self.hasher.hash_one(&key);
        let weight = self.weigher.weigh(&key, &value);
        let mut evicted = Evictions::new(self.notify());
        self.shard(hash)
            .insert(hash, key, value, weight, &self.listener, &mut evicted);
        evicted
    }

    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<(K, T)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if(key, |_| true)
    }

    pub(crate) fn remove_if<Q>(&self, key: &Q, pred: impl FnOnce(&T) -> bool) -> Option<(K, T)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.shard(hash).remove_if(hash, key, pred)
    }

    pub(crate) fn retain(
        &self,
        keep: impl Fn(&K, &T) -> bool,
        why: Gone,
    ) -> (u64, Evictions<K, T>) {
        let mut removed = 0;
        let mut out = Evictions::new(self.notify());
        for m in &*self.shards {
            let doomed = m.write().retain(&keep);
            // Dropped (or told) after the shard's lock is released.
            removed += doomed.len() as u64;
            if self.removal.is_some() {
                for n in doomed {
                    out.push(n.key, n.value, why);
                }
            }
        }
        (removed, out)
    }

    pub(crate) fn clear(&self) -> Evictions<K, T> {
        let mut out = Evictions::new(self.notify());
        for m in &*self.shards {
            // Take the contents out so that their destructors run after the lock is released.
            let old = {
                let mut s = m.write();
                let fresh =
                    Shard::with_epochs(s.capacity, s.items, s.hasher.clone(), s.epoch_width);
                std::mem::replace(&mut *s, fresh)
            };
            if self.removal.is_some() {
                for (k, v) in old.into_entries() {
                    out.push(k, v, Gone::Explicit);
                }
            } else {
                drop(old);
            }
        }
        out
    }

    /// Copies of the entries, a shard at a time (see [`ShardedIter`]).
    pub(crate) fn iter(&self) -> ShardedIter<'_, K, T, P>
    where
        K: Clone,
    {
        ShardedIter {
            shards: &self.shards,
            next: 0,
            copied: Vec::new().into_iter(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|m| m.read().len()).sum()
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn weight(&self) -> u64 {
        self.shards.iter().map(|m| m.read().weight).sum()
    }
}

#[cfg(test)]
mod thread_tests;

#[cfg(test)]
mod layout {
    use super::Node;

    #[test]
    fn a_slot_has_no_tag_of_its_own() {
        // A u64 key and a 32-byte stored value: 8 + 32 + weight 4 + links 8 + reads 1 + queue 1
        // + stamp 2: 56; no stored hash, and `Option` uses the queue's niche instead of adding 8
        // bytes.
        assert_eq!(std::mem::size_of::<Node<u64, [u64; 4]>>(), 56);
        assert_eq!(std::mem::size_of::<Option<Node<u64, [u64; 4]>>>(), 56);
    }
}

#[cfg(test)]
mod epochs {
    use super::{EPOCH_FLOOR, Epoch, epoch_width};

    #[test]
    fn a_small_store_is_exact_and_a_large_one_has_epochs_of_a_64th_of_a_shard() {
        let f = EPOCH_FLOOR;
        assert_eq!(epoch_width(f - 1, f - 1, f), 0, "exact");
        assert_eq!(epoch_width(f, f, f), f / 64);
        // Many small shards (many cores): epochs of one insert at least.
        assert_eq!(epoch_width(10_000, 40, f), 1);
        assert_eq!(epoch_width(1 << 20, 1 << 17, f), 2_048);
        // Without a floor (`lfu`): epochs at every size.
        assert_eq!(epoch_width(3, 3, 0), 1);
        assert_eq!(epoch_width(100, 100, 0), 1);
    }

    #[test]
    fn an_epoch_ends_every_width_of_inserted_weight() {
        let mut e = Epoch::new(16);
        for _ in 0..15 {
            e.advance(1);
        }
        assert_eq!(e.now, 0);
        e.advance(1);
        assert_eq!(e.now, 1);
        // A heavy entry spans several epochs at once; the rest carries over.
        e.advance(40);
        assert_eq!((e.now, e.since), (3, 8));
        // Exact: never advances.
        let mut exact = Epoch::new(0);
        exact.advance(1_000);
        assert_eq!(exact.now, 0);
    }
}

//! The eviction policies of the sharded store: LRU (ordered by epochs in a store of 1,024
//! entries or more, exact in a smaller one), FIFO, and W-TinyLFU.
//!
//! Each works on one shard's slab through intrusive lists; `capacity` is the shard's total weight.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering;

use foldhash::quality::FixedState;

use super::sharded::{Epoch, List, Node, Policy, Slab, UNLINKED};

/// One list, evicted from the back: with `REORDER`, a hit moves its entry to the front (LRU,
/// by [`Epoch`]s in a large shard, exact in a small one); without, hits change nothing (FIFO).
pub(crate) struct OneList<const REORDER: bool> {
    list: List,
    capacity: u64,
    epoch: Epoch,
}

/// Least-recently-used: a hit moves its entry to the front (once an epoch), the back is
/// evicted.
pub(crate) type Lru = OneList<true>;

/// First-in, first-out: hits change nothing, the oldest insert is evicted.
pub(crate) type Fifo = OneList<false>;

impl<const REORDER: bool> Policy for OneList<REORDER> {
    fn new(capacity: u64, _items: usize, epoch_width: u64) -> Self {
        Self {
            list: List::new(0),
            capacity,
            epoch: Epoch::new(epoch_width),
        }
    }

    #[inline(always)]
    fn on_shared_hit<K, T>(&self, n: &Node<K, T>) -> bool {
        !REORDER || self.epoch.is_current(n)
    }

    fn shares_hits(epoch_width: u64) -> bool {
        !REORDER || epoch_width > 0
    }

    fn on_hit<K: Hash, T>(&mut self, slab: &mut Slab<K, T>, i: u32, _hasher: &FixedState) {
        // What the read lock could not record (never, for FIFO): a move to the front.
        if !slab.get(i).is_some_and(|n| self.on_shared_hit(n)) {
            self.list.move_to_front(slab, i);
            self.epoch.stamp(slab, i);
        }
    }

    fn on_insert<K: Hash, T>(
        &mut self,
        slab: &mut Slab<K, T>,
        i: u32,
        _hash: u64,
        _hasher: &FixedState,
        out: &mut Vec<u32>,
    ) {
        if REORDER {
            self.epoch
                .advance(slab.get(i).map_or(0, |n| u64::from(n.weight)));
        }
        self.list.push_front(slab, i);
        self.epoch.stamp(slab, i);
        evict_back(&mut self.list, slab, self.capacity, out);
    }

    fn on_remove<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, _hash: u64) {
        self.list.unlink(slab, i);
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.list.len
    }
}

fn evict_back<K, T>(list: &mut List, slab: &mut Slab<K, T>, capacity: u64, out: &mut Vec<u32>) {
    while list.weight > capacity {
        let Some(v) = list.back() else { break };
        list.unlink(slab, v);
        out.push(v);
    }
}

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;
/// In the window, and hit since it entered it (the climber counts a window entry's first hit
/// only).
const WINDOW_HIT: u8 = 3;

/// Window TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache Admission
/// Policy", ACM ToS 2017), the design of Caffeine:
///
/// - new entries enter a small LRU *window* (1% of the capacity at first, rounded down: none
///   below 100 entries; then sized by the [`Climber`]);
/// - an entry pushed out of the window joins the main area, a segmented LRU (*probation* 20%,
///   *protected* 80%), as a *candidate*; when the whole cache is over capacity, the newest
///   candidate meets probation's LRU entry, the *victim*, and the one the frequency sketch
///   estimates less popular is evicted (ties evict the candidate), as Caffeine's
///   `evictFromMain` does;
/// - a hit in probation promotes to protected (demoting protected's LRU back to probation);
/// - the sketch counts every access in 4-bit counters and halves them all every `10 x items`
///   increments, so popularity decays (aging). It starts counting when the shard is half full,
///   and then counts each entry already held once, as if it had seen their inserts.
pub(crate) struct Lfu {
    window: List,
    probation: List,
    protected: List,
    window_max: u64,
    main_max: u64,
    protected_max: u64,
    pub(crate) sketch: Sketch,
    climber: Climber,
    /// The recency of the window and of protected: an entry there moves to the front on its
    /// first hit in an epoch; its later hits in the epoch take only the shard's read lock.
    epoch: Epoch,
}

/// Sizes the window by hit density, as Caffeine's climber does for large caches: every sample
/// of requests (10 x the capacity, and at least [`MIN_SAMPLE`]), it compares what a slot of the
/// window earned with what a slot at the main area's margin (probation) earned, and moves
/// capacity towards the richer one, by `GAIN x ln(ratio)` of the capacity (at most
/// [`MAX_STEP`] of it). Both densities are measured in the same sample, so a workload's phases
/// cancel out of the ratio, and the step shrinks as the two balance.
///
/// Two choices make the densities marginal rather than average ones (the average ones grow the
/// window too far on skewed traffic, whose hottest keys live in the window): a window entry's
/// hits count once (its first since it entered; a key the window keeps hot would stay in the
/// main area as well), and the main area's side is probation, the segment a growing window
/// takes capacity from. Each count starts at 1, so a closed window (0) reads one hit: it opens
/// when probation earns less than one hit a slot a sample.
///
/// Measured with `lfusim` over 16 hasher seeds against the reactive climber it replaces (hill
/// climbing on the sample's hit ratio, with a dead zone): on the 13 shared real traces `lfu`'s
/// mean gap to optimal fell from 4.58 to 4.28 points (with the sketch changes of the same
/// change), mostly on recency-heavy traces (`cache2k-orm-busy` 5.2 to 4.4, `web07` 9.9 to 9.0,
/// `lirs-sprite` 12.2 to 11.6), and the Zipf traces kept their gap (9.14 to 9.11). The reactive
/// climber judged a move by the change of the hit ratio between samples, which a workload's
/// phases swamp, and on a small trace it had too few samples to move at all.
struct Climber {
    requests: u64,
    /// First hits of window entries in this sample.
    window_hits: u64,
    /// Hits in probation in this sample.
    probation_hits: u64,
    sample: u64,
}

impl Climber {
    fn new(capacity: u64) -> Self {
        Self {
            requests: 0,
            window_hits: 0,
            probation_hits: 0,
            sample: capacity.saturating_mul(10).max(MIN_SAMPLE),
        }
    }

    /// Records a request (a hit in `queue`, or a miss); returns whether the sample is complete.
    /// Branches rather than two flag additions: a hit is most often in protected, which only
    /// counts the request.
    #[inline]
    fn record(&mut self, queue: Option<u8>) -> bool {
        self.requests += 1;
        match queue {
            Some(WINDOW) => self.window_hits += 1,
            Some(PROBATION) => self.probation_hits += 1,
            _ => {}
        }
        self.requests >= self.sample
    }

    /// The end of a sample: how much to grow (positive) or shrink (negative) the window, given
    /// the sizes of the window and of probation, and the capacity.
    #[cold]
    #[inline(never)]
    fn judge(&mut self, window: u64, probation: u64, capacity: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let (window_density, probation_density, capacity) = (
            (self.window_hits + 1) as f64 / window.max(1) as f64,
            (self.probation_hits + 1) as f64 / probation.max(1) as f64,
            capacity as f64,
        );
        self.requests = 0;
        self.window_hits = 0;
        self.probation_hits = 0;
        let error = (window_density / probation_density).ln();
        error.signum() * (error.abs() * GAIN * capacity).min(MAX_STEP * capacity)
    }
}

/// The smallest sample the climber judges by (requests). The hill climber it replaced needed
/// 5,000 (a change of the hit ratio between samples is noise below that); the densities are
/// compared within one sample, and a small cache on a short trace then still climbs: measured
/// with `lfusim` (4 seeds), 500 against 5,000 took the mean gap to optimal from 4.26 to 4.24
/// points on the shared real traces and from 5.26 to 5.18 on 7 traces of Caffeine's simulator
/// that this project does not ship (its points more than 3 below the better peer from 4 to 2),
/// the Zipf traces unchanged.
const MIN_SAMPLE: u64 = 500;
/// The climber's step per unit of log density ratio, as a share of the capacity. Measured with
/// `lfusim` (16 seeds): 0.03 gave the same mean gap on the real traces (4.28) and a slightly
/// larger one on the Zipf traces (9.12 against 9.11).
const GAIN: f64 = 0.02;
/// The largest step of the climber, as a share of the capacity (Caffeine's).
const MAX_STEP: f64 = 0.3;

impl Lfu {
    fn list(&mut self, queue: u8) -> Option<&mut List> {
        match queue {
            WINDOW | WINDOW_HIT => Some(&mut self.window),
            PROBATION => Some(&mut self.probation),
            PROTECTED => Some(&mut self.protected),
            _ => None,
        }
    }

    fn main_weight(&self) -> u64 {
        self.probation.weight + self.protected.weight
    }

    /// The hash of node `i`'s key (nodes store none; the sketch is indexed by the same hash as
    /// the table).
    fn hash_of<K: Hash, T>(slab: &Slab<K, T>, hasher: &FixedState, i: u32) -> u64 {
        slab.get(i).map_or(0, |n| hasher.hash_one(&n.key))
    }

    /// The end of a climber's sample: moves the window by its judgement.
    #[cold]
    #[inline(never)]
    fn climb(&mut self) {
        let capacity = self.window_max + self.main_max;
        let amount = self.climber.judge(
            self.window_max,
            self.main_max - self.protected_max,
            capacity,
        );
        self.resize_window(amount);
    }

    /// Moves the boundary between the window and the main area by `amount` (weight; positive
    /// grows the window), keeping the main area at least 1; the window may close (0), and the
    /// policy is then TinyLFU with a segmented main area. Entries move lazily: the next insert
    /// moves the window's overflow to the main area, and evicts only what the whole holds over
    /// the capacity.
    fn resize_window(&mut self, amount: f64) {
        let capacity = self.window_max + self.main_max;
        if capacity < 2 {
            return;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let by = amount.abs().round() as u64;
        let window = if amount >= 0.0 {
            self.window_max.saturating_add(by)
        } else {
            self.window_max.saturating_sub(by)
        };
        self.window_max = window.min(capacity - 1);
        self.main_max = capacity - self.window_max;
        self.protected_max = self.main_max - self.main_max / 5;
    }

    /// Keeps protected within its share by demoting its LRU entries to probation.
    fn balance_protected<K, T>(&mut self, slab: &mut Slab<K, T>) {
        while self.protected.weight > self.protected_max {
            let Some(d) = self.protected.back() else {
                break;
            };
            self.protected.unlink(slab, d);
            self.probation.push_front(slab, d);
        }
    }

    /// Moves the window's overflow to the main area, then, while the whole is over the
    /// capacity, evicts the less frequent of the newest candidate and the main area's LRU
    /// victim (Caffeine's `evictFromMain`). Candidates left over after the comparisons stay in
    /// probation: they fitted.
    fn evict<K: Hash, T>(
        &mut self,
        slab: &mut Slab<K, T>,
        hasher: &FixedState,
        out: &mut Vec<u32>,
    ) {
        let mut candidates = 0usize;
        while self.window.weight > self.window_max {
            let Some(c) = self.window.back() else { break };
            self.window.unlink(slab, c);
            self.probation.push_front(slab, c);
            candidates += 1;
        }
        let capacity = self.window_max + self.main_max;
        while self.window.weight + self.main_weight() > capacity {
            let victim = self.probation.back().or_else(|| self.protected.back());
            let candidate = if candidates > 0 {
                self.probation.front()
            } else {
                self.window.back()
            };
            let loser = match (victim, candidate) {
                (Some(v), Some(c)) if v != c => {
                    candidates = candidates.saturating_sub(1);
                    if self.frequency(slab, hasher, c) > self.frequency(slab, hasher, v) {
                        v
                    } else {
                        c
                    }
                }
                (Some(v), _) => v,
                (None, Some(c)) => c,
                (None, None) => break,
            };
            if let Some(l) = self.list(slab.get(loser).map_or(u8::MAX, |n| n.queue())) {
                l.unlink(slab, loser);
            }
            // Its reads go into the sketch: a key that comes back keeps its history (its key
            // is rehashed only then: most losers were never read).
            if slab
                .get(loser)
                .is_some_and(|n| n.reads.load(Ordering::Relaxed) > 0)
            {
                let hash = Self::hash_of(slab, hasher, loser);
                self.flush_reads(slab, loser, hash);
            }
            out.push(loser);
        }
    }

    /// Allocates the sketch's counters and counts each entry held once (the entries inserted
    /// before the counters existed). Without that count, the first half of a cache's entries
    /// read 0 against every later candidate's 1 and leave at the first comparisons, whatever
    /// their use: measured with `lfusim` over 16 hasher seeds, `lirs-gli` at 723 entries went
    /// from 9.6 points below raw `quick_cache` to 0.4 below, `lirs-ps` at 1,542 from 9.1 to 0.5.
    fn start_counting<K: Hash, T>(&mut self, slab: &mut Slab<K, T>, hasher: &FixedState) {
        self.sketch.allocate();
        let mut due = false;
        for n in slab.iter().filter(|n| n.queue() != UNLINKED) {
            due |= self.sketch.increment(hasher.hash_one(&n.key));
        }
        if due {
            self.age(slab, hasher);
        }
    }

    /// The estimated recent frequency of node `i`'s key: the sketch's count and the reads the
    /// node holds back (0..=15).
    fn frequency<K: Hash, T>(&self, slab: &Slab<K, T>, hasher: &FixedState, i: u32) -> u8 {
        let reads = slab.get(i).map_or(0, |n| n.reads.load(Ordering::Relaxed));
        self.sketch
            .frequency(Self::hash_of(slab, hasher, i))
            .saturating_add(reads)
            .min(15)
    }

    /// Adds the reads node `i` holds back to the sketch.
    fn flush_reads<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, hash: u64) {
        if let Some(n) = slab.get_mut(i)
            && *n.held_reads() > 0
        {
            self.sketch.add(hash, *n.held_reads());
            *n.held_reads() = 0;
        }
    }

    /// Halves the sketch's counters (aging), after adding to them the reads every node holds
    /// back, so that they age as if each had been counted when it happened.
    #[cold]
    #[inline(never)]
    fn age<K: Hash, T>(&mut self, slab: &mut Slab<K, T>, hasher: &FixedState) {
        for n in slab.iter_mut() {
            let reads = std::mem::take(n.held_reads());
            if reads > 0 {
                self.sketch.add(hasher.hash_one(&n.key), reads);
            }
        }
        self.sketch.age();
    }
}

impl Policy for Lfu {
    /// Epochs at every size: a small `lfu` cache's hits take the read lock too. (By the
    /// 16-seed model, `lfusim base sfloor=0`, this moves its mean gap to optimal on the real
    /// traces from 4.293 to 4.289 points; BENCHMARKS.md, issue 18.)
    const EPOCH_FLOOR: u64 = 0;

    fn new(capacity: u64, items: usize, epoch_width: u64) -> Self {
        let window_max = capacity / 100;
        let main_max = capacity - window_max;
        Self {
            window: List::new(WINDOW),
            probation: List::new(PROBATION),
            protected: List::new(PROTECTED),
            window_max,
            main_max,
            protected_max: main_max - main_max / 5,
            sketch: Sketch::new(items),
            climber: Climber::new(capacity),
            epoch: Epoch::new(epoch_width),
        }
    }

    /// A protected entry, or a window entry hit before (the climber counts a window entry's
    /// first hit), already moved to the front in this epoch: the hit counts in the node only
    /// (not towards the sketch's aging or the climber's sample, which move under the write
    /// lock: measured in BENCHMARKS.md, issue 18).
    #[inline(always)]
    fn on_shared_hit<K, T>(&self, n: &Node<K, T>) -> bool {
        if !matches!(n.queue(), PROTECTED | WINDOW_HIT) || !self.epoch.is_current(n) {
            return false;
        }
        n.count_shared_read(self.sketch.read_limit());
        true
    }

    fn shares_hits(epoch_width: u64) -> bool {
        epoch_width > 0
    }

    #[inline]
    fn on_hit<K: Hash, T>(&mut self, slab: &mut Slab<K, T>, i: u32, hasher: &FixedState) {
        let Some(n) = slab.get_mut(i) else { return };
        // Moved in this epoch already (by a hit that took the lock first): recorded as under
        // the read lock.
        if self.on_shared_hit(n) {
            return;
        }
        let queue = Some(n.queue());
        // The read is counted in the node (already in cache): the sketch's four counters, each
        // in a line of its own, are brought up to date when the entry leaves or the sketch ages.
        // Until then a comparison adds the node's reads to its sketch count. Reads past 15 are
        // not counted, as the sketch's saturated counters do not count them, and none before
        // the counters exist (the sketch's read limit is then 0).
        if *n.held_reads() < self.sketch.read_limit() {
            *n.held_reads() += 1;
            if self.sketch.count_read() {
                self.age(slab, hasher);
            }
        }
        if self.climber.record(queue) {
            self.climb();
        }
        match queue {
            Some(WINDOW | WINDOW_HIT) => {
                self.window.move_to_front(slab, i);
                if let Some(n) = slab.get_mut(i) {
                    n.set_queue(WINDOW_HIT);
                }
                self.epoch.stamp(slab, i);
            }
            Some(PROBATION) => {
                self.probation.unlink(slab, i);
                self.protected.push_front(slab, i);
                self.epoch.stamp(slab, i);
                self.balance_protected(slab);
            }
            Some(PROTECTED) => {
                self.protected.move_to_front(slab, i);
                self.epoch.stamp(slab, i);
            }
            _ => {}
        }
    }

    fn on_insert<K: Hash, T>(
        &mut self,
        slab: &mut Slab<K, T>,
        i: u32,
        hash: u64,
        hasher: &FixedState,
        out: &mut Vec<u32>,
    ) {
        self.epoch
            .advance(slab.get(i).map_or(0, |n| u64::from(n.weight)));
        // The sketch starts counting when the shard is half full (as Caffeine's and moka's do):
        // below that nothing is evicted, so nothing needs a frequency, and a cache that never
        // fills never pays for the counters.
        if !self.sketch.is_allocated()
            && 2 * (self.window.weight + self.main_weight()) >= self.window_max + self.main_max
        {
            self.start_counting(slab, hasher);
        }
        if self.sketch.increment(hash) {
            self.age(slab, hasher);
        }
        // An insert follows a miss (a demand-filled cache).
        if self.climber.record(None) {
            self.climb();
        }
        self.window.push_front(slab, i);
        self.evict(slab, hasher, out);
        self.balance_protected(slab);
    }

    fn on_remove<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, hash: u64) {
        let queue = slab.get(i).map_or(u8::MAX, |n| n.queue());
        if let Some(l) = self.list(queue) {
            l.unlink(slab, i);
        }
        self.flush_reads(slab, i, hash);
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.window.len + self.probation.len + self.protected.len
    }
}

/// Increments per expected entry between two halvings of the sketch: 10, as Caffeine's and
/// moka's.
///
/// Measured with the `hitratio` bin's seed study (`--seeds 8`: the mean hit ratio over 8 hasher
/// seeds per point), 16 moved `lfu` below moka at 34 instead of 36 of 128 points (33.6 against 34.3 per
/// seed), with a worst mean deficit of 2.2 instead of 2.0 points, and lowered the summed gap to
/// optimal by 12 points (0.1 a point; `lirs-sprite` lost 3 where `lirs-gli` gained 3): within
/// the seed-to-seed spread for the target, so the literature's value stays.
const AGING: u64 = 10;

/// Sketch columns per expected entry: 4 (two counters a byte, so 8 bytes an entry over the four
/// rows). Measured with the `hitratio` bin: from 1 to 4 columns an entry (aging still every
/// `AGING` increments an entry), `lfu` fell below moka at 48 instead of 77 of 128 (trace, size)
/// points, and its summed gap to optimal over the 16 traces fell from 107.6 to 97.4 points.
pub(crate) const SKETCH_SCALE: usize = 4;

/// The narrowest sketch, in entries: a shard sized for fewer still gets `512 x SKETCH_SCALE`
/// columns a row (4 KiB of counters). A small cache's admission compares frequencies of keys
/// that were counted over `AGING x AGING_FLOOR` or more increments, far more keys than it holds;
/// a wider sketch counts them with fewer collisions.
/// Measured with `lfusim` over 16 hasher seeds against the floor of 128 that moka has: `lfu`
/// below moka at 20 instead of 28 of 128 points (10 instead of 15 by more than two standard
/// errors), the same worst deficit (1.8 points), and 20 points more summed lead over moka, all
/// on the small LIRS caches. 1,024 did a little better still (8 significant points, worst 0.7)
/// but costs 8 KiB a shard, and 2,048 was unstable (one seed 26 points below on one trace).
const SKETCH_MIN_WIDTH: usize = 512;

/// The fewest entries the sketch's aging counts with: a shard sized for fewer still halves its
/// counters only every `AGING x 512` increments. A key of a loop longer than the aging period
/// loses its count between two of its uses, and the loop's newest key then wins every
/// admission against entries about to come round again. Measured with `lfusim` over 8 hasher
/// seeds (with the sketch's count of held entries): against moka's 128, the mean gap to optimal
/// on the real traces 4.58 to 4.51 points, `lirs-scan` (a loop of 2,001 keys) 1.5 to 0.7;
/// 256 gave 4.54, 1,024 4.65 (`lirs-cpp` and `lirs-multi2` at their smallest sizes then age
/// too slowly to follow their phases).
const AGING_FLOOR: usize = 512;

/// A count-min sketch of 4-bit counters (saturating at 15), depth 4, with periodic halving.
pub(crate) struct Sketch {
    counters: Vec<u8>,
    /// How many reads a node holds back for the sketch: 0 until the counters are allocated
    /// (nothing is counted), then 15 (a counter's ceiling). A field, not a test of
    /// `counters`, so that a hit under the read lock tests one condition (see
    /// `Node::count_shared_read`).
    read_limit: u8,
    width_mask: u64,
    additions: u64,
    sample: u64,
}

const SEEDS: [u64; 4] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x27D4_EB2F_1656_67C5,
];

impl Sketch {
    /// A sketch for about `items` entries: `SKETCH_SCALE` columns an entry, at least
    /// `SKETCH_MIN_WIDTH` entries' worth (rounded up to a power of two), halved every `AGING`
    /// increments an entry, at least `AGING_FLOOR` entries (a small cache ages every 5,120
    /// increments rather than every few dozen, so a key seen once a loop of a few thousand
    /// requests keeps its count). Aging follows the entries, not the rounded width.
    ///
    /// Measured with the `hitratio` bin (points where `lfu` is below moka, of 128): the aging
    /// floor of 128 instead of 16 took 48 to 47 (worst deficit 5.3 to 4.9 points); aging by the
    /// entries instead of the rounded width, with the halving's odd-counter correction (see
    /// `age`), and the climber's first move shrinking the window, took it to 41 (worst 4.0
    /// points).
    ///
    /// The counters are allocated by [`allocate`](Self::allocate), which the policy calls when
    /// the shard first reaches half its capacity; until then the sketch counts nothing.
    pub(crate) fn new(items: usize) -> Self {
        let width = items
            .clamp(SKETCH_MIN_WIDTH, 1 << 24)
            .next_power_of_two()
            .saturating_mul(SKETCH_SCALE);
        let items = items.clamp(AGING_FLOOR, 1 << 24);
        Self {
            counters: Vec::new(),
            read_limit: 0,
            width_mask: (width - 1) as u64,
            additions: 0,
            sample: AGING * items as u64,
        }
    }

    /// Whether the counters exist yet.
    #[inline(always)]
    pub(crate) fn is_allocated(&self) -> bool {
        !self.counters.is_empty()
    }

    /// Allocates the counters (two 4-bit counters a byte), all zero.
    pub(crate) fn allocate(&mut self) {
        if !self.is_allocated() {
            self.counters = vec![0; (self.width_mask as usize + 1) * 2];
            self.read_limit = 15;
        }
    }

    /// How many reads a node may hold back for the sketch (0: none are counted yet).
    #[inline(always)]
    pub(crate) fn read_limit(&self) -> u8 {
        self.read_limit
    }

    #[inline]
    fn slot(&self, hash: u64, row: usize) -> usize {
        let h = (hash ^ (hash >> 29)).wrapping_mul(SEEDS[row]);
        #[allow(clippy::cast_possible_truncation)]
        let col = ((h >> 32) & self.width_mask) as usize;
        row * (self.width_mask as usize + 1) + col
    }

    /// Counter `s`: its byte, and the shift of its nibble in it.
    #[inline]
    fn nibble(s: usize) -> (usize, u32) {
        (s >> 1, if s & 1 == 0 { 0 } else { 4 })
    }

    /// The estimated recent frequency of `hash` (0..=15).
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        (0..4)
            .map(|r| {
                let (byte, shift) = Self::nibble(self.slot(hash, r));
                self.counters.get(byte).map_or(0, |b| (b >> shift) & 0x0F)
            })
            .min()
            .unwrap_or(0)
    }

    /// Counts one occurrence of `hash`; returns whether the sketch is due to age (its owner
    /// then calls [`age`](Self::age), after adding any counts it held back).
    #[inline]
    pub(crate) fn increment(&mut self, hash: u64) -> bool {
        if !self.is_allocated() {
            return false;
        }
        let mut added = false;
        for r in 0..4 {
            let (byte, shift) = Self::nibble(self.slot(hash, r));
            if let Some(b) = self.counters.get_mut(byte)
                && (*b >> shift) & 0x0F < 15
            {
                *b += 1 << shift;
                added = true;
            }
        }
        added && self.count_read()
    }

    /// Counts an occurrence held back by the caller (towards the next aging) without touching
    /// the counters; returns whether the sketch is due to age.
    #[inline]
    pub(crate) fn count_read(&mut self) -> bool {
        self.additions += 1;
        self.additions >= self.sample
    }

    /// Adds `n` occurrences of `hash` to its counters (saturating), already counted towards
    /// aging by [`count_read`](Self::count_read).
    pub(crate) fn add(&mut self, hash: u64, n: u8) {
        for r in 0..4 {
            let (byte, shift) = Self::nibble(self.slot(hash, r));
            if let Some(b) = self.counters.get_mut(byte) {
                let v = ((*b >> shift) & 0x0F).saturating_add(n).min(15);
                *b = (*b & !(0x0F << shift)) | (v << shift);
            }
        }
    }

    /// Halves every counter: popularity decays. The count of additions halves too, less a
    /// quarter of the odd counters (each lost half an increment to truncation), as Caffeine's and
    /// moka's sketches do: the next halving comes after about as many new increments.
    pub(crate) fn age(&mut self) {
        let mut odd = 0u64;
        for b in &mut self.counters {
            odd += u64::from((*b & 0x11).count_ones());
            *b = (*b >> 1) & 0x77;
        }
        self.additions = (self.additions / 2).saturating_sub(odd / 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn climber_moves_towards_the_denser_region() {
        // Samples of 10,000 requests (capacity 1,000); steps of 0.02 x ln(ratio) x 1,000.
        fn sample(c: &mut Climber, window: u64, probation: u64) {
            for i in 0..9_999u64 {
                let queue = if i < window {
                    Some(WINDOW)
                } else if i < window + probation {
                    Some(PROBATION)
                } else {
                    None
                };
                assert!(!c.record(queue));
            }
            assert!(c.record(None), "the sample ends");
        }
        let mut c = Climber::new(1_000);
        // A window of 10 slots whose entries earned 99 first hits, probation's 198 slots 197
        // hits: 10 hits a slot against 1, so the window grows by 0.02 x ln(10) x 1,000.
        sample(&mut c, 99, 197);
        let up = c.judge(10, 198, 1_000);
        assert!((up - 20.0 * 10f64.ln()).abs() < 1e-9, "grows ({up})");
        // The same earnings a slot: no move.
        sample(&mut c, 9, 197);
        assert!(c.judge(10, 198, 1_000).abs() < 1e-9, "balanced");
        // A closed window reads one hit a slot: against probation's 10 a slot it stays shut.
        sample(&mut c, 0, 1_979);
        let down = c.judge(0, 198, 1_000);
        assert!(down < 0.0, "stays closed ({down})");
        // A huge ratio moves at most 30% of the capacity.
        sample(&mut c, 9_000, 0);
        assert!((c.judge(1, 1_000, 1_000) - 300.0).abs() < 1e-9, "capped");
    }

    /// A shard of 100 entries holding keys 0..60, its sketch started (at 50).
    fn started_shard() -> (super::super::sharded::Shard<u64, u64, Lfu>, FixedState) {
        let hasher = FixedState::with_seed(1);
        // Exact (no epochs): every hit here goes through the write-locked path it checks.
        let mut shard: super::super::sharded::Shard<u64, u64, Lfu> =
            super::super::sharded::Shard::with_epochs(100, 100, hasher.clone(), 0);
        let listener = super::super::Listener(std::sync::Arc::new(|_: &u64| {}));
        let mut out = super::super::Evictions::default();
        for k in 0..60u64 {
            shard.insert(hasher.hash_one(k), k, k, 1, &listener, &mut out);
        }
        assert!(shard.policy().sketch.is_allocated());
        (shard, hasher)
    }

    #[test]
    fn a_hit_counts_in_its_entry_and_reaches_the_sketch_when_the_entry_leaves() {
        let (mut shard, hasher) = started_shard();
        let h = hasher.hash_one(7u64);
        let counters = shard.policy().sketch.counters.clone();
        let before = shard.policy().sketch.frequency(h);
        let additions = shard.policy().sketch.additions;
        for _ in 0..3 {
            assert_eq!(shard.get(h, &7), Some(7));
        }
        // The hits wrote no counter (the hit path touches the node only), but count towards
        // the next aging, and a comparison sees them.
        assert_eq!(
            shard.policy().sketch.counters,
            counters,
            "no counter written"
        );
        assert_eq!(shard.policy().sketch.additions, additions + 3);
        assert_eq!(shard.held_reads(h, &7), Some(3));
        // Reads past the counters' ceiling are not counted, as saturated counters do not.
        for _ in 0..20 {
            shard.get(h, &7);
        }
        assert_eq!(shard.held_reads(h, &7), Some(15));
        assert_eq!(shard.policy().sketch.additions, additions + 15);
        // Removed, the key keeps its history: its reads are in the sketch.
        assert!(shard.remove_if(h, &7, |_| true).is_some());
        assert_eq!(
            shard.policy().sketch.frequency(h),
            (before + 15).min(15),
            "flushed on removal"
        );
    }

    #[test]
    fn aging_adds_the_held_reads_before_it_halves() {
        let (mut shard, hasher) = started_shard();
        let h = hasher.hash_one(3u64);
        let before = shard.policy().sketch.frequency(h);
        for _ in 0..4 {
            shard.get(h, &3);
        }
        assert_eq!(shard.held_reads(h, &3), Some(4));
        // The next counted read ages the sketch: one of another key.
        let sample = shard.policy().sketch.sample;
        shard.policy_mut().sketch.additions = sample - 1;
        shard.get(hasher.hash_one(9u64), &9);
        assert!(shard.policy().sketch.additions < sample / 2 + 1, "halved");
        assert_eq!(
            shard.held_reads(h, &3),
            Some(0),
            "every node's reads were added"
        );
        // Its count is what it would have been with each read counted at once, halved
        // (other keys' reads may share a counter: never below).
        assert!(
            shard.policy().sketch.frequency(h) >= (before + 4).min(15) / 2,
            "{} from {before} + 4",
            shard.policy().sketch.frequency(h)
        );
    }

    /// A shard of `capacity` unit-weight entries under policy `P`, holding keys `0..n`.
    fn filled<P: Policy>(
        capacity: u64,
        n: u64,
    ) -> (super::super::sharded::Shard<u64, u64, P>, FixedState) {
        let hasher = FixedState::with_seed(1);
        let mut shard =
            super::super::sharded::Shard::new(capacity, capacity as usize, hasher.clone());
        for k in 0..n {
            insert(&mut shard, &hasher, k);
        }
        (shard, hasher)
    }

    fn insert<P: Policy>(
        shard: &mut super::super::sharded::Shard<u64, u64, P>,
        hasher: &FixedState,
        k: u64,
    ) {
        let listener = super::super::Listener(std::sync::Arc::new(|_: &u64| {}));
        let mut out = super::super::Evictions::default();
        shard.insert(hasher.hash_one(k), k, k, 1, &listener, &mut out);
    }

    /// What a lookup of `k` under the read lock finds: `Some(true)` a hit served there,
    /// `Some(false)` one that needs the write lock, `None` a miss.
    fn shared<P: Policy>(
        shard: &super::super::sharded::Shard<u64, u64, P>,
        hasher: &FixedState,
        k: u64,
    ) -> Option<bool> {
        use super::super::sharded::Shared;
        match shard.get_shared(hasher.hash_one(k), &k) {
            Shared::Hit(&v) => {
                assert_eq!(v, k);
                Some(true)
            }
            Shared::Locked => Some(false),
            Shared::Miss => None,
        }
    }

    #[test]
    fn a_large_lru_moves_an_entry_on_its_first_hit_in_an_epoch_only() {
        // 2,048 entries: epochs of 32 inserts; the 2,048 inserts made 64 of them.
        let (mut shard, h) = filled::<Lru>(2_048, 2_048);
        // Key 0, the oldest, was stamped in the first epoch: its hit needs the write lock,
        // which moves it to the front.
        assert_eq!(shared(&shard, &h, 0), Some(false));
        assert_eq!(shard.get(h.hash_one(0u64), &0), Some(0));
        // Its next hits in this epoch take the read lock only, and move nothing.
        assert_eq!(shared(&shard, &h, 0), Some(true));
        assert_eq!(shared(&shard, &h, 0), Some(true));
        // It was moved: the next insert evicts key 1, the least recent, and keeps key 0.
        insert(&mut shard, &h, 10_000);
        assert_eq!(shared(&shard, &h, 1), None, "the least recent left");
        assert_eq!(shared(&shard, &h, 0), Some(true));
        // 31 inserts more make 32 in this epoch: the next one begins, and key 0's first hit in
        // it takes the write lock again.
        for k in 10_001..10_032 {
            insert(&mut shard, &h, k);
        }
        assert_eq!(shared(&shard, &h, 0), Some(false));
        // The 32 inserts evicted keys 1 to 32. Entries last hit in a later epoch leave after
        // those hit in an earlier one: hit key 34 now; 33 and 35 (not hit since their inserts)
        // go first.
        assert_eq!(shared(&shard, &h, 32), None);
        assert_eq!(shard.get(h.hash_one(34u64), &34), Some(34));
        for k in 20_000..20_002 {
            insert(&mut shard, &h, k);
        }
        assert_eq!(shared(&shard, &h, 33), None);
        assert_eq!(shared(&shard, &h, 35), None);
        assert!(
            shared(&shard, &h, 34).is_some(),
            "the entry hit in a later epoch stays"
        );
    }

    #[test]
    fn a_small_lru_is_exact_and_takes_the_write_lock_for_every_hit() {
        // Below `EPOCH_FLOOR` entries there are no epochs: exact LRU, as a user can check by
        // hand. 3 entries: hit 1, 2, then 1 again; 3 is the least recent, then 2.
        let (mut shard, h) = filled::<Lru>(3, 0);
        for k in 1..=3 {
            insert(&mut shard, &h, k);
        }
        for k in [1u64, 2, 1] {
            assert_eq!(shared(&shard, &h, k), Some(false), "key {k}");
            assert_eq!(shard.get(h.hash_one(k), &k), Some(k));
        }
        insert(&mut shard, &h, 4);
        assert_eq!(shared(&shard, &h, 3), None, "3 was the least recent");
        insert(&mut shard, &h, 5);
        assert_eq!(
            shared(&shard, &h, 2),
            None,
            "then 2: the second hit of 1 counted"
        );
        assert!(shared(&shard, &h, 1).is_some());
    }

    #[test]
    fn fifo_hits_never_take_the_write_lock() {
        let (shard, h) = filled::<Fifo>(10, 10);
        for k in 0..10 {
            assert_eq!(shared(&shard, &h, k), Some(true));
        }
    }

    #[test]
    fn lfu_protected_and_window_entries_are_hit_under_the_read_lock_after_their_first_hit_in_an_epoch()
     {
        // 2,048 entries, 1,500 held: the sketch counts (from 1,024), key 0 is in probation.
        let (mut shard, h) = filled::<Lfu>(2_048, 1_500);
        assert!(shard.policy().sketch.is_allocated());
        let hash = h.hash_one(0u64);
        // A probation hit promotes: the write lock.
        assert_eq!(shared(&shard, &h, 0), Some(false));
        assert_eq!(shard.get(hash, &0), Some(0));
        assert_eq!(shard.held_reads(hash, &0), Some(1));
        let (requests, additions) = (
            shard.policy().climber.requests,
            shard.policy().sketch.additions,
        );
        // Protected now, moved in this epoch: its hits take the read lock and count in the
        // node only (not in the climber's sample nor towards the sketch's aging).
        for n in 2..=4 {
            assert_eq!(shared(&shard, &h, 0), Some(true));
            assert_eq!(shard.held_reads(hash, &0), Some(n));
        }
        assert_eq!(shard.policy().climber.requests, requests);
        assert_eq!(shard.policy().sketch.additions, additions);
        // A window entry's first hit takes the write lock (the climber counts it, and it moves
        // in the window); its later ones in the epoch the read lock.
        let newest = 1_499u64;
        assert_eq!(shared(&shard, &h, newest), Some(false));
        assert_eq!(shard.get(h.hash_one(newest), &newest), Some(newest));
        let requests = shard.policy().climber.requests;
        assert_eq!(shared(&shard, &h, newest), Some(true));
        assert_eq!(shard.policy().climber.requests, requests);
    }

    #[test]
    fn an_lfu_entry_leaves_the_read_lock_path_when_it_leaves_its_segment_or_its_epoch() {
        // 2,048 entries (epochs of 32 inserts, a window of 20): 1,504 inserts end an epoch.
        let (mut shard, h) = filled::<Lfu>(2_048, 1_504);
        let newest = 1_503u64;
        assert_eq!(shard.get(h.hash_one(newest), &newest), Some(newest));
        assert_eq!(
            shared(&shard, &h, newest),
            Some(true),
            "a window entry hit this epoch"
        );
        // Key 0 (probation) promoted: protected, moved this epoch.
        assert_eq!(shard.get(h.hash_one(0u64), &0), Some(0));
        assert_eq!(shared(&shard, &h, 0), Some(true));
        // 20 inserts, the same epoch, push the newest out of the window into probation: its
        // stamp is still current, but a probation hit promotes, under the write lock.
        for k in 10_000..10_020 {
            insert(&mut shard, &h, k);
        }
        assert_eq!(shared(&shard, &h, newest), Some(false));
        assert_eq!(shared(&shard, &h, 0), Some(true), "still this epoch");
        // 12 more end the epoch: key 0's first hit in the next takes the write lock again.
        for k in 10_020..10_032 {
            insert(&mut shard, &h, k);
        }
        assert_eq!(shared(&shard, &h, 0), Some(false));
        assert_eq!(shard.get(h.hash_one(0u64), &0), Some(0));
        assert_eq!(shared(&shard, &h, 0), Some(true));
    }

    #[test]
    fn the_sketch_counts_entries_held_when_it_starts() {
        use super::super::sharded::Shard;
        // A shard of 100 entries, unweighted: the sketch starts when 50 are held.
        let hasher = FixedState::with_seed(1);
        let mut shard: Shard<u64, u64, Lfu> = Shard::new(100, 100, hasher.clone());
        let listener = super::super::Listener(std::sync::Arc::new(|_: &u64| {}));
        let mut out = super::super::Evictions::default();
        for k in 0..60u64 {
            shard.insert(hasher.hash_one(k), k, k, 1, &listener, &mut out);
        }
        let sketch = &shard.policy().sketch;
        assert!(sketch.is_allocated());
        // Keys 0..50 were held when it started: counted once each; the later ones at insert.
        for k in 0..60u64 {
            assert!(sketch.frequency(hasher.hash_one(k)) >= 1, "key {k}");
        }
    }

    /// One occurrence, and the aging it makes due (the policy's order: the owner ages).
    fn bump(s: &mut Sketch, hash: u64) {
        if s.increment(hash) {
            s.age();
        }
    }

    #[test]
    fn sketch_counts_and_ages() {
        let mut s = Sketch::new(64);
        bump(&mut s, 42);
        assert_eq!(
            s.frequency(42),
            0,
            "nothing is counted before the counters exist"
        );
        s.allocate();
        for _ in 0..5 {
            bump(&mut s, 42);
        }
        assert_eq!(s.frequency(42), 5);
        for _ in 0..20 {
            bump(&mut s, 7);
        }
        assert_eq!(s.frequency(7), 15, "saturates at 15");
        // A count-min sketch never underestimates.
        assert!(s.frequency(42) >= 5);
        // Drive additions to the sample size with distinct keys: counters halve.
        let before = s.frequency(7);
        let mut k = 1_000u64;
        while s.additions != 0 && s.frequency(7) == before {
            bump(&mut s, k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            k += 1;
        }
        assert!(s.frequency(7) <= before / 2 + 1, "aging halves counters");
    }

    #[test]
    fn a_small_sketch_is_wide_but_ages_with_its_entries() {
        let small = Sketch::new(64);
        assert_eq!(
            small.width_mask + 1,
            (SKETCH_MIN_WIDTH * SKETCH_SCALE) as u64
        );
        assert_eq!(
            small.sample,
            AGING * 512,
            "aging follows the entries, floored at 512"
        );
        let large = Sketch::new(3_000);
        assert_eq!(large.width_mask + 1, (4_096 * SKETCH_SCALE) as u64);
        assert_eq!(large.sample, AGING * 3_000);
    }

    #[test]
    fn aging_discounts_the_halving_of_odd_counters() {
        let mut s = Sketch::new(128);
        s.allocate();
        let mut k = 0u64;
        let mut next = || {
            k += 1;
            k.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        };
        // Distinct keys, three of every four counted twice and the fourth once: many counters
        // at 1 (or another odd count), each losing half an increment to the halving's
        // truncation, and enough even ones that the discount is not all of the count.
        let mut n = 0u32;
        while s.additions + 2 < s.sample {
            let key = next();
            bump(&mut s, key);
            if !n.is_multiple_of(4) {
                bump(&mut s, key);
            }
            n += 1;
        }
        while s.additions + 1 < s.sample {
            bump(&mut s, next());
        }
        // The last increment, by hand: it reaches the sample, so the halving follows.
        let key = next();
        let mut copy = s.counters.clone();
        for r in 0..4 {
            let (byte, shift) = Sketch::nibble(s.slot(key, r));
            if (copy[byte] >> shift) & 0x0F < 15 {
                copy[byte] += 1 << shift;
            }
        }
        let odd: u64 = copy
            .iter()
            .map(|b| u64::from((b & 0x11).count_ones()))
            .sum();
        let before = s.additions + 1;
        bump(&mut s, key);
        assert!(odd > 100, "many odd counters ({odd})");
        // A plain halving would leave `before / 2`; a quarter of the odd counters comes off it.
        assert_eq!(
            s.additions,
            before / 2 - odd / 4,
            "the count of additions forgets what the truncation lost ({} of {before})",
            s.additions
        );
    }
}

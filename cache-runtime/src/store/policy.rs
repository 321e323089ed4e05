//! The eviction policies of the sharded store: exact LRU, FIFO, and W-TinyLFU.
//!
//! Each works on one shard's slab through intrusive lists; `capacity` is the shard's total weight.

use std::hash::{BuildHasher, Hash};

use foldhash::quality::FixedState;

use super::sharded::{List, Policy, Slab};

/// One list, evicted from the back: with `REORDER`, a hit moves its entry to the front (exact
/// LRU); without, hits change nothing (FIFO).
pub(crate) struct OneList<const REORDER: bool> {
    list: List,
    capacity: u64,
}

/// Exact least-recently-used: hits move to the front, the back is evicted.
pub(crate) type Lru = OneList<true>;

/// First-in, first-out: hits change nothing, the oldest insert is evicted.
pub(crate) type Fifo = OneList<false>;

impl<const REORDER: bool> Policy for OneList<REORDER> {
    fn new(capacity: u64, _items: usize) -> Self {
        Self {
            list: List::new(0),
            capacity,
        }
    }

    fn on_hit<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, _hash: u64) {
        if REORDER {
            self.list.move_to_front(slab, i);
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
        self.list.push_front(slab, i);
        evict_back(&mut self.list, slab, self.capacity, out);
    }

    fn on_remove<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        self.list.unlink(slab, i);
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

/// Window TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache Admission
/// Policy", ACM ToS 2017), the design of Caffeine:
///
/// - new entries enter a small LRU *window* (1% of the capacity, rounded down: none below 100
///   entries);
/// - an entry pushed out of the window joins the main area, a segmented LRU (*probation* 20%,
///   *protected* 80%), as a *candidate*; when the whole cache is over capacity, the newest
///   candidate meets probation's LRU entry, the *victim*, and the one the frequency sketch
///   estimates less popular is evicted (ties evict the candidate), as Caffeine's
///   `evictFromMain` does;
/// - a hit in probation promotes to protected (demoting protected's LRU back to probation);
/// - the sketch counts every access in 4-bit counters and halves them all every `10 x items`
///   increments, so popularity decays (aging).
pub(crate) struct Lfu {
    window: List,
    probation: List,
    protected: List,
    window_max: u64,
    main_max: u64,
    protected_max: u64,
    pub(crate) sketch: Sketch,
    climber: Climber,
}

/// Adapts the window's share of the capacity by hill climbing on the hit ratio (as Caffeine
/// does): every sample of requests (10 x the capacity, and at least MIN_SAMPLE), the window moves
/// by a step in the direction that last raised the hit ratio, and turns back when the ratio
/// fell. Steps start at 6.25% of the capacity and shrink by 10% each sample, restarting when the
/// ratio jumps by 5 points (the workload changed). Recency-heavy workloads grow the window;
/// frequency-heavy ones shrink it. After the first move, a change smaller than twice its
/// standard error (`sqrt(2 p (1 - p) / sample)`) is noise: the window stays and the step decays.
/// Without that dead zone a flat workload (a loop) sends the climber back and forth on noise,
/// and every move churns the main area: measured with `lfusim` over 8 hasher seeds, the dead
/// zone, the window allowed down to 0 and Caffeine's eviction together took `lfu` below moka at
/// 27 instead of 36 of 128 points and raised its summed lead over moka by 3.5 points. The first move shrinks it (as Caffeine's does): on a workload
/// whose hit ratio does not move (a loop), the window then stays small and the main area, which
/// admission protects, keeps what it holds. Measured with the `hitratio` bin against starting by
/// growing: `lfu` below moka at 44 instead of 47 of 128 (trace, size) points.
struct Climber {
    hits: u64,
    requests: u64,
    sample: u64,
    previous: f64,
    /// The next move of the window, in weight (signed).
    step: f64,
    capacity: u64,
    /// Whether the climber has moved yet (the first move is not judged by the dead zone).
    moved: bool,
}

impl Climber {
    fn new(capacity: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let step = -(capacity as f64) * STEP;
        Self {
            hits: 0,
            requests: 0,
            sample: capacity.saturating_mul(10).max(MIN_SAMPLE),
            previous: f64::NAN,
            step,
            capacity,
            moved: false,
        }
    }

    /// Records a request; at the end of a sample, returns how much to grow (positive) or
    /// shrink (negative) the window. Inline: every `lfu` hit counts here, and only the end of a
    /// sample (once in 5,000 requests or more) calls out to [`judge`](Self::judge).
    #[inline]
    fn record(&mut self, hit: bool) -> Option<f64> {
        self.hits += u64::from(hit);
        self.requests += 1;
        if self.requests < self.sample {
            return None;
        }
        self.judge()
    }

    /// The end of a sample: compares its hit ratio with the previous one's.
    #[cold]
    #[inline(never)]
    fn judge(&mut self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        let rate = self.hits as f64 / self.requests as f64;
        self.hits = 0;
        self.requests = 0;
        if self.previous.is_nan() {
            // The first sample only sets the baseline.
            self.previous = rate;
            return None;
        }
        let change = rate - self.previous;
        if self.moved {
            let p = f64::midpoint(rate, self.previous).clamp(1e-6, 1.0 - 1e-6);
            #[allow(clippy::cast_precision_loss)]
            let standard_error = (2.0 * p * (1.0 - p) / self.sample as f64).sqrt();
            if change.abs() < DEAD_ZONE * standard_error {
                self.step *= DECAY;
                self.previous = rate;
                return None;
            }
        }
        self.moved = true;
        let amount = if change >= 0.0 { self.step } else { -self.step };
        #[allow(clippy::cast_precision_loss)]
        let restart = self.capacity as f64 * STEP;
        self.step = if change.abs() >= RESTART {
            restart.copysign(amount)
        } else {
            amount * DECAY
        };
        self.previous = rate;
        self.hits = 0;
        self.requests = 0;
        Some(amount)
    }
}

/// The smallest sample the climber judges a move by (requests).
const MIN_SAMPLE: u64 = 5000;
const STEP: f64 = 0.0625;
const DECAY: f64 = 0.9;
const RESTART: f64 = 0.05;
/// A change of the hit ratio within this many standard errors moves nothing.
const DEAD_ZONE: f64 = 2.0;

impl Lfu {
    fn list(&mut self, queue: u8) -> Option<&mut List> {
        match queue {
            WINDOW => Some(&mut self.window),
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
                    let cf = self.sketch.frequency(Self::hash_of(slab, hasher, c));
                    let vf = self.sketch.frequency(Self::hash_of(slab, hasher, v));
                    if cf > vf { v } else { c }
                }
                (Some(v), _) => v,
                (None, Some(c)) => c,
                (None, None) => break,
            };
            if let Some(l) = self.list(slab.get(loser).map_or(u8::MAX, |n| n.queue())) {
                l.unlink(slab, loser);
            }
            out.push(loser);
        }
    }
}

impl Policy for Lfu {
    fn new(capacity: u64, items: usize) -> Self {
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
        }
    }

    #[inline]
    fn on_hit<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, hash: u64) {
        self.sketch.increment(hash);
        if let Some(amount) = self.climber.record(true) {
            self.resize_window(amount);
        }
        match slab.get(i).map(|n| n.queue()) {
            Some(WINDOW) => self.window.move_to_front(slab, i),
            Some(PROBATION) => {
                self.probation.unlink(slab, i);
                self.protected.push_front(slab, i);
                self.balance_protected(slab);
            }
            Some(PROTECTED) => self.protected.move_to_front(slab, i),
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
        // The sketch starts counting when the shard is half full (as Caffeine's and moka's do):
        // below that nothing is evicted, so nothing needs a frequency, and a cache that never
        // fills never pays for the counters. Warm-up traffic is not counted either: measured
        // with the `hitratio` bin, `lfu` below moka at 39 instead of 41 of 128 points, worst
        // deficit 2.6 instead of 4.0 points.
        if !self.sketch.is_allocated()
            && 2 * (self.window.weight + self.main_weight()) >= self.window_max + self.main_max
        {
            self.sketch.allocate();
        }
        self.sketch.increment(hash);
        // An insert follows a miss (a demand-filled cache).
        if let Some(amount) = self.climber.record(false) {
            self.resize_window(amount);
        }
        self.window.push_front(slab, i);
        self.evict(slab, hasher, out);
        self.balance_protected(slab);
    }

    fn on_remove<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        let queue = slab.get(i).map_or(u8::MAX, |n| n.queue());
        if let Some(l) = self.list(queue) {
            l.unlink(slab, i);
        }
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
/// columns a row (4 KiB of counters), while its aging still follows its own size. A small
/// cache's admission compares frequencies of keys that were counted over `AGING x 128` or more
/// increments, far more keys than it holds; a wider sketch counts them with fewer collisions.
/// Measured with `lfusim` over 16 hasher seeds against the floor of 128 that moka has: `lfu`
/// below moka at 20 instead of 28 of 128 points (10 instead of 15 by more than two standard
/// errors), the same worst deficit (1.8 points), and 20 points more summed lead over moka, all
/// on the small LIRS caches. 1,024 did a little better still (8 significant points, worst 0.7)
/// but costs 8 KiB a shard, and 2,048 was unstable (one seed 26 points below on one trace).
const SKETCH_MIN_WIDTH: usize = 512;

/// A count-min sketch of 4-bit counters (saturating at 15), depth 4, with periodic halving.
pub(crate) struct Sketch {
    counters: Vec<u8>,
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
    /// increments an entry, at least 128 entries (as moka's: a small cache ages every 1,280
    /// increments rather than every few dozen, so a key seen once a loop of a few hundred
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
        let items = items.clamp(128, 1 << 24);
        Self {
            counters: Vec::new(),
            width_mask: (width - 1) as u64,
            additions: 0,
            sample: AGING * items as u64,
        }
    }

    /// Whether the counters exist yet.
    #[inline]
    pub(crate) fn is_allocated(&self) -> bool {
        !self.counters.is_empty()
    }

    /// Allocates the counters (two 4-bit counters a byte), all zero.
    pub(crate) fn allocate(&mut self) {
        if !self.is_allocated() {
            self.counters = vec![0; (self.width_mask as usize + 1) * 2];
        }
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

    #[inline]
    pub(crate) fn increment(&mut self, hash: u64) {
        if !self.is_allocated() {
            return;
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
        if added {
            self.additions += 1;
            if self.additions >= self.sample {
                self.age();
            }
        }
    }

    /// Halves every counter: popularity decays. The count of additions halves too, less a
    /// quarter of the odd counters (each lost half an increment to truncation), as Caffeine's and
    /// moka's sketches do: the next halving comes after about as many new increments.
    fn age(&mut self) {
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
    fn climber_follows_the_hit_ratio() {
        // Samples of 10,000 requests, steps of 62.5; at a hit ratio near 50% a change is noise
        // below 2 x sqrt(2 x 0.25 / 10,000) = 1.41 points.
        let mut c = Climber::new(1_000);
        let mut sample = |hits: u64| {
            let mut out = None;
            for i in 0..10_000 {
                out = c.record(i < hits).or(out);
            }
            out
        };
        assert_eq!(sample(5_000), None, "the first sample sets the baseline");
        let first = sample(5_000).unwrap();
        assert!(
            (first + 62.5).abs() < 1e-9,
            "no change: the first move shrinks the window all the same ({first})"
        );
        assert_eq!(
            sample(5_010),
            None,
            "0.1 points better: noise, the window stays"
        );
        let down = sample(5_300).unwrap();
        assert!(
            (down + 50.625).abs() < 1e-9,
            "3 points better: keep shrinking, by the step decayed twice ({down})"
        );
        // The ratio fell by 10 points: turn back, and the next step restarts at full size.
        let up = sample(4_300).unwrap();
        assert!((up - 45.5625).abs() < 1e-9, "worse: turn back ({up})");
        assert_eq!(sample(4_290), None, "0.1 points worse: noise");
        let again = sample(4_800).unwrap();
        assert!(
            (again - 56.25).abs() < 1e-9,
            "5 points better: the same way, the restarted step decayed once ({again})"
        );
    }

    #[test]
    fn sketch_counts_and_ages() {
        let mut s = Sketch::new(64);
        s.increment(42);
        assert_eq!(
            s.frequency(42),
            0,
            "nothing is counted before the counters exist"
        );
        s.allocate();
        for _ in 0..5 {
            s.increment(42);
        }
        assert_eq!(s.frequency(42), 5);
        for _ in 0..20 {
            s.increment(7);
        }
        assert_eq!(s.frequency(7), 15, "saturates at 15");
        // A count-min sketch never underestimates.
        assert!(s.frequency(42) >= 5);
        // Drive additions to the sample size with distinct keys: counters halve.
        let before = s.frequency(7);
        let mut k = 1_000u64;
        while s.additions != 0 && s.frequency(7) == before {
            s.increment(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
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
            AGING * 128,
            "aging follows the entries, floored at 128"
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
            s.increment(key);
            if !n.is_multiple_of(4) {
                s.increment(key);
            }
            n += 1;
        }
        while s.additions + 1 < s.sample {
            s.increment(next());
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
        s.increment(key);
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

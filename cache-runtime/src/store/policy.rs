//! The eviction policies of the sharded store: exact LRU, FIFO, and W-TinyLFU.
//!
//! Each works on one shard's slab through intrusive lists; `capacity` is the shard's total weight.

use super::sharded::{List, Policy, Slab};

/// Exact least-recently-used: hits move to the front, the back is evicted.
pub(crate) struct Lru {
    list: List,
    capacity: u64,
}

impl Policy for Lru {
    fn new(capacity: u64, _items: usize) -> Self {
        Self {
            list: List::new(0),
            capacity,
        }
    }

    fn on_hit<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        self.list.move_to_front(slab, i);
    }

    fn on_insert<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, out: &mut Vec<u32>) {
        self.list.push_front(slab, i);
        evict_back(&mut self.list, slab, self.capacity, out);
    }

    fn on_remove<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        self.list.unlink(slab, i);
    }
}

/// First-in, first-out: hits change nothing, the oldest insert is evicted.
pub(crate) struct Fifo {
    list: List,
    capacity: u64,
}

impl Policy for Fifo {
    fn new(capacity: u64, _items: usize) -> Self {
        Self {
            list: List::new(0),
            capacity,
        }
    }

    fn on_hit<K, T>(&mut self, _slab: &mut Slab<K, T>, _i: u32) {}

    fn on_insert<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, out: &mut Vec<u32>) {
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
/// - new entries enter a small LRU *window* (1% of the capacity);
/// - an entry pushed out of the window is a *candidate* for the main area, a segmented LRU
///   (*probation* 20%, *protected* 80%); if the main area is full, the candidate is admitted only
///   if the frequency sketch estimates it more popular than the main area's LRU *victim*, which is
///   then evicted; otherwise the candidate is;
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
}

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

    fn hash_of<K, T>(slab: &Slab<K, T>, i: u32) -> u64 {
        slab.get(i).map_or(0, |n| n.hash)
    }

    fn weight_of<K, T>(slab: &Slab<K, T>, i: u32) -> u64 {
        slab.get(i).map_or(0, |n| n.weight)
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

    /// Moves the window's overflow, one candidate at a time, into the main area or out.
    fn evict<K, T>(&mut self, slab: &mut Slab<K, T>, out: &mut Vec<u32>) {
        while self.window.weight > self.window_max {
            let Some(c) = self.window.back() else { break };
            self.window.unlink(slab, c);
            let cw = Self::weight_of(slab, c);
            if cw > self.main_max {
                out.push(c);
                continue;
            }
            let cf = self.sketch.frequency(Self::hash_of(slab, c));
            let mut admitted = true;
            while self.main_weight() + cw > self.main_max {
                let victim = self.probation.back().or_else(|| self.protected.back());
                let Some(v) = victim else { break };
                if cf > self.sketch.frequency(Self::hash_of(slab, v)) {
                    if let Some(l) = self.list(slab.get(v).map_or(u8::MAX, |n| n.queue)) {
                        l.unlink(slab, v);
                    }
                    out.push(v);
                } else {
                    admitted = false;
                    break;
                }
            }
            if admitted {
                self.probation.push_front(slab, c);
            } else {
                out.push(c);
            }
        }
    }
}

impl Policy for Lfu {
    fn new(capacity: u64, items: usize) -> Self {
        let window_max = (capacity / 100).max(1).min(capacity);
        let main_max = capacity - window_max;
        Self {
            window: List::new(WINDOW),
            probation: List::new(PROBATION),
            protected: List::new(PROTECTED),
            window_max,
            main_max,
            protected_max: main_max - main_max / 5,
            sketch: Sketch::new(items),
        }
    }

    fn on_hit<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        self.sketch.increment(Self::hash_of(slab, i));
        match slab.get(i).map(|n| n.queue) {
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

    fn on_insert<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32, out: &mut Vec<u32>) {
        self.sketch.increment(Self::hash_of(slab, i));
        self.window.push_front(slab, i);
        self.evict(slab, out);
    }

    fn on_remove<K, T>(&mut self, slab: &mut Slab<K, T>, i: u32) {
        let queue = slab.get(i).map_or(u8::MAX, |n| n.queue);
        if let Some(l) = self.list(queue) {
            l.unlink(slab, i);
        }
    }
}

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
    pub(crate) fn new(items: usize) -> Self {
        let width = items.clamp(16, 1 << 24).next_power_of_two();
        Self {
            counters: vec![0; width * 4],
            width_mask: (width - 1) as u64,
            additions: 0,
            sample: 10 * width as u64,
        }
    }

    #[inline]
    fn slot(&self, hash: u64, row: usize) -> usize {
        let h = (hash ^ (hash >> 29)).wrapping_mul(SEEDS[row]);
        #[allow(clippy::cast_possible_truncation)]
        let col = ((h >> 32) & self.width_mask) as usize;
        row * (self.width_mask as usize + 1) + col
    }

    /// The estimated recent frequency of `hash` (0..=15).
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        (0..4)
            .map(|r| self.counters.get(self.slot(hash, r)).copied().unwrap_or(0))
            .min()
            .unwrap_or(0)
    }

    pub(crate) fn increment(&mut self, hash: u64) {
        let mut added = false;
        for r in 0..4 {
            let s = self.slot(hash, r);
            if let Some(c) = self.counters.get_mut(s)
                && *c < 15
            {
                *c += 1;
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

    /// Halves every counter: popularity decays.
    fn age(&mut self) {
        for c in &mut self.counters {
            *c >>= 1;
        }
        self.additions /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_counts_and_ages() {
        let mut s = Sketch::new(64);
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
}

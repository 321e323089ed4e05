//! A hit-ratio simulator: replays key traces through caches of several sizes and policies.
//!
//! The replay is *demand-filled*: each request looks its key up; on a miss the key is inserted.
//! Hits are counted over all requests from a cold start, so results compare with the published
//! figures of other caches (see `shared/traces/README.md` next to the workspace).
//!
//! The simulated caches ([`Sim`]) are this workspace's [`cache_runtime::Cache`] under each
//! [`Policy`] (one shard, a fixed seed), moka's TinyLFU, the `cached` crate's LRU, raw
//! `quick_cache`, an exact LRU reference written here, and Belady's offline optimum (the upper
//! bound for any cache of that size).
//!
//! The binary `hitratio` (`cargo run --release -p cache-benches --bin hitratio`) prints one
//! markdown table per trace and writes `docs/hitratio.md` with a chart per trace.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::error::Error;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use cache_runtime::{Cache, Policy};
use cached::Cached as _;
use foldhash::quality::FixedState;

/// The seed of every hasher and random sequence of a simulation: runs are reproducible.
pub const SEED: u64 = 0x5EED_CAFE_F00D_0001;

/// The font the charts are drawn with (plotters' `ab_glyph` backend has no system font lookup).
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// A sequence of requested keys, one request each.
#[derive(Clone, Debug)]
pub struct Trace {
    /// A short name: the file name without `.trace.gz` / `.trace.xz`, or `zipf-<s>`.
    pub name: String,
    /// The requested keys, in order.
    pub keys: Vec<u64>,
    /// How many requests the source had, when `keys` holds only a prefix of them.
    pub full_len: Option<usize>,
}

impl Trace {
    /// The number of distinct keys requested.
    #[must_use]
    pub fn distinct(&self) -> usize {
        self.keys.iter().collect::<HashSet<_>>().len()
    }

    /// Keeps only the first `n` requests (remembering the full length).
    pub fn truncate(&mut self, n: usize) {
        if n < self.keys.len() {
            self.full_len.get_or_insert(self.keys.len());
            self.keys.truncate(n);
        }
    }
}

/// The directory of the shared traces: `shared/traces` next to the workspace.
#[must_use]
pub fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces")
}

/// The trace files (`*.trace.gz`, `*.trace.xz`) in `dir`, sorted by name.
///
/// # Errors
/// When `dir` cannot be read.
pub fn trace_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".trace.gz") || n.ends_with(".trace.xz"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads a trace file: `*.gz` as gzip text (one key per line, `*` lines skipped), `*.xz` as
/// xz-compressed 32-bit big-endian signed integers.
///
/// # Errors
/// When the file cannot be read or decoded, or its extension is neither.
pub fn load_trace(path: &Path) -> io::Result<Trace> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let name = file_name
        .trim_end_matches(".gz")
        .trim_end_matches(".xz")
        .trim_end_matches(".trace")
        .to_owned();
    let file = BufReader::new(File::open(path)?);
    let keys = if file_name.ends_with(".gz") {
        parse_text(BufReader::new(flate2::read::MultiGzDecoder::new(file)))?
    } else if file_name.ends_with(".xz") {
        let mut input = file;
        let mut bytes = Vec::new();
        lzma_rs::xz_decompress(&mut input, &mut bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        parse_be_i32(&bytes)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: expected a .gz or .xz trace", path.display()),
        ));
    };
    Ok(Trace {
        name,
        keys,
        full_len: None,
    })
}

/// Parses one non-negative integer key per line; blank lines and lines holding only `*`
/// (checkpoint markers) are skipped.
///
/// # Errors
/// On a read error or a line that is not a key.
pub fn parse_text(reader: impl BufRead) -> io::Result<Vec<u64>> {
    let mut keys = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let t = line.trim();
        if t.is_empty() || t == "*" {
            continue;
        }
        let key = t.parse::<u64>().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad key {t:?}: {e}"))
        })?;
        keys.push(key);
    }
    Ok(keys)
}

/// Parses 32-bit big-endian signed integers (each key keeps its 32 bits: distinct stays
/// distinct).
///
/// # Errors
/// When the length is not a multiple of 4.
pub fn parse_be_i32(bytes: &[u8]) -> io::Result<Vec<u64>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes: not a sequence of 32-bit keys", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a small, fast, deterministic generator.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw from `[0, 1)` (53 random bits).
    #[allow(clippy::cast_precision_loss)]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A synthetic trace of `requests` draws from a Zipf distribution with exponent `s` over the
/// keys `0..keys` (key `k` has weight `1 / (k + 1)^s`): inverse-CDF sampling over a precomputed
/// table, with [`SplitMix64`] from `seed`. Named `zipf-<s>`.
#[must_use]
pub fn zipf_trace(s: f64, keys: usize, requests: usize, seed: u64) -> Trace {
    let mut cdf = Vec::with_capacity(keys);
    let mut total = 0.0;
    for k in 1..=keys {
        #[allow(clippy::cast_precision_loss)]
        let w = (k as f64).powf(-s);
        total += w;
        cdf.push(total);
    }
    for c in &mut cdf {
        *c /= total;
    }
    let mut rng = SplitMix64::new(seed);
    let keys_drawn = (0..requests)
        .map(|_| {
            let u = rng.next_f64();
            // The first key whose cumulative probability exceeds `u`.
            let k = cdf.partition_point(|&c| c <= u).min(keys - 1);
            k as u64
        })
        .collect();
    Trace {
        name: format!("zipf-{s}"),
        keys: keys_drawn,
        full_len: None,
    }
}

/// Cache sizes for a trace of `distinct` keys: `count` sizes, log-spaced from 1% to 50% of the
/// keys (at least 1 entry; duplicates removed).
#[must_use]
pub fn cache_sizes(distinct: usize, count: usize) -> Vec<usize> {
    #[allow(clippy::cast_precision_loss)]
    let d = distinct as f64;
    let steps = count.saturating_sub(1).max(1);
    let mut sizes: Vec<usize> = (0..count)
        .map(|i| {
            #[allow(clippy::cast_precision_loss)]
            let f = 0.01 * 50f64.powf(i as f64 / steps as f64);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = (d * f).round() as usize;
            n.max(1)
        })
        .collect();
    sizes.dedup();
    sizes
}

/// A simulated cache: a policy of this workspace's cache, a peer, or a reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sim {
    /// `cache_runtime::Cache` with [`Policy::S3Fifo`], one shard.
    S3Fifo,
    /// `cache_runtime::Cache` with [`Policy::Lru`], one shard.
    Lru,
    /// `cache_runtime::Cache` with [`Policy::Lfu`] (W-TinyLFU), one shard.
    Lfu,
    /// `cache_runtime::Cache` with [`Policy::Fifo`], one shard.
    Fifo,
    /// `moka::sync::Cache` (TinyLFU admission, LRU eviction), pending tasks run after every
    /// operation so that it holds at most its capacity.
    Moka,
    /// The `cached` crate's `LruCache` (formerly `SizedCache`).
    CachedLru,
    /// `quick_cache::unsync::Cache` (S3-FIFO, no shards).
    QuickCache,
    /// The exact LRU reference of this module ([`ExactLru`]).
    ExactLru,
    /// Belady's offline optimum ([`belady_hits`]).
    Belady,
}

impl Sim {
    /// Every simulated cache, in table order (the optimum last).
    pub const ALL: [Sim; 9] = [
        Sim::S3Fifo,
        Sim::Lru,
        Sim::Lfu,
        Sim::Fifo,
        Sim::Moka,
        Sim::CachedLru,
        Sim::QuickCache,
        Sim::ExactLru,
        Sim::Belady,
    ];

    /// The column name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Sim::S3Fifo => "s3-fifo",
            Sim::Lru => "lru",
            Sim::Lfu => "lfu",
            Sim::Fifo => "fifo",
            Sim::Moka => "moka",
            Sim::CachedLru => "cached-lru",
            Sim::QuickCache => "quick_cache",
            Sim::ExactLru => "exact-lru",
            Sim::Belady => "belady",
        }
    }

    /// The policy of this workspace's cache that this simulates, if any.
    #[must_use]
    pub const fn policy(self) -> Option<Policy> {
        match self {
            Sim::S3Fifo => Some(Policy::S3Fifo),
            Sim::Lru => Some(Policy::Lru),
            Sim::Lfu => Some(Policy::Lfu),
            Sim::Fifo => Some(Policy::Fifo),
            _ => None,
        }
    }
}

/// For each request `i`, the index of the next request of the same key (`usize::MAX` if none).
#[must_use]
pub fn next_uses(keys: &[u64]) -> Vec<usize> {
    let mut next = vec![usize::MAX; keys.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, &k) in keys.iter().enumerate().rev() {
        if let Some(j) = seen.insert(k, i) {
            next[i] = j;
        }
    }
    next
}

/// The hits of Belady's optimum (MIN) with `capacity` entries, given [`next_uses`] of `keys`.
///
/// Every request is served; a missed key enters the cache, and when the cache then holds more
/// than `capacity` keys, the one requested farthest in the future (or never again) leaves, which
/// may be the key just inserted (bypass). This bounds every cache that holds at most `capacity`
/// keys, including those with an admission filter.
#[must_use]
pub fn belady_hits(keys: &[u64], next: &[usize], capacity: usize) -> u64 {
    // (next use, key) of each resident key; the last is the one to evict.
    let mut order: BTreeSet<(usize, u64)> = BTreeSet::new();
    // The next use of each resident key (its entry in `order`).
    let mut resident: HashMap<u64, usize> = HashMap::with_capacity(capacity + 1);
    let mut hits = 0;
    for (i, (&k, &nu)) in keys.iter().zip(next).enumerate() {
        if let Some(at) = resident.insert(k, nu) {
            debug_assert_eq!(at, i, "a resident key's next use is this request");
            order.remove(&(at, k));
            hits += 1;
        }
        order.insert((nu, k));
        if resident.len() > capacity
            && let Some((_, victim)) = order.pop_last()
        {
            resident.remove(&victim);
        }
    }
    hits
}

/// An exact least-recently-used cache of keys: a hash map to the nodes of a doubly-linked list
/// kept in a vector (front = most recent). The reference the other LRUs are checked against.
#[derive(Debug)]
pub struct ExactLru {
    capacity: usize,
    map: HashMap<u64, usize>,
    nodes: Vec<LruNode>,
    head: Option<usize>,
    tail: Option<usize>,
}

#[derive(Debug)]
struct LruNode {
    key: u64,
    prev: Option<usize>,
    next: Option<usize>,
}

impl ExactLru {
    /// An empty cache holding up to `capacity` keys (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            map: HashMap::with_capacity(capacity),
            nodes: Vec::with_capacity(capacity),
            head: None,
            tail: None,
        }
    }

    /// The number of keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.nodes[i].prev, self.nodes[i].next);
        match prev {
            Some(p) => self.nodes[p].next = next,
            None => self.head = next,
        }
        match next {
            Some(n) => self.nodes[n].prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: usize) {
        self.nodes[i].prev = None;
        self.nodes[i].next = self.head;
        match self.head {
            Some(h) => self.nodes[h].prev = Some(i),
            None => self.tail = Some(i),
        }
        self.head = Some(i);
    }

    /// Requests `key`: `true` on a hit (it becomes the most recent); on a miss it is inserted as
    /// the most recent, evicting the least recent key if the cache is full.
    pub fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            self.unlink(i);
            self.push_front(i);
            return true;
        }
        let i = if self.map.len() < self.capacity {
            self.nodes.push(LruNode {
                key,
                prev: None,
                next: None,
            });
            self.nodes.len() - 1
        } else {
            // Reuse the least recent node for the new key.
            let t = self.tail.expect("a full cache has a tail");
            self.unlink(t);
            self.map.remove(&self.nodes[t].key);
            self.nodes[t].key = key;
            t
        };
        self.map.insert(key, i);
        self.push_front(i);
        false
    }
}

/// The hits of `sim` with `capacity` entries over `keys`. `next` is [`next_uses`] of `keys`
/// (only Belady reads it; pass `None` to compute it here).
///
/// # Panics
/// If this workspace's cache rejects the settings (a zero capacity is raised to 1 first).
#[must_use]
pub fn replay(sim: Sim, keys: &[u64], capacity: usize, next: Option<&[usize]>) -> u64 {
    replay_seeded(sim, keys, capacity, next, SEED)
}

/// [`replay`] with the hashers seeded by `seed` instead of [`SEED`]: this workspace's caches,
/// moka and raw `quick_cache` then hash every key differently (other sketch counters collide,
/// other keys share a shard's table slots), the references are unchanged. Comparing two
/// policies over several seeds separates what the policy does from the luck of one hash.
///
/// # Panics
/// As [`replay`].
#[must_use]
pub fn replay_seeded(
    sim: Sim,
    keys: &[u64],
    capacity: usize,
    next: Option<&[usize]>,
    seed: u64,
) -> u64 {
    let capacity = capacity.max(1);
    let mut hits = 0;
    match sim {
        Sim::S3Fifo | Sim::Lru | Sim::Lfu | Sim::Fifo => {
            let policy = sim.policy().expect("a cache-runtime policy");
            let cache: Cache<u64, ()> = Cache::builder()
                .capacity(capacity as u64)
                .policy(policy)
                .seed(seed)
                .shards(1)
                .build()
                .expect("valid cache settings");
            for &k in keys {
                if cache.get(&k).is_some() {
                    hits += 1;
                } else {
                    cache.insert(k, ());
                }
            }
        }
        Sim::Moka => {
            let cache: moka::sync::Cache<u64, (), FixedState> = moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(FixedState::with_seed(seed));
            for &k in keys {
                let hit = cache.get(&k).is_some();
                cache.run_pending_tasks();
                if hit {
                    hits += 1;
                } else {
                    cache.insert(k, ());
                    cache.run_pending_tasks();
                }
            }
        }
        Sim::CachedLru => {
            let mut cache: cached::LruCache<u64, ()> = cached::LruCache::new(capacity);
            for &k in keys {
                if cache.cache_get(&k).is_some() {
                    hits += 1;
                } else {
                    cache.cache_set(k, ());
                }
            }
        }
        Sim::QuickCache => {
            let mut cache: quick_cache::unsync::Cache<
                u64,
                (),
                quick_cache::UnitWeighter,
                FixedState,
            > = quick_cache::unsync::Cache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                FixedState::with_seed(seed),
                quick_cache::unsync::DefaultLifecycle::default(),
            );
            for &k in keys {
                if cache.get(&k).is_some() {
                    hits += 1;
                } else {
                    cache.insert(k, ());
                }
            }
        }
        Sim::ExactLru => {
            let mut lru = ExactLru::new(capacity);
            for &k in keys {
                if lru.access(k) {
                    hits += 1;
                }
            }
        }
        Sim::Belady => {
            hits = match next {
                Some(next) => belady_hits(keys, next, capacity),
                None => belady_hits(keys, &next_uses(keys), capacity),
            };
        }
    }
    hits
}

/// The results of one trace: hits per cache size and simulated cache.
#[derive(Clone, Debug)]
pub struct Report {
    /// The trace's name.
    pub trace: String,
    /// The number of requests replayed.
    pub requests: usize,
    /// The trace's full length, when only a prefix was replayed.
    pub full_len: Option<usize>,
    /// The number of distinct keys in the replayed requests.
    pub distinct: usize,
    /// The cache sizes (entries), ascending.
    pub sizes: Vec<usize>,
    /// The simulated caches (columns).
    pub sims: Vec<Sim>,
    /// `hits[size][sim]`: the hits of each cache at each size.
    pub hits: Vec<Vec<u64>>,
    /// The replay time of each simulated cache over all sizes, in seconds.
    pub seconds: Vec<f64>,
}

/// Replays `trace` through each of `sims` at each of `sizes`.
#[must_use]
pub fn simulate(trace: &Trace, sizes: &[usize], sims: &[Sim]) -> Report {
    let next = sims.contains(&Sim::Belady).then(|| next_uses(&trace.keys));
    let mut hits = vec![vec![0; sims.len()]; sizes.len()];
    let mut seconds = vec![0.0; sims.len()];
    for (row, &size) in hits.iter_mut().zip(sizes) {
        for ((cell, secs), &sim) in row.iter_mut().zip(&mut seconds).zip(sims) {
            let start = Instant::now();
            *cell = replay(sim, &trace.keys, size, next.as_deref());
            *secs += start.elapsed().as_secs_f64();
        }
    }
    Report {
        trace: trace.name.clone(),
        requests: trace.keys.len(),
        full_len: trace.full_len,
        distinct: trace.distinct(),
        sizes: sizes.to_vec(),
        sims: sims.to_vec(),
        hits,
        seconds,
    }
}

/// The gap to the optimum of one simulated cache, in percentage points of hit ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// The mean over the sizes of `belady - policy`.
    pub mean: f64,
    /// The smallest gap over the sizes.
    pub min: f64,
    /// The largest gap over the sizes.
    pub max: f64,
}

impl Report {
    /// The column of `sim`, if it was simulated.
    #[must_use]
    pub fn column(&self, sim: Sim) -> Option<usize> {
        self.sims.iter().position(|&s| s == sim)
    }

    /// The hit ratio (0..=1) at size index `row` of the cache in column `col`.
    #[must_use]
    pub fn ratio(&self, row: usize, col: usize) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let r = self.hits[row][col] as f64 / self.requests as f64;
        r
    }

    /// The hit ratio in percent of `sim` at size index `row`.
    #[must_use]
    pub fn percent(&self, row: usize, sim: Sim) -> Option<f64> {
        self.column(sim).map(|c| 100.0 * self.ratio(row, c))
    }

    /// The gap of `sim` to Belady's optimum, if both were simulated.
    #[must_use]
    pub fn gap(&self, sim: Sim) -> Option<Gap> {
        let (c, b) = (self.column(sim)?, self.column(Sim::Belady)?);
        let gaps: Vec<f64> = (0..self.sizes.len())
            .map(|r| 100.0 * (self.ratio(r, b) - self.ratio(r, c)))
            .collect();
        if gaps.is_empty() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        Some(Gap {
            mean,
            min: gaps.iter().copied().fold(f64::INFINITY, f64::min),
            max: gaps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    /// The sizes (index, size) at which `a` has fewer hits than `b`.
    #[must_use]
    pub fn below(&self, a: Sim, b: Sim) -> Vec<(usize, usize)> {
        let (Some(ca), Some(cb)) = (self.column(a), self.column(b)) else {
            return Vec::new();
        };
        (0..self.sizes.len())
            .filter(|&r| self.hits[r][ca] < self.hits[r][cb])
            .map(|r| (r, self.sizes[r]))
            .collect()
    }

    /// Whether `a` and `b` have the same hits at every size.
    #[must_use]
    pub fn same_hits(&self, a: Sim, b: Sim) -> bool {
        match (self.column(a), self.column(b)) {
            (Some(ca), Some(cb)) => self.hits.iter().all(|row| row[ca] == row[cb]),
            _ => false,
        }
    }

    /// The header line: requests (and the full length if capped) and distinct keys.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut s = format!("{} requests", thousands(self.requests));
        if let Some(full) = self.full_len {
            let _ = write!(
                s,
                " (capped: the first {} of {})",
                thousands(self.requests),
                thousands(full)
            );
        }
        let _ = write!(s, ", {} distinct keys", thousands(self.distinct));
        s
    }

    /// The markdown section of this trace: a header, the table of hit ratios (%, rows = sizes,
    /// columns = caches) and the gap to the optimum of each cache.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "### {}\n", self.trace);
        let _ = writeln!(md, "Trace `{}`: {}.\n", self.trace, self.describe());
        md.push_str("| size | % of keys |");
        for s in &self.sims {
            let _ = write!(md, " {} |", s.name());
        }
        md.push_str("\n| ---: | ---: |");
        for _ in &self.sims {
            md.push_str(" ---: |");
        }
        md.push('\n');
        for (r, &size) in self.sizes.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let share = 100.0 * size as f64 / self.distinct.max(1) as f64;
            let _ = write!(md, "| {} | {share:.1} |", thousands(size));
            for c in 0..self.sims.len() {
                let _ = write!(md, " {:.2} |", 100.0 * self.ratio(r, c));
            }
            md.push('\n');
        }
        md.push_str("| gap to optimal, mean (points) | |");
        for &s in &self.sims {
            match self.gap(s) {
                Some(g) => {
                    let _ = write!(md, " {:.2} |", g.mean);
                }
                None => md.push_str(" |"),
            }
        }
        md.push_str("\n\nGap to optimal (belady - policy, percentage points of hit ratio; mean, min..max over the sizes):");
        for &s in &self.sims {
            if s == Sim::Belady {
                continue;
            }
            if let Some(g) = self.gap(s) {
                let _ = write!(
                    md,
                    " {} {:.2} ({:.2}..{:.2});",
                    s.name(),
                    g.mean,
                    g.min,
                    g.max
                );
            }
        }
        if md.ends_with(';') {
            md.pop();
            md.push('.');
        }
        md.push('\n');
        md
    }
}

/// `n` with thousands separators: `1,234,567`.
#[must_use]
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Registers [`FONT_PATH`] as plotters' `sans-serif` font, once per process. `false` (with the
/// reason on stderr, once) when the font cannot be read or parsed: charts are then skipped.
pub fn register_font() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let bytes = match std::fs::read(FONT_PATH) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("warning: cannot read the chart font {FONT_PATH} ({e}): no charts");
                return false;
            }
        };
        // plotters keeps the font for the whole process: it needs `'static` bytes.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let ok =
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
                .is_ok();
        if !ok {
            eprintln!("warning: {FONT_PATH} is not a usable font: no charts");
        }
        ok
    })
}

/// How a simulated cache's line is drawn: its color, stroke width and opacity. The references
/// that another column should equal (`cached-lru`, `exact-lru`, `quick_cache`) are wide pale
/// bands, so that the line they match stays visible inside them.
fn line_style(sim: Sim) -> (plotters::style::RGBColor, u32, f64) {
    use plotters::style::RGBColor;
    match sim {
        Sim::S3Fifo => (RGBColor(31, 119, 180), 2, 1.0),
        Sim::Lru => (RGBColor(255, 127, 14), 2, 1.0),
        Sim::Lfu => (RGBColor(44, 160, 44), 2, 1.0),
        Sim::Fifo => (RGBColor(140, 86, 75), 2, 1.0),
        Sim::Moka => (RGBColor(214, 39, 40), 2, 1.0),
        Sim::CachedLru => (RGBColor(227, 119, 194), 7, 0.45),
        Sim::QuickCache => (RGBColor(23, 190, 207), 9, 0.35),
        Sim::ExactLru => (RGBColor(148, 103, 189), 12, 0.3),
        Sim::Belady => (RGBColor(0, 0, 0), 3, 1.0),
    }
}

/// An x-axis label for the log scale: only at 1, 2 and 5 times a power of ten.
fn log_label(x: f64) -> String {
    let mantissa = x / 10f64.powf(x.log10().floor());
    if [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// Draws the hit ratio (%) of each cache against the cache size (log axis) as a PNG at `path`,
/// with the legend to the right of the plot. Needs [`register_font`] to have succeeded.
///
/// # Errors
/// When drawing or writing the file fails.
pub fn render_chart(report: &Report, path: &Path) -> Result<(), Box<dyn Error>> {
    use plotters::prelude::*;

    let (Some(&lo), Some(&hi)) = (report.sizes.first(), report.sizes.last()) else {
        return Err("no cache sizes to draw".into());
    };
    #[allow(clippy::cast_precision_loss)]
    let (lo, hi) = (lo as f64, hi as f64);
    let top = (0..report.sizes.len())
        .flat_map(|r| (0..report.sims.len()).map(move |c| (r, c)))
        .map(|(r, c)| 100.0 * report.ratio(r, c))
        .fold(0.0, f64::max);
    let y_max = ((top / 10.0).ceil() * 10.0).clamp(10.0, 100.0);

    let root = BitMapBackend::new(path, (1300, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(1040);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            format!("Hit ratio: {} ({})", report.trace, report.describe()),
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("cache size (entries, log scale)")
        .y_desc("hit ratio (%)")
        .x_label_formatter(&|&x| log_label(x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;

    let mut legend_rows = Vec::new();
    for (c, &sim) in report.sims.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let points: Vec<(f64, f64)> = report
            .sizes
            .iter()
            .enumerate()
            .map(|(r, &size)| (size as f64, 100.0 * report.ratio(r, c)))
            .collect();
        let (col, width, alpha) = line_style(sim);
        let style = col.mix(alpha).stroke_width(width);
        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
        // A marker shape per column, so that lines drawn over each other stay visible.
        let marker = col.mix(alpha.max(0.6));
        match c % 3 {
            0 => chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, marker.filled())))?,
            1 => chart.draw_series(
                points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 6, marker.filled())),
            )?,
            _ => chart.draw_series(
                points
                    .iter()
                    .map(|&p| Cross::new(p, 5, marker.stroke_width(2))),
            )?,
        };
        // Name the earlier column this one equals at every size, if any.
        let same = report.sims[..c]
            .iter()
            .find(|&&other| report.same_hits(sim, other));
        let label = match same {
            Some(other) => format!("{} (= {})", sim.name(), other.name()),
            None => sim.name().to_owned(),
        };
        legend_rows.push((label, style));
    }

    let text = ("sans-serif", 17).into_font();
    legend.draw(&Text::new("policy", (10, 60), text.clone()))?;
    for (i, (label, style)) in legend_rows.into_iter().enumerate() {
        let y = 100 + 30 * i32::try_from(i)?;
        legend.draw(&PathElement::new(vec![(10, y), (50, y)], style))?;
        legend.draw(&Text::new(label, (60, y - 9), text.clone()))?;
    }
    root.present()?;
    Ok(())
}

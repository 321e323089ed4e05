//! Compares W-TinyLFU variants ([`cache_benches::policysim`]) with the peers on every shared
//! trace and the Zipf traces, at the `hitratio` bin's 8 sizes, over several hasher seeds:
//!
//! ```text
//! cargo run --release -p cache-benches --bin lfusim -- base caf=1,wmin=0 aging=16
//! ```
//!
//! Environment: `SEEDS` (default 4) hasher seeds `SEED ^ 0..SEEDS`; `ONLY` keeps the traces whose
//! name contains it; `V` lists the points more than 1 point below the better peer; `THREADS`
//! (default 2) replays points in parallel; `TRACES` replays the traces of another directory
//! (in the formats of `shared/traces`) instead of the shared ones, to check a variant on traces
//! it was not tuned on; `ZIPF_KEYS` (default 100,000) the Zipf traces' keys (10 requests a
//! key); `AT` (`10000,100000`) these cache sizes instead of the 8 from 1% to 50%.
//!
//! For each variant it prints, over the real traces (the shared ones, 104 points):
//! - `gap`: its mean gap to Belady's optimum (points of hit ratio, mean over the seeds);
//! - `peer`: the same for the better of moka and raw `quick_cache` at each point (the better
//!   peer's mean over the seeds; the same for every variant);
//! - `<peer`: the points where its mean hit ratio is below the better peer's, `>3` those more
//!   than 3 points below, `worst` the largest such deficit;
//! - `zipf`: its mean gap on the Zipf traces (24 points);
//!
//! then against moka alone, over every trace (128 points): the points below (`<moka`), how many
//! of them are significant (the mean per-seed difference below minus twice its standard error:
//! `sig`), the worst such deficit, and its summed lead over moka. The variant `w=0,climb=0,p=0`
//! is moka's policy with this model's sketch hashing: what the hash alone moves.

use std::process::ExitCode;

use cache_benches::hitratio::{
    self, SEED, Sim, belady_hits, cache_sizes, load_trace, next_uses, replay_seeded, zipf_trace,
};
use cache_benches::policysim::{Variant, paired_standard_error};
use foldhash::quality::FixedState;
use std::hash::BuildHasher;

/// One (trace, size) point.
struct Row {
    trace: String,
    size: usize,
    requests: usize,
    belady: u64,
    /// moka's and raw quick_cache's hits per seed.
    moka: Vec<u64>,
    quick: Vec<u64>,
    /// Each variant's hits per seed.
    variants: Vec<Vec<u64>>,
}

impl Row {
    fn real(&self) -> bool {
        !self.trace.starts_with("zipf")
    }
}

#[allow(clippy::cast_precision_loss)]
fn pct(hits: u64, requests: usize) -> f64 {
    hits as f64 * 100.0 / requests.max(1) as f64
}

/// The mean hit ratio (%) over the seeds.
#[allow(clippy::cast_precision_loss)]
fn mean_pct(hits: &[u64], requests: usize) -> f64 {
    pct(hits.iter().sum(), requests * hits.len().max(1))
}

fn load_traces() -> Result<Vec<hitratio::Trace>, String> {
    let dir = std::env::var_os("TRACES").map_or_else(hitratio::traces_dir, Into::into);
    let mut traces = Vec::new();
    match hitratio::trace_files(&dir) {
        Ok(files) => {
            for f in files {
                traces.push(load_trace(&f).map_err(|e| format!("{}: {e}", f.display()))?);
            }
        }
        Err(e) => eprintln!("no shared traces ({}): {e}", dir.display()),
    }
    let keys: usize = std::env::var("ZIPF_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    for (s, name) in [(0.7, "zipf-0.7"), (0.9, "zipf-0.9"), (0.99, "zipf-0.99")] {
        let mut t = zipf_trace(s, keys, keys * 10, SEED);
        t.name = name.to_owned();
        traces.push(t);
    }
    if let Ok(o) = std::env::var("ONLY") {
        traces.retain(|t| t.name.contains(o.as_str()));
    }
    Ok(traces)
}

/// Replays every point: Belady once, the peers and the variants once a seed.
fn replay_all(traces: &[hitratio::Trace], cfgs: &[Variant], nseeds: u64) -> Vec<Row> {
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let moka = Variant::moka();
    let mut rows = Vec::new();
    for t in traces {
        let hashes: Vec<Vec<u64>> = (0..nseeds)
            .map(|sd| {
                let hasher = FixedState::with_seed(SEED ^ sd);
                t.keys.iter().map(|k| hasher.hash_one(k)).collect()
            })
            .collect();
        let next = next_uses(&t.keys);
        let sizes: Vec<usize> = match std::env::var("AT") {
            Ok(at) => at
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect(),
            Err(_) => cache_sizes(t.distinct(), 8),
        };
        let work = |size: usize| Row {
            trace: t.name.clone(),
            size,
            requests: t.keys.len(),
            belady: belady_hits(&t.keys, &next, size),
            moka: hashes.iter().map(|h| moka.hits(&t.keys, h, size)).collect(),
            quick: (0..nseeds)
                .map(|sd| replay_seeded(Sim::QuickCache, &t.keys, size, None, SEED ^ sd))
                .collect(),
            variants: cfgs
                .iter()
                .map(|c| hashes.iter().map(|h| c.hits(&t.keys, h, size)).collect())
                .collect(),
        };
        let mut done: Vec<(usize, Row)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|part| {
                    let (sizes, work) = (&sizes, &work);
                    scope.spawn(move || {
                        sizes
                            .iter()
                            .enumerate()
                            .skip(part)
                            .step_by(threads)
                            .map(|(i, &s)| (i, work(s)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        done.sort_by_key(|(i, _)| *i);
        rows.extend(done.into_iter().map(|(_, r)| r));
    }
    rows
}

#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
fn main() -> ExitCode {
    let mut cfgs = Vec::new();
    for spec in std::env::args().skip(1) {
        match Variant::parse(&spec) {
            Ok(v) => cfgs.push(v),
            Err(e) => {
                eprintln!("{spec}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if cfgs.is_empty() {
        eprintln!("usage: lfusim VARIANT... (e.g. base, or knob=value,...; see policysim)");
        return ExitCode::FAILURE;
    }
    let nseeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
        .max(1);
    let traces = match load_traces() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let rows = replay_all(&traces, &cfgs, nseeds);
    let verbose = std::env::var("V").is_ok();
    let real = rows.iter().filter(|r| r.real()).count().max(1) as f64;
    let zipf = rows.iter().filter(|r| !r.real()).count().max(1) as f64;
    let peer_gap: f64 = rows
        .iter()
        .filter(|r| r.real())
        .map(|r| pct(r.belady, r.requests) - better_peer(r))
        .sum::<f64>()
        / real;
    println!(
        "{} seeds; better peer (max of moka and quick_cache, seed means): mean gap {peer_gap:.3} \
         over {real} real points",
        nseeds
    );
    println!(
        "{:<40} {:>6} {:>5} {:>3} {:>6} {:>6} | {:>5} {:>4} {:>6} {:>8} {:>8}",
        "variant",
        "gap",
        "<peer",
        ">3",
        "worst",
        "zipf",
        "<moka",
        "sig",
        "worst",
        "sum",
        "non-lirs"
    );
    for (ci, c) in cfgs.iter().enumerate() {
        let (mut gap, mut zgap, mut below_peer, mut over3, mut worst_peer) =
            (0f64, 0f64, 0, 0, 0f64);
        let (mut below, mut sig, mut worst, mut sum, mut sum_other) = (0, 0, 0f64, 0f64, 0f64);
        for r in &rows {
            let hs = &r.variants[ci];
            let ours = mean_pct(hs, r.requests);
            let optimum = pct(r.belady, r.requests);
            if r.real() {
                gap += optimum - ours;
                let d = ours - better_peer(r);
                if d < 0.0 {
                    below_peer += 1;
                    worst_peer = worst_peer.max(-d);
                    over3 += usize::from(d < -3.0);
                    if verbose && d < -1.0 {
                        println!("   {} {}: {d:+.2} below the better peer", r.trace, r.size);
                    }
                }
            } else {
                zgap += optimum - ours;
            }
            let d = ours - mean_pct(&r.moka, r.requests);
            let se = paired_standard_error(hs, &r.moka, r.requests);
            sig += usize::from(d < -2.0 * se);
            if hs.iter().sum::<u64>() < r.moka.iter().sum::<u64>() {
                below += 1;
                worst = worst.max(-d);
            }
            sum += d;
            if !r.trace.starts_with("lirs") {
                sum_other += d;
            }
        }
        println!(
            "{:<40} {:>6.3} {below_peer:>5} {over3:>3} {worst_peer:>6.2} {:>6.3} | {below:>5} \
             {sig:>4} {worst:>6.2} {sum:>8.2} {sum_other:>8.2}",
            c.name(),
            gap / real,
            zgap / zipf,
        );
    }
    if std::env::var("T").is_ok() {
        per_trace(&rows, &cfgs);
    }
    ExitCode::SUCCESS
}

/// `T`: each trace's mean gap to the optimum for every variant and the better peer.
#[allow(clippy::cast_precision_loss)]
fn per_trace(rows: &[Row], cfgs: &[Variant]) {
    let mut names: Vec<&str> = rows.iter().map(|r| r.trace.as_str()).collect();
    names.dedup();
    print!("{:<18} {:>6}", "trace", "peer");
    for i in 0..cfgs.len() {
        print!(" {:>7}", format!("v{i}"));
    }
    println!();
    for name in names {
        let rs: Vec<&Row> = rows.iter().filter(|r| r.trace == name).collect();
        let n = rs.len().max(1) as f64;
        let peer: f64 = rs
            .iter()
            .map(|r| pct(r.belady, r.requests) - better_peer(r))
            .sum::<f64>()
            / n;
        print!("{name:<18} {peer:>6.3}");
        for ci in 0..cfgs.len() {
            let g: f64 = rs
                .iter()
                .map(|r| pct(r.belady, r.requests) - mean_pct(&r.variants[ci], r.requests))
                .sum::<f64>()
                / n;
            print!(" {g:>7.3}");
        }
        println!();
    }
}

/// The better peer's mean hit ratio (%) at a point.
fn better_peer(r: &Row) -> f64 {
    mean_pct(&r.moka, r.requests).max(mean_pct(&r.quick, r.requests))
}

//! Compares W-TinyLFU variants ([`cache_benches::policysim`]) with moka on every shared trace and
//! the Zipf traces, at the `hitratio` bin's 8 sizes, over several hasher seeds:
//!
//! ```text
//! cargo run --release -p cache-benches --bin lfusim -- base caf=1,wmin=0 aging=16
//! ```
//!
//! Environment: `SEEDS` (default 4) hasher seeds `SEED ^ 0..SEEDS`; `ONLY` keeps the traces whose
//! name contains it; `V` lists the points below moka. For each variant it prints the points
//! where its mean hit ratio over the seeds is below moka's, how many of them are significant (the
//! mean per-seed difference below minus twice its standard error: `sig`), the worst such
//! deficit, its summed lead over moka (all traces, then the non-LIRS ones), and the count and
//! worst deficit seed by seed. The variant `w=0,climb=0,p=0` is moka's policy with this model's
//! sketch hashing: what the hash alone moves. About 15 s a variant with 4 seeds.

use std::process::ExitCode;

use cache_benches::hitratio::{self, SEED, cache_sizes, load_trace, zipf_trace};
use cache_benches::policysim::{Variant, paired_standard_error};
use foldhash::quality::FixedState;
use std::hash::BuildHasher;

/// One (trace, size) point: its name, size, requests, moka's hits per seed, each variant's hits
/// per seed.
type Row = (String, usize, usize, Vec<u64>, Vec<Vec<u64>>);

#[allow(clippy::too_many_lines)]
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
    let seeds = usize::try_from(nseeds).unwrap_or(1);
    let only: Option<String> = std::env::var("ONLY").ok();
    let dir = hitratio::traces_dir();
    let mut traces = Vec::new();
    match hitratio::trace_files(&dir) {
        Ok(files) => {
            for f in files {
                match load_trace(&f) {
                    Ok(t) => traces.push(t),
                    Err(e) => {
                        eprintln!("{}: {e}", f.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        Err(e) => eprintln!("no shared traces ({}): {e}", dir.display()),
    }
    for (s, name) in [(0.7, "zipf-0.7"), (0.9, "zipf-0.9"), (0.99, "zipf-0.99")] {
        let mut t = zipf_trace(s, 100_000, 1_000_000, SEED);
        t.name = name.to_owned();
        traces.push(t);
    }
    if let Some(o) = &only {
        traces.retain(|t| t.name.contains(o.as_str()));
    }
    let moka = Variant::moka();
    let mut rows: Vec<Row> = Vec::new();
    for t in &traces {
        let hashes: Vec<Vec<u64>> = (0..nseeds)
            .map(|sd| {
                let hasher = FixedState::with_seed(SEED ^ sd);
                t.keys.iter().map(|k| hasher.hash_one(k)).collect()
            })
            .collect();
        for size in cache_sizes(t.distinct(), 8) {
            let mokas: Vec<u64> = hashes.iter().map(|h| moka.hits(&t.keys, h, size)).collect();
            let hs: Vec<Vec<u64>> = cfgs
                .iter()
                .map(|c| hashes.iter().map(|h| c.hits(&t.keys, h, size)).collect())
                .collect();
            rows.push((t.name.clone(), size, t.keys.len(), mokas, hs));
        }
    }
    let verbose = std::env::var("V").is_ok();
    println!(
        "{:<44} {:>5} {:>4} {:>6} {:>8} {:>7} | per seed: below / worst",
        "variant", "below", "sig", "worst", "sum", "non-lirs"
    );
    #[allow(clippy::cast_precision_loss)]
    let pct = |h: u64, n: usize| h as f64 * 100.0 / n as f64;
    for (ci, c) in cfgs.iter().enumerate() {
        let (mut below, mut sig, mut worst, mut sum, mut sum_other) = (0, 0, 0f64, 0f64, 0f64);
        let mut per = vec![(0usize, 0f64); seeds];
        for (name, size, n, mokas, hs) in &rows {
            let m: u64 = mokas.iter().sum();
            let h: u64 = hs[ci].iter().sum();
            let d = pct(h, *n * seeds) - pct(m, *n * seeds);
            let se = paired_standard_error(&hs[ci], mokas, *n);
            let significant = d < -2.0 * se;
            sig += usize::from(significant);
            if h < m {
                below += 1;
                worst = worst.max(-d);
                if verbose {
                    println!(
                        "   {name} {size}: {d:+.2} (se {se:.2}){}",
                        if significant { " *" } else { "" }
                    );
                }
            }
            sum += d;
            if !name.starts_with("lirs") {
                sum_other += d;
            }
            for ((count, w), (&a, &b)) in per.iter_mut().zip(hs[ci].iter().zip(mokas)) {
                if a < b {
                    *count += 1;
                    *w = w.max(pct(b, *n) - pct(a, *n));
                }
            }
        }
        let per: Vec<String> = per.iter().map(|(b, w)| format!("{b}/{w:.1}")).collect();
        println!(
            "{:<44} {below:>5} {sig:>4} {worst:>6.2} {sum:>8.2} {sum_other:>7.2} | {}",
            c.name(),
            per.join(" ")
        );
    }
    ExitCode::SUCCESS
}

//! The hit-ratio simulator: replays traces through each policy of `cache-runtime`, its peers, an
//! exact LRU and Belady's optimum, at sizes from 1% to 50% of each trace's distinct keys.
//!
//! ```text
//! cargo run --release -p cache-benches --bin hitratio -- [OPTIONS] [TRACE...]
//! ```
//!
//! A `TRACE` is a trace file (`*.trace.gz`, `*.trace.xz`) or `zipf-<s>` (a synthetic trace).
//! Without any, every trace in `shared/traces/` next to the workspace is replayed, then
//! `zipf-0.7`, `zipf-0.9` and `zipf-0.99`.
//!
//! Options:
//! - `--limit N`: replay only the first `N` requests of each trace;
//! - `--sizes N`: the number of cache sizes per trace (default 8);
//! - `--out DIR`: where `hitratio.md` and the charts go (default: `docs/` of the workspace);
//! - `--no-charts`: skip the PNG charts;
//! - `--seeds N`: also replay `lfu` and moka with `N` hasher seeds (`SEED ^ 0` .. `SEED ^ (N-1)`;
//!   default 4, `1` for none) and compare their mean hit ratios, so that a point where `lfu` is
//!   below moka by the luck of one hash (sketch counters that collide) is told apart from one
//!   where its policy is.
//!
//! The tables go to stdout and to `DIR/hitratio.md`; one chart per trace to
//! `DIR/hitratio-<trace>.png`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use cache_benches::hitratio::{
    self, Report, SEED, Sim, Trace, cache_sizes, load_trace, replay_seeded, simulate, thousands,
    zipf_trace,
};

/// Keys of the synthetic Zipf traces.
const ZIPF_KEYS: usize = 100_000;
/// Requests of the synthetic Zipf traces.
const ZIPF_REQUESTS: usize = 1_000_000;
/// The exponents of the default Zipf traces.
const ZIPF_EXPONENTS: [&str; 3] = ["0.7", "0.9", "0.99"];

struct Args {
    traces: Vec<String>,
    limit: Option<usize>,
    sizes: usize,
    out: PathBuf,
    charts: bool,
    seeds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        traces: Vec::new(),
        limit: None,
        sizes: 8,
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs"),
        charts: true,
        seeds: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--limit" => {
                args.limit = Some(
                    value("--limit")?
                        .parse()
                        .map_err(|e| format!("--limit: {e}"))?,
                );
            }
            "--sizes" => {
                args.sizes = value("--sizes")?
                    .parse()
                    .map_err(|e| format!("--sizes: {e}"))?;
            }
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--no-charts" => args.charts = false,
            "--seeds" => {
                args.seeds = value("--seeds")?
                    .parse()
                    .map_err(|e| format!("--seeds: {e}"))?;
                if args.seeds == 0 {
                    return Err("--seeds: at least 1".into());
                }
            }
            "-h" | "--help" => {
                return Err(
                    "usage: hitratio [--limit N] [--sizes N] [--out DIR] [--no-charts] \
                     [--seeds N] [TRACE...]"
                        .into(),
                );
            }
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => args.traces.push(a),
        }
    }
    if args.traces.is_empty() {
        let dir = hitratio::traces_dir();
        let files = hitratio::trace_files(&dir)
            .map_err(|e| format!("cannot list the traces in {}: {e}", dir.display()))?;
        args.traces
            .extend(files.iter().map(|p| p.display().to_string()));
        args.traces
            .extend(ZIPF_EXPONENTS.iter().map(|s| format!("zipf-{s}")));
    }
    Ok(args)
}

/// Loads a trace file, or generates `zipf-<s>`.
fn load(spec: &str) -> Result<Trace, String> {
    if let Some(s) = spec.strip_prefix("zipf-") {
        let exponent: f64 = s
            .parse()
            .map_err(|e| format!("{spec}: bad Zipf exponent: {e}"))?;
        let mut t = zipf_trace(exponent, ZIPF_KEYS, ZIPF_REQUESTS, SEED);
        // Name it as given (`zipf-0.90` stays `zipf-0.90`).
        t.name = spec.to_owned();
        return Ok(t);
    }
    load_trace(Path::new(spec)).map_err(|e| format!("{spec}: {e}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let charts = args.charts && hitratio::register_font();
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("cannot create {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut studies = Vec::new();
    for spec in &args.traces {
        let mut trace = match load(spec) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(n) = args.limit {
            trace.truncate(n);
        }
        let sizes = cache_sizes(trace.distinct(), args.sizes);
        let t0 = Instant::now();
        let report = simulate(&trace, &sizes, &Sim::ALL);
        let mut timing = String::new();
        for (s, secs) in report.sims.iter().zip(&report.seconds) {
            let _ = write!(timing, " {} {secs:.1}s", s.name());
        }
        eprintln!(
            "{}: {} in {:.1}s ({timing} )",
            report.trace,
            report.describe(),
            t0.elapsed().as_secs_f64()
        );
        println!("{}", report.markdown());
        if args.seeds > 1 {
            let t1 = Instant::now();
            let study = Seeds::replay(&trace, &report, args.seeds);
            eprintln!(
                "{}: lfu and moka with {} more hasher seed{} in {:.1}s",
                report.trace,
                args.seeds - 1,
                if args.seeds == 2 { "" } else { "s" },
                t1.elapsed().as_secs_f64()
            );
            studies.push(study);
        }
        if charts {
            let path = args.out.join(format!("hitratio-{}.png", report.trace));
            if let Err(e) = hitratio::render_chart(&report, &path) {
                eprintln!("warning: chart {}: {e}", path.display());
            }
        }
        reports.push(report);
    }
    let wall = started.elapsed().as_secs_f64();
    let mut checks = checks(&reports);
    if args.seeds > 1 {
        checks.push_str(&Seeds::check(&studies, args.seeds));
    }
    println!("{checks}");
    eprintln!("all traces in {wall:.1}s");

    let md = document(&args, &reports, &checks, charts);
    let path = args.out.join("hitratio.md");
    if let Err(e) = std::fs::write(&path, md) {
        eprintln!("cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", path.display());
    ExitCode::SUCCESS
}

/// `lfu` and moka replayed with several hasher seeds, per cache size: which sketch counters
/// collide, and so which entries each admits, depends on the hash; the mean over seeds shows
/// the policy.
struct Seeds {
    trace: String,
    requests: usize,
    sizes: Vec<usize>,
    /// `[size][seed]` hits; seed 0 is the main table's (`SEED`).
    lfu: Vec<Vec<u64>>,
    moka: Vec<Vec<u64>>,
}

impl Seeds {
    /// Replays `lfu` and moka with seeds `SEED ^ 1` .. `SEED ^ (n-1)` (two threads), next to the
    /// main table's `SEED`.
    fn replay(trace: &Trace, report: &Report, n: u64) -> Self {
        let column = |sim| report.column(sim).expect("lfu and moka are simulated");
        let (lc, mc) = (column(Sim::Lfu), column(Sim::Moka));
        let mut lfu: Vec<Vec<u64>> = report.hits.iter().map(|row| vec![row[lc]]).collect();
        let mut moka: Vec<Vec<u64>> = report.hits.iter().map(|row| vec![row[mc]]).collect();
        let jobs: Vec<(usize, Sim, u64)> = (0..report.sizes.len())
            .flat_map(|row| (1..n).flat_map(move |k| [(row, Sim::Lfu, k), (row, Sim::Moka, k)]))
            .collect();
        let results: Vec<(usize, Sim, u64, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = [0, 1]
                .map(|half| {
                    let jobs = &jobs;
                    scope.spawn(move || {
                        jobs.iter()
                            .skip(half)
                            .step_by(2)
                            .map(|&(row, sim, k)| {
                                let size = report.sizes[row];
                                let h = replay_seeded(sim, &trace.keys, size, None, SEED ^ k);
                                (row, sim, k, h)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .into_iter()
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut sorted = results;
        sorted.sort_by_key(|&(row, sim, k, _)| (row, sim == Sim::Moka, k));
        for (row, sim, _, h) in sorted {
            if sim == Sim::Lfu {
                lfu[row].push(h);
            } else {
                moka[row].push(h);
            }
        }
        Self {
            trace: report.trace.clone(),
            requests: report.requests,
            sizes: report.sizes.clone(),
            lfu,
            moka,
        }
    }

    /// The hit ratio in percent of `hits` summed over `seeds` replays.
    #[allow(clippy::cast_precision_loss)]
    fn percent(&self, hits: u64, seeds: usize) -> f64 {
        hits as f64 * 100.0 / (self.requests * seeds.max(1)) as f64
    }

    /// The checks section of the seed study.
    fn check(studies: &[Seeds], n: u64) -> String {
        let mut md = String::new();
        let mut below = Vec::new();
        let mut per_seed = vec![0usize; usize::try_from(n).unwrap_or(1)];
        let mut points = 0;
        for st in studies {
            for (row, &size) in st.sizes.iter().enumerate() {
                let (l, m) = (&st.lfu[row], &st.moka[row]);
                points += 1;
                for (k, (a, b)) in l.iter().zip(m).enumerate() {
                    if a < b
                        && let Some(c) = per_seed.get_mut(k)
                    {
                        *c += 1;
                    }
                }
                let (ls, ms): (u64, u64) = (l.iter().sum(), m.iter().sum());
                if ls < ms {
                    let diffs: Vec<f64> = l
                        .iter()
                        .zip(m)
                        .map(|(&a, &b)| st.percent(a, 1) - st.percent(b, 1))
                        .collect();
                    let lo = diffs.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = diffs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    below.push(format!(
                        "{} at {} entries: lfu {:.2}% < moka {:.2}% (per seed {lo:+.2} to \
                         {hi:+.2})",
                        st.trace,
                        thousands(size),
                        st.percent(ls, l.len()),
                        st.percent(ms, m.len()),
                    ));
                }
            }
        }
        let counts: Vec<String> = per_seed.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            md,
            "- Over {n} hasher seeds (`SEED ^ 0` .. `SEED ^ {}`; `--seeds`): seed by seed, `lfu` \
             is below moka at {} of {points} points; by the mean hit ratio over the seeds, at \
             {}{}",
            n - 1,
            counts.join(", "),
            below.len(),
            if below.is_empty() { "." } else { ":" }
        );
        for b in &below {
            let _ = writeln!(md, "  - {b}");
        }
        md
    }
}

/// The properties the tables should show, checked on the numbers: where `lfu` is below moka,
/// and whether each LRU matches the exact reference (and `s3-fifo` raw `quick_cache`).
fn checks(reports: &[Report]) -> String {
    let mut md = String::from("## Checks\n\n");
    let mut below = Vec::new();
    for r in reports {
        for (row, size) in r.below(Sim::Lfu, Sim::Moka) {
            below.push(format!(
                "{} at {} entries: lfu {:.2}% < moka {:.2}%",
                r.trace,
                thousands(size),
                r.percent(row, Sim::Lfu).unwrap_or(f64::NAN),
                r.percent(row, Sim::Moka).unwrap_or(f64::NAN),
            ));
        }
    }
    if below.is_empty() {
        md.push_str("- `lfu` >= `moka` on every trace and size.\n");
    } else {
        let _ = writeln!(
            md,
            "- `lfu` < `moka` at {} (trace, size) points:",
            below.len()
        );
        for b in &below {
            let _ = writeln!(md, "  - {b}");
        }
    }
    let over_optimal: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.sims.iter().flat_map(move |&s| {
                r.below(Sim::Belady, s)
                    .into_iter()
                    .map(move |(_, size)| format!("{} {} at {size}", r.trace, s.name()))
            })
        })
        .collect();
    if over_optimal.is_empty() {
        md.push_str("- `belady` >= every cache on every trace and size.\n");
    } else {
        let _ = writeln!(
            md,
            "- above `belady` (a cache holding more than its capacity?): {}.",
            over_optimal.join(", ")
        );
    }
    for (a, b) in [
        (Sim::Lru, Sim::ExactLru),
        (Sim::CachedLru, Sim::ExactLru),
        (Sim::S3Fifo, Sim::QuickCache),
    ] {
        let differ: Vec<&str> = reports
            .iter()
            .filter(|r| !r.same_hits(a, b))
            .map(|r| r.trace.as_str())
            .collect();
        if differ.is_empty() {
            let _ = writeln!(
                md,
                "- `{}` == `{}` (the same hit count) on every trace and size.",
                a.name(),
                b.name()
            );
        } else {
            let _ = writeln!(
                md,
                "- `{}` != `{}` on: {}.",
                a.name(),
                b.name(),
                differ.join(", ")
            );
        }
    }
    md
}

/// The whole `hitratio.md`: setup, a summary of the gaps, then each trace's table and chart.
fn document(args: &Args, reports: &[Report], checks: &str, charts: bool) -> String {
    let mut md = String::from("# Hit ratios\n\n");
    md.push_str("Generated by `cargo run --release -p cache-benches --bin hitratio`");
    if let Some(n) = args.limit {
        let _ = write!(md, " with `--limit {n}`");
    }
    md.push_str(" (source: `benches/src/hitratio.rs`).\n\n");
    let _ = writeln!(
        md,
        "Each trace is replayed demand-filled from a cold start: look the key up, insert it on a \
         miss; the hit ratio is hits / requests. Cache sizes are {} log-spaced points from 1% to \
         50% of the trace's distinct keys. Real traces: `shared/traces/` (see its README); \
         synthetic: Zipf over {} keys, {} requests, SplitMix64 seed `{SEED:#x}`.\n",
        args.sizes,
        thousands(ZIPF_KEYS),
        thousands(ZIPF_REQUESTS)
    );
    md.push_str(
        "Columns:\n\
         - `s3-fifo`, `lru`, `lfu`, `fifo`: `cache_runtime::Cache<u64, ()>` with that policy, \
         `.shards(1)` (the whole capacity in one shard, as the references have) and `.seed(SEED)`; \
         `get`, then `insert` on a miss;\n\
         - `moka`: `moka::sync::Cache` (TinyLFU admission), `max_capacity(n)`, hasher fixed \
         (foldhash, `SEED`), `run_pending_tasks()` after every `get` and `insert` so that it holds \
         at most `n` entries;\n\
         - `cached-lru`: the `cached` crate's `LruCache` (4.x name of `SizedCache`), via `Cached`;\n\
         - `quick_cache`: raw `quick_cache::unsync::Cache` (S3-FIFO, unsharded, hasher fixed);\n\
         - `exact-lru`: a hash map plus index-linked list LRU written for this simulator;\n\
         - `belady`: Belady's offline optimum (evicts the key used farthest in the future, which \
         may be the key just requested: bypass), an upper bound for every cache of that size.\n\n\
         Gap to optimal = belady - policy, in percentage points of hit ratio.\n\n",
    );

    md.push_str("## Summary: mean gap to optimal (points)\n\n| trace | requests | distinct keys |");
    let policies: Vec<Sim> = Sim::ALL
        .iter()
        .copied()
        .filter(|&s| s != Sim::Belady)
        .collect();
    for s in &policies {
        let _ = write!(md, " {} |", s.name());
    }
    md.push_str("\n| --- | ---: | ---: |");
    for _ in &policies {
        md.push_str(" ---: |");
    }
    md.push('\n');
    for r in reports {
        let _ = write!(
            md,
            "| {} | {}{} | {} |",
            r.trace,
            thousands(r.requests),
            if r.full_len.is_some() {
                " (capped)"
            } else {
                ""
            },
            thousands(r.distinct)
        );
        for &s in &policies {
            match r.gap(s) {
                Some(g) => {
                    let _ = write!(md, " {:.2} |", g.mean);
                }
                None => md.push_str(" |"),
            }
        }
        md.push('\n');
    }
    md.push('\n');
    md.push_str(checks);
    md.push_str("\n## Traces\n\n");
    for r in reports {
        md.push_str(&r.markdown());
        if charts {
            let _ = writeln!(md, "\n![{0}](hitratio-{0}.png)", r.trace);
        }
        md.push('\n');
    }
    md
}

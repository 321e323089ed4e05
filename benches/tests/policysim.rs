//! The policy model of `policysim` is only useful if it is faithful: with its defaults it must
//! give `cache-runtime`'s `lfu` hit count exactly, and as `Variant::moka()` moka's, whatever the
//! hasher seed.

use std::hash::BuildHasher;

use cache_benches::hitratio::{
    SEED, Sim, Trace, load_trace, replay_seeded, traces_dir, zipf_trace,
};
use cache_benches::policysim::{Variant, paired_standard_error};
use foldhash::quality::FixedState;

fn traces() -> Vec<Trace> {
    // The second: 20,000 keys, so that caches of 1,024 entries and more (whose window and
    // protected segment are ordered by epochs) evict: at 2,048 and at d/4 (about 3,900).
    let mut v = vec![
        zipf_trace(0.9, 2_000, 20_000, SEED),
        zipf_trace(0.9, 20_000, 100_000, SEED),
    ];
    // `lirs-gli`: the sketch's count of the entries held when it starts decides most of it.
    for name in ["lirs-cs", "lirs-gli"] {
        let path = traces_dir().join(format!("{name}.trace.gz"));
        if path.exists() {
            v.push(load_trace(&path).expect("a shared trace decodes"));
        } else {
            eprintln!("skipping a real trace: {} is missing", path.display());
        }
    }
    v
}

#[test]
fn the_model_gives_lfu_and_moka_hit_counts_exactly() {
    let base = Variant::parse("base").expect("the defaults");
    let moka = Variant::moka();
    for t in traces() {
        let d = t.distinct();
        for seed in [SEED, SEED ^ 1] {
            let hasher = FixedState::with_seed(seed);
            let hashes: Vec<u64> = t.keys.iter().map(|k| hasher.hash_one(k)).collect();
            for size in [10, d / 20, d / 4, 2_048] {
                assert_eq!(
                    base.hits(&t.keys, &hashes, size),
                    replay_seeded(Sim::Lfu, &t.keys, size, None, seed),
                    "{} at {size}, seed {seed:#x}: lfu",
                    t.name
                );
                assert_eq!(
                    moka.hits(&t.keys, &hashes, size),
                    replay_seeded(Sim::Moka, &t.keys, size, None, seed),
                    "{} at {size}, seed {seed:#x}: moka",
                    t.name
                );
            }
        }
    }
}

#[test]
fn knobs_parse_and_change_the_policy() {
    assert!(Variant::parse("nope=1").is_err());
    assert!(Variant::parse("w=abc").is_err());
    let t = zipf_trace(0.9, 2_000, 20_000, SEED);
    let hasher = FixedState::with_seed(SEED);
    let hashes: Vec<u64> = t.keys.iter().map(|k| hasher.hash_one(k)).collect();
    let base = Variant::parse("base").unwrap().hits(&t.keys, &hashes, 100);
    // A window of half the cache and no admission-protected main: a different policy.
    let other = Variant::parse("w=0.5,climb=0,p=0").unwrap();
    assert_eq!(other.name(), "w=0.5,climb=0,p=0");
    assert_ne!(other.hits(&t.keys, &hashes, 100), base);
    // The sketch knobs change which keys the sketch counts together; `vk` which entry a
    // candidate meets.
    for knob in ["cu=1", "blk=1", "vk=2"] {
        let v = Variant::parse(knob).unwrap();
        assert_ne!(v.hits(&t.keys, &hashes, 100), base, "{knob}");
    }
    // A hit that only sets a reference bit (or counter), in each segment and in all three, or
    // that leaves a young protected entry in place: another order of eviction, and still an
    // admission-filtered cache (within 5% of the hits on Zipf).
    // (The window alone, `clock=1`, may give the same count: the climber keeps it small on
    // Zipf, where a scan of a few entries rarely changes which one leaves.)
    for knob in [
        "clock=1",
        "clock=2",
        "clock=4",
        "clock=7",
        "clock=5,cmax=3",
        "tskip=0.5",
    ] {
        let hits = Variant::parse(knob).unwrap().hits(&t.keys, &hashes, 100);
        assert!(knob == "clock=1" || hits != base, "{knob}");
        assert!(
            hits.abs_diff(base) * 20 < base,
            "{knob}: {hits} against {base}"
        );
    }
}

#[test]
fn paired_standard_error_of_the_mean_difference() {
    // Differences of 1, 2 and 3 points over 100 requests: mean 2, sample sd 1, se 1/sqrt(3).
    let se = paired_standard_error(&[11, 22, 33], &[10, 20, 30], 100);
    assert!((se - 1.0 / 3f64.sqrt()).abs() < 1e-12, "{se}");
    assert!(paired_standard_error(&[5], &[4], 100).abs() < f64::EPSILON);
    assert!(paired_standard_error(&[7, 7], &[5, 5], 100).abs() < f64::EPSILON);
}

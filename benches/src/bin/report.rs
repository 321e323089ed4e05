//! Prints BENCHMARKS.md-style tables from criterion's saved estimates: the median of each
//! benchmark and its ratio to the group's baseline (`quick_cache_raw` where present).
//!
//! `cargo run --release -p cache-benches --bin report [target/criterion]`

use std::fs;
use std::path::{Path, PathBuf};

fn median_ns(dir: &Path) -> Option<f64> {
    let text = fs::read_to_string(dir.join("new").join("estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("median")?.get("point_estimate")?.as_f64()
}

/// Benchmark directories below a group (ids may be nested one level: `name/param`).
fn benches(group: &Path) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(group) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "report" || !p.is_dir() {
            continue;
        }
        if let Some(m) = median_ns(&p) {
            out.push((name, m));
        } else if let Ok(sub) = fs::read_dir(&p) {
            for s in sub.flatten() {
                if let Some(m) = median_ns(&s.path()) {
                    out.push((format!("{name}/{}", s.file_name().to_string_lossy()), m));
                }
            }
        }
    }
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    out
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/criterion"), PathBuf::from);
    let Ok(groups) = fs::read_dir(&root) else {
        eprintln!(
            "no criterion results under {}: run `cargo bench -p cache-benches` first",
            root.display()
        );
        std::process::exit(1);
    };
    let mut groups: Vec<_> = groups
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    groups.sort();
    for g in groups {
        let rows = benches(&g);
        if rows.is_empty() {
            continue;
        }
        let base = rows
            .iter()
            .find(|(n, _)| n == "quick_cache_raw")
            .or_else(|| rows.first())
            .map_or(1.0, |r| r.1);
        let base_name = rows
            .iter()
            .find(|(n, _)| n == "quick_cache_raw")
            .or_else(|| rows.first())
            .map_or("", |r| r.0.as_str());
        println!(
            "\n### {}\n",
            g.file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        );
        println!("| benchmark | median | ratio to `{base_name}` |");
        println!("|---|---:|---:|");
        for (name, m) in &rows {
            println!("| {name} | {m:.1} ns | {:.2}x |", m / base);
        }
    }
}

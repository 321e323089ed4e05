//! Benchmarks of `cache-runtime` against its peers. See `BENCHMARKS.md` at the top of the
//! workspace for the tables and the commands that produce them.
//!
//! - `cargo bench -p cache-benches --bench core`: hit, miss-and-load and clock costs;
//! - `cargo run --release -p cache-benches --bin report`: the ratio tables from criterion's
//!   saved estimates;
//! - `cargo run --release -p cache-benches --bin hitratio`: hit ratios of each policy and peer on
//!   the shared traces and synthetic Zipf traces, with Belady's optimum ([`hitratio`]);
//! - `cargo run --release -p cache-benches --bin lfusim -- <variant>...`: W-TinyLFU variants
//!   against moka over several hasher seeds ([`policysim`]).

pub mod hitratio;
pub mod policysim;

/// `n` distinct 64-byte string keys.
#[must_use]
pub fn string_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:064}")).collect()
}

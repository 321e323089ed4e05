use cache_runtime::cached;
use std::time::Duration;

#[cached(tti = "10x")]
fn not_a_duration(x: u64) -> u64 {
    x
}

#[cached(tti = "0s")]
fn zero(x: u64) -> u64 {
    x
}

#[cached(tti = 600)]
fn bare_number(x: u64) -> u64 {
    x
}

#[cached(tti = true)]
fn not_a_string(x: u64) -> u64 {
    x
}

const NEVER_IDLE: Duration = Duration::ZERO;

#[cached(tti = NEVER_IDLE)]
fn zero_constant(x: u64) -> u64 {
    x
}

#[cached(time_to_idle = "10m")]
fn the_builder_name(x: u64) -> u64 {
    x
}

fn main() {}

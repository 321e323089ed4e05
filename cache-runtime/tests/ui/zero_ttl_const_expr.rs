use cache_runtime::cached;
use std::time::Duration;

const NEVER: Duration = Duration::ZERO;

#[cached(ttl = NEVER)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

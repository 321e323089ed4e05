use cache_runtime::cached;

#[cached(jitter = 0.1)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(capacity = 100, unbounded)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

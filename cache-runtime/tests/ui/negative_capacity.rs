use cache_runtime::cached;

#[cached(capacity = -5)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(ttl = 5)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(negative_ttl = "1s")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

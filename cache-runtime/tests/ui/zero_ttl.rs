use cache_runtime::cached;

#[cached(ttl = "0s")]
fn f(x: u64) -> u64 {
    x
}

#[cached(ttl = "1s", negative_ttl = "0ms")]
fn g(x: u64) -> Option<u64> {
    Some(x)
}

fn main() {}

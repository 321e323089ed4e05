use cache_runtime::cached;

#[cached(ttl = "5s", capacity = 10, ttl = "10s")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(ttl = "200000000d")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(capacity = 10, lifetime = "5s")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

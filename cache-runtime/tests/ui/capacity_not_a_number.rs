use cache_runtime::cached;

#[cached(capacity = "100")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(unbounded = 3, name)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(backend = shared)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(key_type = u64)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

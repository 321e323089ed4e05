use cache_runtime::cached;

#[cached(distributed_lock = "5s")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

#[cached(policy = "lfuu")]
fn near_miss(x: u64) -> u64 {
    x
}

#[cached(policy = "random")]
fn unknown(x: u64) -> u64 {
    x
}

#[cached(policy = lru)]
fn not_a_string(x: u64) -> u64 {
    x
}

fn main() {}

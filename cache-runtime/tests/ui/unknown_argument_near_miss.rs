use cache_runtime::cached;

#[cached(tll = "5s")]
fn f(x: u64) -> u64 {
    x
}

#[cached(max_size = 100)]
fn g(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

// `unless` looks at the cached value (the `Ok` type), not the whole `Result`.
#[cached(unless = |r: &Result<u64, String>| r.is_err())]
fn parse(s: String) -> Result<u64, String> {
    s.parse().map_err(|_| s)
}

// `if` is a condition over the arguments.
#[cached(if = x)]
fn g(x: u64) -> u64 {
    x
}

fn main() {}

use cache_runtime::cached;

// No TTL: nothing expires, so nothing can be stale or early.
#[cached(stale = "30s")]
fn a(x: u64) -> u64 {
    x
}

#[cached(ttl = "1m", early_refresh = -1.0)]
fn b(x: u64) -> u64 {
    x
}

#[cached(ttl = "1m", early_refresh = "fast")]
fn c(x: u64) -> u64 {
    x
}

#[cached(ttl = "1m", ttl_fn = |v: &u64| std::time::Duration::from_secs(*v))]
fn d(x: u64) -> u64 {
    x
}

#[cached(ttl = "1m", stale = 30)]
fn e(x: u64) -> u64 {
    x
}

fn main() {}

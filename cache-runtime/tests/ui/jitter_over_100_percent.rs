use cache_runtime::cached;

#[cached(ttl = "5s", jitter = 1.5)]
fn fraction(x: u64) -> u64 {
    x
}

#[cached(ttl = "5s", jitter = "10s")]
fn spread(x: u64) -> u64 {
    x
}

fn main() {}

const TTL: std::time::Duration = std::time::Duration::from_secs(1);

#[cached(ttl = TTL, jitter = "2s")]
fn spread_over_expression(x: u64) -> u64 {
    x
}

use cache_runtime::cached;

#[cached(ttl = "5s")]
struct Config {
    retries: u32,
}

fn main() {
    let _ = Config { retries: 1 };
}

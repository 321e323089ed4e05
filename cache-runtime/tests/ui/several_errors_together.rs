use cache_runtime::cached;

#[cached(ttl = "5 sekunden", capacity = 0, policy = "lur", colour = "blue")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}

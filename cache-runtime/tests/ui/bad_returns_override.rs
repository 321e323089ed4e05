use cache_runtime::cached;

type Answer = Result<u64, String>;

#[cached(returns = "results", negative_ttl = "1s")]
fn f(x: u64) -> Answer {
    Ok(x)
}

fn main() {}

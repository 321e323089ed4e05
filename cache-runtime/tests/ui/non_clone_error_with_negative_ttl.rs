use cache_runtime::cached;

#[derive(Debug)]
struct DbError;

#[cached(negative_ttl = "1s")]
fn f(x: u64) -> Result<u64, DbError> {
    Ok(x)
}

fn main() {}

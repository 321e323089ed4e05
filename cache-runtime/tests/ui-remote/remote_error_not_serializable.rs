use cache_runtime::cached;

#[derive(Clone, Debug)]
struct DbError;

// ... and, with `negative_ttl`, its `Err`s, at the `Err` type.
#[cached(backend = "shared", negative_ttl = "5s")]
fn load_score(id: u64) -> Result<u64, DbError> {
    Ok(id)
}

fn main() {}

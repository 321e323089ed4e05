use std::rc::Rc;

use cache_runtime::cached;

// With `negative_ttl`, the `Err` type is cached too: it must be `Send + Sync`.
#[cached(negative_ttl = "1s")]
fn f(x: u64) -> Result<u64, Rc<str>> {
    Ok(x)
}

fn main() {}

use std::rc::Rc;

use cache_runtime::cached;

// A background refresh hands its outcome back across threads: an `Err` type that is not `Send`
// is reported at the return type.
#[cached(ttl = "1s", stale = "10s")]
async fn f(id: u64) -> Result<u64, Rc<str>> {
    Ok(id)
}

fn main() {}

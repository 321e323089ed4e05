use std::rc::Rc;

use cache_runtime::cached;

// `stale` refreshes in the background, on another thread, with the arguments the body uses:
// reported at `stale`, naming the argument's type.
#[cached(key = id, ttl = "1s", stale = "10s")]
fn f(id: u64, label: Rc<str>) -> String {
    format!("{label} {id}")
}

fn main() {}

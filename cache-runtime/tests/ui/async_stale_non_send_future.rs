use std::rc::Rc;

use cache_runtime::cached;

async fn tick() {}

// `stale` runs the body's future in the background: reported at `stale`, with the value that
// the body holds across an `.await`.
#[cached(ttl = "1s", stale = "10s")]
async fn f(id: u64) -> String {
    let label = Rc::new(id.to_string());
    tick().await;
    format!("{label}")
}

fn main() {}

use std::rc::Rc;

use cache_runtime::cached;

// A cache is shared between threads: an async function's values must be `Send + Sync` too.
#[cached]
async fn greeting(id: u64) -> Rc<String> {
    Rc::new(format!("hello {id}"))
}

fn main() {}

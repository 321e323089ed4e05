use std::rc::Rc;

use cache_runtime::cached;

// A cache is shared between threads: its values must be `Send + Sync`.
#[cached]
fn greeting(id: u64) -> Rc<String> {
    Rc::new(format!("hello {id}"))
}

fn main() {}

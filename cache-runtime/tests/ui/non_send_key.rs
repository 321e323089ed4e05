use std::rc::Rc;

use cache_runtime::cached;

// A cache is shared between threads: its key must be `Send + Sync`.
#[cached]
fn greet(name: Rc<str>) -> String {
    format!("hello {name}")
}

fn main() {}

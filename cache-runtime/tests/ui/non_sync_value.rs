use std::cell::Cell;

use cache_runtime::cached;

// `Send` but not `Sync`: a cached value is read by many threads at once.
#[cached]
fn counter(id: u64) -> Cell<u64> {
    Cell::new(id)
}

fn main() {}

use cache_runtime::{cache_evict, cache_put, cached};

#[cached]
fn price(id: u64) -> u64 {
    id
}

#[cache_evict(tags = |v: &u64| [v.to_string()])]
fn a_closure(id: u64) {
    let _ = id;
}

#[cache_evict(key = id, tags = ["catalog"])]
fn key_without_target(id: u64) {
    let _ = id;
}

#[cache_evict(price, tags = ["a"], tags = ["b"])]
fn duplicate(id: u64) {
    let _ = id;
}

#[cache_evict(price, tags = [])]
fn empty(id: u64) {
    let _ = id;
}

#[cache_put(price, key = id, tags = ["catalog"])]
fn on_put(id: u64) -> u64 {
    id
}

#[cache_evict(price, tags = [id])]
fn tag_not_a_string(id: u64) {
    let _ = id;
}

fn main() {}

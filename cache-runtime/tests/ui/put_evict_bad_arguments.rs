use cache_runtime::{cache_evict, cache_put, cached};

#[cached]
fn load_user(id: u64) -> String {
    format!("user {id}")
}

#[cache_put(load_user)]
fn no_key(id: u64) -> String {
    id.to_string()
}

#[cache_put(key = id)]
fn no_target(id: u64) -> String {
    id.to_string()
}

#[cache_put(load_user, key = id, all)]
fn put_all(id: u64) -> String {
    id.to_string()
}

#[cache_evict(load_user, key = _id, all)]
fn evict_both(_id: u64) {}

#[cache_evict(load_user, kee = _id)]
fn evict_typo(_id: u64) {}

#[cache_evict(load_user)]
fn evict_nothing(_id: u64) {}

fn main() {}

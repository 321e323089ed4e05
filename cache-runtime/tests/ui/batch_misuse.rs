use std::collections::HashMap;

use cache_runtime::cached;

// Two arguments: every argument is part of the key, so a batch takes one collection.
#[cached(batch)]
fn two_args(db: &str, ids: Vec<u64>) -> HashMap<u64, String> {
    ids.into_iter().map(|id| (id, format!("{db}{id}"))).collect()
}

// One key, not a collection of keys.
#[cached(batch)]
fn one_key(id: u64) -> HashMap<u64, String> {
    HashMap::from([(id, id.to_string())])
}

// Not a map of the keys found.
#[cached(batch)]
fn not_a_map(ids: Vec<u64>) -> Vec<String> {
    ids.iter().map(u64::to_string).collect()
}

// Arguments that apply to one key's call only.
#[cached(batch, key = ids.len(), stale = "1m", ttl = "5m", refresh_every = "1m")]
fn single_key_arguments(ids: Vec<u64>) -> HashMap<u64, u64> {
    ids.into_iter().map(|id| (id, id)).collect()
}

// A method: the cache is shared by every call, whatever `self`.
struct Repo;
impl Repo {
    #[cached(batch)]
    fn names(&self, ids: Vec<u64>) -> HashMap<u64, String> {
        ids.into_iter().map(|id| (id, id.to_string())).collect()
    }
}

// A value for a flag.
#[cached(batch = "yes")]
fn flag_value(ids: Vec<u64>) -> HashMap<u64, u64> {
    ids.into_iter().map(|id| (id, id)).collect()
}

// Keys of another type than the map's.
#[cached(batch)]
fn other_keys(ids: Vec<u32>) -> HashMap<u64, u64> {
    ids.into_iter().map(|id| (u64::from(id), 0)).collect()
}

fn main() {}

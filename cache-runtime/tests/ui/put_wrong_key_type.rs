use cache_runtime::{cache_evict, cache_put, cached};

#[cached]
fn load_user(id: u64) -> String {
    format!("user {id}")
}

// The cache's key is a `u64`; this passes the name.
#[cache_put(load_user, key = name.clone())]
fn rename(id: u64, name: String) -> Result<String, String> {
    let _ = id;
    Ok(name)
}

#[cache_evict(load_user, key = "7")]
fn delete(id: u64) {
    let _ = id;
}

fn main() {}

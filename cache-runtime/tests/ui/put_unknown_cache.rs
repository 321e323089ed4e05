use cache_runtime::{cache_put, cached};

#[cached]
fn load_user(id: u64) -> String {
    format!("user {id}")
}

// A typo in the cached function's name.
#[cache_put(load_usr, key = id)]
fn save_user(id: u64, name: String) -> Result<String, String> {
    Ok(name)
}

fn main() {}

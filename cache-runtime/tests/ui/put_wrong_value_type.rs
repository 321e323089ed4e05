use cache_runtime::{cache_put, cached};

#[cached]
fn load_user(id: u64) -> String {
    format!("user {id}")
}

// The cache holds `String`s; this returns a number.
#[cache_put(load_user, key = id)]
fn save_age(id: u64, age: u32) -> Result<u32, String> {
    Ok(age)
}

fn main() {}

use cache_runtime::cached;

#[cached(key = user_idd)]
fn load(db: &str, user_id: u64) -> String {
    format!("{db}{user_id}")
}

#[cached(key = (user_id, region))]
fn load2(user_id: u64) -> String {
    format!("{user_id}")
}

fn main() {}

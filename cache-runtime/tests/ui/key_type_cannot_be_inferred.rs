use cache_runtime::cached;

struct User {
    id: u64,
}

#[cached(key = user.id + 1)]
fn load(user: &User) -> u64 {
    user.id
}

fn main() {}

use cache_runtime::cached;

// Hashable and comparable, but a key is stored (owned) in the cache: it must be `Clone` too.
#[derive(Hash, PartialEq, Eq)]
struct UserId(u64);

#[cached]
fn load_user(id: UserId) -> String {
    format!("user {}", id.0)
}

fn main() {}

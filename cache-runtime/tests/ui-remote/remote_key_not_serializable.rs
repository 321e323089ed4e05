use cache_runtime::cached;

// A remote tier encodes its keys: `Serialize + DeserializeOwned`, at the argument's type.
#[derive(Clone, Hash, PartialEq, Eq)]
struct UserId(u64);

#[cached(backend = "shared")]
fn load_user(id: UserId) -> String {
    format!("user {}", id.0)
}

fn main() {}

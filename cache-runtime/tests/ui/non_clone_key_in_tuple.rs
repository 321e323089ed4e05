use cache_runtime::cached;

#[derive(Hash, PartialEq, Eq)]
struct UserId(u64);

// The key is `(UserId, bool)`, owned from the arguments: `UserId` must be `Clone`. Reported
// once, at the argument list (the tuple's tokens), not again where each part is cloned.
#[cached]
fn load_user(id: UserId, verbose: bool) -> String {
    format!("user {} {verbose}", id.0)
}

fn main() {}

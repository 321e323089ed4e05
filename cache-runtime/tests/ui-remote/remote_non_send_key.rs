use std::rc::Rc;

use cache_runtime::cached;

// Each missing trait once, at the argument's type: `Send` and `Sync` (the cache's), then
// `Serialize` and `DeserializeOwned` (the tier's), not `Send` and `Sync` again for the tier.
#[cached(backend = "shared")]
fn load_user(id: Rc<str>) -> String {
    format!("user {id}")
}

fn main() {}

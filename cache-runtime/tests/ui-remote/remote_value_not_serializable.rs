use cache_runtime::cached;

#[derive(Clone)]
struct Profile {
    name: String,
}

// ... and its values, at the `Some` type.
#[cached(backend = "shared")]
fn load_profile(id: u64) -> Option<Profile> {
    Some(Profile {
        name: id.to_string(),
    })
}

fn main() {}

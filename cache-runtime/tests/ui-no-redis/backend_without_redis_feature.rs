use cache_runtime::cached;

// Without the `redis` feature, one error says so (nothing else: not the tier, not its types).
#[cached(backend = "shared")]
fn load_profile(id: u64) -> String {
    id.to_string()
}

fn main() {}

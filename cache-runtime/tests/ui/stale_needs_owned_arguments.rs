use cache_runtime::cached;

// A background refresh outlives the call: it cannot borrow the arguments.
#[cached(ttl = "1m", stale = "30s")]
fn lookup(name: &str) -> String {
    name.to_uppercase()
}

struct Service;

impl Service {
    #[cached(ttl = "1m", stale = "30s", key = id)]
    fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}

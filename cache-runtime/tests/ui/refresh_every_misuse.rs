use cache_runtime::cached;

// A method: a background round has no `self` to call it on.
struct Repo;
impl Repo {
    #[cached(key = id, refresh_every = "1m")]
    pub fn name(&self, id: u64) -> String {
        id.to_string()
    }
}

// An argument that is not part of the key cannot be rebuilt from it.
#[cached(key = id, refresh_every = "1m")]
fn with_db(db: &str, id: u64) -> String {
    format!("{db}{id}")
}

// A key computed from the arguments cannot be turned back into them.
#[cached(key = id.to_string(), refresh_every = "1m")]
fn computed(id: u64) -> u64 {
    id
}

// `refresh_top` alone, a zero count, a period not shorter than the TTL, a zero period.
#[cached(refresh_top = 10)]
fn top_alone(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", refresh_every = "10s", refresh_top = 0)]
fn zero_top(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", refresh_every = "2m")]
fn too_slow(id: u64) -> u64 {
    id
}

#[cached(refresh_every = "0s")]
fn zero_period(id: u64) -> u64 {
    id
}

// A generic function: which instance would a round call?
#[cached(refresh_every = "1m")]
fn generic<T: Clone + Send + Sync + 'static>(id: u64, _t: std::marker::PhantomData<T>) -> u64 {
    id
}

fn main() {}

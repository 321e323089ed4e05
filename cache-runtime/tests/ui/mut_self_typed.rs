use cache_runtime::cached;

struct Repo {
    hits: u64,
}

impl Repo {
    #[cached(key = id)]
    fn load(self: &mut Self, id: u64) -> u64 {
        self.hits += 1;
        id
    }
}

fn main() {}

use cache_runtime::cached;

trait Repo {
    #[cached(key = id)]
    fn load(&self, id: u64) -> u64;
}

fn main() {}

use cache_runtime::cached;

#[derive(Clone)]
struct User {
    id: u64,
}

impl User {
    #[cached]
    fn load(id: u64) -> Self {
        User { id }
    }
}

fn main() {}

use cache_runtime::cached;

#[cached]
fn describe<T: std::fmt::Debug + Clone + std::hash::Hash + Eq + Send + Sync + 'static>(x: T) -> String {
    format!("{x:?}")
}

fn main() {}

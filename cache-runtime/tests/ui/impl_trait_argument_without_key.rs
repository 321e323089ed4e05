use cache_runtime::cached;

#[cached]
fn f(label: impl std::fmt::Display, id: u64) -> String {
    format!("{label}{id}")
}

fn main() {}

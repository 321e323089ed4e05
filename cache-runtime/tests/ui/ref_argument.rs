use cache_runtime::cached;

#[cached]
fn f(ref name: String) -> usize {
    name.len()
}

fn main() {}

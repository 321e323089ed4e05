use cache_runtime::cached;

#[cached]
fn f<'a>(words: Vec<&'a str>) -> usize {
    words.len()
}

fn main() {}

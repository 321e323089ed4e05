use cache_runtime::cached;

struct Report {
    lines: Vec<String>,
}

#[cached]
fn f(x: u64) -> Report {
    Report {
        lines: vec![x.to_string()],
    }
}

fn main() {}

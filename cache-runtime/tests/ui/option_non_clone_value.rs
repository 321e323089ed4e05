use cache_runtime::cached;

struct Report {
    lines: Vec<String>,
}

// The `Some` type is what is cached (and `None` too, here, as `()`: no bound on the user's types).
#[cached(negative_ttl = "1s")]
fn build(day: u32) -> Option<Report> {
    Some(Report {
        lines: vec![day.to_string()],
    })
}

fn main() {}

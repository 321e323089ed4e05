use cache_runtime::cached;

struct Report {
    lines: Vec<String>,
}

#[cached]
async fn build_report(day: u32) -> Report {
    Report {
        lines: vec![day.to_string()],
    }
}

fn main() {}

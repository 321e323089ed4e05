use cache_runtime::cached;

struct Report {
    lines: Vec<String>,
}

// The early refresh of an async function is awaited too: the missing `Clone` is reported once.
#[cached(ttl = "1m", early_refresh = 1.0)]
async fn build_report(day: u32) -> Report {
    Report {
        lines: vec![day.to_string()],
    }
}

fn main() {}

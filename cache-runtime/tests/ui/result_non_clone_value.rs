use cache_runtime::cached;

struct Report {
    lines: Vec<String>,
}

// The `Ok` type is what is cached: the error underlines it, not the whole `Result`.
#[cached]
fn build(day: u32) -> Result<Report, String> {
    Ok(Report {
        lines: vec![day.to_string()],
    })
}

fn main() {}

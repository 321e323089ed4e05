use std::borrow::Cow;

use cache_runtime::cached;

// The value borrows from the argument (`Cow<'_, str>`, the lifetime hidden): a cached value must
// be `'static`.
#[cached]
fn trimmed(name: &str) -> Cow<str> {
    Cow::Borrowed(name.trim())
}

fn main() {}

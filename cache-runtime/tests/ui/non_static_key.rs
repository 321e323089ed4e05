use std::borrow::Cow;

use cache_runtime::cached;

// `Cow<str>` hides a lifetime: a key must be `'static` (`Cow<'static, str>`, or `String`). The
// validation sees no lifetime to reject, so the compiler reports it: where the type is written
// (from the companion `__cache_of_greet`, whose return type names it), and where the argument
// escapes into the cache.
#[cached]
fn greet(name: Cow<str>) -> String {
    format!("hello {name}")
}

fn main() {}

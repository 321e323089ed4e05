//! Compile-fail tests of the `#[cached]` attribute: each `ui/*.rs` must fail to build with
//! exactly the errors in its `.stderr` (regenerate with `TRYBUILD=overwrite` and review).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

//! Compile-fail tests of the `#[cached]` attribute: each `ui/*.rs` must fail to build with
//! exactly the errors in its `.stderr` (regenerate with `TRYBUILD=overwrite` and review).
//! `ui-remote/` needs the `redis` feature (`backend = "..."` with a tier), `ui-no-redis/` its
//! absence.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    #[cfg(feature = "redis")]
    t.compile_fail("tests/ui-remote/*.rs");
    #[cfg(not(feature = "redis"))]
    t.compile_fail("tests/ui-no-redis/*.rs");
}

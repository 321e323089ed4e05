//! Compile-fail tests of the `#[cached]` attribute: each `ui/*.rs` must fail to build with
//! exactly the errors in its `.stderr` (regenerate with `TRYBUILD=overwrite` and review).
//! `ui-remote/` needs a remote backend (feature `redis` or `memcached`), `ui-no-redis/` neither
//! of them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    #[cfg(feature = "config")]
    t.compile_fail("tests/ui-remote/*.rs");
    #[cfg(not(feature = "config"))]
    t.compile_fail("tests/ui-no-redis/*.rs");
}

//! The `l2cost` binary's three loops run, against a memcached of the test's own, and each read
//! is a hit (the binary asserts it).

use cache_test_support::memcached_addr;

#[test]
fn l2cost_runs_every_loop() {
    let addr = memcached_addr();
    for which in ["raw-get", "backend-get", "l2"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_l2cost"))
            .args([which, addr, "50"])
            .output()
            .expect("run l2cost");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{which}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with(&format!("{which}: 50 reads")), "{text}");
    }
}

//! CI smoke run of the stampede table: one trial of every contender, and the property the table
//! exists to show: this project's functions run the loader once for a whole herd.

#[test]
fn one_trial_and_ours_load_once() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stampede"))
        .arg("1")
        .output()
        .expect("run the stampede binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| contender"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 12, "{table}");
    for r in &rows {
        let runs: usize = r[3].parse().expect("a count");
        assert!(runs >= 1, "{table}");
        if r[1].starts_with("ours") {
            assert_eq!(runs, 1, "single-flight: {table}");
        }
    }
}

#[test]
fn hitcost_runs_every_loop() {
    for which in ["ours", "ours-lru", "ours-lfu", "quick"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hitcost"))
            .args([which, "1000"])
            .output()
            .expect("run hitcost");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(&format!("{which}: 1000 hits")), "{text}");
    }
}

#[test]
fn hitprobe_runs_every_loop() {
    for which in ["quick", "stamped", "listmove"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hitprobe"))
            .args([which, "1000", "2"])
            .output()
            .expect("run hitprobe");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(&format!("{which}: 1000 hits on each of 2 threads")),
            "{text}"
        );
    }
}

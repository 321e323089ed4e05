//! Statistics as metrics: Prometheus text from the registry and the `metrics` facade. The
//! `tracing` events are tested in `observability_tracing.rs`, alone in their process.

use cache_runtime::{cached, export, registry};

#[cached(name = "obs.users", capacity = 100)]
fn user(id: u64) -> Result<String, String> {
    if id == 0 {
        Err("no such user".into())
    } else {
        Ok(format!("secret-name-{id}"))
    }
}

#[test]
fn prometheus_text_reports_every_counter_per_cache() {
    user(1).unwrap();
    user(1).unwrap();
    let _ = user(0);
    let text = registry::prometheus_text();
    for line in [
        "# TYPE cache_hits_total counter",
        "# TYPE cache_entries gauge",
        r#"cache_hits_total{cache="obs.users"} 1"#,
        r#"cache_misses_total{cache="obs.users"} 2"#,
        r#"cache_loads_total{cache="obs.users"} 2"#,
        r#"cache_load_errors_total{cache="obs.users"} 1"#,
        r#"cache_entries{cache="obs.users"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    // Every sample line is `name{cache="..."} <integer>`, but a histogram's sum in seconds.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, v) = l.rsplit_once(' ').unwrap();
        if name.starts_with("cache_load_duration_seconds_sum{") {
            v.parse::<f64>()
                .unwrap_or_else(|_| panic!("bad sample `{l}`"));
        } else {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("bad sample `{l}`"));
        }
    }
    // The two loads, in the load-time histogram.
    assert!(
        text.lines()
            .any(|l| l == r#"cache_load_duration_seconds_count{cache="obs.users"} 2"#)
    );
    assert!(
        text.lines()
            .any(|l| l == r#"cache_load_duration_seconds_bucket{cache="obs.users",le="+Inf"} 2"#)
    );
}

#[cached(name = "obs.metrics", capacity = 100)]
fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn metrics_facade_gets_counters_and_gauges() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        square(3);
        square(3);
        square(4);
        export::describe();
        export::record();
    });
    let snap = snapshotter.snapshot().into_vec();
    let value = |metric: &str| {
        snap.iter()
            .find(|(k, _, _, _)| {
                k.key().name() == metric
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "cache" && l.value() == "obs.metrics")
            })
            .map(|(_, _, _, v)| format!("{v:?}"))
            .unwrap_or_else(|| panic!("no {metric} for obs.metrics"))
    };
    assert_eq!(value("cache_hits_total"), "Counter(1)");
    assert_eq!(value("cache_misses_total"), "Counter(2)");
    assert_eq!(value("cache_entries"), "Gauge(2.0)");
    // Each of the two loads, observed by the histogram when it ended (the hit, not at all).
    let loads = snap
        .iter()
        .find(|(k, _, _, _)| {
            k.key().name() == "cache_load_duration_seconds"
                && k.key()
                    .labels()
                    .any(|l| l.key() == "cache" && l.value() == "obs.metrics")
        })
        .map(|(_, unit, _, v)| (*unit, v))
        .expect("no load histogram for obs.metrics");
    assert_eq!(loads.0, Some(metrics::Unit::Seconds));
    match loads.1 {
        metrics_util::debugging::DebugValue::Histogram(v) => {
            assert_eq!(v.len(), 2);
            assert!(
                v.iter()
                    .all(|s| s.into_inner() >= 0.0 && s.into_inner() < 1.0)
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
}

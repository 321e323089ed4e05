//! Tags and dependencies across OS processes sharing one Redis (this test binary's own, from
//! `cache_test_support`): each process is `src/bin/invalidation_node.rs`, with long L1 TTLs, so
//! that only an invalidation can make it see another process's change.

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_test_support::redis_url;

struct Node {
    child: Child,
    out: Lines<BufReader<ChildStdout>>,
}

impl Node {
    fn start(prefix: &str, dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_invalidation_node"))
            .args([redis_url(), prefix, dir.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a node");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(out.next().unwrap().unwrap(), "ready");
        Node { child, out }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.child.stdin.as_mut().unwrap(), "{command}").unwrap();
        self.out.next().expect("an answer").expect("stdout")
    }

    /// Asks until the answer satisfies `ok` (an invalidation travels asynchronously).
    fn eventually(&mut self, command: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = self.ask(command);
            if ok(&a) {
                return a;
            }
            assert!(Instant::now() < deadline, "`{command}` still answers {a}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn another_process_sees_dependencies_and_tags_invalidated() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("cache-rs-test:invfleet:{}:{nanos}", std::process::id());
    let dir =
        std::env::temp_dir().join(format!("cache-rs-invfleet-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stock-1"), "5").unwrap();
    std::fs::write(dir.join("stock-2"), "7").unwrap();

    let mut a = Node::start(&prefix, &dir);
    let mut b = Node::start(&prefix, &dir);
    assert_eq!(a.ask("page 1"), "product 1: 5 left | built 1");
    assert_eq!(a.ask("page 2"), "product 2: 7 left | built 2");
    // B reads A's page from Redis: it builds none.
    assert_eq!(b.ask("page 1"), "product 1: 5 left | built 0");
    assert_eq!(b.ask("has 1"), "yes");

    // B updates product 1's stock and evicts it: A's page of product 1 read that stock, so A
    // drops it (the stock key's invalidation reaches A's listener, which invalidates what
    // depended on it) and builds it again; A's page of product 2 stays.
    assert_eq!(b.ask("update 1 4"), "ok");
    let page = a.eventually("page 1", |p| p.starts_with("product 1: 4 left"));
    assert_eq!(page, "product 1: 4 left | built 3");
    assert_eq!(a.ask("page 2"), "product 2: 7 left | built 3");
    // B's own copy of the page went too (its own write), and the page in Redis is A's new one.
    assert_eq!(b.ask("has 1"), "no");
    assert_eq!(b.ask("page 1"), "product 1: 4 left | built 0");

    // Through L2 alone: a third process that never saw the old page, after another update by B
    // while A's and B's L1 copies are dropped, must not read A's stale page from Redis.
    assert_eq!(b.ask("update 1 3"), "ok");
    let mut c = Node::start(&prefix, &dir);
    assert_eq!(c.ask("page 1"), "product 1: 3 left | built 1");

    // A tag invalidated by C reaches the L1 copies of A and B at once (pub/sub), and the L2
    // copies (their generation key is gone).
    a.ask("page 1");
    b.ask("page 2");
    assert_eq!(c.ask("tag pages"), "ok");
    a.eventually("has 1", |h| h == "no");
    b.eventually("has 2", |h| h == "no");
    let built_before: u64 = a.ask("page 2").rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(b.ask("forget 2"), "ok");
    let b_page = b.ask("page 2");
    assert!(b_page.starts_with("product 2: 7 left"), "{b_page}");
    assert!(
        built_before >= 4,
        "A rebuilt page 2 after the tag: {built_before}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

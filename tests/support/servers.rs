//! What the server-backend tests share: servers of their own on free ports (`redis-server`,
//! `memcached`, a Redis Cluster of three masters, from `cache-test-support`), fake servers that
//! never answer or answer what a test tells them, a TCP proxy that counts the memcached commands
//! a client sends, and keys unique to a run.
//!
//! Included by each test binary that needs it (`#[path = "support/servers.rs"] mod servers;`);
//! each uses a part of it.
#![allow(dead_code)]

use std::fmt::Debug;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_runtime::tier::{Backend, BoxFuture, Fault};
use cache_runtime::{MemcachedBackend, RedisBackend};
use cache_test_support::{Server, free_port};

/// A key prefix unique to this run: `cache-rs-test:<test>:<pid>:<nanos>`.
pub fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cache-rs-test:{test}:{}:{nanos}", std::process::id())
}

/// Keys as the typed tier makes them (`<prefix>:<cache>:<tag>:<hash>`), unique to this run.
pub fn keys(test: &str, n: usize) -> Vec<String> {
    let p = prefix(test);
    (0..n).map(|i| format!("{p}:batch:t1:{i:016x}")).collect()
}

/// The strings, borrowed.
pub fn str_refs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A batch call of a backend: a lookup of keys (`get_many`), or a write of items (`set_many`).
pub trait Batch {
    type Answer: Debug;

    fn run(&self, b: &dyn Backend) -> Result<Self::Answer, Fault>;

    fn run_async<'a>(&'a self, b: &'a dyn Backend) -> BoxFuture<'a, Result<Self::Answer, Fault>>;
}

impl Batch for [&str] {
    type Answer = Vec<Option<Vec<u8>>>;

    fn run(&self, b: &dyn Backend) -> Result<Self::Answer, Fault> {
        b.get_many(self)
    }

    fn run_async<'a>(&'a self, b: &'a dyn Backend) -> BoxFuture<'a, Result<Self::Answer, Fault>> {
        b.get_many_async(self)
    }
}

impl Batch for [(&str, &[u8], Option<Duration>)] {
    type Answer = ();

    fn run(&self, b: &dyn Backend) -> Result<(), Fault> {
        b.set_many(self)
    }

    fn run_async<'a>(&'a self, b: &'a dyn Backend) -> BoxFuture<'a, Result<(), Fault>> {
        b.set_many_async(self)
    }
}

/// `batch` run on `b` blocking, then async (on a runtime of its own), against a server that
/// fails it: both calls fail, within four timeouts together. `what` names the case in the
/// messages. The two faults.
pub fn assert_both_fail(
    what: &str,
    timeout: Duration,
    b: &dyn Backend,
    batch: &(impl Batch + ?Sized),
) -> (Fault, Fault) {
    let start = Instant::now();
    let blocking = batch.run(b);
    let asynchronous = runtime().block_on(batch.run_async(b));
    let took = start.elapsed();
    assert!(blocking.is_err(), "{what}: {blocking:?}");
    assert!(asynchronous.is_err(), "{what}: {asynchronous:?}");
    assert!(took < timeout * 4, "{what}: two batches took {took:?}");
    (blocking.unwrap_err(), asynchronous.unwrap_err())
}

/// `batch` against a Redis server that is not there (nothing listening) and against one that
/// never answers: it fails, blocking and async, within four timeouts (of 200 ms).
pub fn assert_fails_against_dead_or_silent_redis(batch: &(impl Batch + ?Sized)) {
    let timeout = Duration::from_millis(200);
    for (what, port) in [("dead", free_port()), ("silent", silent_server())] {
        let b = RedisBackend::new(&format!("redis://127.0.0.1:{port}/"), timeout).unwrap();
        assert_both_fail(what, timeout, &b, batch);
    }
}

/// `batch` against a memcached server that is not there (nothing listening) and against one
/// that never answers, each alone and next to a live server: it fails, blocking and async,
/// within four timeouts (of 200 ms).
pub fn assert_fails_against_dead_or_silent_memcached(batch: &(impl Batch + ?Sized)) {
    let live = start_memcached();
    let timeout = Duration::from_millis(200);
    for port in [free_port(), silent_server()] {
        let other = format!("memcached://127.0.0.1:{port}");
        for urls in [vec![other.clone()], vec![live.memcached_url(), other]] {
            let b = MemcachedBackend::new(&str_refs(&urls), timeout).unwrap();
            assert_both_fail(&format!("{urls:?}"), timeout, &b, batch);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Servers of their own

/// A server started by `start` on a free port, tried three times (another process may take the
/// port first); panics with the last error.
fn start_on_a_free_port(start: impl Fn(u16) -> Result<Server, String>) -> Server {
    let mut last = String::new();
    for _ in 0..3 {
        match start(free_port()) {
            Ok(s) => return s,
            Err(e) => last = e,
        }
    }
    panic!("{last}");
}

pub fn start_redis() -> Server {
    start_on_a_free_port(|port| Server::redis(port, &[]))
}

pub fn start_memcached() -> Server {
    start_on_a_free_port(|port| Server::memcached(port, &[]))
}

/// Two backends on the memcached server at `url`, as two processes have them (each its own
/// connections).
pub fn two_memcached_clients(url: &str, timeout: Duration) -> (MemcachedBackend, MemcachedBackend) {
    let client = || MemcachedBackend::new(&[url], timeout).unwrap();
    (client(), client())
}

/// `calls` of `cmdstat_<command>` in `INFO commandstats` (0 when never called).
pub fn redis_calls(con: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// A raw connection to each Redis server.
pub fn redis_connections(urls: &[String]) -> Vec<redis::Connection> {
    urls.iter()
        .map(|u| {
            redis::Client::open(u.as_str())
                .unwrap()
                .get_connection()
                .unwrap()
        })
        .collect()
}

/// A cluster node: its server, and the directory of its `nodes.conf`.
pub struct ClusterNode(Option<Server>, std::path::PathBuf);

impl Drop for ClusterNode {
    fn drop(&mut self) {
        drop(self.0.take()); // stopped first: it writes to its directory
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Three masters on free ports (`redis-server --cluster-enabled yes`, then `redis-cli
/// --cluster create`), waited for until each sees the cluster as ok: the nodes, and their URLs.
pub fn start_cluster() -> (Vec<ClusterNode>, Vec<String>) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for &port in &ports {
        let dir =
            std::env::temp_dir().join(format!("cache-rs-cluster-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Server::redis(
            port,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--dir",
                dir.to_str().unwrap(),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        nodes.push(ClusterNode(Some(server), dir));
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("redis-cli must be installed");
    assert!(status.success(), "redis-cli --cluster create failed");
    for url in &urls {
        let client = redis::Client::open(url.as_str()).unwrap();
        let start = Instant::now();
        loop {
            let info: String = client
                .get_connection()
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c))
                .unwrap_or_default();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "cluster not ok: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (nodes, urls)
}

// ---------------------------------------------------------------------------------------------
// Fake servers

/// A server that accepts connections and never answers (it holds them, reading and writing
/// nothing); its port.
pub fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            match s {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    port
}

/// A fake server: each connection is handed to `serve` on a thread of its own; its port.
pub fn fake_server(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { break };
            let serve = Arc::clone(&serve);
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

/// One RESP request (an array of bulk strings); `None` at the end of the stream.
pub fn read_resp_request(r: &mut impl BufRead) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    r.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0; len + 2];
        r.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(arg);
    }
    Some(args)
}

/// A fake memcached that reads the meta protocol line by line: `answer` gets the connection's
/// state (`S`, from its default), a command's words, and the reader (for a value that follows
/// the line), and returns the reply, or `None` for none (a quiet command). After the reply to
/// an `mn`, the connection is closed if `close`. Its port.
pub fn fake_memcached_server<S: Default>(
    close: bool,
    answer: impl Fn(&mut S, &[&str], &mut BufReader<TcpStream>) -> Option<String>
    + Send
    + Sync
    + 'static,
) -> u16 {
    fake_server(move |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut state = S::default();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let Some(reply) = answer(&mut state, &words, &mut r) else {
                continue;
            };
            if w.write_all(reply.as_bytes()).is_err() {
                return;
            }
            if close && words.first() == Some(&"mn") {
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Proxies

/// A TCP proxy to `upstream` (`host:port`): each client's connection, and one to `upstream`
/// made for it (both without Nagle's delay), are handed to `connect`. Its port.
pub fn proxy(upstream: String, connect: impl Fn(TcpStream, TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            connect(client, server);
        }
    });
    port
}

/// A memcached command a [`CountingProxy`] counts: its name, and how many arguments come before
/// its flags (`mg <key> <flags>*`: 1, `ms <key> <size> <flags>*`: 2, `mn`: 0).
pub type Command = (&'static str, usize);

/// What a [`CountingProxy`] saw the client send, for each of `N` commands.
struct Counts<const N: usize> {
    commands: [Command; N],
    /// Each command's count.
    all: [AtomicUsize; N],
    /// Each command's count without the quiet flag `q`: each one a reply the client waits for.
    loud: [AtomicUsize; N],
}

impl<const N: usize> Counts<N> {
    fn note(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_ascii_whitespace();
        let Some(first) = words.next() else { return };
        let Some(i) = self.commands.iter().position(|(c, _)| *c == first) else {
            return;
        };
        self.all[i].fetch_add(1, Ordering::SeqCst);
        if !words.skip(self.commands[i].1).any(|flag| flag == "q") {
            self.loud[i].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A TCP proxy in front of a memcached server that counts the commands the client sends (by
/// line: the values the tests store never start with a command counted).
pub struct CountingProxy<const N: usize> {
    port: u16,
    counts: Arc<Counts<N>>,
}

impl<const N: usize> CountingProxy<N> {
    /// A proxy to `upstream` (`host:port`) that counts `commands`.
    pub fn new(upstream: String, commands: [Command; N]) -> Self {
        let counts = Arc::new(Counts {
            commands,
            all: std::array::from_fn(|_| AtomicUsize::new(0)),
            loud: std::array::from_fn(|_| AtomicUsize::new(0)),
        });
        let counting = Arc::clone(&counts);
        let port = proxy(upstream, move |client, server| {
            let (mut from_server, mut to_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(Shutdown::Both);
            });
            let counts = Arc::clone(&counting);
            std::thread::spawn(move || forward_counting(client, server, &counts));
        });
        Self { port, counts }
    }

    pub fn url(&self) -> String {
        format!("memcached://127.0.0.1:{}", self.port)
    }

    /// For each command, in the order given to [`CountingProxy::new`]: how many the client
    /// sent, and how many of them loud (without `q`), since the last call.
    pub fn take(&self) -> [(usize, usize); N] {
        std::array::from_fn(|i| {
            (
                self.counts.all[i].swap(0, Ordering::SeqCst),
                self.counts.loud[i].swap(0, Ordering::SeqCst),
            )
        })
    }
}

/// Copies the client's bytes to the server as they come, noting each complete line.
fn forward_counting<const N: usize>(
    mut client: TcpStream,
    mut server: TcpStream,
    counts: &Counts<N>,
) {
    let (mut buf, mut line) = (vec![0; 64 * 1024], Vec::new());
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            line.push(byte);
            if byte == b'\n' {
                counts.note(&line);
                line.clear();
            }
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
}

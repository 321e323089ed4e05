//! Hermetic servers for the workspace's tests and benches: `redis-server` and `memcached`
//! started from the `PATH` on free loopback ports, waited for until they answer, and stopped when
//! the test binary exits. No test depends on a server that someone else started, and none shares
//! data with whatever else uses a machine's usual Redis or memcached.
//!
//! - Shared servers: [`redis_url`] and [`memcached_url`] start one server of each kind the first
//!   time they are called in a test binary and hand every later caller the same address; the
//!   tests that share one keep apart by key prefixes of their own.
//! - Private servers: [`Server::redis`] and [`Server::memcached`], on a port of the caller's
//!   choosing, for a test that kills and restarts its server or needs settings of its own.
//! - Overrides: `CACHE_TEST_REDIS_URL` (`redis://host:port/`) and `CACHE_TEST_MEMCACHED`
//!   (`memcached://host:port` or `host:port`) point the shared servers at running ones instead.
//!
//! Rust never drops a static, so no destructor could stop a shared server when the test binary
//! ends. Every server therefore runs under a small `sh` watchdog that reads its standard input:
//! this process holds the only write end of that pipe, the kernel closes it when the process
//! ends (however it ends: returning, panicking, killed), and the watchdog then stops the server.
//!
//! ```no_run
//! // In a test: the URL of this test binary's own Redis, started on first use.
//! let url = cache_test_support::redis_url();
//! assert!(url.starts_with("redis://127.0.0.1:"));
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that points the shared Redis at a running server.
pub const REDIS_URL_VAR: &str = "CACHE_TEST_REDIS_URL";
/// The environment variable that points the shared memcached at a running server.
pub const MEMCACHED_VAR: &str = "CACHE_TEST_MEMCACHED";

/// How long a starting server has to answer.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Runs the server given as arguments, in the background, until standard input closes.
const WATCHDOG: &str = r#""$@" </dev/null >/dev/null 2>&1 &
srv=$!
read -r _line
kill "$srv" 2>/dev/null
wait "$srv""#;

/// A kind of server: how it is started and how it is asked whether it is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Redis,
    Memcached,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Self::Redis => "redis-server",
            Self::Memcached => "memcached",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Self::Redis => "apt-get install -y redis-server (or set CACHE_TEST_REDIS_URL)",
            Self::Memcached => "apt-get install -y memcached (or set CACHE_TEST_MEMCACHED)",
        }
    }

    /// The command line of a server on `port`, loopback only, keeping nothing on disk.
    fn args(self, port: u16) -> Vec<String> {
        let port = port.to_string();
        let args: &[&str] = match self {
            Self::Redis => &[
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
            ],
            // `-u root` matters only when run as root (as CI is), where memcached needs it.
            Self::Memcached => &["-p", &port, "-l", "127.0.0.1", "-U", "0", "-u", "root"],
        };
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The probe line and the start of the answer that says the server is up.
    fn probe(self) -> (&'static [u8], &'static str) {
        match self {
            Self::Redis => (b"PING\r\n", "+PONG"),
            Self::Memcached => (b"version\r\n", "VERSION"),
        }
    }
}

/// A server this process started, under its watchdog: stopped when dropped, or when the
/// process ends.
///
/// ```no_run
/// use cache_test_support::{Server, free_port};
///
/// let port = free_port();
/// let server = Server::memcached(port, &[])?;
/// assert_eq!(server.memcached_url(), format!("memcached://127.0.0.1:{port}"));
/// drop(server); // stopped (a test of faults may start another on the same port)
/// # Ok::<(), String>(())
/// ```
#[derive(Debug)]
pub struct Server {
    kind: Kind,
    port: u16,
    watchdog: Child,
    /// The write end of the watchdog's standard input: closing it stops the server.
    stdin: Option<ChildStdin>,
}

impl Server {
    /// Starts `redis-server` on `port` (loopback, no persistence, `DEBUG` enabled) with `extra`
    /// arguments, and waits until it answers `PING`.
    ///
    /// # Errors
    /// `redis-server` is not on the `PATH`, or did not answer within 10 seconds.
    pub fn redis(port: u16, extra: &[&str]) -> Result<Self, String> {
        Self::start(Kind::Redis, port, extra)
    }

    /// Starts `memcached` on `port` (loopback, no UDP) with `extra` arguments, and waits until it
    /// answers `version`.
    ///
    /// # Errors
    /// `memcached` is not on the `PATH`, or did not answer within 10 seconds.
    pub fn memcached(port: u16, extra: &[&str]) -> Result<Self, String> {
        Self::start(Kind::Memcached, port, extra)
    }

    fn start(kind: Kind, port: u16, extra: &[&str]) -> Result<Self, String> {
        let program = kind.program();
        if !on_path(program) {
            return Err(format!(
                "`{program}` is not on the PATH: {}",
                kind.install_hint()
            ));
        }
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("cache-test-watchdog")
            .arg(program)
            .args(kind.args(port))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start `sh` for `{program}`: {e}"))?;
        let mut server = Self {
            kind,
            port,
            watchdog,
            stdin: None,
        };
        server.stdin = server.watchdog.stdin.take();
        if wait_until_up(kind, port) {
            Ok(server)
        } else {
            Err(format!(
                "`{program}` on port {port} did not answer within {READY_WITHIN:?}"
            ))
        }
    }

    /// The port it listens on (127.0.0.1).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    #[must_use]
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `memcached://127.0.0.1:<port>`.
    #[must_use]
    pub fn memcached_url(&self) -> String {
        format!("memcached://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    #[must_use]
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether it answers its probe now.
    #[must_use]
    pub fn is_up(&self) -> bool {
        answers(self.kind, self.port)
    }
}

impl Drop for Server {
    /// Stops the server and waits until it has exited (its port is then free again).
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// A loopback port that was free a moment ago.
///
/// ```
/// let port = cache_test_support::free_port();
/// assert_ne!(port, 0);
/// ```
///
/// # Panics
/// When no loopback port can be bound at all.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The URL of this test binary's Redis (`redis://127.0.0.1:<port>/`), started on first use,
/// or `CACHE_TEST_REDIS_URL` when it is set.
///
/// # Panics
/// When `redis-server` is not installed or does not start (the message says how to install it).
#[must_use]
pub fn redis_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => shared(Kind::Redis).redis_url(),
    })
}

/// The URL of this test binary's memcached (`memcached://127.0.0.1:<port>`), started on first
/// use, or the server that `CACHE_TEST_MEMCACHED` names.
///
/// # Panics
/// When `memcached` is not installed or does not start (the message says how to install it).
#[must_use]
pub fn memcached_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| format!("memcached://{}", memcached_addr()))
}

/// The address (`host:port`) of the memcached of [`memcached_url`], for raw clients.
///
/// # Panics
/// As [`memcached_url`].
#[must_use]
pub fn memcached_addr() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| match std::env::var(MEMCACHED_VAR) {
        Ok(v) if !v.trim().is_empty() => {
            let v = v.trim();
            v.strip_prefix("memcached://")
                .unwrap_or(v)
                .trim_end_matches('/')
                .to_owned()
        }
        _ => shared(Kind::Memcached).addr(),
    })
}

/// The shared server of `kind`, started once (a few tries, each on a new free port).
fn shared(kind: Kind) -> &'static Server {
    static REDIS: OnceLock<Server> = OnceLock::new();
    static MEMCACHED: OnceLock<Server> = OnceLock::new();
    let cell = match kind {
        Kind::Redis => &REDIS,
        Kind::Memcached => &MEMCACHED,
    };
    cell.get_or_init(|| {
        let mut last = String::new();
        for _ in 0..3 {
            match Server::start(kind, free_port(), &[]) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("cache-test-support: {last}");
    })
}

/// Whether `program` is an executable file in a directory of the `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file()))
    })
}

/// Waits (bounded) until the server of `kind` on `port` answers its probe.
fn wait_until_up(kind: Kind, port: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < READY_WITHIN {
        if answers(kind, port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// One probe: connect, send the probe line, read the first line of the answer.
fn answers(kind: Kind, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let (probe, expect) = kind.probe();
    let bounded = stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_millis(500))));
    if bounded.is_err() || stream.write_all(probe).is_err() {
        return false;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(256));
    reader.read_line(&mut line).is_ok() && line.starts_with(expect)
}

//! Reads for blocking callers outside any Tokio runtime, on a plain blocking socket per slot
//! (`conn::Slot`): no runtime, no timer and no epoll on the way of a `get`, the whole exchange
//! bounded by the operation timeout all the same (each write and read waits at most the time
//! left, `SO_SNDTIMEO`/`SO_RCVTIMEO`).
//!
//! The exchange is the one async callers run (`commands::get`, `commands::get_many`: the same
//! keys, the same generation handling, the same bytes: `mg <generation key> v k q`,
//! `mg <entry key> v k q`, `mn`, in one write), on a [`Pipe`] over a [`Blocking`] socket, whose
//! reads and writes are done before they are awaited: the exchange's future is ready at its
//! first poll, and is polled once, here. The replies are read by the pipe's parser. A
//! connection is made on first need (through the slot's runtime, within the time left: a
//! host name is resolved within the bound too), kept after a clean exchange, dropped after any
//! error; a reused one that proves broken is replaced once, within the same bound.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_memcached::Error;

use super::commands::Exchange;
use super::conn::{Server, Slot, broken, fault};
use super::pipe::{Pipe, Stream};
use crate::tier::Fault;

/// A connection for blocking reads.
pub(super) type Wire = Pipe<Blocking>;

/// A blocking socket and the deadline of the exchange under way.
pub(super) struct Blocking {
    socket: TcpStream,
    deadline: Instant,
    /// The socket's read and write timeouts as last set (`None`: never set).
    read_for: Option<Duration>,
    write_for: Option<Duration>,
}

impl Blocking {
    /// The time left before the deadline; none left is a timeout.
    fn left(&self) -> Result<Duration, Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Error::Io(io::ErrorKind::TimedOut.into()))
        } else {
            Ok(left)
        }
    }

    fn send_now(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            let left = self.left()?;
            let socket = &self.socket;
            bound(&mut self.write_for, left, |d| socket.set_write_timeout(d))?;
            match self.socket.write(bytes) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if waited(&e) => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(())
    }

    fn recv_now(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            let left = self.left()?;
            let socket = &self.socket;
            bound(&mut self.read_for, left, |d| socket.set_read_timeout(d))?;
            match self.socket.read(buf) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => return Ok(n),
                Err(e) if waited(&e) => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}

/// Gives a socket's timeout (as last set: `set`) the time `left`, unless the one it has is no
/// longer and not much shorter: every wait is bounded by the time left, and the socket's option
/// is set only when an exchange runs late (the next one has a whole timeout again).
fn bound(
    set: &mut Option<Duration>,
    left: Duration,
    apply: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> Result<(), Error> {
    if set.is_some_and(|d| d <= left && d >= left / 2) {
        return Ok(());
    }
    apply(Some(left)).map_err(Error::Io)?;
    *set = Some(left);
    Ok(())
}

/// Whether a read or write gave up after waiting its timeout (or was interrupted): try again
/// with the time left.
fn waited(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl Stream for Blocking {
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(self.send_now(bytes))
    }

    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, Error>> + Send {
        std::future::ready(self.recv_now(buf))
    }
}

/// Whether `e` is the end of the exchange's time.
fn timed_out(e: &Error) -> bool {
    matches!(e, Error::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}

/// The outcome of an exchange's future on a [`Wire`], ready at its first poll.
fn now<T>(f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        // Every await on a blocking socket is ready at once: not reached.
        Poll::Pending => Err(Error::Io(io::ErrorKind::WouldBlock.into())),
    }
}

impl Server {
    /// Runs `op` on this thread, on a slot's blocking connection, within `within`. For callers
    /// outside any Tokio runtime.
    pub(super) fn run_blocking<T>(
        &self,
        op: &Exchange<T, Wire>,
        within: Duration,
    ) -> Result<T, Fault> {
        let start = Instant::now();
        let deadline = start
            .checked_add(within)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 86_400));
        let mut slot = self.take_slot()?;
        let r = exchange(&mut slot, self, op, deadline);
        self.keep_slot(slot);
        r
    }
}

/// Runs `op` on the slot's blocking connection (made first if there is none), by `deadline`.
fn exchange<T>(
    slot: &mut Slot,
    server: &Server,
    op: &Exchange<T, Wire>,
    deadline: Instant,
) -> Result<T, Fault> {
    let reused = slot.wire.is_some();
    let mut w = match slot.wire.take() {
        Some(mut w) => {
            w.stream().deadline = deadline;
            w
        }
        None => connect(slot, server, deadline)?,
    };
    let r = match now(op(&mut w)) {
        Err(e) if reused && !timed_out(&e) && broken(&e) => {
            // A pooled connection to a server that restarted: one more try, on a new one.
            w = connect(slot, server, deadline)?;
            now(op(&mut w))
        }
        other => other,
    };
    match r {
        Ok(v) => {
            slot.wire = Some(w);
            Ok(v)
        }
        Err(e) if timed_out(&e) => Err(Fault::Timeout),
        Err(e) => Err(fault(&e)),
    }
}

/// A new blocking connection to `server`, made by `deadline` on the slot's runtime (which
/// resolves a host name within the bound as well).
fn connect(slot: &Slot, server: &Server, deadline: Instant) -> Result<Wire, Fault> {
    let runtime = slot.runtime().ok_or(Fault::Error)?;
    let left = deadline.saturating_duration_since(Instant::now());
    let socket = runtime.block_on(async {
        let s = tokio::time::timeout(left, tokio::net::TcpStream::connect(server.addr.as_str()))
            .await
            .map_err(|_| Fault::Timeout)?
            .map_err(|_| Fault::Connect)?;
        s.into_std().map_err(|_| Fault::Connect)
    })?;
    socket.set_nonblocking(false).map_err(|_| Fault::Connect)?;
    // One write per request, and its last segment not held back.
    let _ = socket.set_nodelay(true);
    Ok(Pipe::over(Blocking {
        socket,
        deadline,
        read_for: None,
        write_for: None,
    }))
}

//! The connections of a memcached backend, per server: idle connections for the backend's
//! runtime (async callers), and idle "slots" for blocking callers, each with the connections and
//! the small current-thread runtime that drives them, so that a blocking call does its IO on the
//! caller's own thread (no hop to another thread and back) and the caller needs no runtime.
//!
//! Connections are of two kinds ([`Conn`]): the client's, for every operation but one, and plain
//! ones ([`Pipe`]) for batch writes. A connection is made on first need, inside the operation's
//! time bound (a memcached connection is a TCP connection: no handshake), kept after a clean
//! exchange and dropped after any error; a reused connection that turns out broken (a restarted
//! server) is replaced once, within the same bound.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_memcached::{Client, Error};

use super::blocking::Wire;
use super::commands::Exchange;
use super::pipe::Pipe;
use crate::tier::Fault;

/// Idle connections kept per server, for each kind of caller.
const KEEP: usize = 16;

/// A kind of connection that exchanges run on: the memcached client, or a plain [`Pipe`] (for
/// batch writes, which the client cannot send as one request).
pub(super) trait Conn: Send + Sized + 'static {
    /// A new connection to `server`.
    fn connect(server: &Server) -> impl Future<Output = Result<Self, Error>> + Send + '_;
    /// The server's idle connections of this kind, for the backend's runtime.
    fn idle(server: &Server) -> &Mutex<Vec<Self>>;
    /// A blocking caller's slot's connection of this kind.
    fn of(conns: &mut SlotConns) -> &mut Option<Self>;
}

impl Conn for Client {
    fn connect(server: &Server) -> impl Future<Output = Result<Self, Error>> + Send + '_ {
        Client::new(server.dsn.as_str())
    }
    fn idle(server: &Server) -> &Mutex<Vec<Self>> {
        &server.idle
    }
    fn of(conns: &mut SlotConns) -> &mut Option<Self> {
        &mut conns.client
    }
}

impl Conn for Pipe {
    fn connect(server: &Server) -> impl Future<Output = Result<Self, Error>> + Send + '_ {
        Pipe::connect(&server.addr)
    }
    fn idle(server: &Server) -> &Mutex<Vec<Self>> {
        &server.pipes
    }
    fn of(conns: &mut SlotConns) -> &mut Option<Self> {
        &mut conns.pipe
    }
}

/// A slot's connections, one of each kind (made when first needed).
#[derive(Default)]
pub(super) struct SlotConns {
    client: Option<Client>,
    pipe: Option<Pipe>,
}

/// Connections and the runtime that drives them, for blocking callers; and a blocking
/// connection, for reads outside any runtime (`blocking`).
pub(super) struct Slot {
    conns: SlotConns,
    pub(super) wire: Option<Wire>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Slot {
    fn new() -> Result<Self, Fault> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|_| Fault::Error)?;
        Ok(Self {
            conns: SlotConns::default(),
            wire: None,
            runtime: Some(runtime),
        })
    }

    /// The slot's runtime (there until the slot is dropped).
    pub(super) fn runtime(&self) -> Option<&tokio::runtime::Runtime> {
        self.runtime.as_ref()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(std::mem::take(&mut self.conns));
        drop(self.wire.take());
        // Never blocks (this may run inside an async context).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// One server's address and idle connections.
pub(super) struct Server {
    /// `host:port`.
    pub(super) addr: String,
    /// `tcp://host:port`, as the client connects.
    dsn: String,
    idle: Mutex<Vec<Client>>,
    pipes: Mutex<Vec<Pipe>>,
    /// Boxed: a slot is a few hundred bytes, moved out of here and back on every blocking call
    /// (two copies of it a read, 300 instructions under callgrind; a box moves 8 bytes).
    #[allow(clippy::vec_box)]
    slots: Mutex<Vec<Box<Slot>>>,
}

impl Server {
    pub(super) fn new(addr: String) -> Self {
        Self {
            dsn: format!("tcp://{addr}"),
            addr,
            idle: Mutex::new(Vec::new()),
            pipes: Mutex::new(Vec::new()),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Runs `op` on this thread, on a slot's connection, within `within`. The caller must not be
    /// inside a Tokio runtime (a runtime cannot be driven from inside another).
    pub(super) fn run_here<T, C: Conn>(
        &self,
        op: &Exchange<T, C>,
        within: Duration,
    ) -> Result<T, Fault> {
        let mut slot = self.take_slot()?;
        let Some(runtime) = slot.runtime.as_ref() else {
            return Err(Fault::Error);
        };
        let conn = C::of(&mut slot.conns);
        let r = runtime.block_on(async {
            tokio::time::timeout(within, exchange(conn, self, op))
                .await
                .unwrap_or(Err(Fault::Timeout))
        });
        self.keep_slot(slot);
        r
    }

    /// Runs `op` on an idle async connection (or a new one), within `within`. Runs on the
    /// backend's runtime.
    pub(super) async fn run_async<T, C: Conn>(
        &self,
        op: &Exchange<T, C>,
        within: Duration,
    ) -> Result<T, Fault> {
        let mut conn = C::idle(self)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let r = tokio::time::timeout(within, exchange(&mut conn, self, op))
            .await
            .unwrap_or(Err(Fault::Timeout));
        if let Some(c) = conn {
            let mut idle = C::idle(self).lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < KEEP {
                idle.push(c);
            }
        }
        r
    }

    /// An idle slot, or a new one.
    pub(super) fn take_slot(&self) -> Result<Box<Slot>, Fault> {
        let popped = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match popped {
            Some(s) => Ok(s),
            None => Slot::new().map(Box::new),
        }
    }

    /// Keeps `slot` for the next blocking caller (if fewer than [`KEEP`] are idle).
    pub(super) fn keep_slot(&self, slot: Box<Slot>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() < KEEP {
            slots.push(slot);
        }
    }
}

/// Runs `op` on `conn` (connected to `server` first if there is none). A connection is kept
/// only after a clean exchange; a reused one that proves broken is replaced once.
async fn exchange<T, C: Conn>(
    conn: &mut Option<C>,
    server: &Server,
    op: &Exchange<T, C>,
) -> Result<T, Fault> {
    let reused = conn.is_some();
    let mut c = match conn.take() {
        Some(c) => c,
        None => C::connect(server).await.map_err(|_| Fault::Connect)?,
    };
    let r = match op(&mut c).await {
        Err(e) if reused && broken(&e) => {
            // A pooled connection to a server that restarted: one more try, on a new one.
            c = C::connect(server).await.map_err(|_| Fault::Connect)?;
            op(&mut c).await
        }
        other => other,
    };
    match r {
        Ok(v) => {
            *conn = Some(c);
            Ok(v)
        }
        Err(e) => Err(fault(&e)),
    }
}

/// Whether `e` says the connection itself failed (as opposed to the server's answer).
pub(super) fn broken(e: &Error) -> bool {
    matches!(e, Error::Io(_) | Error::ConnectionClosed)
}

/// The [`Fault`] of a client error.
pub(super) fn fault(e: &Error) -> Fault {
    match e {
        Error::Connect(_) => Fault::Connect,
        Error::Io(_) | Error::ConnectionClosed => Fault::Error,
        _ => Fault::Reply,
    }
}

//! The connections of a memcached backend, per server: idle connections for the backend's
//! runtime (async callers), and idle "slots" for blocking callers, each a connection with the
//! small current-thread runtime that drives it, so that a blocking call does its IO on the
//! caller's own thread (no hop to another thread and back) and the caller needs no runtime.
//!
//! A connection is made on first need, inside the operation's time bound (a memcached connection
//! is a TCP connection: no handshake), kept after a clean exchange and dropped after any error;
//! a reused connection that turns out broken (a restarted server) is replaced once, within the
//! same bound.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_memcached::{Client, Error};

use super::commands::Exchange;
use crate::tier::Fault;

/// Idle connections kept per server, for each kind of caller.
const KEEP: usize = 16;

/// A connection and the runtime that drives it, for blocking callers.
pub(super) struct Slot {
    client: Option<Client>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Slot {
    fn new() -> Result<Self, Fault> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|_| Fault::Error)?;
        Ok(Self {
            client: None,
            runtime: Some(runtime),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.client.take());
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
    slots: Mutex<Vec<Slot>>,
}

impl Server {
    pub(super) fn new(addr: String) -> Self {
        Self {
            dsn: format!("tcp://{addr}"),
            addr,
            idle: Mutex::new(Vec::new()),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Runs `op` on this thread, on a slot's connection, within `within`. The caller must not be
    /// inside a Tokio runtime (a runtime cannot be driven from inside another).
    pub(super) fn run_here<T>(&self, op: &Exchange<T>, within: Duration) -> Result<T, Fault> {
        let popped = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut slot = match popped {
            Some(s) => s,
            None => Slot::new()?,
        };
        let Some(runtime) = slot.runtime.as_ref() else {
            return Err(Fault::Error);
        };
        let client = &mut slot.client;
        let dsn = self.dsn.as_str();
        let r = runtime.block_on(async {
            tokio::time::timeout(within, exchange(client, dsn, op))
                .await
                .unwrap_or(Err(Fault::Timeout))
        });
        self.keep_slot(slot);
        r
    }

    /// Runs `op` on an idle async connection (or a new one), within `within`. Runs on the
    /// backend's runtime.
    pub(super) async fn run_async<T>(
        &self,
        op: &Exchange<T>,
        within: Duration,
    ) -> Result<T, Fault> {
        let mut client = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let r = tokio::time::timeout(within, exchange(&mut client, &self.dsn, op))
            .await
            .unwrap_or(Err(Fault::Timeout));
        if let Some(c) = client {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < KEEP {
                idle.push(c);
            }
        }
        r
    }

    fn keep_slot(&self, slot: Slot) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() < KEEP {
            slots.push(slot);
        }
    }
}

/// Runs `op` on `client` (connected first if there is none). A connection is kept only after a
/// clean exchange; a reused one that proves broken is replaced once.
async fn exchange<T>(client: &mut Option<Client>, dsn: &str, op: &Exchange<T>) -> Result<T, Fault> {
    let reused = client.is_some();
    let mut c = match client.take() {
        Some(c) => c,
        None => Client::new(dsn).await.map_err(|_| Fault::Connect)?,
    };
    let r = match op(&mut c).await {
        Err(e) if reused && broken(&e) => {
            // A pooled connection to a server that restarted: one more try, on a new one.
            c = Client::new(dsn).await.map_err(|_| Fault::Connect)?;
            op(&mut c).await
        }
        other => other,
    };
    match r {
        Ok(v) => {
            *client = Some(c);
            Ok(v)
        }
        Err(e) => Err(fault(&e)),
    }
}

/// Whether `e` says the connection itself failed (as opposed to the server's answer).
fn broken(e: &Error) -> bool {
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

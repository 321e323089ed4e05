//! The invalidation channel between processes: a backend publishes the keys its caches write
//! or invalidate, and listens for the other processes' messages, which it hands to the caches
//! of their namespace (so that they drop their L1 copies).
//!
//! A message is `id (u64 LE) | namespace length (u32 LE) | namespace | 1 key | 0` (`0`: every
//! key of the namespace); the id lets a backend skip its own messages, and tell those of the
//! other backends of its process (an echo, see [`tier::deliver_echo`]). The listener also hears
//! its own heartbeat probes on the channel (`heartbeat`), which tell a deaf subscription from a
//! quiet one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use super::commands::{self, Op};
use super::conn::Connections;
use super::heartbeat::{self, Beat, Heartbeat, Pulse};
use crate::tier::{self, InvalidationHandler as Handler};

/// The first wait before the listener tries again, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The channel every backend publishes invalidations on and listens to.
const CHANNEL: &str = "cache-runtime:invalidations";

/// How many listeners this process made: the n-th has the id `first id + n`.
static MADE: AtomicU64 = AtomicU64::new(0);

/// The id of this process's first listener: random, and a hash of the process id (a forked
/// child has other ids than its parent), so that the ids of two processes' listeners do not
/// meet (a message of another process taken for this one's would not move this process's
/// generation slots).
fn first_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    static SEED: OnceLock<RandomState> = OnceLock::new();
    SEED.get_or_init(RandomState::new)
        .hash_one(std::process::id())
}

/// A new listener's id.
fn next_id() -> u64 {
    first_id().wrapping_add(MADE.fetch_add(1, Ordering::SeqCst))
}

/// Whether `id` is one of this process's listeners'.
fn of_this_process(id: u64) -> bool {
    id.wrapping_sub(first_id()) < MADE.load(Ordering::SeqCst)
}

/// The message of the listener `id` telling that `key` (encoded; `None`: everything) of the
/// cache at `namespace` changed.
fn message(id: u64, namespace: &str, key: Option<&[u8]>) -> Vec<u8> {
    let mut msg = Vec::with_capacity(16 + namespace.len() + key.map_or(0, <[u8]>::len));
    msg.extend_from_slice(&id.to_le_bytes());
    msg.extend_from_slice(
        &u32::try_from(namespace.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    msg.extend_from_slice(namespace.as_bytes());
    match key {
        Some(k) => {
            msg.push(1);
            msg.extend_from_slice(k);
        }
        None => msg.push(0),
    }
    msg
}

/// One backend's side of the invalidation channel.
pub(super) struct Listener {
    /// This backend's id in invalidation messages: it skips its own, and knows those of the
    /// other backends of its process.
    id: u64,
    /// Caches (by namespace) told of other processes' invalidations.
    handlers: Mutex<Vec<(String, Weak<Handler>)>>,
    /// Listening has started (with the first registration).
    listening: AtomicBool,
    /// Subscribed to the invalidation channel right now (set once the subscription is
    /// confirmed, cleared when the connection ends or the heartbeat finds it deaf).
    subscribed: AtomicBool,
}

impl Listener {
    /// A listener with no handlers, not listening yet, with an id of its own.
    pub(super) fn new() -> Self {
        Self {
            id: next_id(),
            handlers: Mutex::new(Vec::new()),
            listening: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
        }
    }

    /// Whether the subscription is confirmed and its connection alive, right now.
    pub(super) fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Tells `handler` of other processes' invalidations of the cache at `namespace`, from now
    /// on. `true` for the first registration: the caller then starts [`listen`](Self::listen).
    pub(super) fn register(&self, namespace: &str, handler: Weak<Handler>) -> bool {
        {
            let mut all = self.handlers.lock().unwrap_or_else(PoisonError::into_inner);
            all.retain(|(_, h)| h.strong_count() > 0);
            all.push((namespace.to_owned(), handler));
        }
        !self.listening.swap(true, Ordering::AcqRel)
    }

    /// The operation that tells the other processes that `key` (encoded; `None`: everything)
    /// of the cache at `namespace` changed.
    pub(super) fn publish(&self, namespace: &str, key: Option<&[u8]>) -> Op<()> {
        commands::publish(CHANNEL, message(self.id, namespace, key))
    }

    /// Listens for invalidations through `subscriber` for as long as the backend's runtime
    /// lives. Connecting and subscribing are bounded by `first_contact` (a server that accepts
    /// and never answers cannot hold the listener), and every failure or lost subscription is
    /// retried with backoff (100 ms doubling to 5 s, reset once a subscription has delivered a
    /// probe), whatever the first contact was. While subscribed, the `heartbeat` publishes a
    /// probe through `conns` (the command connection) every interval; a subscription that does
    /// not deliver one back in time is deaf, and is dropped and made again, and so are the
    /// command connections (they may lead to the same dead end). After a gap (a lost
    /// or deaf subscription, or failed attempts), the caches' L1 copies that may have missed an
    /// invalidation meanwhile are dropped when the subscription is back.
    pub(super) async fn listen(
        self: Arc<Self>,
        subscriber: redis::Client,
        conns: Arc<Connections>,
        first_contact: Duration,
        heartbeat: Heartbeat,
    ) {
        use futures_util::StreamExt;
        use tokio::time::Instant;
        // A probe's PUBLISH may take an interval: a slow server is no deaf subscription.
        let probe_within = heartbeat.every.max(conns.timeout());
        let mut backoff = BACKOFF_MIN;
        let mut gap = false;
        loop {
            let subscribed = tokio::time::timeout(first_contact, async {
                let mut pubsub = subscriber.get_async_pubsub().await.ok()?;
                pubsub.subscribe(CHANNEL).await.ok()?;
                Some(pubsub)
            })
            .await
            .ok()
            .flatten();
            if let Some(pubsub) = subscribed {
                // After a gap, the copies kept through it go first, then the listener says it
                // listens: a caller that waited for `is_listening` keeps what it reads after.
                // (The subscription is confirmed already: no invalidation is missed between.)
                if gap {
                    self.evict_everything();
                }
                self.subscribed.store(true, Ordering::Release);
                let mut messages = pubsub.into_on_message();
                let mut pulse = Pulse::start(heartbeat, Instant::now());
                let mut deaf = false;
                loop {
                    match pulse.beat(Instant::now()) {
                        Beat::Deaf => {
                            #[cfg(feature = "tracing")]
                            tracing::warn!(
                                deaf_after = ?heartbeat.deaf_after,
                                "cache invalidation listener deaf (no probe heard); resubscribing"
                            );
                            deaf = true;
                            break;
                        }
                        Beat::Probe(seq) => {
                            let (exchange, _) =
                                commands::publish(CHANNEL, heartbeat::probe(self.id, seq))
                                    .on_runtime();
                            let conns = Arc::clone(&conns);
                            tokio::spawn(async move {
                                // Unheard, a failed probe counts against the subscription.
                                let _ = conns.call(probe_within, &exchange).await;
                            });
                        }
                        Beat::Wait => {}
                    }
                    match tokio::time::timeout_at(pulse.wake(), messages.next()).await {
                        Ok(Some(msg)) => {
                            if self.dispatch(msg.get_payload_bytes()) {
                                pulse.heard(Instant::now());
                            }
                        }
                        // The connection ended.
                        Ok(None) => break,
                        // Time to probe, or to find the subscription deaf.
                        Err(_) => {}
                    }
                }
                // Dropping the stream closes the connection.
                drop(messages);
                self.subscribed.store(false, Ordering::Release);
                if deaf {
                    // The command connections may lead to the same dead end.
                    conns.reset().await;
                }
                if pulse.proven() {
                    backoff = BACKOFF_MIN;
                }
            }
            gap = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Drops every registered cache's L1 copies (they may have missed invalidations).
    fn evict_everything(&self) {
        let handlers: Vec<Arc<Handler>> = self
            .handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(_, h)| h.upgrade())
            .collect();
        for h in handlers {
            h(None);
        }
    }

    /// Hands an invalidation from another process to the caches of its namespace (from another
    /// backend of this process: as an echo); `true` when `msg` is one of this listener's own
    /// heartbeat probes.
    fn dispatch(&self, msg: &[u8]) -> bool {
        let Some((id, rest)) = msg.split_first_chunk::<8>() else {
            return false;
        };
        let id = u64::from_le_bytes(*id);
        let own = id == self.id;
        if heartbeat::is_probe(rest) {
            return own;
        }
        if own {
            return false;
        }
        let echo = of_this_process(id);
        let Some((len, rest)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len + 1 {
            return false;
        }
        let (namespace, rest) = rest.split_at(len);
        let key = match rest.split_first() {
            Some((1, key)) => Some(key),
            Some((0, _)) => None,
            _ => return false,
        };
        let handlers: Vec<Arc<Handler>> = self
            .handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(ns, _)| ns.as_bytes() == namespace)
            .filter_map(|(_, h)| h.upgrade())
            .collect();
        for h in handlers {
            if echo {
                tier::deliver_echo(|| h(key));
            } else {
                h(key);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a handler was handed: the key, and whether as an echo.
    type Heard = Arc<Mutex<Vec<(Option<Vec<u8>>, bool)>>>;

    fn recorder(heard: &Heard) -> Arc<Handler> {
        let heard = Arc::clone(heard);
        Arc::new(move |key: Option<&[u8]>| {
            heard
                .lock()
                .unwrap()
                .push((key.map(<[u8]>::to_vec), tier::echo()));
        })
    }

    #[test]
    fn another_backend_of_this_process_is_heard_as_an_echo_and_another_process_is_not() {
        let (a, b) = (Listener::new(), Listener::new());
        assert!(of_this_process(a.id) && of_this_process(b.id) && a.id != b.id);
        let heard: Heard = Arc::default();
        let handler = recorder(&heard);
        a.register("ns:", Arc::downgrade(&handler));
        // An id no listener of this process has: another process's.
        let other_process = first_id().wrapping_sub(1);
        assert!(!of_this_process(other_process));

        assert!(!a.dispatch(&message(b.id, "ns:", Some(b"k1"))));
        assert!(!a.dispatch(&message(other_process, "ns:", Some(b"k2"))));
        assert!(!a.dispatch(&message(b.id, "ns:", None)));
        assert!(!a.dispatch(&message(a.id, "ns:", Some(b"own"))), "its own");
        assert!(
            !a.dispatch(&message(b.id, "other:", Some(b"k3"))),
            "another namespace"
        );
        assert_eq!(
            *heard.lock().unwrap(),
            [
                (Some(b"k1".to_vec()), true),
                (Some(b"k2".to_vec()), false),
                (None, true),
            ]
        );
        assert!(!tier::echo(), "only while the echo is handed over");
    }
}

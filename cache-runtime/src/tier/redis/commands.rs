//! How the Redis backend's operations are built: each one once, as an [`Op`] that the
//! backend's blocking runner and its async runner both run.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::conn::AsyncConn;
use crate::tier::{BoxFuture, Fault};

/// What an operation does on an async connection; called again for a second try.
pub(super) type Exchange<T> =
    Box<dyn Fn(AsyncConn) -> BoxFuture<'static, redis::RedisResult<T>> + Send + Sync>;

/// One backend operation, built once for blocking and async callers alike.
pub(super) enum Op<T> {
    /// A single command (or a pipeline of commands) whose reply reads as `T`: blocking callers
    /// send it on a pooled blocking connection (bounded by socket timeouts) instead of hopping
    /// to the runtime thread; async callers send it on the runtime.
    Pooled(Request, PhantomData<fn() -> T>),
    /// An exchange that blocking and async callers alike run on the backend's runtime, bounded
    /// by `within` (`None`: the backend's per-operation timeout).
    OnRuntime {
        exchange: Exchange<T>,
        within: Option<Duration>,
    },
}

/// What a pooled operation sends, in one write: a command, or a pipeline (its replies read in
/// turn, all of them, before the connection serves again).
pub(super) enum Request {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
}

impl<T: redis::FromRedisValue + Send + 'static> Op<T> {
    /// `cmd`, whose reply reads as `T`; blocking callers send it on a pooled connection.
    fn pooled(cmd: redis::Cmd) -> Self {
        Self::Pooled(Request::Cmd(cmd), PhantomData)
    }

    /// The operation as it runs on the backend's runtime, and its bound (`None`: the
    /// per-operation timeout).
    pub(super) fn on_runtime(self) -> (Exchange<T>, Option<Duration>) {
        match self {
            Self::Pooled(Request::Cmd(cmd), _) => (sent(cmd, std::convert::identity), None),
            Self::Pooled(Request::Pipe(pipe), _) => (piped(pipe), None),
            Self::OnRuntime { exchange, within } => (exchange, within),
        }
    }
}

impl<T> Op<T> {
    /// `exchange`, run on the backend's runtime by blocking and async callers alike, within
    /// the per-operation timeout.
    fn exchange(exchange: Exchange<T>) -> Self {
        Self::OnRuntime {
            exchange,
            within: None,
        }
    }

    /// The exchange `exchange` bounded by `within` instead of the per-operation timeout.
    fn exchange_within(within: Duration, exchange: Exchange<T>) -> Self {
        Self::OnRuntime {
            exchange,
            within: Some(within),
        }
    }
}

/// The exchange that sends `cmd` and reads its reply as `R`, then as `T` through `read`.
fn sent<R, T>(cmd: redis::Cmd, read: fn(R) -> T) -> Exchange<T>
where
    R: redis::FromRedisValue + Send + 'static,
    T: Send + 'static,
{
    Box::new(move |mut c| {
        let cmd = cmd.clone();
        Box::pin(async move { cmd.query_async::<R>(&mut c).await.map(read) })
    })
}

/// The exchange that sends `pipe` and reads its replies as `T`.
fn piped<T>(pipe: redis::Pipeline) -> Exchange<T>
where
    T: redis::FromRedisValue + Send + 'static,
{
    let pipe = Arc::new(pipe);
    Box::new(move |mut c| {
        let pipe = Arc::clone(&pipe);
        Box::pin(async move { pipe.query_async::<T>(&mut c).await })
    })
}

/// Milliseconds for a `PX` argument (at least 1).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `GET key`: `Ok(None)` for a miss.
pub(super) fn get(key: &str) -> Op<Option<Vec<u8>>> {
    Op::pooled(redis::cmd("GET").arg(key).clone())
}

/// `MGET key...`, read by [`values`]. Against a single server, blocking callers send it on a
/// pooled connection. A cluster cannot serve keys of several hash slots in one `MGET`: the
/// client's cluster connection splits it into one `MGET` per slot and sends them all at once
/// (each node's on its multiplexed connection), so every caller runs it on the backend's
/// runtime, where that connection lives.
pub(super) fn mget(keys: &[&str], cluster: bool) -> Op<redis::Value> {
    let cmd = redis::cmd("MGET").arg(keys).clone();
    if cluster {
        Op::exchange(sent(cmd, std::convert::identity))
    } else {
        Op::pooled(cmd)
    }
}

/// The values of an `MGET` of `n` keys: an array of `n` strings or nils, and nothing else.
pub(super) fn values(reply: redis::Value, n: usize) -> Result<Vec<Option<Vec<u8>>>, Fault> {
    let redis::Value::Array(items) = reply else {
        return Err(Fault::Reply);
    };
    if items.len() != n {
        return Err(Fault::Reply);
    }
    items
        .into_iter()
        .map(|v| match v {
            redis::Value::Nil => Ok(None),
            redis::Value::BulkString(bytes) => Ok(Some(bytes)),
            _ => Err(Fault::Reply),
        })
        .collect()
}

/// `SET key value PX ttl` (no expiry without a TTL).
pub(super) fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Op<()> {
    Op::pooled(set_cmd(key, value, ttl))
}

/// The command of [`set`].
fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(millis(ttl));
    }
    cmd
}

/// The `SET` of each item, exactly as [`set`] sends it, in one pipeline (not a transaction:
/// no `MULTI`), whose replies [`stored`] reads. Against a single server, blocking callers send
/// it on a pooled connection, in one write, and read the replies in turn: one round trip. A
/// cluster's connection routes a pipeline by the hash slot of its keys and refuses one whose
/// keys span slots, so on a cluster the items are grouped by hash slot, one pipeline per slot
/// (in the items' order within it), all sent at once on the runtime's cluster connection (each
/// node's on its multiplexed connection): the wait is about one round trip to the slowest
/// node, the commands are one `SET` per item either way.
pub(super) fn set_many(
    items: &[(&str, &[u8], Option<Duration>)],
    cluster: bool,
) -> Op<redis::Value> {
    let pipe_of = |items: &mut dyn Iterator<Item = &(&str, &[u8], Option<Duration>)>| {
        let mut pipe = redis::pipe();
        for &(key, value, ttl) in items {
            pipe.add_command(set_cmd(key, value, ttl));
        }
        pipe
    };
    if !cluster {
        return Op::Pooled(Request::Pipe(pipe_of(&mut items.iter())), PhantomData);
    }
    // The positions of each slot's items, the slots in the order of their first item.
    let mut slots: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<redis::cluster_routing::Slot, usize> = HashMap::new();
    for (i, (key, _, _)) in items.iter().enumerate() {
        let slot = redis::cluster_routing::Slot::for_key(key);
        let at = *index.entry(slot).or_insert_with(|| {
            slots.push(Vec::new());
            slots.len() - 1
        });
        slots[at].push(i);
    }
    let pipes: Arc<[redis::Pipeline]> = slots
        .iter()
        .map(|at| pipe_of(&mut at.iter().map(|&i| &items[i])))
        .collect();
    Op::exchange(Box::new(move |c| {
        let pipes = Arc::clone(&pipes);
        Box::pin(async move {
            let sent = pipes.iter().map(|pipe| {
                let mut c = c.clone();
                async move { pipe.query_async::<Vec<redis::Value>>(&mut c).await }
            });
            let mut replies = Vec::new();
            for r in futures_util::future::join_all(sent).await {
                replies.extend(r?);
            }
            Ok(redis::Value::Array(replies))
        })
    }))
}

/// Whether the replies of a [`set_many`] of `n` items are `n` times `OK`, and nothing else.
pub(super) fn stored(reply: &redis::Value, n: usize) -> Result<(), Fault> {
    let redis::Value::Array(items) = reply else {
        return Err(Fault::Reply);
    };
    let ok = |v: &redis::Value| match v {
        redis::Value::Okay => true,
        redis::Value::SimpleString(s) => s == "OK",
        _ => false,
    };
    if items.len() == n && items.iter().all(ok) {
        Ok(())
    } else {
        Err(Fault::Reply)
    }
}

/// `DEL key`.
pub(super) fn delete(key: &str) -> Op<()> {
    Op::pooled(redis::cmd("DEL").arg(key).clone())
}

/// `SET key token NX PX lease`: `Ok(true)` when this caller now holds the lease.
pub(super) fn try_lease(key: &str, token: &str, lease: Duration) -> Op<bool> {
    let cmd = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(millis(lease))
        .clone();
    Op::exchange(sent(cmd, |r: Option<String>| r.is_some()))
}

/// Deletes `key` only if it still holds `token` (a lease is released only by its holder):
/// compare-and-delete, atomically, in Redis.
pub(super) fn release_lease(key: &str, token: &str) -> Op<()> {
    let cmd = redis::cmd("EVAL")
        .arg("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end")
        .arg(1)
        .arg(key)
        .arg(token)
        .clone();
    Op::exchange(sent(cmd, |_: i64| ()))
}

/// `PUBLISH channel message`.
pub(super) fn publish(channel: &str, message: Vec<u8>) -> Op<()> {
    let cmd = redis::cmd("PUBLISH").arg(channel).arg(message).clone();
    Op::exchange(sent(cmd, std::convert::identity))
}

/// How often a process waiting on another's lease looks for the value.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// `GET key` every [`POLL_EVERY`], until a value appears, `lease` is gone (its holder finished
/// without writing, or gave up), or `max` passes (`Ok(None)`); the whole wait is bounded by
/// `max` plus the per-operation `timeout`.
pub(super) fn wait_for(
    key: &str,
    lease: &str,
    max: Duration,
    timeout: Duration,
) -> Op<Option<Vec<u8>>> {
    let (key, lease) = (key.to_owned(), lease.to_owned());
    Op::exchange_within(
        max.saturating_add(timeout),
        Box::new(move |c| Box::pin(poll(c, key.clone(), lease.clone(), max, POLL_EVERY))),
    )
}

async fn poll(
    mut c: AsyncConn,
    key: String,
    lease: String,
    max: Duration,
    every: Duration,
) -> redis::RedisResult<Option<Vec<u8>>> {
    let start = tokio::time::Instant::now();
    loop {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut c).await?;
        if v.is_some() || start.elapsed() >= max {
            return Ok(v);
        }
        let held: bool = redis::cmd("EXISTS").arg(&lease).query_async(&mut c).await?;
        if !held {
            // One last look: the holder may have written just before releasing.
            return redis::cmd("GET").arg(&key).query_async(&mut c).await;
        }
        tokio::time::sleep(every).await;
    }
}

/// The keys that start with `prefix`, as a `SCAN MATCH` pattern.
pub(super) fn prefix_pattern(prefix: &str) -> String {
    format!("{}*", glob_escape(prefix))
}

/// Escapes the glob characters of a `SCAN MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One `SCAN` step over the keys matching `pattern`.
fn scan(cursor: u64, pattern: &str) -> redis::Cmd {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(500)
        .clone()
}

/// Deletes every key matching `pattern` on a single server (`SCAN` + `DEL`, in batches; the
/// whole sweep is bounded by 20 operation timeouts).
pub(super) fn delete_matching(pattern: String, timeout: Duration) -> Op<()> {
    Op::exchange_within(
        timeout.saturating_mul(20),
        Box::new(move |mut c| {
            let pattern = pattern.clone();
            Box::pin(async move {
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) =
                        scan(cursor, &pattern).query_async(&mut c).await?;
                    if !keys.is_empty() {
                        redis::cmd("DEL")
                            .arg(&keys)
                            .query_async::<()>(&mut c)
                            .await?;
                    }
                    if next == 0 {
                        return Ok(());
                    }
                    cursor = next;
                }
            })
        }),
    )
}

/// Deletes every key matching `pattern` on each node of a cluster: each node `SCAN`s and
/// deletes its own keys, key by key (the keys of a batch would span hash slots), on a blocking
/// connection of its own whose reads are bounded by 20 operation timeouts.
pub(super) fn delete_matching_on_nodes(
    nodes: &[redis::Client],
    pattern: &str,
    timeout: Duration,
) -> Result<(), Fault> {
    let mut result = Ok(());
    for node in nodes {
        let Ok(mut con) = node.get_connection_with_timeout(timeout) else {
            result = Err(Fault::Connect);
            continue;
        };
        let _ = con.set_read_timeout(Some(timeout.saturating_mul(20)));
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)) = scan(cursor, pattern).query::<(u64, Vec<String>)>(&mut con)
            else {
                result = Err(Fault::Error);
                break;
            };
            for k in &keys {
                let _ = redis::cmd("DEL").arg(k).query::<()>(&mut con);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_write_is_the_sets_of_its_items_and_reads_ok_for_each() {
        let items: [(&str, &[u8], Option<Duration>); 2] = [
            ("a", b"1", Some(Duration::from_micros(10))),
            ("b", b"2", None),
        ];
        let Op::Pooled(Request::Pipe(pipe), _) = set_many(&items, false) else {
            panic!("a single server's batch is one pooled pipeline");
        };
        let mut expected = set_cmd("a", b"1", Some(Duration::from_millis(1))).get_packed_command();
        expected.extend(redis::cmd("SET").arg("b").arg(b"2").get_packed_command());
        assert_eq!(
            pipe.get_packed_pipeline(),
            expected,
            "PX at least 1 ms; no PX without a TTL"
        );
        assert!(matches!(set_many(&items, true), Op::OnRuntime { .. }));

        let ok = redis::Value::Okay;
        let simple_ok = redis::Value::SimpleString("OK".into());
        assert_eq!(
            stored(&redis::Value::Array(vec![ok.clone(), simple_ok]), 2),
            Ok(())
        );
        for wrong in [
            redis::Value::Array(vec![ok.clone()]),
            redis::Value::Array(vec![ok.clone(), ok.clone(), ok.clone()]),
            redis::Value::Array(vec![ok.clone(), redis::Value::Nil]),
            redis::Value::Array(vec![ok.clone(), redis::Value::Int(1)]),
            redis::Value::Okay,
        ] {
            assert_eq!(stored(&wrong, 2), Err(Fault::Reply), "{wrong:?}");
        }
    }
}

//! Batches over a memcached backend's servers: each server's keys (by the ring) in one
//! pipelined request, all servers asked at once, each through its own breaker. A batch read
//! (`commands::get_many`) puts the answers back in the keys' order; a batch write
//! (`commands::set_many`, on plain connections) answers once every server has.

use std::time::{Duration, Instant};

use super::commands::{self, Exchange};
use super::conn::Conn;
use super::{Batch, MemcachedBackend};
use crate::tier::Fault;

/// The items of a batch write: key, value, TTL.
type Items<'a> = [(&'a str, &'a [u8], Option<Duration>)];

/// Each server's share of a batch: the server, and the positions of its keys.
type Shares = Vec<(usize, Vec<usize>)>;

impl MemcachedBackend {
    /// The values of `keys`, one slot per key: each server's keys (by the ring) in one pipelined
    /// request (see `commands::get_many`), the servers asked at the same time, each through its
    /// breaker and within the one timeout. A batch whose keys are all on one server runs on
    /// this thread, like a `get`; one over several servers runs on the backend's runtime. A
    /// fault of any server faults the whole batch.
    pub(super) fn read_batch(&self, keys: &[&str]) -> Result<Batch, Fault> {
        let shares = self.shares(keys.iter().copied());
        match shares.as_slice() {
            [] => return Ok(Vec::new()),
            [(s, _)] => {
                return self.read(
                    *s,
                    || commands::get_many(&self.generations, *s, keys),
                    || commands::get_many(&self.generations, *s, keys),
                );
            }
            _ => {}
        }
        self.admit_all(&shares)?;
        let ops = shares.iter().map(|(s, at)| self.share_op(*s, keys, at));
        let answers = self.ask_all(&shares, ops.collect());
        self.gathered(keys.len(), &shares, answers)
    }

    /// The async form of [`read_batch`](Self::read_batch): every server on the backend's runtime.
    pub(super) async fn read_batch_async(&self, keys: &[&str]) -> Result<Batch, Fault> {
        let shares = self.shares(keys.iter().copied());
        if shares.is_empty() {
            return Ok(Vec::new());
        }
        self.admit_all(&shares)?;
        let ops = shares.iter().map(|(s, at)| self.share_op(*s, keys, at));
        let answers = self.ask_all_async(&shares, ops.collect()).await;
        self.gathered(keys.len(), &shares, answers)
    }

    /// Stores `items`: each server's items (by the ring, as `set` routes a key) in one
    /// pipelined request of quiet sets on a plain connection (see `commands::set_many`), the
    /// servers written at the same time, each through its breaker and within the one timeout.
    /// A batch whose items are all on one server runs on this thread, like a `set`; one over
    /// several servers runs on the backend's runtime. A fault of any server faults the whole
    /// batch (the other servers' items may be stored).
    pub(super) fn write_batch(&self, items: &Items<'_>) -> Result<(), Fault> {
        let shares = self.shares(items.iter().map(|(k, _, _)| *k));
        match shares.as_slice() {
            [] => return Ok(()),
            [(s, _)] => {
                let op = commands::set_many(&self.generations, *s, items);
                return self.run(*s, op, self.timeout);
            }
            _ => {}
        }
        self.admit_all(&shares)?;
        let ops = shares.iter().map(|(s, at)| self.write_op(*s, items, at));
        let answers = self.ask_all(&shares, ops.collect());
        self.settled(&shares, answers)
    }

    /// The async form of [`write_batch`](Self::write_batch): every server on the backend's
    /// runtime.
    pub(super) async fn write_batch_async(&self, items: &Items<'_>) -> Result<(), Fault> {
        let shares = self.shares(items.iter().map(|(k, _, _)| *k));
        if shares.is_empty() {
            return Ok(());
        }
        self.admit_all(&shares)?;
        let ops = shares.iter().map(|(s, at)| self.write_op(*s, items, at));
        let answers = self.ask_all_async(&shares, ops.collect()).await;
        self.settled(&shares, answers)
    }

    /// Each server's share of `keys`: the server, and the positions of its keys.
    fn shares<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Shares {
        let mut shares: Shares = Vec::new();
        for (i, key) in keys.enumerate() {
            let s = self.server_of(key);
            match shares.iter_mut().find(|(t, _)| *t == s) {
                Some((_, at)) => at.push(i),
                None => shares.push((s, vec![i])),
            }
        }
        shares
    }

    /// The read of a server's share of `keys`.
    fn share_op(&self, server: usize, keys: &[&str], at: &[usize]) -> Exchange<Batch> {
        let share: Vec<&str> = at.iter().map(|&i| keys[i]).collect();
        commands::get_many(&self.generations, server, &share)
    }

    /// The write of a server's share of `items`.
    fn write_op(
        &self,
        server: usize,
        items: &Items<'_>,
        at: &[usize],
    ) -> Exchange<(), super::pipe::Pipe> {
        let share: Vec<_> = at.iter().map(|&i| items[i]).collect();
        commands::set_many(&self.generations, server, &share)
    }

    /// Lets every server of `shares` through its breaker, or none.
    fn admit_all(&self, shares: &Shares) -> Result<(), Fault> {
        for (s, _) in shares {
            self.breakers.get(*s).ok_or(Fault::Error)?.admit()?;
        }
        Ok(())
    }

    /// Runs each server's `ops` (one per share, in order) at once on the backend's runtime, for
    /// a blocking caller: each server's answer, `None` where none came within the timeout (and
    /// the scheduling margin of every blocking wait).
    fn ask_all<T: Send + 'static, C: Conn>(
        &self,
        shares: &Shares,
        ops: Vec<Exchange<T, C>>,
    ) -> Vec<Option<Result<T, Fault>>> {
        let (tx, rx) = std::sync::mpsc::channel();
        for (n, ((s, _), op)) in shares.iter().zip(ops).enumerate() {
            let tx = tx.clone();
            self.spawn(*s, op, self.timeout, move |r| {
                let _ = tx.send((n, r));
            });
        }
        drop(tx);
        // Each task answers within the timeout; the margin covers scheduling only.
        let margin = (self.timeout / 4).min(Duration::from_millis(100));
        let deadline = Instant::now().checked_add(self.timeout.saturating_add(margin));
        let mut answers: Vec<Option<Result<T, Fault>>> = shares.iter().map(|_| None).collect();
        for _ in 0..shares.len() {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            match rx.recv_timeout(left) {
                Ok((n, r)) => answers[n] = Some(r),
                Err(_) => break,
            }
        }
        answers
    }

    /// The async form of [`ask_all`](Self::ask_all) (each task answers within the timeout).
    async fn ask_all_async<T: Send + 'static, C: Conn>(
        &self,
        shares: &Shares,
        ops: Vec<Exchange<T, C>>,
    ) -> Vec<Option<Result<T, Fault>>> {
        let mut waiting = Vec::with_capacity(shares.len());
        for ((s, _), op) in shares.iter().zip(ops) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.spawn(*s, op, self.timeout, move |r| {
                let _ = tx.send(r);
            });
            waiting.push(rx);
        }
        // All are asked already: awaiting them in turn waits for the slowest.
        let mut answers = Vec::with_capacity(waiting.len());
        for rx in waiting {
            answers.push(Some(rx.await.unwrap_or(Err(Fault::Error))));
        }
        answers
    }

    /// The answer of a batch of `n` keys from each server's answer to its share (`None`: none
    /// came in time), each counted by its server's breaker: the values in the keys' order, or
    /// the first fault.
    fn gathered(
        &self,
        n: usize,
        shares: &Shares,
        answers: Vec<Option<Result<Batch, Fault>>>,
    ) -> Result<Batch, Fault> {
        let mut values = vec![None; n];
        let mut fault = None;
        for ((s, at), answer) in shares.iter().zip(answers) {
            let answer = answer.unwrap_or(Err(Fault::Timeout));
            let Some(breaker) = self.breakers.get(*s) else {
                fault = fault.or(Some(Fault::Error));
                continue;
            };
            match breaker.record(answer) {
                Ok(share) if share.len() == at.len() => {
                    for (&i, v) in at.iter().zip(share) {
                        values[i] = v;
                    }
                }
                Ok(_) => fault = fault.or(Some(Fault::Reply)),
                Err(f) => fault = fault.or(Some(f)),
            }
        }
        fault.map_or(Ok(values), Err)
    }

    /// The outcome of a batch write from each server's answer (`None`: none came in time), each
    /// counted by its server's breaker: the first fault, if any.
    fn settled(
        &self,
        shares: &Shares,
        answers: Vec<Option<Result<(), Fault>>>,
    ) -> Result<(), Fault> {
        let mut outcome = Ok(());
        for ((s, _), answer) in shares.iter().zip(answers) {
            let answer = answer.unwrap_or(Err(Fault::Timeout));
            let recorded = match self.breakers.get(*s) {
                Some(breaker) => breaker.record(answer),
                None => Err(Fault::Error),
            };
            outcome = outcome.and(recorded);
        }
        outcome
    }
}

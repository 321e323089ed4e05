//! A plain TCP connection to a memcached server, for batch writes. The client sends the same
//! flags with every item of its pipelined `ms` (`meta_set_multi`), and the items of a batch
//! have expiries of their own, so a batch is written here, as the bytes of one request
//! (`commands::set_many`), and its replies read here. Only what a batch write needs is spoken:
//! a namespace's generation (read, or made: `mg <key> v`, `ms <key> <size> ME T0`), and one
//! pipelined request of quiet sets read up to its `MN`.
//!
//! Like the client, a pipe is kept after a clean exchange only: a reply that is not the protocol
//! fails the exchange, and the connection, possibly mid-reply, is dropped.

use std::future::Future;
use std::io;

use async_memcached::{Error, ErrorKind, Status};
use tokio::net::TcpStream;

use crate::tier::BoxFuture;

/// The longest reply line read (memcached's are a few dozen bytes, a key included): a longer
/// one is not the protocol.
const MAX_LINE: usize = 4 * 1024;
/// The largest generation token read back (12 bytes, or what someone else stored).
const MAX_VALUE: usize = 64 * 1024;
/// The largest entry read back: memcached's largest item size (`-I` takes 1 GiB at most). The
/// buffer grows with the bytes that arrive, never ahead of them.
pub(super) const MAX_ITEM: usize = 1 << 30;
/// How much is read at a time.
const CHUNK: usize = 16 * 1024;
/// A buffer grown past this by a large value is given back once it is read.
const KEEP_BUFFER: usize = 4 * CHUNK;

/// The bytes under a [`Pipe`]: a Tokio connection (batch writes), or a blocking socket
/// (`blocking`: reads for callers outside any runtime).
pub(super) trait Stream: Send + 'static {
    /// Writes all of `bytes`.
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), Error>> + Send;
    /// Reads what the server sent next into `buf`: at least one byte; the end of the stream is
    /// an error.
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, Error>> + Send;
}

impl Stream for TcpStream {
    async fn send(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            self.writable().await?;
            match self.try_write(bytes) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            self.readable().await?;
            match self.try_read(buf) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}

/// A connection to one server, and what it has read and not yet taken (`buf[at..end]`).
pub(super) struct Pipe<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    at: usize,
    end: usize,
    /// The bytes of the request being written, kept for the next one (reads build theirs here).
    request: Vec<u8>,
}

/// The key and value of each hit of a read.
pub(super) type Hits = Vec<(Vec<u8>, Vec<u8>)>;

/// A reply that is not the protocol, or not one of those this request can have.
pub(super) fn garbled() -> Error {
    Error::Protocol(Status::Error(ErrorKind::Protocol(None)))
}

impl Pipe<TcpStream> {
    /// A new connection to `addr` (`host:port`).
    pub(super) async fn connect(addr: &str) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr).await.map_err(Error::Connect)?;
        // One write per request, and its last segment not held back.
        let _ = stream.set_nodelay(true);
        Ok(Self::over(stream))
    }
}

impl<S: Stream> Pipe<S> {
    /// A pipe over `stream`, nothing read yet.
    pub(super) fn over(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            at: 0,
            end: 0,
            request: Vec::new(),
        }
    }

    /// The stream under this pipe.
    pub(super) fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// What was read and not yet taken.
    fn unread(&self) -> &[u8] {
        &self.buf[self.at..self.end]
    }

    /// Takes the first `n` unread bytes.
    fn take(&mut self, n: usize) {
        self.at += n;
        if self.at >= self.end {
            (self.at, self.end) = (0, 0);
            if self.buf.len() > KEEP_BUFFER {
                self.buf = Vec::new();
            }
        }
    }

    /// Starts a request: `request` written, unless bytes of an earlier one are still unread
    /// (this stream is not the protocol).
    async fn ask(&mut self, request: &[u8]) -> Result<(), Error> {
        if self.end > self.at {
            return Err(garbled());
        }
        self.stream.send(request).await
    }

    /// Reads what the server sent next (at least one byte) after what is unread.
    async fn fill(&mut self) -> Result<(), Error> {
        if self.at > 0 {
            self.buf.copy_within(self.at..self.end, 0);
            (self.at, self.end) = (0, self.end - self.at);
        }
        if self.buf.len() < self.end + CHUNK {
            self.buf.resize(self.end + CHUNK, 0);
        }
        let n = self.stream.recv(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(())
    }

    /// The length of the next reply line (left unread, its `\r\n` after it).
    async fn line(&mut self) -> Result<usize, Error> {
        let mut searched = 0;
        loop {
            let unread = self.unread();
            if let Some(at) = line_end(&unread[searched..]) {
                return Ok(searched + at);
            }
            if unread.len() > MAX_LINE {
                return Err(garbled());
            }
            searched = unread.len().saturating_sub(1);
            self.fill().await?;
        }
    }

    /// The next reply line, taken, without its `\r\n`.
    async fn owned_line(&mut self) -> Result<Vec<u8>, Error> {
        let n = self.line().await?;
        let line = self.unread()[..n].to_vec();
        self.take(n + 2);
        Ok(line)
    }

    /// The `n` bytes of a value and the `\r\n` after them.
    async fn data(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        while self.unread().len() < n + 2 {
            self.fill().await?;
        }
        let unread = self.unread();
        if &unread[n..n + 2] != b"\r\n" {
            return Err(garbled());
        }
        let data = unread[..n].to_vec();
        self.take(n + 2);
        Ok(data)
    }

    /// Sends `request`, a pipeline of quiet sets (`ms <key> <size> T<expiry> q`, each with its
    /// data) ended by `mn`, and reads its replies up to the `MN`. A quiet set answers only when
    /// it fails, so anything before the `MN` is a fault ([`garbled`]), except an `HD` (a set
    /// that was not quiet after all) and a value over the server's item size (`-I`, 1 MiB by
    /// default), which the server skips as it does for a single `set` (a skipped write, not a
    /// fault of the server: its connection is fine). Bytes after the `MN` (more replies than the
    /// request can have) are a fault too.
    pub(super) async fn store_quietly(&mut self, request: &[u8]) -> Result<(), Error> {
        self.ask(request).await?;
        loop {
            let line = self.owned_line().await?;
            match line.as_slice() {
                b"MN" => break,
                b"HD" => {}
                l if l.starts_with(b"SERVER_ERROR ") && contains(l, b"too large") => {}
                _ => return Err(garbled()),
            }
        }
        self.done()
    }

    /// Sends `mg <key> v k q` for each of `keys`, then `mn`, in one write, and reads the replies
    /// up to the `MN`: the key and value of each hit (a quiet miss says nothing). `EN` and `HD`
    /// are passed over as the client passes them; a value over [`MAX_ITEM`], a value without its
    /// key, an error line or anything else is a fault ([`garbled`]), and so are more hits than
    /// keys, or bytes after the `MN`.
    pub(super) async fn hits(&mut self, keys: &[&str]) -> Result<Hits, Error> {
        self.ask_quiet_reads(keys).await?;
        let mut hits = Vec::new();
        while let Some((size, key, n)) = self.next_hit().await? {
            if hits.len() == keys.len() {
                return Err(garbled());
            }
            let key = self.unread()[key].to_vec();
            self.take(n + 2);
            hits.push((key, self.data(size).await?));
        }
        self.done().map(|()| hits)
    }

    /// [`hits`](Self::hits) for two keys (a namespace's generation and an entry), without a
    /// list: the value of each, `None` for a miss. The replies are matched by key.
    pub(super) async fn pair(&mut self, keys: [&str; 2]) -> Result<[Option<Vec<u8>>; 2], Error> {
        self.ask_quiet_reads(&keys).await?;
        let mut values = [None, None];
        while let Some((size, key, n)) = self.next_hit().await? {
            let at = unanswered(&keys, &values, &self.unread()[key]).ok_or_else(garbled)?;
            self.take(n + 2);
            values[at] = Some(self.data(size).await?);
        }
        self.done().map(|()| values)
    }

    /// Sends `mg <key> v k q` for each of `keys`, then `mn`, in one write.
    async fn ask_quiet_reads(&mut self, keys: &[&str]) -> Result<(), Error> {
        let mut request = std::mem::take(&mut self.request);
        request.clear();
        for key in keys {
            request.extend_from_slice(b"mg ");
            request.extend_from_slice(key.as_bytes());
            request.extend_from_slice(b" v k q\r\n");
        }
        request.extend_from_slice(b"mn\r\n");
        let sent = self.ask(&request).await;
        if request.capacity() <= KEEP_BUFFER {
            self.request = request;
        }
        sent
    }

    /// The next value of a read's replies, its header line left unread: its size, where its key
    /// is in [`unread`](Self::unread), and the line's length; `None` at the `MN` (taken). `EN` and `HD` are
    /// passed over; a value over [`MAX_ITEM`], one without its key, or any other line is a
    /// fault ([`garbled`]).
    async fn next_hit(&mut self) -> Result<Option<(usize, std::ops::Range<usize>, usize)>, Error> {
        loop {
            let n = self.line().await?;
            let line = &self.unread()[..n];
            match line {
                b"MN" => {
                    self.take(n + 2);
                    return Ok(None);
                }
                b"EN" | b"HD" => self.take(n + 2),
                _ => {
                    let (size, key) = value_header(line, MAX_ITEM).ok_or_else(garbled)?;
                    let key = key.ok_or_else(garbled)?;
                    let from = key.as_ptr().addr() - line.as_ptr().addr();
                    return Ok(Some((size, from..from + key.len(), n)));
                }
            }
        }
    }

    /// The end of a request's replies: nothing may follow them.
    fn done(&self) -> Result<(), Error> {
        if self.end > self.at {
            Err(garbled())
        } else {
            Ok(())
        }
    }
}

/// The size (at most `max`) and key (its `k` flag, if any) of a value's header line, `VA <size>
/// <flags>*` without its `\r\n`; `None` when it is not one.
pub(super) fn value_header(line: &[u8], max: usize) -> Option<(usize, Option<&[u8]>)> {
    let mut words = line.strip_prefix(b"VA ")?.split(|&b| b == b' ');
    let size = words.next()?;
    if size.is_empty() || size.len() > 10 || !size.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 10 digits: no overflow.
    let size = size.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    let size = usize::try_from(size).ok()?;
    if size > max {
        return None;
    }
    let mut key = None;
    for flag in words {
        match flag.split_first() {
            Some((b'k', k)) if !k.is_empty() => key = Some(k),
            // Another flag, or a second space.
            _ => {}
        }
    }
    Some((size, key))
}

/// Where the first `\r\n` of `bytes` starts.
fn line_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'\n') {
        let at = from + at;
        if at > 0 && bytes[at - 1] == b'\r' {
            return Some(at - 1);
        }
        from = at + 1;
    }
    None
}

/// The first of `keys` named `key` that has no value yet (a key asked twice is answered twice).
fn unanswered(keys: &[&str; 2], values: &[Option<Vec<u8>>; 2], key: &[u8]) -> Option<usize> {
    (0..2).find(|&i| values[i].is_none() && keys[i].as_bytes() == key)
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The two requests of a namespace's generation (`commands::On::fetch_generation`), which both
/// kinds of connection make alike.
pub(super) trait Generational: Send {
    /// `mg <key> v`: the value under `key`, `None` for a miss.
    fn value<'a>(&'a mut self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>>;
    /// `ms <key> <size> ME T0`: stores `value` under `key` unless `key` holds one, and never
    /// expires it; `false` when `key` held one.
    fn add<'a>(&'a mut self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<bool, Error>>;
}

/// Reads of entries, which both kinds of connection for reads make alike
/// (`commands::get_each`).
pub(super) trait Reads: Generational {
    /// `mg <key> v k q` for each of `keys`, then `mn`, in one round trip: the key and value of
    /// each hit.
    fn hits<'a>(&'a mut self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Hits, Error>>;

    /// [`hits`](Self::hits) of two keys, as the value of each (`None`: a miss).
    fn pair<'a>(
        &'a mut self,
        keys: [&'a str; 2],
    ) -> BoxFuture<'a, Result<[Option<Vec<u8>>; 2], Error>> {
        Box::pin(async move {
            let mut values = [None, None];
            for (key, data) in self.hits(&keys).await? {
                let at = unanswered(&keys, &values, &key).ok_or_else(garbled)?;
                values[at] = Some(data);
            }
            Ok(values)
        })
    }
}

impl Reads for async_memcached::Client {
    fn hits<'a>(&'a mut self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Hits, Error>> {
        use async_memcached::MetaProtocol;
        Box::pin(async move {
            let replies = self.meta_get_multi(keys, Some(&["v"])).await?;
            replies
                .into_iter()
                .map(|r| match (r.key, r.data) {
                    (Some(key), Some(data)) => Ok((key, data)),
                    _ => Err(garbled()),
                })
                .collect()
        })
    }
}

impl<S: Stream> Reads for Pipe<S> {
    fn hits<'a>(&'a mut self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Hits, Error>> {
        Box::pin(Pipe::hits(self, keys))
    }

    fn pair<'a>(
        &'a mut self,
        keys: [&'a str; 2],
    ) -> BoxFuture<'a, Result<[Option<Vec<u8>>; 2], Error>> {
        Box::pin(Pipe::pair(self, keys))
    }
}

impl Generational for async_memcached::Client {
    fn value<'a>(&'a mut self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        use async_memcached::MetaProtocol;
        Box::pin(async move {
            let got = self.meta_get(key, false, None, Some(&["v"])).await?;
            Ok(got.and_then(|v| v.data))
        })
    }

    fn add<'a>(&'a mut self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        use async_memcached::MetaProtocol;
        Box::pin(async move {
            match self
                .meta_set(key, value, false, None, Some(&["ME", "T0"]))
                .await
            {
                Ok(_) => Ok(true),
                Err(Error::Protocol(Status::NotStored)) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }
}

impl<S: Stream> Generational for Pipe<S> {
    fn value<'a>(&'a mut self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        Box::pin(async move {
            self.ask(format!("mg {key} v\r\n").as_bytes()).await?;
            let line = self.owned_line().await?;
            if line == b"EN" {
                return Ok(None);
            }
            let (size, _) = value_header(&line, MAX_VALUE).ok_or_else(garbled)?;
            let data = self.data(size).await?;
            self.done().map(|()| Some(data))
        })
    }

    fn add<'a>(&'a mut self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let request = format!("ms {key} {} ME T0\r\n{value}\r\n", value.len());
            self.ask(request.as_bytes()).await?;
            let stored = match self.owned_line().await?.as_slice() {
                b"HD" => true,
                b"NS" => false,
                _ => return Err(garbled()),
            };
            self.done().map(|()| stored)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::tier::Fault;
    use crate::tier::memcached::conn::fault;

    /// A server's replies, handed out `step` bytes at a time, then the end of the stream; what
    /// was sent to it, kept.
    struct Script {
        replies: Vec<u8>,
        at: usize,
        step: usize,
        sent: Vec<u8>,
    }

    impl Stream for Script {
        fn send(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), Error>> + Send {
            self.sent.extend_from_slice(bytes);
            std::future::ready(Ok(()))
        }

        fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, Error>> + Send {
            let n = self.step.min(buf.len()).min(self.replies.len() - self.at);
            buf[..n].copy_from_slice(&self.replies[self.at..self.at + n]);
            self.at += n;
            std::future::ready(if n == 0 {
                Err(Error::Io(io::ErrorKind::UnexpectedEof.into()))
            } else {
                Ok(n)
            })
        }
    }

    /// `hits` of `keys` against `replies`, fed `step` bytes at a time: its outcome, and the pipe.
    fn hits(replies: &[u8], step: usize, keys: &[&str]) -> (Result<Hits, Error>, Pipe<Script>) {
        let mut p = scripted(replies, step);
        let r = ready(p.hits(keys));
        (r, p)
    }

    /// A pipe over `replies`, handed out `step` bytes at a time.
    fn scripted(replies: &[u8], step: usize) -> Pipe<Script> {
        Pipe::over(Script {
            replies: replies.to_vec(),
            at: 0,
            step,
            sent: Vec::new(),
        })
    }

    /// The outcome of `f`, which a script makes ready at its first poll.
    fn ready<T>(f: impl Future<Output = T>) -> T {
        match std::pin::pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("a script is always ready"),
        }
    }

    /// The fault that the outcome of `hits` counts as.
    fn fault_of(replies: &[u8]) -> Fault {
        let (r, _) = hits(replies, 7, &["g", "a"]);
        fault(&r.expect_err("not a clean reply"))
    }

    #[test]
    fn values_come_back_by_key_in_any_slicing() {
        let replies = b"VA 3 kg\r\nabc\r\nVA 5 t0 ka\r\nx\r\nyz\r\nMN\r\n";
        for step in [1, 2, 5, 64, 1 << 20] {
            let (r, p) = hits(replies, step, &["g", "a"]);
            let want = vec![
                (b"g".to_vec(), b"abc".to_vec()),
                (b"a".to_vec(), b"x\r\nyz".to_vec()),
            ];
            assert_eq!(r.unwrap(), want, "step {step}");
            assert_eq!(p.stream.sent, b"mg g v k q\r\nmg a v k q\r\nmn\r\n");
        }
    }

    #[test]
    fn misses_are_silent_and_en_or_hd_are_passed_over() {
        assert!(hits(b"MN\r\n", 1, &["g", "a"]).0.unwrap().is_empty());
        assert!(
            hits(b"EN\r\nHD\r\nMN\r\n", 3, &["g", "a"])
                .0
                .unwrap()
                .is_empty()
        );
        let (r, _) = hits(b"EN\r\nVA 0 ka\r\n\r\nMN\r\n", 4, &["g", "a"]);
        assert_eq!(r.unwrap(), vec![(b"a".to_vec(), Vec::new())]);
    }

    #[test]
    fn garbage_error_lines_and_values_without_their_key_are_a_reply_fault() {
        for garbage in [
            &b"XYZ\r\n"[..],
            b"VA\r\n",
            b"VA x kg\r\nabc\r\nMN\r\n",
            b"VA -3 kg\r\n",
            b"VA 3\r\nabc\r\nMN\r\n",
            b"VA 3 k\r\nabc\r\nMN\r\n",
            b"SERVER_ERROR out of memory\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
            b"ERROR\r\n",
            // The value is not followed by its `\r\n`.
            b"VA 3 kg\r\nabcdef\r\nMN\r\n",
            // More values than keys, and bytes after the `MN`.
            b"VA 1 kg\r\na\r\nVA 1 ka\r\nb\r\nVA 1 kg\r\nc\r\nMN\r\n",
            b"MN\r\nVA 1 kg\r\n",
        ] {
            assert_eq!(
                fault_of(garbage),
                Fault::Reply,
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
        // A line that never ends.
        let endless = vec![b'V'; MAX_LINE * 3];
        assert_eq!(fault_of(&endless), Fault::Reply);
    }

    #[test]
    fn a_short_reply_is_a_connection_error() {
        for short in [&b""[..], b"VA 3 kg\r\nab", b"VA 3 kg\r\nabc\r\n", b"VA 3 k"] {
            let (r, _) = hits(short, 2, &["g", "a"]);
            let e = r.expect_err("short");
            assert!(matches!(e, Error::Io(_)), "{e:?}");
            assert_eq!(fault(&e), Fault::Error);
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_anything_is_allocated_for_it() {
        for huge in [
            format!("VA {} kg\r\n", MAX_ITEM + 1),
            "VA 18446744073709551615 kg\r\n".to_owned(),
            "VA 99999999999999999999999 kg\r\n".to_owned(),
        ] {
            let (r, p) = hits(huge.as_bytes(), 1 << 20, &["g", "a"]);
            assert_eq!(fault(&r.expect_err("oversized")), Fault::Reply, "{huge}");
            assert!(p.buf.capacity() <= 2 * CHUNK, "{}", p.buf.capacity());
        }
        assert_eq!(value_header(b"VA 12 kg", 12), Some((12, Some(&b"g"[..]))));
        assert_eq!(value_header(b"VA 13 kg", 12), None);
        assert_eq!(value_header(b"VA 1  t5 ka", 12), Some((1, Some(&b"a"[..]))));
        assert_eq!(value_header(b"VA +1 ka", 12), None);
        assert_eq!(value_header(b"EN", 12), None);
    }

    #[test]
    fn a_large_value_is_read_and_the_buffer_given_back() {
        let n = 3 * KEEP_BUFFER;
        let mut replies = format!("VA {n} ka\r\n").into_bytes();
        replies.extend(std::iter::repeat_n(b'v', n));
        replies.extend_from_slice(b"\r\nMN\r\n");
        let (r, p) = hits(&replies, 5_000, &["a"]);
        assert_eq!(r.unwrap()[0].1.len(), n);
        assert!(p.buf.is_empty(), "given back");
    }

    /// `pair` of `keys` against `replies`, fed `step` bytes at a time: its outcome, and the pipe.
    #[allow(clippy::type_complexity)]
    fn pair(
        replies: &[u8],
        step: usize,
        keys: [&str; 2],
    ) -> (Result<[Option<Vec<u8>>; 2], Error>, Pipe<Script>) {
        let mut p = scripted(replies, step);
        let r = ready(p.pair(keys));
        (r, p)
    }

    /// The read of a namespace's generation and an entry (`pair`) sends what `hits` of the two
    /// keys sends, and reads every reply as it does: the same values, or the same fault.
    #[test]
    fn a_pair_reads_what_hits_of_its_two_keys_read() {
        let scripts: &[&[u8]] = &[
            b"VA 3 kg\r\nabc\r\nVA 5 t0 ka\r\nx\r\nyz\r\nMN\r\n",
            b"VA 5 t0 ka\r\nx\r\nyz\r\nVA 3 kg\r\nabc\r\nMN\r\n",
            b"MN\r\n",
            b"EN\r\nHD\r\nMN\r\n",
            b"EN\r\nVA 0 ka\r\n\r\nMN\r\n",
            b"VA 1 kg\r\n\n\r\nMN\r\n",
            b"XYZ\r\n",
            b"VA x kg\r\nabc\r\nMN\r\n",
            b"VA 3 k\r\nabc\r\nMN\r\n",
            b"VA 3 kz\r\nabc\r\nMN\r\n",
            b"SERVER_ERROR out of memory\r\n",
            b"VA 3 kg\r\nabcdef\r\nMN\r\n",
            b"VA 1 kg\r\na\r\nVA 1 ka\r\nb\r\nVA 1 kg\r\nc\r\nMN\r\n",
            b"VA 1 kg\r\na\r\nVA 1 kg\r\nc\r\nMN\r\n",
            b"MN\r\nVA 1 kg\r\n",
            b"VA 3 kg\r\nab",
            b"VA 3 k",
            b"",
        ];
        for script in scripts {
            for step in [1, 2, 7, 64] {
                let what = format!("{} by {step}", String::from_utf8_lossy(script));
                let (h, hp) = hits(script, step, &["g", "a"]);
                let (p, pp) = pair(script, step, ["g", "a"]);
                assert_eq!(pp.stream.sent, hp.stream.sent, "{what}");
                match (h, p) {
                    // A value of a key not asked, or a second one of a key: what `hits` leaves
                    // to its caller to refuse, `pair` refuses.
                    (Ok(h), p)
                        if h.iter().enumerate().any(|(i, (k, _))| {
                            !(k == b"g" || k == b"a") || h[..i].iter().any(|(e, _)| e == k)
                        }) =>
                    {
                        assert_eq!(fault(&p.expect_err(&what)), Fault::Reply, "{what}");
                    }
                    (Ok(h), Ok(p)) => {
                        let of =
                            |k: &[u8]| h.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                        assert_eq!(p, [of(b"g"), of(b"a")], "{what}");
                    }
                    (Err(h), Err(p)) => assert_eq!(fault(&h), fault(&p), "{what}"),
                    (h, p) => panic!("{what}: hits {h:?}, pair {p:?}"),
                }
            }
        }
    }

    /// A key asked twice is answered twice; and the request's buffer is reused, not appended to.
    #[test]
    fn a_pair_of_one_key_takes_both_replies_and_requests_do_not_pile_up() {
        let twice = b"VA 1 ka\r\nx\r\nVA 1 ka\r\nx\r\nMN\r\n";
        let (r, _) = pair(twice, 3, ["a", "a"]);
        assert_eq!(r.unwrap(), [Some(b"x".to_vec()), Some(b"x".to_vec())]);

        let mut p = scripted(b"MN\r\nVA 1 kb\r\ny\r\nMN\r\n", 4);
        let mut run = |keys| ready(p.pair(keys)).unwrap();
        assert_eq!(run(["g", "a"]), [None, None]);
        assert_eq!(run(["a", "b"]), [None, Some(b"y".to_vec())]);
        assert_eq!(
            p.stream.sent,
            b"mg g v k q\r\nmg a v k q\r\nmn\r\nmg a v k q\r\nmg b v k q\r\nmn\r\n"
        );
    }
}

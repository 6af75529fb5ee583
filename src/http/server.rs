//! The server: an accept loop and one task per connection, each running
//! the connection's rules: read until a request is framed, answer it,
//! decide whether the connection lives on, repeat.
//!
//! A connection is in one of three states, and the deadline it runs under
//! depends on which:
//!
//! | state | waiting for | deadline | when it passes |
//! |---|---|---|---|
//! | idle (between requests, nothing buffered) | the next request's first byte | [`Limits::keep_alive_timeout`] | the server closes quietly: its end gets TIME_WAIT |
//! | reading (some of a request buffered, or a new connection) | the rest of the head and body | [`Limits::request_timeout`] from the first byte (or from accept) | `408`, close |
//! | flushing (responses encoded, not all sent) | room in the send buffer | [`Limits::write_timeout`] | close |
//!
//! The request handler never sees these states: it gets a whole
//! [`Request`] and returns a whole [`Response`]. Keeping the connection's
//! read/write state apart from the handler is hyper's `proto/h1` design
//! (its `Conn` and `Dispatcher`), done here in one file.
//!
//! # Pipelining and backpressure
//!
//! Requests are answered one at a time, in order. When a client pipelines
//! (sends request 2 before response 1 arrives), request 2 is already in
//! the buffer when request 1 is answered: it is framed and answered too,
//! and the responses go out together in one `write` once no complete
//! request is left (or [`Limits::max_unsent_bytes`] is reached). The
//! server reads nothing while a flush is pending, so a client that sends
//! and never reads ends up with the kernel's send and receive buffers full,
//! one batch of responses in user space, and then a closed connection at
//! the write timeout. Its memory is bounded; nobody else waits for it.
//!
//! # Memory per idle connection
//!
//! An idle connection owns no buffer: reads go into the reactor thread's
//! scratch buffer ([`reactor::with_scratch`], 64 KiB, one per thread: the
//! reactor is single-threaded, so one is enough), and only bytes of an
//! unfinished request are copied into the connection's own `Vec`, which is
//! released when a request has been taken out of it and nothing is left;
//! the same for encoded responses the kernel has not taken yet. The
//! alternative, a buffer per connection allocated at accept, costs its
//! full size for every idle connection.
//!
//! The connection's task is as large as its largest state, and every open
//! connection pays that size. So the states an idle connection never
//! reaches are boxed while they last: the handler's future (whose size
//! is the application's: a pool wait, a query, JSON) is allocated per
//! request instead of reserved in every task; that is one allocation next
//! to a request's several, and it keeps an idle connection's task to a few
//! hundred bytes ([`ServerStats::task_bytes`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::limits::Limits;
use super::request::{parse_head, Head, Refusal, Version};
use super::response::{encode, Framing, Response, Status, Timing};
use crate::net::{TcpListener, TcpStream};
use crate::reactor;

/// The connection a request came on, as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// Numbered from 1 in accept order.
    pub id: u64,
    /// The socket's fd (for `getsockopt(TCP_INFO)` and `/proc`).
    pub fd: RawFd,
    /// The client's end of the 4-tuple.
    pub peer: SocketAddr,
    /// Our end of the 4-tuple.
    pub local: SocketAddr,
    /// When `accept4` returned it.
    pub accepted_at: Instant,
    /// Requests answered on it before this one (0: a new connection).
    pub served_before: u64,
}

/// How one request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When its first byte was in the buffer (or, for a new connection
    /// whose first read had it, when that read returned).
    pub first_byte: Instant,
    /// First byte until the last byte was in (the final parse excluded):
    /// the client's sending, the network, and our `read` calls.
    pub read: Duration,
    /// The successful `read` calls while it was incomplete.
    pub read_calls: u32,
    /// Head plus body, in bytes.
    pub bytes: usize,
    /// Time spent framing (the last parse, the one that succeeded).
    pub parse: Duration,
}

/// A whole request, as the handler gets it.
#[derive(Debug)]
pub struct Request {
    /// Method, target, version, headers, framing.
    pub head: Head,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
    /// The connection it came on.
    pub conn: ConnInfo,
    /// How it arrived.
    pub arrival: Arrival,
}

/// One request and its response, after the response was written: what
/// [`Server::on_exchange`] hooks are given.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The connection.
    pub conn: ConnInfo,
    /// `GET`, ...
    pub method: String,
    /// `/api/users/42`
    pub target: String,
    /// The status sent.
    pub status: Status,
    /// How the request arrived.
    pub arrival: Arrival,
    /// Time in the handler.
    pub app: Duration,
    /// Bytes of this response (head + body).
    pub response_bytes: usize,
    /// `write` calls of the flush that sent it (shared by a pipelined batch).
    pub write_calls: u32,
    /// How long that flush took.
    pub write: Duration,
    /// Was the connection closed after it?
    pub closed: bool,
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections over [`Limits::max_connections`], answered 503 and
    /// closed, plus those the listener shed for lack of fds (EMFILE).
    pub shed: u64,
    /// Connections open now.
    pub open: u64,
    /// Requests answered by the handler.
    pub requests: u64,
    /// Requests refused by framing (400, 411, 413, 431, 501, 505).
    pub refused: u64,
    /// Requests that did not arrive within [`Limits::request_timeout`] (408).
    pub request_timeouts: u64,
    /// Idle connections the server closed at [`Limits::keep_alive_timeout`].
    pub idle_closed: u64,
    /// Connections closed because their client did not read within
    /// [`Limits::write_timeout`].
    pub write_timeouts: u64,
    /// Connections that ended in an I/O error (a reset, mostly).
    pub io_errors: u64,
    /// `size_of_val` of one connection's task (the future spawned for it,
    /// which the reactor boxes): what every open connection holds, idle
    /// or not, besides its socket's records. 0 before the first accept.
    pub task_bytes: usize,
}

#[derive(Default)]
struct Counters {
    accepted: Cell<u64>,
    shed: Cell<u64>,
    open: Cell<u64>,
    requests: Cell<u64>,
    refused: Cell<u64>,
    request_timeouts: Cell<u64>,
    idle_closed: Cell<u64>,
    write_timeouts: Cell<u64>,
    io_errors: Cell<u64>,
    task_bytes: Cell<usize>,
}

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

/// A live view of a server's [`ServerStats`], usable while it runs.
#[derive(Clone)]
pub struct StatsHandle {
    counters: Rc<Counters>,
    listener_shed: Rc<Cell<u64>>,
}

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> ServerStats {
        let c = &self.counters;
        ServerStats {
            accepted: c.accepted.get(),
            shed: c.shed.get() + self.listener_shed.get(),
            open: c.open.get(),
            requests: c.requests.get(),
            refused: c.refused.get(),
            request_timeouts: c.request_timeouts.get(),
            idle_closed: c.idle_closed.get(),
            write_timeouts: c.write_timeouts.get(),
            io_errors: c.io_errors.get(),
            task_bytes: c.task_bytes.get(),
        }
    }
}

impl fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

type ExchangeHook = Box<dyn Fn(&Exchange)>;

/// An HTTP/1.1 server on a listener; see the module docs for the rules.
///
/// ```no_run
/// use connlab::http::{Limits, Response, Server, Status};
/// use connlab::net::TcpListener;
/// use connlab::poller::Backend;
/// use connlab::reactor;
///
/// reactor::block_on(Backend::Epoll, async {
///     let listener = TcpListener::bind("127.0.0.1:8080".parse().unwrap(), 1024)?;
///     let server = Server::new(listener, Limits::default());
///     let stop = async { reactor::Signals::new(&[libc::SIGINT])?.recv().await.map(drop) };
///     server
///         .serve(|_req| async { Response::text(Status::OK, "hello\n") }, async { let _ = stop.await; })
///         .await
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    listener: TcpListener,
    limits: Limits,
    counters: Rc<Counters>,
    listener_shed: Rc<Cell<u64>>,
    on_exchange: Option<ExchangeHook>,
}

impl Server {
    /// A server that will accept on `listener` under `limits`.
    pub fn new(listener: TcpListener, limits: Limits) -> Server {
        Server {
            listener,
            limits,
            counters: Rc::default(),
            listener_shed: Rc::default(),
            on_exchange: None,
        }
    }

    /// Call `hook` after each response has been written (the click example
    /// prints each click's path from it).
    pub fn on_exchange(mut self, hook: impl Fn(&Exchange) + 'static) -> Server {
        self.on_exchange = Some(Box::new(hook));
        self
    }

    /// Counters that stay readable while [`Server::serve`] runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle {
            counters: self.counters.clone(),
            listener_shed: self.listener_shed.clone(),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `stop` completes; then stop accepting, close idle
    /// connections, let requests in flight finish (up to
    /// [`Limits::shutdown_grace`]), and return the final counters.
    pub async fn serve<H, F>(self, handler: H, stop: impl Future<Output = ()>) -> io::Result<ServerStats>
    where
        H: Fn(Request) -> F + 'static,
        F: Future<Output = Response> + 'static,
    {
        let stats = self.stats();
        let shared = Rc::new(Shared {
            handler,
            limits: self.limits,
            counters: self.counters,
            on_exchange: self.on_exchange,
            shutdown: Cell::new(false),
            idle_wakers: RefCell::new(HashMap::new()),
            drained: RefCell::new(None),
        });
        let listener = self.listener;
        let mut stop = pin!(stop);
        let mut next_id = 0u64;
        loop {
            let next = poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                listener.poll_accept(cx).map(Some)
            })
            .await;
            let Some(accepted) = next else { break };
            let (stream, peer) = accepted?;
            self.listener_shed.set(listener.shed_count());
            if shared.counters.open.get() >= shared.limits.max_connections as u64 {
                shed(&stream, &shared.counters);
                continue;
            }
            next_id += 1;
            if let Some(mut conn) = Connection::new(stream, peer, next_id, shared.clone()) {
                // The connection is captured once and only borrowed inside:
                // an `async fn run(self)` would keep it twice in the task
                // (the argument, and the local its body moves it into).
                let task = async move { conn.serve().await };
                shared.counters.task_bytes.set(std::mem::size_of_val(&task));
                reactor::spawn(task);
            }
        }
        drop(listener);
        shared.begin_shutdown();
        let mut grace = pin!(reactor::sleep(shared.limits.shutdown_grace));
        poll_fn(|cx| {
            if shared.counters.open.get() == 0 {
                return Poll::Ready(());
            }
            *shared.drained.borrow_mut() = Some(cx.waker().clone());
            grace.as_mut().poll(cx)
        })
        .await;
        Ok(stats.get())
    }
}

/// Over the connection cap: one non-blocking attempt at a 503, then close.
/// The attempt cannot block the accept loop (a full send buffer on a new
/// connection is impossible, and an error is simply dropped with it).
fn shed(stream: &TcpStream, counters: &Counters) {
    bump(&counters.shed);
    const BUSY: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n";
    // Best effort by design: the connection is being closed either way.
    let _ = crate::sys::socket::write(stream.as_raw_fd(), BUSY);
    crate::narrate!("http: shed a connection over the cap of open connections");
}

struct Shared<H> {
    handler: H,
    limits: Limits,
    counters: Rc<Counters>,
    on_exchange: Option<ExchangeHook>,
    shutdown: Cell<bool>,
    /// Wakers of connections waiting idle, so shutdown can close them.
    idle_wakers: RefCell<HashMap<u64, Waker>>,
    /// The shutdown wait, woken when the last connection ends.
    drained: RefCell<Option<Waker>>,
}

impl<H> Shared<H> {
    fn begin_shutdown(&self) {
        self.shutdown.set(true);
        let wakers: Vec<Waker> = self.idle_wakers.borrow_mut().drain().map(|(_, w)| w).collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// What waiting for the next request produced.
enum Next {
    Request(Head, Vec<u8>, Arrival),
    Refuse(Refusal),
    /// EOF between requests, the idle timeout, or shutdown: close quietly.
    Done,
}

enum Read {
    Data,
    Eof,
    TimedOut,
    Shutdown,
}

struct Connection<H> {
    stream: TcpStream,
    info: ConnInfo,
    shared: Rc<Shared<H>>,
    /// Bytes of requests not yet taken; empty (no allocation) when idle.
    buf: Vec<u8>,
    /// Encoded responses not yet written.
    out: Vec<u8>,
    /// Exchanges in `out`, reported once it is written.
    pending: Vec<Exchange>,
}

impl<H, F> Connection<H>
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    fn new(stream: TcpStream, peer: SocketAddr, id: u64, shared: Rc<Shared<H>>) -> Option<Connection<H>> {
        // Each response is one write and the client waits for it: Nagle's
        // algorithm would only delay a pipelined batch's second segment.
        // Only latency is at stake if it fails, so the connection goes on.
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => {
                crate::narrate!("http: getsockname on a new connection from {peer}: {e}");
                return None;
            }
        };
        bump(&shared.counters.accepted);
        bump_open(&shared.counters, 1);
        let info = ConnInfo {
            id,
            fd: stream.as_raw_fd(),
            peer,
            local,
            accepted_at: Instant::now(),
            served_before: 0,
        };
        Some(Connection {
            stream,
            info,
            shared,
            buf: Vec::new(),
            out: Vec::new(),
            pending: Vec::new(),
        })
    }

    async fn serve(&mut self) {
        crate::narrate!(
            "http: connection {} from {} (fd {})",
            self.info.id,
            self.info.peer,
            self.info.fd
        );
        if let Err(e) = self.serve_requests().await {
            if e.kind() == io::ErrorKind::TimedOut {
                bump(&self.shared.counters.write_timeouts);
            } else {
                bump(&self.shared.counters.io_errors);
            }
            crate::narrate!("http: connection {} from {} ended: {e}", self.info.id, self.info.peer);
        }
    }

    async fn serve_requests(&mut self) -> io::Result<()> {
        // ANCHOR: serve_requests
        loop {
            // The request is moved into a boxed `answer` before any await,
            // so no copy of it stays in this task while the handler runs.
            let closing = {
                let answering = match self.next_request().await? {
                    // Boxed: inline, the handler's future (its size is the
                    // application's: a pool wait, a query, JSON) would make
                    // every connection's task as large as it, idle or not
                    // (module docs, "Memory per idle connection").
                    Next::Request(head, body, arrival) => Some(Box::pin(self.answer(head, body, arrival))),
                    Next::Refuse(refusal) => {
                        self.refuse(refusal);
                        None
                    }
                    Next::Done => None,
                };
                match answering {
                    Some(answer) => answer.await,
                    None => true,
                }
            };
            if closing {
                return self.flush().await;
            }
            if self.out.len() >= self.shared.limits.max_unsent_bytes {
                self.flush().await?;
            }
        }
        // ANCHOR_END: serve_requests
    }

    /// Encode the answer to a request framing refused.
    fn refuse(&mut self, refusal: Refusal) {
        crate::narrate!("http: connection {}: refused, {refusal}", self.info.id);
        let response = Response::text(refusal.status, format!("{}\n", refusal.reason));
        self.push_response(&response, Version::Http11, true, false, &[], None);
    }

    /// Run the handler on one request and encode its response into `out`;
    /// whether the connection closes after it. Nothing of the request is
    /// left once this returns, so none of it is kept while the task waits
    /// on a flush or on the next request.
    async fn answer(&mut self, head: Head, body: Vec<u8>, arrival: Arrival) -> bool {
        let (version, head_only) = (head.version, head.method == "HEAD");
        let label = self
            .shared
            .on_exchange
            .is_some()
            .then(|| (head.method.clone(), head.target.clone()));
        let client_keeps = head.keep_alive;
        let request = Request {
            head,
            body,
            conn: self.info,
            arrival,
        };
        let started = Instant::now();
        let response = (self.shared.handler)(request).await;
        let app = started.elapsed();
        bump(&self.shared.counters.requests);
        let closing = !client_keeps || response.close || self.shared.shutdown.get();
        let server_timings = [
            timing("read", arrival.read),
            timing("parse", arrival.parse),
            timing("app", app),
        ];
        let exchange = label.map(|(method, target)| (method, target, arrival, app));
        self.push_response(&response, version, closing, head_only, &server_timings, exchange);
        self.info.served_before += 1;
        closing
    }

    fn push_response(
        &mut self,
        response: &Response,
        version: Version,
        closing: bool,
        head_only: bool,
        server_timings: &[Timing],
        exchange: Option<(String, String, Arrival, Duration)>,
    ) {
        let before = self.out.len();
        let framing = Framing {
            version,
            closing,
            head_only,
            server_timings,
        };
        encode(response, &framing, &mut self.out);
        if let Some((method, target, arrival, app)) = exchange {
            self.pending.push(Exchange {
                conn: self.info,
                method,
                target,
                status: response.status,
                arrival,
                app,
                response_bytes: self.out.len() - before,
                write_calls: 0,
                write: Duration::ZERO,
                closed: closing,
            });
        }
    }

    /// Frame the next request, reading as needed; flush pending responses
    /// before any read, so a pipelined batch never waits on the client.
    async fn next_request(&mut self) -> io::Result<Next> {
        // ANCHOR: next_request
        let waiting_since = Instant::now();
        let mut first_byte = (!self.buf.is_empty()).then_some(waiting_since);
        let mut read_calls = 0;
        loop {
            if !self.buf.is_empty() {
                let parse_started = Instant::now();
                match parse_head(&self.buf, &self.shared.limits) {
                    Err(refusal) => {
                        bump(&self.shared.counters.refused);
                        return Ok(Next::Refuse(refusal));
                    }
                    Ok(Some((head, head_len))) if self.buf.len() - head_len >= head.content_length => {
                        let parse = parse_started.elapsed();
                        let end = head_len + head.content_length;
                        let body = self.buf[head_len..end].to_vec();
                        self.take(end);
                        let first = first_byte.unwrap_or(waiting_since);
                        let arrival = Arrival {
                            first_byte: first,
                            read: parse_started.saturating_duration_since(first),
                            read_calls,
                            bytes: end,
                            parse,
                        };
                        return Ok(Next::Request(head, body, arrival));
                    }
                    Ok(_) => {} // the head or the body is still on its way
                }
            }
            if !self.out.is_empty() {
                self.flush().await?;
            }
            let idle = first_byte.is_none() && self.info.served_before > 0;
            let deadline = if idle {
                waiting_since + self.shared.limits.keep_alive_timeout
            } else {
                first_byte.unwrap_or(self.info.accepted_at) + self.shared.limits.request_timeout
            };
            match self.read_more(deadline).await? {
                Read::Data => {
                    read_calls += 1;
                    first_byte.get_or_insert_with(Instant::now);
                }
                Read::Eof => return Ok(Next::Done),
                Read::Shutdown => return Ok(Next::Done),
                Read::TimedOut if idle => {
                    bump(&self.shared.counters.idle_closed);
                    crate::narrate!(
                        "http: connection {} idle for {:?}, closing",
                        self.info.id,
                        self.shared.limits.keep_alive_timeout
                    );
                    return Ok(Next::Done);
                }
                Read::TimedOut => {
                    bump(&self.shared.counters.request_timeouts);
                    return Ok(Next::Refuse(Refusal {
                        status: Status::REQUEST_TIMEOUT,
                        reason: format!(
                            "the request did not arrive within {:?}",
                            self.shared.limits.request_timeout
                        ),
                    }));
                }
            }
        }
        // ANCHOR_END: next_request
    }

    /// Drop the first `n` bytes; give the allocation back when nothing is left.
    fn take(&mut self, n: usize) {
        if n >= self.buf.len() {
            self.buf = Vec::new();
        } else {
            self.buf.drain(..n);
        }
    }

    /// One `read` into the thread's scratch buffer, racing `deadline` and,
    /// while nothing is buffered, the server's shutdown.
    async fn read_more(&mut self, deadline: Instant) -> io::Result<Read> {
        let limits = &self.shared.limits;
        // Never buffer past what one request may be: the parser refuses a
        // request before the buffer could reach this.
        let room = (limits.max_head_bytes + limits.max_body_bytes)
            .saturating_sub(self.buf.len())
            .max(1);
        let watch_shutdown = self.buf.is_empty();
        let (shared, id, stream, buf) = (&self.shared, self.info.id, &self.stream, &mut self.buf);
        let mut sleep = pin!(reactor::sleep_until(deadline));
        poll_fn(|cx| {
            if watch_shutdown {
                if shared.shutdown.get() {
                    return Poll::Ready(Ok(Read::Shutdown));
                }
                shared.idle_wakers.borrow_mut().insert(id, cx.waker().clone());
            }
            let read = reactor::with_scratch(|scratch| {
                let want = room.min(scratch.len());
                match stream.poll_read(cx, &mut scratch[..want]) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Ok(Read::Eof)),
                    Poll::Ready(Ok(n)) => {
                        buf.extend_from_slice(&scratch[..n]);
                        Poll::Ready(Ok(Read::Data))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            });
            if read.is_ready() {
                return read;
            }
            sleep.as_mut().poll(cx).map(|()| Ok(Read::TimedOut))
        })
        .await
    }

    /// Write everything in `out`, within the write timeout; then report the
    /// exchanges it carried and free the buffer.
    async fn flush(&mut self) -> io::Result<()> {
        // ANCHOR: flush
        let started = Instant::now();
        let mut sleep = pin!(reactor::sleep(self.shared.limits.write_timeout));
        let (mut written, mut calls) = (0, 0u32);
        while written < self.out.len() {
            let rest = &self.out[written..];
            let stream = &self.stream;
            let n = poll_fn(|cx| match stream.poll_write(cx, rest) {
                Poll::Ready(result) => Poll::Ready(Some(result)),
                Poll::Pending => sleep.as_mut().poll(cx).map(|()| None),
            })
            .await;
            match n {
                Some(Ok(0)) => return Err(io::Error::new(io::ErrorKind::WriteZero, "send accepted 0 bytes")),
                Some(Ok(n)) => (written, calls) = (written + n, calls + 1),
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "fd {}: client read nothing for {:?}, {} response bytes unsent",
                            self.info.fd,
                            self.shared.limits.write_timeout,
                            self.out.len() - written
                        ),
                    ))
                }
            }
        }
        self.out = Vec::new();
        // ANCHOR_END: flush
        let write = started.elapsed();
        for mut exchange in self.pending.drain(..) {
            exchange.write_calls = calls;
            exchange.write = write;
            if let Some(hook) = &self.shared.on_exchange {
                hook(&exchange);
            }
        }
        Ok(())
    }
}

impl<H> Drop for Connection<H> {
    fn drop(&mut self) {
        self.shared.idle_wakers.borrow_mut().remove(&self.info.id);
        bump_open(&self.shared.counters, -1);
        if self.shared.counters.open.get() == 0 {
            if let Some(waker) = self.shared.drained.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

fn bump_open(counters: &Counters, by: i64) {
    counters.open.set(counters.open.get().saturating_add_signed(by));
}

fn timing(name: &'static str, duration: Duration) -> Timing {
    Timing {
        name,
        duration,
        description: None,
    }
}

//! `testbed::backend`: connlab's own servers as backends that a test can
//! start and kill, each on its own thread with its own reactor, and the
//! client side a balancer's tests need.
//!
//! A load balancer needs backends, and the point of putting connlab's
//! servers behind HAProxy is that they are connlab's: the echo server
//! (`net::echo::serve`, the `echo_server` example's code) for TCP mode, the
//! HTTP/1.1 server (`http::Server`) for HTTP mode. [`Backend::kill`] is a
//! crash as the balancer sees it: the listening socket closes (new
//! connections get `ECONNREFUSED`) and every open connection closes with
//! it, because ending `block_on` drops the reactor's tasks and their
//! sockets.
//!
//! The HTTP backend answers every request with one line naming itself,
//! the connection (numbered in accept order) and how many requests that
//! connection carried before: the backend's own view of whether the
//! balancer reused a connection.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::http::{Limits, Response, Server, Status};
use crate::net::echo::{self, EchoOptions};
use crate::net::TcpListener;
use crate::poller::Backend as Poller;
use crate::reactor;

/// How often the server's thread looks at its stop flag. A cross-thread
/// waker (an eventfd the killer writes) would answer at once; a 5 ms poll
/// is simpler and bounds how long a kill takes.
const STOP_POLL: Duration = Duration::from_millis(5);

/// The `listen(2)` backlog: enough for a burst of health checks and clients.
const BACKLOG: i32 = 1024;

/// Which of connlab's servers a [`Backend`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `net::echo::serve`: bytes back, for TCP mode.
    Echo,
    /// `http::Server`, answering with its name, for HTTP mode.
    Http {
        /// Put in every response body (`b0`).
        name: String,
    },
}

/// One of connlab's servers on 127.0.0.1, on a port the kernel chose.
pub struct Backend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Backend {
    /// An echo server on a new thread.
    pub fn echo() -> io::Result<Backend> {
        Backend::start(Kind::Echo)
    }

    /// An HTTP server named `name` on a new thread.
    pub fn http(name: &str) -> io::Result<Backend> {
        Backend::start(Kind::Http { name: name.to_string() })
    }

    /// Bind `127.0.0.1:0` and serve `kind` on a new thread.
    pub fn start(kind: Kind) -> io::Result<Backend> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tell_addr, addr) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("testbed-backend".into())
            .spawn(move || serve_until(kind, flag, tell_addr))?;
        match addr.recv() {
            Ok(Ok(addr)) => Ok(Backend {
                addr,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the backend's thread ended before binding")),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Crash it: close the listener and every connection.
    pub fn kill(mut self) -> io::Result<()> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("the backend's thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Ignored: nobody is left to tell.
        let _ = self.stop_thread();
    }
}

fn serve_until(kind: Kind, stop: Arc<AtomicBool>, tell_addr: mpsc::Sender<io::Result<SocketAddr>>) -> io::Result<()> {
    reactor::block_on(Poller::Epoll, async move {
        let bound = TcpListener::bind((Ipv4Addr::LOCALHOST, 0).into(), BACKLOG)
            .and_then(|listener| Ok((listener.local_addr()?, listener)));
        let listener = match bound {
            Ok((addr, listener)) => {
                // Ignored: the starter only drops the receiver after it got this.
                let _ = tell_addr.send(Ok(addr));
                listener
            }
            Err(e) => {
                let kind = e.kind();
                let _ = tell_addr.send(Err(e));
                return Err(io::Error::new(kind, "binding the backend"));
            }
        };
        let stopped = async {
            while !stop.load(Ordering::Acquire) {
                reactor::sleep(STOP_POLL).await;
            }
        };
        match kind {
            Kind::Echo => echo::serve(listener, EchoOptions::default(), stopped).await.map(drop),
            Kind::Http { name } => {
                let handler = move |request: crate::http::Request| {
                    let body = format!(
                        "{name} connection {} request {}\n",
                        request.conn.id,
                        request.conn.served_before + 1
                    );
                    async move { Response::text(Status(200), body) }
                };
                Server::new(listener, Limits::default())
                    .serve(handler, stopped)
                    .await
                    .map(drop)
            }
        }
    })?
}

/// How long a client waits for its echo before calling the request failed.
pub const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(3);

/// One request as a balancer's client makes it: connect to `addr`, send
/// `ping`, read the echo, close. Blocking std sockets on purpose: this is
/// the client's side, not the thing being taught. How long it took.
pub fn round_trip(addr: SocketAddr) -> io::Result<Duration> {
    let started = std::time::Instant::now();
    drop(connect_and_ping(addr)?);
    Ok(started.elapsed())
}

/// Connect, send `ping`, read the echo; the open connection.
fn connect_and_ping(addr: SocketAddr) -> io::Result<std::net::TcpStream> {
    let mut conn = std::net::TcpStream::connect_timeout(&addr, ROUND_TRIP_TIMEOUT)?;
    conn.set_read_timeout(Some(ROUND_TRIP_TIMEOUT))?;
    conn.write_all(PING)?;
    let mut echo = [0u8; PING.len()];
    conn.read_exact(&mut echo)?;
    if echo != *PING {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the echo differs from what was sent",
        ));
    }
    Ok(conn)
}

const PING: &[u8; 4] = b"ping";

/// What a stream of [`round_trip`]s saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Requests answered.
    pub ok: u64,
    /// Requests that failed (refused, reset, closed, timed out).
    pub failed: u64,
    /// The longest a failed request took to fail.
    pub slowest_failure: Duration,
}

/// [`round_trip`]s one after another until `stop` is set (bounded by
/// `limit` in any case).
pub fn load_until(addr: SocketAddr, stop: &AtomicBool, limit: Duration) -> LoadReport {
    let started = std::time::Instant::now();
    let mut report = LoadReport::default();
    while !stop.load(Ordering::Acquire) && started.elapsed() < limit {
        let sent = std::time::Instant::now();
        match round_trip(addr) {
            Ok(_) => report.ok += 1,
            Err(_) => {
                report.failed += 1;
                report.slowest_failure = report.slowest_failure.max(sent.elapsed());
            }
        }
    }
    report
}

/// Open `n` connections through `addr` one after another, each with one
/// echo; keep every other one open (returned) and close the rest, pausing
/// `settle` after each close so the balancer has seen the FIN before its
/// next choice. Round-robin then sends every kept connection to the same
/// server; least-connections spreads them.
pub fn alternate_long_and_short(addr: SocketAddr, n: usize, settle: Duration) -> io::Result<Vec<std::net::TcpStream>> {
    let mut kept = Vec::new();
    for i in 0..n {
        let conn = connect_and_ping(addr)?;
        if i % 2 == 0 {
            kept.push(conn);
        } else {
            drop(conn);
            std::thread::sleep(settle);
        }
    }
    Ok(kept)
}

/// The most of a response [`http_get`] reads: the backends' answers are one line.
const RESPONSE_LIMIT: u64 = 64 * 1024;

/// One `GET path` over an open connection, HTTP/1.1 keep-alive; returns the
/// body. Reads the head up to its blank line and then `Content-Length`
/// bytes (the only framing connlab's server and HAProxy use here). A
/// minimal client for tests, not a general one: no chunked bodies.
pub fn http_get(conn: &mut std::net::TcpStream, path: &str) -> io::Result<String> {
    conn.set_read_timeout(Some(ROUND_TRIP_TIMEOUT))?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: connlab\r\n\r\n")?;
    let mut reader = io::BufReader::new((&*conn).take(RESPONSE_LIMIT));
    let mut length = None;
    let mut status = String::new();
    io::BufRead::read_line(&mut reader, &mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("response {:?}", status.trim_end()),
        ));
    }
    loop {
        let mut line = String::new();
        if io::BufRead::read_line(&mut reader, &mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the head ended early"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Content-Length"))?;
    let mut body = String::new();
    reader.take(length).read_to_string(&mut body)?;
    Ok(body)
}

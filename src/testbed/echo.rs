//! `testbed::echo`: connlab's own echo server as a backend that a test can
//! start and kill, each on its own thread with its own reactor.
//!
//! A load balancer needs backends, and the point of putting connlab's
//! server behind HAProxy is that it is connlab's (`net::echo::serve`, the
//! same code as the `echo_server` example). [`EchoBackend::kill`] is a
//! crash as the balancer sees it: the listening socket closes (new
//! connections get `ECONNREFUSED`) and every open connection closes with
//! it, because ending `block_on` drops the reactor's tasks and their
//! sockets.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::net::echo::{self, EchoOptions, EchoReport};
use crate::net::TcpListener;
use crate::poller::Backend;
use crate::reactor;

/// How often the server's thread looks at its stop flag. A cross-thread
/// waker (an eventfd the killer writes) would answer at once; a 5 ms poll
/// is simpler and bounds how long a kill takes.
const STOP_POLL: Duration = Duration::from_millis(5);

/// The `listen(2)` backlog: enough for a burst of health checks and clients.
const BACKLOG: i32 = 1024;

/// An echo server on 127.0.0.1, on a port the kernel chose.
pub struct EchoBackend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<EchoReport>>>,
}

impl EchoBackend {
    /// Bind `127.0.0.1:0` and serve on a new thread.
    pub fn start() -> io::Result<EchoBackend> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tell_addr, addr) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("echo-backend".into())
            .spawn(move || serve_until(flag, tell_addr))?;
        match addr.recv() {
            Ok(Ok(addr)) => Ok(EchoBackend {
                addr,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the echo backend's thread ended before binding")),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Crash it: close the listener and every connection. Returns what it
    /// served.
    pub fn kill(mut self) -> io::Result<EchoReport> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> io::Result<EchoReport> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("the echo backend's thread panicked"))?,
            None => Ok(EchoReport::default()),
        }
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        // Ignored: a report nobody asked for.
        let _ = self.stop_thread();
    }
}

fn serve_until(stop: Arc<AtomicBool>, tell_addr: mpsc::Sender<io::Result<SocketAddr>>) -> io::Result<EchoReport> {
    reactor::block_on(Backend::Epoll, async move {
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
                return Err(io::Error::new(kind, "binding the echo backend"));
            }
        };
        let stopped = async {
            while !stop.load(Ordering::Acquire) {
                reactor::sleep(STOP_POLL).await;
            }
        };
        echo::serve(listener, EchoOptions::default(), stopped).await
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

//! A LAN on loopback: a TCP proxy that holds every chunk of bytes for a
//! fixed one-way delay before passing it on, in both directions.
//!
//! Loopback's round trip is tens of microseconds, so anything the story
//! says about a 0.5 ms LAN ("pooling is 10× faster") cannot show on it. The
//! usual tool, `tc qdisc add dev lo root netem delay 0.25ms`, needs the
//! `sch_netem` kernel module, which this machine's kernel does not have; so
//! the delay is added here, in user space, on connlab's own reactor.
//!
//! ```text
//! client ──TCP──▶ DelayProxy ──TCP──▶ server
//!          each chunk read on one side is written to the other
//!          `one_way` later (0.25 ms each way = a 0.5 ms round trip)
//! ```
//!
//! How it works: for each accepted client the proxy connects upstream and
//! runs two pumps per direction on the reactor: a reader that stamps each
//! chunk with `now + one_way` and queues it, and a writer that sleeps until
//! the head's stamp and writes it. Reading never waits for the writer, so
//! bytes are delayed, not throttled: a burst keeps its shape, shifted.
//!
//! The TCP handshake is the one round trip it cannot delay: the client's
//! kernel completes it with the proxy's kernel before the proxy even calls
//! `accept`. So the proxy charges it to the client's first bytes instead:
//! they are held one extra round trip, and arrive at the server when they
//! would have on a real LAN (one and a half round trips after `connect`).
//! A client's `connect()` itself still returns in loopback time.
//!
//! What it is not: a real network. The proxy terminates TCP, so the
//! client's and the server's kernels each see a loopback peer that ACKs at
//! once: their congestion windows and RTT estimates are loopback's, and a
//! slow-start effect (Q23) will not appear through it. What it adds is
//! exactly the latency an application sees per message, which is what a
//! round-trip count is about.
//!
//! The proxy runs on its own thread with a `select` reactor. `select`'s
//! timeout is a `timeval` (microseconds); `epoll_wait` and `poll` take
//! whole milliseconds, and connlab rounds a 0.25 ms wait up to 1 ms there
//! rather than busy-loop, which would turn a 0.5 ms LAN into 2 ms.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::{TcpListener, TcpStream};
use crate::poller::Backend;
use crate::reactor;

/// Bytes read per chunk; each chunk gets its own delivery time.
const CHUNK: usize = 64 * 1024;

/// A running delay proxy. It serves until the process exits.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    one_way: Duration,
}

impl DelayProxy {
    /// Listen on `127.0.0.1:0` and forward every connection to `upstream`,
    /// delaying each direction by `one_way`.
    pub fn start(upstream: SocketAddr, one_way: Duration) -> io::Result<DelayProxy> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("delay-proxy".into()).spawn(move || {
            let served = reactor::block_on(Backend::Select, async move {
                let listener = match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), 128) {
                    Ok(l) => l,
                    Err(e) => return Err(e),
                };
                // The receiver may be gone if start() gave up; nothing to tell then.
                let _ = tx.send(listener.local_addr());
                loop {
                    let (client, _) = listener.accept().await?;
                    reactor::spawn(async move {
                        // A failed connection ends that connection only.
                        let _ = relay(client, upstream, one_way).await;
                    });
                }
            });
            match served {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => crate::narrate!("delay proxy stopped: {e}"),
            }
        })?;
        let addr = rx
            .recv()
            .map_err(|_| io::Error::other("the delay proxy's thread ended before listening"))??;
        Ok(DelayProxy { addr, one_way })
    }

    /// [`start`](Self::start) for a round trip of `rtt` (half each way) in
    /// front of `host:port`, resolved here (a name such as `localhost` too).
    pub fn for_rtt(host: &str, port: u16, rtt: Duration) -> io::Result<DelayProxy> {
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}:{port} resolves to no address")))?;
        DelayProxy::start(upstream, rtt / 2)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The delay added to each direction.
    pub fn one_way(&self) -> Duration {
        self.one_way
    }
}

/// Connect upstream and pump both directions until each has seen EOF.
async fn relay(client: TcpStream, upstream: SocketAddr, one_way: Duration) -> io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client, server) = (Rc::new(client), Rc::new(server));
    // The handshake's round trip, which the proxy's kernel answered at once,
    // is charged to the client's first bytes instead.
    let up = pump(client.clone(), server.clone(), one_way, 2 * one_way);
    let down = pump(server, client, one_way, Duration::ZERO);
    let up = reactor::spawn(up);
    down.await?;
    up.await
}

/// One direction's queue between its reader and its writer.
#[derive(Default)]
struct Line {
    /// Chunks and when each may be written; an empty chunk is EOF.
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// The writer, parked while the queue is empty.
    writer: Option<Waker>,
}

/// Copy `from` → `to`, each chunk `one_way` after it was read, the first
/// one `first_extra` later still.
async fn pump(from: Rc<TcpStream>, to: Rc<TcpStream>, one_way: Duration, first_extra: Duration) -> io::Result<()> {
    let line = Rc::new(RefCell::new(Line::default()));
    let writer = reactor::spawn(deliver(to, line.clone()));
    let mut extra = first_extra;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = from.read(&mut buf).await.unwrap_or(0);
        buf.truncate(n);
        let mut l = line.borrow_mut();
        l.queue
            .push_back((Instant::now() + one_way + std::mem::take(&mut extra), buf));
        if let Some(w) = l.writer.take() {
            w.wake();
        }
        if n == 0 {
            break;
        }
    }
    writer.await
}

/// The writer half: wait for a chunk, sleep until its time, write it.
async fn deliver(to: Rc<TcpStream>, line: Rc<RefCell<Line>>) -> io::Result<()> {
    loop {
        let (due, bytes) = poll_fn(|cx| {
            let mut l = line.borrow_mut();
            match l.queue.pop_front() {
                Some(item) => Poll::Ready(item),
                None => {
                    l.writer = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        reactor::sleep_until(due).await;
        if bytes.is_empty() {
            return to.shutdown_write();
        }
        to.write_all(&bytes).await?;
    }
}

/// A round-trip time as a command line spells it (`0.5ms`): a
/// [`Duration`] with a `FromStr` that goes through [`parse_duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtt(pub Duration);

impl std::str::FromStr for Rtt {
    type Err = String;
    fn from_str(text: &str) -> Result<Rtt, String> {
        parse_duration(text).map(Rtt)
    }
}

/// Parse a duration as the examples' `--rtt` takes it: `0.5ms`, `500us`,
/// `250µs`, `2s`. A bare number is an error: the unit is not guessed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| "expected a number and a unit, e.g. 0.5ms".to_string())?;
    let seconds = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "" => return Err("add a unit (s, ms or us)".to_string()),
        other => return Err(format!("unknown unit {other:?} (s, ms or us)")),
    };
    if !(0.0..=60.0).contains(&seconds) {
        return Err("out of range (0 to 60 s)".to_string());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("0.5ms"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0.5").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1ms").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("1e9s").is_err());
    }

    #[test]
    fn a_round_trip_through_the_proxy_takes_at_least_the_added_delay() {
        use std::io::{Read, Write};
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 4];
            while s.read_exact(&mut buf).is_ok() {
                s.write_all(&buf).unwrap();
            }
        });
        let rtt = Duration::from_millis(2);
        let proxy = DelayProxy::for_rtt("127.0.0.1", upstream.port(), rtt).unwrap();
        let mut c = std::net::TcpStream::connect(proxy.addr()).unwrap();
        c.set_nodelay(true).unwrap();
        let mut buf = [0u8; 4];
        for _ in 0..5 {
            let start = Instant::now();
            c.write_all(b"ping").unwrap();
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            assert!(start.elapsed() >= rtt, "a round trip took {:?}", start.elapsed());
        }
    }
}

//! TIME_WAIT, the ghost holding your ports (the story's Q28), counted from
//! the kernel with and without connection reuse.
//!
//! ```text
//! cargo run --example time_wait               # N = 1000
//! cargo run --example time_wait -- --n 5000
//! ```
//!
//! What you will see:
//!
//! 1. the ephemeral port range (`net.ipv4.ip_local_port_range`, 28,232 ports
//!    by default);
//! 2. N short connections to a local listener, each one request and a close
//!    by the client: the count of TIME_WAIT sockets on the listener's port,
//!    read from `/proc/net/tcp` before and after, grows by about N, and as
//!    many ephemeral ports are now taken toward that one destination;
//! 3. the same N requests over one reused connection: 0 new TIME_WAIT (one
//!    more appears when that connection finally closes);
//! 4. the story's arithmetic (100/s and 500/s, and this run's own rate)
//!    recomputed from this machine's range: rate x 60 s against the range.
//!    It is arithmetic, and it assumes the kernel never recycles a
//!    TIME_WAIT port. This kernel does, on loopback: `tcp_tw_reuse` = 2
//!    (the default) lets a new `connect()` take over a loopback TIME_WAIT
//!    4-tuple whose last timestamp is over 1 s old, so a loopback run whose
//!    rate "uses up the range" still succeeds (40,000 connections at about
//!    17k/s did). `cargo run --example kernel_lab -- ports` shows the real
//!    `EADDRNOTAVAIL` with ten ports and reuse off, then reuse on.
//!
//! Check it yourself while the sockets linger (60 s):
//! `ss -tan state time-wait | grep -c :PORT`, or `ss -s`.
//!
//! TIME_WAIT lasts 60 s on Linux, always: `TCP_TIMEWAIT_LEN` is a compile-time
//! constant. `net.ipv4.tcp_fin_timeout` is a different timer (how long an
//! orphaned socket may sit in FIN_WAIT_2) that merely defaults to 60 too.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use connlab::inspect::{self, PortBudget, TIME_WAIT_SECS};

mod common;

/// One request and one reply, four bytes each.
const REQUEST: &[u8; 4] = b"ping";
const REPLY: &[u8; 4] = b"pong";
/// How long to wait for the last closes to reach TIME_WAIT before counting.
const SETTLE: Duration = Duration::from_secs(3);

/// A listener on 127.0.0.1 whose thread answers each request with a reply
/// and closes a connection only after the client has closed it, so the
/// client is the active closer and its end is the one that enters
/// TIME_WAIT. It reports each closed connection on the channel.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// One message per connection the server has closed.
    pub closed: mpsc::Receiver<()>,
}

impl Server {
    /// Bind a free port and start the serving thread (it runs until the
    /// process exits).
    pub fn start() -> io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, closed) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4];
                while stream.read_exact(&mut request).is_ok() {
                    if stream.write_all(REPLY).is_err() {
                        break;
                    }
                }
                // The client closed (read_exact saw EOF) or broke; closing
                // now, second, sends our FIN into its FIN_WAIT_2.
                drop(stream);
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
        Ok(Server { addr, closed })
    }

    /// Wait (up to `SETTLE`) until the server has closed `n` connections.
    fn wait_closed(&self, n: usize) -> io::Result<()> {
        let deadline = Instant::now() + SETTLE;
        for _ in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            self.closed
                .recv_timeout(left)
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "server did not close its connections in time"))?;
        }
        Ok(())
    }
}

/// One request-reply exchange on `stream`.
fn round_trip(stream: &mut TcpStream) -> io::Result<()> {
    stream.write_all(REQUEST)?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply)?;
    Ok(())
}

/// TIME_WAIT sockets with the server's port at either end, from `/proc/net/tcp`.
pub fn time_wait_on(port: u16) -> io::Result<usize> {
    Ok(inspect::tcp_census(Some(port))?.time_wait())
}

/// What one experiment saw.
pub struct Outcome {
    /// TIME_WAIT on the port before.
    pub before: usize,
    /// TIME_WAIT on the port after.
    pub after: usize,
    /// The client addresses used, one per connection.
    pub client_addrs: Vec<SocketAddr>,
    /// Wall time of the requests.
    pub elapsed: Duration,
}

impl Outcome {
    /// New TIME_WAIT sockets (the count can also drop, if older ones on this
    /// port expired meanwhile; hence signed).
    pub fn new_time_wait(&self) -> i64 {
        self.after as i64 - self.before as i64
    }
}

/// N connections, one request each, closed by the client: no reuse.
pub fn short_connections(server: &Server, n: usize) -> io::Result<Outcome> {
    let before = time_wait_on(server.addr.port())?;
    let start = Instant::now();
    let mut client_addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(server.addr)?;
        stream.set_nodelay(true)?;
        client_addrs.push(stream.local_addr()?);
        round_trip(&mut stream)?;
        // Dropping the stream is close(2): we send FIN first.
    }
    let elapsed = start.elapsed();
    server.wait_closed(n)?;
    // The server's close sends its FIN; once our end has acknowledged it,
    // our end is in TIME_WAIT. Give the last few a moment (bounded).
    let deadline = Instant::now() + SETTLE;
    let mut after = time_wait_on(server.addr.port())?;
    while after < before + n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        after = time_wait_on(server.addr.port())?;
    }
    Ok(Outcome {
        before,
        after,
        client_addrs,
        elapsed,
    })
}

/// The same N requests over one connection, counted while it is still open,
/// then closed. Returns the outcome and the count after the final close.
pub fn reused_connection(server: &Server, n: usize) -> io::Result<(Outcome, usize)> {
    let before = time_wait_on(server.addr.port())?;
    let start = Instant::now();
    let mut stream = TcpStream::connect(server.addr)?;
    stream.set_nodelay(true)?;
    let client_addrs = vec![stream.local_addr()?];
    for _ in 0..n {
        round_trip(&mut stream)?;
    }
    let elapsed = start.elapsed();
    let after = time_wait_on(server.addr.port())?;
    drop(stream);
    server.wait_closed(1)?;
    let deadline = Instant::now() + SETTLE;
    let mut after_close = time_wait_on(server.addr.port())?;
    while after_close <= after && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        after_close = time_wait_on(server.addr.port())?;
    }
    Ok((
        Outcome {
            before,
            after,
            client_addrs,
            elapsed,
        },
        after_close,
    ))
}

/// The TIME_WAIT line of one experiment: how many appeared, never a
/// negative count. Fewer than expected, or fewer than before, has a cause
/// worth printing: the kernel may hand a new connection a port still in
/// TIME_WAIT (`net.ipv4.tcp_tw_reuse`), which ends that TIME_WAIT early.
fn time_wait_line(port: u16, outcome: &Outcome) -> String {
    let mut line = format!(
        "TIME_WAIT on port {port}: before {}, after {}  -> {} new",
        outcome.before,
        outcome.after,
        outcome.after.saturating_sub(outcome.before)
    );
    let gone = outcome.before.saturating_sub(outcome.after);
    if gone > 0 {
        line.push_str(&format!(
            ", and {gone} fewer: the kernel recycled a TIME_WAIT port for a new connection (tcp_tw_reuse)"
        ));
    }
    let ports: HashSet<u16> = outcome.client_addrs.iter().map(SocketAddr::port).collect();
    let reused = outcome.client_addrs.len() - ports.len();
    if reused > 0 {
        line.push_str(&format!(
            "\n   {reused} of the {} connections got a port still in TIME_WAIT from an earlier one (tcp_tw_reuse)",
            outcome.client_addrs.len()
        ));
    }
    line
}

fn run(n: usize) -> io::Result<()> {
    let range = inspect::ephemeral_port_range()?;
    println!("ephemeral ports: {range}   (net.ipv4.ip_local_port_range)");

    let server = Server::start()?;
    let port = server.addr.port();
    println!("listener:        {}", server.addr);
    println!();

    let short = short_connections(&server, n)?;
    let rate = n as f64 / short.elapsed.as_secs_f64().max(1e-9);
    println!("1) {n} short connections (connect, one request, close), {rate:.0} connections/s:");
    println!("   {}", time_wait_line(port, &short));
    println!(
        "   ephemeral ports now taken toward {}: {} of {}",
        server.addr,
        inspect::ports_in_use_toward(server.addr)?,
        range.len()
    );
    println!();

    let (reused, after_close) = reused_connection(&server, n)?;
    println!("2) {n} requests over one reused connection:");
    println!("   {}", time_wait_line(port, &reused));
    println!(
        "   (and {} once that one connection finally closes)",
        after_close.saturating_sub(reused.after)
    );
    println!();

    println!(
        "3) when would the ports run out? Arithmetic, not measured: each closed connection holds its port\n   \
         {TIME_WAIT_SECS} s, and the kernel is assumed never to recycle one (tcp_tw_reuse = 0):"
    );
    for rate in [100, 500, rate.round() as u64] {
        println!("   {}", PortBudget::new(rate, range));
    }
    println!();
    println!(
        "   TIME_WAIT is {TIME_WAIT_SECS} s, fixed (TCP_TIMEWAIT_LEN); net.ipv4.tcp_fin_timeout = {} is the",
        common::sysctl("net/ipv4/tcp_fin_timeout")
    );
    println!(
        "   FIN_WAIT_2 limit for orphans, not this. Ports are per destination: the budget is per (ip, port) you call."
    );
    println!("   This run: all {n} connections succeeded at {rate:.0}/s. When the range is used up, connect() fails");
    println!(
        "   with EADDRNOTAVAIL unless the kernel may recycle a TIME_WAIT port for a new connect() (outgoing only):"
    );
    println!(
        "   here net.ipv4.tcp_tw_reuse = {} (0 never; 1 when its last timestamp is over tcp_tw_reuse_delay = {} ms old",
        common::sysctl("net/ipv4/tcp_tw_reuse"),
        common::sysctl("net/ipv4/tcp_tw_reuse_delay")
    );
    println!("   and both ends sent TCP timestamps; 2 the same for loopback only). kernel_lab -- ports measures it.");
    println!(
        "   and at most net.ipv4.tcp_max_tw_buckets = {} TIME_WAIT sockets exist (beyond that they are dropped early).",
        common::sysctl("net/ipv4/tcp_max_tw_buckets")
    );
    println!();
    println!("Check: ss -tan state time-wait '( sport = :{port} or dport = :{port} )' | tail -n +2 | wc -l");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("time_wait.rs"));
    let n = args.value(
        "--n N",
        1000,
        "connections (and requests) per experiment, 1 or more (default 1000)",
    );
    args.check(n > 0, "--n must be at least 1");
    args.finish();
    common::exit("time_wait", run(n))
}

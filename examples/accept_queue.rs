//! `accept_queue`: what happens to connections nobody accepts. Which
//! question: Q14 and Q16, "what are the SYN and accept queues, and what
//! happens when the accept queue overflows?"
//!
//! ```text
//! cargo run --example accept_queue                      # backlog 4, 10 clients
//! cargo run --example accept_queue -- --backlog 2 --clients 6
//! ```
//!
//! The program listens with a small backlog and does not accept. It opens
//! more client connections than the queue holds (non-blocking connects, so
//! none of them waits), then shows each client socket's TCP state as the
//! kernel reports it (`TCP_INFO`), the listener's queue as `ss` would
//! (Recv-Q = waiting, Send-Q = limit), and the kernel's counters
//! `TcpExt: ListenOverflows` and `ListenDrops` from `/proc/net/netstat`
//! before and after. Expect something like:
//!
//! ```text
//! listen(fd 3, backlog 4) on 127.0.0.1:41235; not accepting
//! client  1  port 52410  ESTAB
//! ...
//! client  6  port 52450  SYN-SENT
//! listener queue: 5 waiting, limit 4
//! ListenOverflows +5, ListenDrops +5
//! drain: accept4 until EAGAIN took 5 connection(s) in one pass
//! ```
//!
//! The queue holds backlog + 1 finished handshakes (the kernel's "full"
//! test is `>`, not `>=`). The others sent a SYN that the kernel dropped,
//! so they sit in SYN-SENT; their SYN is retransmitted after 1 s, and once
//! the queue has room again they complete. The program waits for that
//! retransmission and drains a second time, so every client ends up
//! accepted. Cross-check while it runs: `ss -tan 'sport = :PORT or dport = :PORT'`.
//! The counters are machine-wide, so other traffic can add to them.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::Duration;

use connlab::inspect;
use connlab::sys::addr::{self, Addr, RawAddr};
use connlab::sys::socket;

mod common;

/// Long enough for loopback handshakes to finish (they take microseconds).
const SETTLE: Duration = Duration::from_millis(300);
/// Linux retransmits a dropped SYN after its initial RTO, 1 s (RFC 6298).
const SYN_RETRANSMIT: Duration = Duration::from_millis(1300);

fn main() -> ExitCode {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("accept_queue.rs"));
    let backlog: i32 = args.value("--backlog N", 4, "listen(2) backlog, 0 or more (default 4)");
    let clients: usize = args.value("--clients M", 10, "client connections to open (default 10)");
    // listen(2) would quietly take a negative backlog as the kernel's
    // default (somaxconn), which is not what the reader asked to see.
    args.check(backlog >= 0, format!("--backlog {backlog}: must be 0 or more"));
    args.finish();
    common::exit("accept_queue", run(backlog, clients))
}

/// `TcpExt: ListenOverflows` and `ListenDrops`, or `None` where the kernel
/// does not expose them (inside some containers).
fn listen_counters() -> Option<(i64, i64)> {
    let overflows = inspect::netstat_counter("TcpExt", "ListenOverflows").ok()?;
    let drops = inspect::netstat_counter("TcpExt", "ListenDrops").ok()?;
    Some((overflows, drops))
}

fn run(backlog: i32, clients: usize) -> std::io::Result<()> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = socket::stream_socket(libc::AF_INET)?;
    socket::bind(listener.as_raw_fd(), &RawAddr::from_socket_addr(&loopback))?;
    socket::listen(listener.as_raw_fd(), backlog)?;
    let Addr::Inet(addr) = addr::getsockname(listener.as_raw_fd())? else {
        return Err(std::io::Error::other("listener has no IP address"));
    };
    println!(
        "listen(fd {}, backlog {backlog}) on {addr}; not accepting",
        listener.as_raw_fd()
    );
    let before = listen_counters();

    let mut sockets: Vec<OwnedFd> = Vec::with_capacity(clients);
    for _ in 0..clients {
        let fd = socket::stream_socket(libc::AF_INET)?;
        // Non-blocking: EINPROGRESS now, the handshake (or not) later.
        socket::connect(fd.as_raw_fd(), &RawAddr::from_socket_addr(&addr))?;
        sockets.push(fd);
    }
    std::thread::sleep(SETTLE);
    show_clients(&sockets);
    show_queue(&listener);
    match (before, listen_counters()) {
        (Some((o1, d1)), Some((o2, d2))) => println!("ListenOverflows +{}, ListenDrops +{}", o2 - o1, d2 - d1),
        _ => println!("(ListenOverflows/ListenDrops are not readable from /proc/net/netstat here)"),
    }

    let mut accepted = drain(&listener)?;
    println!(
        "waiting {} for the dropped SYNs to be retransmitted ...",
        common::show(SYN_RETRANSMIT)
    );
    std::thread::sleep(SYN_RETRANSMIT);
    show_clients(&sockets);
    accepted.extend(drain(&listener)?);
    println!("{} of {clients} client(s) accepted in total", accepted.len());
    Ok(())
}

fn show_clients(sockets: &[OwnedFd]) {
    for (i, fd) in sockets.iter().enumerate() {
        let report = inspect::fd(fd.as_raw_fd());
        let (port, state) = match report.as_ref().ok().and_then(|r| r.socket.as_ref()) {
            Some(s) => (
                match &s.local {
                    Some(Addr::Inet(sa)) => sa.port().to_string(),
                    _ => "?".into(),
                },
                s.tcp_state.map_or("?".to_string(), |t| t.to_string()),
            ),
            None => ("?".into(), "?".into()),
        };
        println!("client {:>2}  port {port:>5}  {state}", i + 1);
    }
}

fn show_queue(listener: &OwnedFd) {
    match inspect::listen_queue(listener.as_raw_fd()) {
        Ok(q) => println!("listener queue: {} waiting, limit {}", q.pending, q.backlog),
        Err(e) => println!("listener queue: unknown ({e})"),
    }
}

/// accept4 until EAGAIN: one pass takes everything queued.
fn drain(listener: &OwnedFd) -> std::io::Result<Vec<OwnedFd>> {
    let mut taken = Vec::new();
    loop {
        match socket::accept4(listener.as_raw_fd()) {
            Ok((fd, _peer)) => taken.push(fd),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    println!(
        "drain: accept4 until EAGAIN took {} connection(s) in one pass",
        taken.len()
    );
    Ok(taken)
}

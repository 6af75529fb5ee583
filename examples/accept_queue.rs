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
//! `TcpExt: ListenOverflows`, `ListenDrops`, `SyncookiesSent` and
//! `SyncookiesRecv` from `/proc/net/netstat` before and after. Expect
//! something like:
//!
//! ```text
//! listen(fd 3, backlog 4) on 127.0.0.1:41235; not accepting
//! client  1  port 52410  ESTAB
//! ...
//! client  6  port 52450  SYN-SENT
//! listener queue: 5 waiting, limit 4
//! ListenOverflows +5, ListenDrops +5
//! drain: accept4 until EAGAIN took 5 connection(s) in one pass
//! ...
//! 7 of 10 client(s) accepted; 3 are ESTABLISHED with no socket on the
//! server: connected into the void
//! ```
//!
//! The queue holds backlog + 1 finished handshakes (the kernel's "full"
//! test is `>`, not `>=`). The others sent a SYN that the kernel dropped,
//! so they sit in SYN-SENT and resend it after 1 s. The program drains the
//! queue once and waits for those resent SYNs. They arrive together, and
//! not all of them end well: the kernel answers most with a SYN cookie
//! (its tiny SYN queue is "full"), the clients complete the handshake, and
//! the final ACKs that find the accept queue full again are dropped. Those
//! clients are ESTABLISHED; the server has no socket, no request sock,
//! nothing: the story's Q14 failure, happening for real. (They recover
//! only if they send data after the queue has room: the data segment
//! carries the same cookie. `kernel_lab -- cookies` shows both fates, the
//! counters and what `tcp_abort_on_overflow` changes, in a private
//! network namespace.) Cross-check while it runs:
//! `ss -tan 'sport = :PORT or dport = :PORT'`. The counters are
//! machine-wide, so other traffic can add to them.

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
fn listen_counters() -> Option<[i64; 4]> {
    let get = |name| inspect::netstat_counter("TcpExt", name).ok();
    Some([
        get("ListenOverflows")?,
        get("ListenDrops")?,
        get("SyncookiesSent")?,
        get("SyncookiesRecv")?,
    ])
}

fn show_counters(before: Option<[i64; 4]>) {
    match (before, listen_counters()) {
        (Some(b), Some(a)) => println!(
            "ListenOverflows +{}, ListenDrops +{}, SyncookiesSent +{}, SyncookiesRecv +{}",
            a[0] - b[0],
            a[1] - b[1],
            a[2] - b[2],
            a[3] - b[3]
        ),
        _ => println!("(the TcpExt counters are not readable from /proc/net/netstat here)"),
    }
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
    show_counters(before);

    let mut accepted = drain(&listener)?;
    println!(
        "waiting {} for the dropped SYNs to be retransmitted ...",
        common::show(SYN_RETRANSMIT)
    );
    std::thread::sleep(SYN_RETRANSMIT);
    show_clients(&sockets);
    accepted.extend(drain(&listener)?);
    show_counters(before);
    let established = sockets
        .iter()
        .filter(|fd| {
            let state = inspect::fd(fd.as_raw_fd())
                .ok()
                .and_then(|r| r.socket.and_then(|s| s.tcp_state));
            state == Some(inspect::TcpState::Established)
        })
        .count();
    let void = established.saturating_sub(accepted.len());
    println!("{} of {clients} client(s) accepted in total", accepted.len());
    if void > 0 {
        println!(
            "{void} client(s) are ESTABLISHED with no socket on the server: connected into the void\n\
             (SYN cookie handshakes whose final ACK was dropped on the full accept queue)"
        );
    }
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

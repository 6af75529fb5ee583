//! What happens to clients the accept queue has no room for? Measured in a
//! private namespace with the kernel's default SYN cookies on.
//!
//! The listener has a small backlog and does not call `accept()`. More
//! clients connect than the queue holds. There are two places where the
//! kernel drops a packet of theirs (`net/ipv4/tcp_input.c`,
//! `tcp_conn_request`, and `tcp_ipv4.c`, `tcp_v4_syn_recv_sock`):
//!
//! 1. **The SYN**, when the accept queue is already full. The client stays
//!    in SYN-SENT and resends it (1 s, 2 s, ...). Counted in `ListenOverflows`
//!    and `ListenDrops`.
//! 2. **The final ACK**, when the queue was not full as the SYN arrived but
//!    is full by the time the ACK does. The client is ESTABLISHED (it sent
//!    its ACK), the server has no socket for it. Counted in `ListenOverflows`.
//!
//! Which one a client meets depends on timing: the queue changes between
//! its SYN and its ACK. When the SYN queue is "full" as a retransmitted SYN
//! arrives (on a listener this small that means any handshake in flight),
//! the kernel answers with a **SYN cookie** (`SyncookiesSent`): it encodes
//! the connection in the SYN-ACK's sequence number and keeps *no* state at
//! all. A cookie client whose ACK is then dropped at point 2 is connected
//! into the void: ESTABLISHED on its side, nothing on the server's, and no
//! SYN-ACK retransmission will come, since no request sock remembers it.
//!
//! What saves it is the client's own data: every data segment carries the
//! same acknowledgement number, so when the client sends and retransmits
//! (its RTO, 200 ms and doubling), the kernel checks the cookie again
//! (`SyncookiesRecv`) and, if the queue has room by then, creates the
//! connection from it. If the server never makes room, the client
//! retransmits until `tcp_retries2` gives up and its read or write fails
//! with `ETIMEDOUT`, which is the story's Q14 failure.
//!
//! `tcp_abort_on_overflow = 1` changes point 2 only: the server answers
//! the ACK with a RST instead of ignoring it, so the client learns at once
//! (`ECONNRESET`) rather than by timeout.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{accept_all, listener, local_addr, start_connect, tcp_ext, tcp_rows};
use crate::inspect::TcpState;
use crate::sys::{self, netns, socket};

/// The `TcpExt` counters this experiment reads (`/proc/net/netstat`).
pub const COUNTERS: [&str; 7] = [
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDoCookies",
    "TCPReqQFullDrop",
];

/// Settings of one run.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// `listen()` backlog.
    pub backlog: i32,
    /// How many clients connect.
    pub clients: usize,
    /// `tcp_syncookies` (1 is the kernel default: cookies when the SYN queue is full).
    pub syncookies: bool,
    /// `tcp_abort_on_overflow` (0 is the kernel default).
    pub abort_on_overflow: bool,
    /// After the clients in the void send, does the server drain its queue
    /// again (it catches up) or never accept again (it is stuck)?
    pub server_catches_up: bool,
    /// `tcp_retries2` in the namespace, so a client in the void gives up in
    /// seconds rather than the default's ~15 minutes.
    pub retries2: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            backlog: 1,
            clients: 7,
            syncookies: true,
            abort_on_overflow: false,
            server_catches_up: true,
            retries2: 4,
        }
    }
}

/// Long enough for loopback handshakes to finish (they take microseconds).
pub const SETTLE: Duration = Duration::from_millis(300);
/// A little more than the first SYN retransmission (1 s after the SYN).
pub const AFTER_FIRST_RESEND: Duration = Duration::from_millis(1300);
/// How long phase 3 watches the clients in the void.
pub const WATCH: Duration = Duration::from_secs(12);

/// Where one client stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its local port.
    pub port: u16,
    /// Its own state as the kernel reports it.
    pub state: Option<TcpState>,
    /// The server side's socket for this 4-tuple: `Some(Established)` in the
    /// accept queue, `Some(SynRecv)` a request sock, `None` nothing at all.
    pub server: Option<TcpState>,
}

impl Client {
    /// ESTABLISHED on its side with no socket on the server's: in the void.
    pub fn in_void(&self) -> bool {
        self.state == Some(TcpState::Established) && self.server.is_none()
    }
}

/// One look at all clients.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every client.
    pub clients: Vec<Client>,
    /// Connections waiting in the accept queue (the listener's Recv-Q).
    pub queued: u32,
    /// Counter moves since the previous snapshot.
    pub counters: Vec<(&'static str, i64)>,
}

/// What became of a client that was in the void.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The server accepted it this long after it sent, with its bytes intact.
    Accepted(Duration, usize),
    /// Its `SO_ERROR` turned to this errno this long after it sent.
    Failed(Duration, &'static str),
    /// Neither, by the end of the watch.
    StillWaiting,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The settings.
    pub setup: Setup,
    /// Phase 1: everyone connected, nobody accepted.
    pub before_accept: Snapshot,
    /// How many connections the server's one `accept` pass took.
    pub first_drain: usize,
    /// Phase 2: after that pass and the first SYN retransmission.
    pub after_resend: Snapshot,
    /// Phase 3: each void client sent a line; what happened to it.
    pub fates: Vec<(u16, Fate)>,
    /// Counter moves over phase 3.
    pub counters_after_send: Vec<(&'static str, i64)>,
}

/// Run the experiment in the current (private) namespace.
pub fn run(setup: Setup) -> io::Result<Report> {
    netns::set_sysctl("net/ipv4/tcp_syncookies", if setup.syncookies { "1" } else { "0" })?;
    netns::set_sysctl(
        "net/ipv4/tcp_abort_on_overflow",
        if setup.abort_on_overflow { "1" } else { "0" },
    )?;
    netns::set_sysctl("net/ipv4/tcp_retries2", &setup.retries2.to_string())?;
    let mut counters = tcp_ext(&COUNTERS)?;

    let (listen_fd, addr) = listener(setup.backlog)?;
    let mut clients: Vec<(OwnedFd, u16)> = Vec::with_capacity(setup.clients);
    for _ in 0..setup.clients {
        let fd = start_connect(addr)?;
        let port = local_addr(&fd)?.port();
        clients.push((fd, port));
    }
    std::thread::sleep(SETTLE);
    let before_accept = snapshot(&clients, addr, &mut counters)?;

    let mut held: Vec<OwnedFd> = accept_all(&listen_fd)?.into_iter().map(|(fd, _)| fd).collect();
    let first_drain = held.len();
    std::thread::sleep(AFTER_FIRST_RESEND);
    let after_resend = snapshot(&clients, addr, &mut counters)?;

    let void: Vec<u16> = after_resend
        .clients
        .iter()
        .filter(|c| c.in_void())
        .map(|c| c.port)
        .collect();
    let sent = Instant::now();
    for (fd, port) in &clients {
        if void.contains(port) {
            socket::write(fd.as_raw_fd(), MESSAGE)?;
        }
    }
    let mut fates: Vec<(u16, Fate)> = void.iter().map(|&p| (p, Fate::StillWaiting)).collect();
    while sent.elapsed() < WATCH && fates.iter().any(|(_, f)| *f == Fate::StillWaiting) {
        if setup.server_catches_up {
            for (fd, peer) in accept_all(&listen_fd)? {
                let bytes = read_some(&fd);
                if let Some((_, fate)) = fates.iter_mut().find(|(p, _)| *p == peer.port()) {
                    *fate = Fate::Accepted(sent.elapsed(), bytes);
                }
                held.push(fd);
            }
        }
        for (fd, port) in &clients {
            let Some((_, fate @ Fate::StillWaiting)) = fates.iter_mut().find(|(p, _)| p == port) else {
                continue;
            };
            let err = socket::take_error(fd.as_raw_fd())?;
            if err != 0 {
                *fate = Fate::Failed(sent.elapsed(), sys::errno_name(err));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let counters_after_send = super::moved(&counters, &tcp_ext(&COUNTERS)?);
    Ok(Report {
        setup,
        before_accept,
        first_drain,
        after_resend,
        fates,
        counters_after_send,
    })
}

/// What each client in the void sends.
pub const MESSAGE: &[u8] = b"hello from the void\n";

/// The bytes already waiting on a freshly accepted socket (the client's
/// message arrives with the segment that created the connection).
fn read_some(fd: &OwnedFd) -> usize {
    let mut buf = [0u8; 64];
    socket::read(fd.as_raw_fd(), &mut buf).unwrap_or(0)
}

/// Each client's state and the server's matching socket, read from the
/// namespace's `/proc/net/tcp`, the listener's queue length, and how the
/// counters moved since `counters` (which is then updated).
fn snapshot(
    clients: &[(OwnedFd, u16)],
    server: SocketAddr,
    counters: &mut HashMap<&'static str, i64>,
) -> io::Result<Snapshot> {
    let rows = tcp_rows()?;
    let queued = rows
        .iter()
        .find(|r| r.local == server && r.state == TcpState::Listen)
        .map_or(0, |r| r.rx_queue);
    let clients = clients
        .iter()
        .map(|&(_, port)| {
            let me = SocketAddr::from(([127, 0, 0, 1], port));
            Client {
                port,
                state: rows.iter().find(|r| r.local == me).map(|r| r.state),
                server: rows
                    .iter()
                    .find(|r| r.local == server && r.remote == me)
                    .map(|r| r.state),
            }
        })
        .collect();
    let now = tcp_ext(&COUNTERS)?;
    let moves = super::moved(counters, &now);
    *counters = now;
    Ok(Snapshot {
        clients,
        queued,
        counters: moves,
    })
}

//! How long does a socket wait in FIN_WAIT_2? Measured in a private
//! namespace with `tcp_fin_timeout` lowered to a few seconds.
//!
//! FIN_WAIT_2 means "we sent our FIN, it was acknowledged, the peer has not
//! sent its own". How long the kernel lets that last depends on whether a
//! process still holds the socket (`tcp_close` → `tcp_set_state` and the
//! FIN_WAIT_2 timer in `net/ipv4/tcp.c`):
//!
//! - after `close()` the socket is an **orphan** (no fd points at it); the
//!   kernel keeps it for `tcp_fin_timeout` (60 s by default), then frees it
//!   without waiting for the peer any more;
//! - after `shutdown(SHUT_WR)` the process still holds the fd and may still
//!   read, so there is no timer: the socket stays in FIN_WAIT_2 as long as
//!   the peer keeps its side open.
//!
//! A process that crashes is the first case: the kernel closes its fds on
//! exit, sends the FIN, and its sockets become orphans. Its peer reads EOF
//! and sits in CLOSE_WAIT until it closes too; the FIN_WAIT_2 timeout
//! belongs to the side that crashed, not to its peer.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::{accept_all, listener, local_addr, start_connect, tcp_rows, wait_for};
use crate::inspect::TcpState;
use crate::sys::netns;
use crate::sys::socket::{self, Shutdown};

/// The states of the two client sockets (and their server peers) at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// Seconds since the FINs were sent.
    pub at: Duration,
    /// The client that called `close()`.
    pub orphan: Option<TcpState>,
    /// The client that called `shutdown(SHUT_WR)` and kept its fd.
    pub shut: Option<TcpState>,
    /// The server's end of the orphan's connection.
    pub orphan_peer: Option<TcpState>,
}

/// Run in the current (private) namespace with `tcp_fin_timeout` = `fin_timeout` s.
pub fn run(fin_timeout: u32) -> io::Result<Vec<Look>> {
    netns::set_sysctl("net/ipv4/tcp_fin_timeout", &fin_timeout.to_string())?;
    let (listen_fd, server) = listener(8)?;
    let orphan = start_connect(server)?;
    let shut = start_connect(server)?;
    let mut peers: Vec<OwnedFd> = Vec::new();
    wait_for(Duration::from_secs(2), Duration::from_millis(1), || {
        peers.extend(accept_all(&listen_fd)?.into_iter().map(|(fd, _)| fd));
        Ok((peers.len() == 2).then_some(()))
    })?
    .ok_or_else(|| io::Error::other("the two connections were never accepted"))?;
    let (orphan_addr, shut_addr) = (local_addr(&orphan)?, local_addr(&shut)?);

    socket::shutdown(shut.as_raw_fd(), Shutdown::Write)?;
    drop(orphan);
    let start = std::time::Instant::now();
    let mut looks = Vec::new();
    for at in [
        Duration::from_millis(200),
        Duration::from_secs(u64::from(fin_timeout) + 2),
    ] {
        std::thread::sleep(at.saturating_sub(start.elapsed()));
        let rows = tcp_rows()?;
        let state = |local: SocketAddr, remote: Option<SocketAddr>| {
            rows.iter()
                .find(|r| r.local == local && remote.map_or(true, |p| r.remote == p))
                .map(|r| r.state)
        };
        looks.push(Look {
            at: start.elapsed(),
            orphan: state(orphan_addr, None),
            shut: state(shut_addr, None),
            orphan_peer: state(server, Some(orphan_addr)),
        });
    }
    drop((shut, peers, listen_fd));
    Ok(looks)
}

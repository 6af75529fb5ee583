//! When do ephemeral ports run out? Measured in a private namespace with
//! the range narrowed to a handful of ports.
//!
//! Each connection here is opened, accepted and closed by the *client*
//! first, so the client's 4-tuple stays in TIME_WAIT for 60 s
//! (`TCP_TIMEWAIT_LEN`). Every connection goes to the same server address,
//! so a port held by a TIME_WAIT socket can only be used again if the
//! kernel agrees to recycle it (`__inet_hash_connect` → `tcp_twsk_unique`):
//!
//! - `tcp_tw_reuse = 0`: never. Once every port of the range is in
//!   TIME_WAIT, `connect()` fails with `EADDRNOTAVAIL`.
//! - `tcp_tw_reuse = 1`: a new `connect()` (outgoing connections only; a
//!   listener never needs it) may take over a TIME_WAIT 4-tuple whose last
//!   timestamp is older than `tcp_tw_reuse_delay` (1,000 ms), and only if
//!   both ends used TCP timestamps (`tcp_timestamps`, on by default): the
//!   timestamps are what keep an old duplicate from being taken for new data.
//! - `tcp_tw_reuse = 2` (the default since Linux 4.19): as 1, for loopback
//!   traffic only. So on loopback the default already recycles.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{accept_all, listener, start_connect, tcp_rows, wait_for};
use crate::inspect::TcpState;
use crate::sys::{self, netns};

/// One run's settings.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// How many ports `ip_local_port_range` leaves.
    pub ports: u16,
    /// `tcp_tw_reuse`.
    pub tw_reuse: u8,
    /// `tcp_timestamps` (1 is the default).
    pub timestamps: bool,
    /// Keep connecting for this long.
    pub duration: Duration,
}

/// First port of the narrowed range (any unprivileged value would do).
pub const FIRST_PORT: u16 = 40_000;

/// What happened.
#[derive(Debug, Clone)]
pub struct Report {
    /// The settings.
    pub setup: Setup,
    /// Connections made before the first failure.
    pub before_first_failure: usize,
    /// The first failure's errno symbol and when it happened.
    pub first_failure: Option<(&'static str, Duration)>,
    /// Connections made in all of `duration`.
    pub total_ok: usize,
    /// Failed attempts in all of `duration`.
    pub total_failed: usize,
    /// When the first connection after a failure succeeded (a recycled port).
    pub first_reuse: Option<Duration>,
    /// TIME_WAIT sockets at the end.
    pub time_wait_at_end: usize,
}

/// Run in the current (private) namespace.
pub fn run(setup: Setup) -> io::Result<Report> {
    // The listener binds first, while the range is still wide: a bind to
    // port 0 also draws from the ephemeral range and would take one of the
    // few ports the clients are meant to have.
    let (listen_fd, server) = listener(128)?;
    let last = FIRST_PORT + setup.ports.max(1) - 1;
    netns::set_sysctl("net/ipv4/ip_local_port_range", &format!("{FIRST_PORT} {last}"))?;
    netns::set_sysctl("net/ipv4/tcp_tw_reuse", &setup.tw_reuse.to_string())?;
    netns::set_sysctl("net/ipv4/tcp_timestamps", if setup.timestamps { "1" } else { "0" })?;

    let start = Instant::now();
    let mut report = Report {
        setup,
        before_first_failure: 0,
        first_failure: None,
        total_ok: 0,
        total_failed: 0,
        first_reuse: None,
        time_wait_at_end: 0,
    };
    while start.elapsed() < setup.duration {
        match one_connection(&listen_fd, server) {
            Ok(()) => {
                report.total_ok += 1;
                if report.first_failure.is_none() {
                    report.before_first_failure += 1;
                } else if report.first_reuse.is_none() {
                    report.first_reuse = Some(start.elapsed());
                }
            }
            Err(e) if sys::errno_of(&e) == Some(libc::EADDRNOTAVAIL) => {
                report.total_failed += 1;
                report
                    .first_failure
                    .get_or_insert((sys::errno_name(libc::EADDRNOTAVAIL), start.elapsed()));
                // Nothing will change for a while; do not spin.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
    report.time_wait_at_end = tcp_rows()?.iter().filter(|r| r.state == TcpState::TimeWait).count();
    Ok(report)
}

/// Connect, let the server accept, close the client first (it keeps the
/// TIME_WAIT), then the server.
fn one_connection(listen_fd: &std::os::fd::OwnedFd, server: SocketAddr) -> io::Result<()> {
    let client = start_connect(server)?;
    let accepted = wait_for(Duration::from_secs(2), Duration::from_micros(200), || {
        Ok(accept_all(listen_fd)?.pop())
    })?
    .ok_or_else(|| io::Error::other("the server never saw the connection"))?;
    drop(client);
    // Let the client's FIN arrive before the server closes, so the client
    // is the side that closed first.
    std::thread::sleep(Duration::from_micros(200));
    drop(accepted);
    Ok(())
}

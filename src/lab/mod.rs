//! `lab`: experiments that change the kernel's TCP settings, each in a
//! private network namespace of its own, so the kernel's behaviour is
//! shown rather than assumed.
//!
//! The story states what Linux does when a SYN gets no answer, when the
//! accept queue overflows, when ephemeral ports run out and when a socket
//! waits in FIN_WAIT_2. Some of those behaviours only appear with settings
//! no one should change on a shared machine (SYN cookies off, ten ephemeral
//! ports, a 3 s `tcp_fin_timeout`). Each experiment here runs on a thread
//! that first calls [`crate::sys::netns::enter_private`]:
//! a fresh TCP stack with its own sockets, sysctls and counters, gone when
//! the thread ends.
//!
//! - [`syn`]: the SYN retransmission schedule up to `ETIMEDOUT`.
//! - [`cookies`]: SYN cookies and the final ACK dropped on a full accept queue.
//! - [`ports`]: ephemeral-port exhaustion (`EADDRNOTAVAIL`) and `tcp_tw_reuse`.
//! - [`fin_wait`]: FIN_WAIT_2 for an orphaned socket vs a `shutdown()` one.
//! - [`facts`]: the numbers that need no namespace (`socket()` cost, initial
//!   window, TIME_WAIT timer, slab sizes), for `claims` and its test.
//!
//! And one experiment that needs no namespace: [`through_lan`] puts a
//! PostgreSQL client behind a delay proxy, so a loopback run shows what a
//! 0.5 ms LAN does to pooled and fresh connections.
//!
//! Creating a namespace needs root (`CAP_SYS_ADMIN`). Without it
//! [`run_private`] returns an error for which [`is_unavailable`] is true,
//! and callers say so and skip.

pub mod cookies;
pub mod facts;
pub mod fin_wait;
pub mod ports;
pub mod slow_start;
pub mod syn;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::inspect::{self, TcpRow};
use crate::net::delay::DelayProxy;
use crate::pg::config::{Config as PgConfig, Host};
use crate::sys::addr::{self, Addr, RawAddr};
use crate::sys::{self, netns, socket};

/// Run `experiment` on a new thread inside a new network namespace.
pub fn run_private<T, F>(experiment: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    std::thread::Builder::new()
        .name("netns-lab".into())
        .spawn(move || {
            netns::enter_private()?;
            experiment()
        })?
        .join()
        .map_err(|_| io::Error::other("the experiment's thread panicked"))?
}

/// True when `err` means "this process may not create a network namespace"
/// (not root, or a kernel without `CONFIG_NET_NS`), not that an experiment failed.
pub fn is_unavailable(err: &io::Error) -> bool {
    matches!(sys::errno_of(err), Some(libc::EPERM | libc::EINVAL | libc::ENOSYS))
        && err.to_string().starts_with("unshare(")
}

/// This thread's TCP table (IPv4), from `/proc/thread-self/net/tcp`.
pub fn tcp_rows() -> io::Result<Vec<TcpRow>> {
    let path = format!("{}/tcp", netns::THREAD_NET);
    let text = std::fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("read {path}: {e}")))?;
    Ok(inspect::proc_net::parse_tcp_table(&text).rows)
}

/// The named `TcpExt` counters of this thread's namespace
/// (`/proc/thread-self/net/netstat`); a counter the kernel lacks reads 0.
pub fn tcp_ext(names: &[&'static str]) -> io::Result<HashMap<&'static str, i64>> {
    let path = format!("{}/netstat", netns::THREAD_NET);
    let text = std::fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("read {path}: {e}")))?;
    let all = inspect::netstat::parse_counters(&text).rows;
    Ok(names
        .iter()
        .map(|&name| {
            let value = all
                .iter()
                .find(|c| c.group == "TcpExt" && c.name == name)
                .map_or(0, |c| c.value);
            (name, value)
        })
        .collect())
}

/// How much each counter moved between two [`tcp_ext`] snapshots.
pub fn moved(before: &HashMap<&'static str, i64>, after: &HashMap<&'static str, i64>) -> Vec<(&'static str, i64)> {
    let mut out: Vec<_> = after
        .iter()
        .map(|(&k, &v)| (k, v - before.get(k).copied().unwrap_or(0)))
        .collect();
    out.sort();
    out
}

/// A non-blocking listener on `127.0.0.1`, an ephemeral port, `backlog`.
pub fn listener(backlog: i32) -> io::Result<(OwnedFd, SocketAddr)> {
    let fd = socket::stream_socket(libc::AF_INET)?;
    socket::bind(
        fd.as_raw_fd(),
        &RawAddr::from_socket_addr(&SocketAddr::from(([127, 0, 0, 1], 0))),
    )?;
    socket::listen(fd.as_raw_fd(), backlog)?;
    let addr = local_addr(&fd)?;
    Ok((fd, addr))
}

/// A non-blocking connect to `to`: the SYN is on its way when this returns.
pub fn start_connect(to: SocketAddr) -> io::Result<OwnedFd> {
    let fd = socket::stream_socket(libc::AF_INET)?;
    socket::connect(fd.as_raw_fd(), &RawAddr::from_socket_addr(&to))?;
    Ok(fd)
}

/// The socket's own IPv4 address and port.
pub fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    match addr::getsockname(fd.as_raw_fd())? {
        Addr::Inet(sa) => Ok(sa),
        other => Err(io::Error::other(format!("not an IP socket: {other:?}"))),
    }
}

/// `accept4` until `EAGAIN`.
pub fn accept_all(listener: &OwnedFd) -> io::Result<Vec<(OwnedFd, SocketAddr)>> {
    let mut taken = Vec::new();
    loop {
        match socket::accept4(listener.as_raw_fd()) {
            Ok((fd, Addr::Inet(peer))) => taken.push((fd, peer)),
            Ok((_, other)) => return Err(io::Error::other(format!("accepted a non-IP peer {other:?}"))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(taken),
            Err(e) => return Err(e),
        }
    }
}

/// Poll `check` every `step` until it returns `Some` or `limit` passes.
pub fn wait_for<T>(
    limit: Duration,
    step: Duration,
    mut check: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let start = Instant::now();
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if start.elapsed() >= limit {
            return Ok(None);
        }
        std::thread::sleep(step);
    }
}

/// Seconds with two decimals, the unit every experiment prints.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Send a PostgreSQL client's traffic through a [`DelayProxy`] that adds
/// `rtt` to every round trip (half each way): the story's LAN, on loopback.
/// `config` is rewritten to point at the proxy; keep the proxy alive as
/// long as connections use it. A Unix-socket server has no TCP to delay.
pub fn through_lan(config: &mut PgConfig, rtt: Duration) -> io::Result<DelayProxy> {
    let Host::Tcp(host) = &config.host else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--rtt needs a TCP server; this one is a Unix socket",
        ));
    };
    let proxy = DelayProxy::for_rtt(host, config.port, rtt)?;
    config.host = Host::Tcp(proxy.addr().ip().to_string());
    config.port = proxy.addr().port();
    Ok(proxy)
}

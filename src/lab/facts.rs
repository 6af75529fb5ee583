//! The story's kernel numbers that need no namespace: read from `/proc`,
//! `TCP_INFO` and timed syscalls on the machine as it is. Used by the
//! `claims` example (which prints them beside the story's figures) and by
//! `tests/claims.rs` (which checks them against `docs/claims.md`).

use std::fs;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::inspect::{self, TcpState};
use crate::sys::{self, socket};

/// Ticks per second in `/proc/net/tcp`'s timer column (`USER_HZ`): 100 on
/// every mainstream Linux build (`sysconf(_SC_CLK_TCK)`).
pub const USER_HZ: u64 = 100;

/// Median cost of one `socket(2)` call in nanoseconds, timed in batches of
/// 500 so the clock's own cost is spread thin; the sockets are closed
/// outside the timed part.
pub fn socket_cost_ns() -> io::Result<f64> {
    const BATCH: usize = 500;
    let mut per_call = Vec::new();
    for _ in 0..20 {
        let mut fds = Vec::with_capacity(BATCH);
        let start = Instant::now();
        for _ in 0..BATCH {
            fds.push(socket::stream_socket(libc::AF_INET)?);
        }
        per_call.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        drop(fds);
    }
    per_call.sort_by(f64::total_cmp);
    Ok(per_call[per_call.len() / 2])
}

/// Close one socket's fd and open another: the fd that was freed and the
/// one the new socket got (equal: the kernel hands out the lowest free
/// slot, as POSIX requires).
pub fn lowest_free_fd() -> io::Result<(i32, i32)> {
    let first = TcpListener::bind("127.0.0.1:0")?;
    let second = TcpListener::bind("127.0.0.1:0")?;
    let freed = first.as_raw_fd();
    drop(first);
    let third = TcpListener::bind("127.0.0.1:0")?;
    let reused = third.as_raw_fd();
    drop((second, third));
    Ok((freed, reused))
}

/// What one fresh loopback connection shows.
#[derive(Debug, Clone, Copy)]
pub struct LoopbackFacts {
    /// `tcpi_snd_cwnd` before any data: the initial congestion window, segments.
    pub cwnd: u32,
    /// `tcpi_snd_mss`.
    pub mss: u32,
    /// Seconds left on the client's TIME_WAIT timer right after it closed first.
    pub time_wait_secs: Option<f64>,
}

/// Open a loopback connection, read the client's `TCP_INFO`, close the
/// client first (so the client waits in TIME_WAIT) and read that socket's
/// timer from `/proc/net/tcp`.
pub fn loopback_facts() -> io::Result<LoopbackFacts> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    let (local, remote) = (client.local_addr()?, client.peer_addr()?);
    let info = sys::info::tcp_info(client.as_raw_fd())?.raw;
    drop(client);
    let mut sink = Vec::new();
    server.read_to_end(&mut sink)?;
    drop(server);
    Ok(LoopbackFacts {
        cwnd: info.tcpi_snd_cwnd,
        mss: info.tcpi_snd_mss,
        time_wait_secs: time_wait_left(local, remote)?,
    })
}

/// The TIME_WAIT timer of the socket with exactly this 4-tuple, in seconds.
/// Both ends are matched: loopback recycles ports, so an older TIME_WAIT
/// socket may hold the same local port toward another listener.
fn time_wait_left(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<f64>> {
    Ok(inspect::tcp_table()?
        .rows
        .iter()
        .find(|r| r.local == local && r.remote == remote && r.state == TcpState::TimeWait)
        .filter(|r| r.timer.0 == inspect::proc_net::TIMER_TIME_WAIT)
        .map(|r| r.timer.1 as f64 / USER_HZ as f64))
}

/// `(cache name, object size)` for every slab cache. `/proc/slabinfo` is
/// mode 0400: only root may read it, and the error says so.
pub fn slab_sizes() -> Result<Vec<(String, u64)>, String> {
    let text =
        fs::read_to_string("/proc/slabinfo").map_err(|e| format!("/proc/slabinfo unreadable ({e}); run as root"))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("slabinfo"))
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let name = cols.next()?.to_string();
            let objsize = cols.nth(2)?.parse().ok()?;
            Some((name, objsize))
        })
        .collect())
}

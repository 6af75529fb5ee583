//! `inspect`: what is behind fd 7? From the integer to the kernel's own
//! view of the connection, each layer read with the call that shows it.
//!
//! The story (Q10, Q11) draws a connection as a stack; this module prints
//! that stack for a live fd, checkable against `ss` and `/proc`:
//!
//! ```text
//! fd table      fd 7 -> /proc/self/fd/7 -> socket:[53214]     readlink(2), fcntl(2)
//! inode         53214 (st_mode type: socket)                   fstat(2)
//! struct socket AF_INET SOCK_STREAM                            getsockopt(SO_DOMAIN, SO_TYPE)
//! local/peer    127.0.0.1:45812 -> 127.0.0.1:5432              getsockname(2), getpeername(2)
//! TCP state     ESTAB = 1 (TCP_ESTABLISHED)                    TCP_INFO and /proc/net/tcp
//! TCP_INFO      rtt, cwnd, retransmits, bytes                  getsockopt(TCP_INFO), tcp(7)
//! buffers       SO_RCVBUF, SO_SNDBUF, SIOCINQ, SIOCOUTQ        socket(7), ioctl(2)
//! ```
//!
//! Files, one view each:
//! - `fd_report.rs`: one fd, top to bottom ([`fd()`], [`FdReport`], [`listen_queue`]).
//!   The file is not called `fd.rs` so that `inspect::fd(7)`, the function
//!   a reader calls, is not shadowed by a module of the same name;
//! - `process.rs`: this process's fd table and its use of `RLIMIT_NOFILE`
//!   ([`process_fds`], [`fd_usage`]);
//! - `proc_net.rs`: the kernel's socket tables `/proc/net/tcp{,6}` and
//!   `/proc/net/unix`, and the TCP state numbers ([`TcpState`]);
//! - `census.rs`: all TCP sockets by state, the ephemeral port range and the
//!   TIME_WAIT arithmetic ([`tcp_census`], [`ephemeral_port_range`], [`PortBudget`]);
//! - `netstat.rs`: kernel counters such as `TcpExt:ListenOverflows`
//!   ([`netstat_counter`]).
//!
//! Everything read from `/proc` is treated as untrusted text: parsers return
//! what they understood plus a count of lines they skipped ([`Parsed`]), and
//! never panic.
//!
//! The syscalls themselves live in [`crate::sys::info`] and
//! [`crate::sys::addr`]; this module only reads and joins their answers.
//! A simplification: `ss` asks the kernel over a `NETLINK_INET_DIAG` socket,
//! which is faster and atomic per socket; we read the `/proc` text tables
//! instead because a reader can `cat` them and check every field.

pub mod census;
pub mod fd_report;
pub mod netstat;
pub mod proc_net;
pub mod process;

pub use census::{
    ephemeral_port_range, ports_in_use_toward, tcp_census, Census, PortBudget, PortRange, TIME_WAIT_SECS,
};
pub use fd_report::{
    fd, listen_queue, parse_fd_link, Family, FdKind, FdReport, FdTarget, ListenQueue, ProcRow, SockType, SocketReport,
};
pub use netstat::{netstat_counter, Counter};
pub use proc_net::{tcp_table, unix_table, TcpRow, TcpState, UnixRow};
pub use process::{fd_usage, open_fds, process_fds, FdUsage};

/// What a parser of kernel text understood: the rows it could read, and how
/// many lines it could not (skipped, never a panic or an error). A non-zero
/// `skipped` on a real `/proc` file means the kernel prints something this
/// code does not know yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The rows that parsed.
    pub rows: Vec<T>,
    /// Lines (or entries) that did not.
    pub skipped: usize,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Parsed {
            rows: Vec::new(),
            skipped: 0,
        }
    }
}

impl<T> Parsed<T> {
    /// Append another table's rows and skips (e.g. `tcp6` after `tcp`).
    pub fn extend(&mut self, other: Parsed<T>) {
        self.rows.extend(other.rows);
        self.skipped += other.skipped;
    }
}

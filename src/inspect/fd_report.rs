//! One fd, all the way down: what the integer 7 points at.
//!
//! The walk, and where each fact comes from:
//!
//! 1. the fd table slot: `readlink("/proc/self/fd/7")` names the open file
//!    (`socket:[53214]`, `pipe:[881]`, `anon_inode:[eventpoll]`, a path);
//!    `fcntl(F_GETFL)` / `fcntl(F_GETFD)` give `O_NONBLOCK` (on the open file
//!    description) and `FD_CLOEXEC` (on this slot);
//! 2. the inode: `fstat(2)`'s `st_mode` type bits and `st_ino`;
//! 3. for a socket: `getsockopt(SO_DOMAIN, SO_TYPE)`, the two ends with
//!    `getsockname(2)`/`getpeername(2)`, the buffer limits
//!    (`SO_RCVBUF`/`SO_SNDBUF`) and queued bytes (`SIOCINQ`/`SIOCOUTQ`);
//! 4. for TCP: `TCP_INFO` (state, RTT, cwnd, retransmissions, bytes), and the
//!    same socket's row in `/proc/net/tcp{,6}`, found by inode, whose state
//!    must agree with `TCP_INFO`'s (two windows on one `struct sock`);
//! 5. for a Unix socket: its row in `/proc/net/unix`.
//!
//! Every step is a separate syscall, so a socket can change state between
//! them (a peer's FIN can land between `TCP_INFO` and the `/proc` read).
//! The report is a snapshot, not an atomic one; see [`SocketReport::states_agree`].

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

use super::proc_net::{self, TcpRow, TcpState, UnixRow};
use super::Parsed;
use crate::sys::addr::{getpeername, getsockname, Addr};
use crate::sys::fd::{is_cloexec, is_nonblocking};
use crate::sys::info::{self, FileStat, TcpInfo};

/// What a `/proc/self/fd/N` link says the fd is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdTarget {
    /// `socket:[INODE]`.
    Socket(u64),
    /// `pipe:[INODE]`: an anonymous pipe end.
    Pipe(u64),
    /// `anon_inode:[eventfd]`, `anon_inode:[eventpoll]`, `anon_inode:inotify`, ...:
    /// kernel objects with no file of their own; the name is what is inside.
    AnonInode(String),
    /// A file system path (possibly ending in ` (deleted)`).
    Path(PathBuf),
    /// Another `kind:[INODE]` object, such as a namespace (`net:[4026531840]`).
    Other {
        /// The word before the colon.
        kind: String,
        /// The number in brackets.
        inode: u64,
    },
}

/// The number in `kind:[NUMBER]`.
fn bracketed_inode(rest: &str) -> Option<u64> {
    let digits = rest.strip_prefix('[')?.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parse the target of a `/proc/self/fd/N` symlink; `None` if it matches no
/// shape the kernel prints (`d_path` for files, `kind:[inode]` from the
/// pseudo file systems' `dname` methods, `anon_inode:NAME`).
pub fn parse_fd_link(link: &str) -> Option<FdTarget> {
    if link.starts_with('/') {
        return Some(FdTarget::Path(PathBuf::from(link)));
    }
    let (kind, rest) = link.split_once(':')?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    match kind {
        "socket" => bracketed_inode(rest).map(FdTarget::Socket),
        "pipe" => bracketed_inode(rest).map(FdTarget::Pipe),
        "anon_inode" => {
            let name = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(rest);
            (!name.is_empty()).then(|| FdTarget::AnonInode(name.to_string()))
        }
        _ => bracketed_inode(rest).map(|inode| FdTarget::Other {
            kind: kind.to_string(),
            inode,
        }),
    }
}

/// What kind of kernel object an fd refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdKind {
    /// A socket (details in [`FdReport::socket`]).
    Socket,
    /// One end of a `pipe(2)`.
    Pipe,
    /// A named pipe (FIFO) at a path.
    Fifo(PathBuf),
    /// An `eventfd(2)` counter.
    EventFd,
    /// An `epoll_create1(2)` instance.
    Epoll,
    /// A `timerfd_create(2)` timer.
    TimerFd,
    /// A `signalfd(2)`.
    SignalFd,
    /// Another anonymous inode (`inotify`, `pidfd`, `io_uring`, ...).
    AnonInode(String),
    /// A regular file.
    File(PathBuf),
    /// A directory.
    Directory(PathBuf),
    /// A character device (`/dev/null`, a terminal).
    CharDevice(PathBuf),
    /// A block device.
    BlockDevice(PathBuf),
    /// Anything else, with the link text.
    Other(String),
}

impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdKind::Socket => f.write_str("socket"),
            FdKind::Pipe => f.write_str("pipe"),
            FdKind::Fifo(p) => write!(f, "fifo {}", p.display()),
            FdKind::EventFd => f.write_str("eventfd"),
            FdKind::Epoll => f.write_str("epoll instance"),
            FdKind::TimerFd => f.write_str("timerfd"),
            FdKind::SignalFd => f.write_str("signalfd"),
            FdKind::AnonInode(name) => write!(f, "anon inode [{name}]"),
            FdKind::File(p) => write!(f, "file {}", p.display()),
            FdKind::Directory(p) => write!(f, "directory {}", p.display()),
            FdKind::CharDevice(p) => write!(f, "char device {}", p.display()),
            FdKind::BlockDevice(p) => write!(f, "block device {}", p.display()),
            FdKind::Other(text) => write!(f, "other ({text})"),
        }
    }
}

/// Combine the link (which names anonymous inodes) with `fstat`'s type bits
/// (which tell a FIFO from a file at a path).
fn classify(target: Option<&FdTarget>, stat: &FileStat, link: &str) -> FdKind {
    match target {
        Some(FdTarget::Socket(_)) => FdKind::Socket,
        Some(FdTarget::Pipe(_)) => FdKind::Pipe,
        Some(FdTarget::AnonInode(name)) => match name.as_str() {
            "eventfd" => FdKind::EventFd,
            "eventpoll" => FdKind::Epoll,
            "timerfd" => FdKind::TimerFd,
            "signalfd" => FdKind::SignalFd,
            _ => FdKind::AnonInode(name.clone()),
        },
        Some(FdTarget::Path(path)) => match stat.mode & libc::S_IFMT {
            libc::S_IFREG => FdKind::File(path.clone()),
            libc::S_IFDIR => FdKind::Directory(path.clone()),
            libc::S_IFIFO => FdKind::Fifo(path.clone()),
            libc::S_IFCHR => FdKind::CharDevice(path.clone()),
            libc::S_IFBLK => FdKind::BlockDevice(path.clone()),
            libc::S_IFSOCK => FdKind::Socket,
            _ => FdKind::Other(link.to_string()),
        },
        _ if stat.is_socket() => FdKind::Socket,
        _ => FdKind::Other(link.to_string()),
    }
}

/// The address family, from `SO_DOMAIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `AF_INET`: IPv4.
    Inet,
    /// `AF_INET6`: IPv6.
    Inet6,
    /// `AF_UNIX`: a local socket, named by a path or unnamed.
    Unix,
    /// Any other family, by number.
    Other(i32),
}

impl Family {
    fn from_raw(domain: libc::c_int) -> Family {
        match domain {
            libc::AF_INET => Family::Inet,
            libc::AF_INET6 => Family::Inet6,
            libc::AF_UNIX => Family::Unix,
            n => Family::Other(n),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Family::Inet => f.write_str("AF_INET"),
            Family::Inet6 => f.write_str("AF_INET6"),
            Family::Unix => f.write_str("AF_UNIX"),
            Family::Other(n) => write!(f, "family {n}"),
        }
    }
}

/// The socket type, from `SO_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    /// `SOCK_STREAM`: a byte stream (TCP, or a Unix stream).
    Stream,
    /// `SOCK_DGRAM`: datagrams (UDP, or Unix datagrams).
    Dgram,
    /// `SOCK_SEQPACKET`: reliable, ordered records.
    SeqPacket,
    /// `SOCK_RAW`.
    Raw,
    /// Any other type, by number.
    Other(i32),
}

impl SockType {
    fn from_raw(ty: libc::c_int) -> SockType {
        match ty {
            libc::SOCK_STREAM => SockType::Stream,
            libc::SOCK_DGRAM => SockType::Dgram,
            libc::SOCK_SEQPACKET => SockType::SeqPacket,
            libc::SOCK_RAW => SockType::Raw,
            n => SockType::Other(n),
        }
    }
}

impl fmt::Display for SockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockType::Stream => f.write_str("SOCK_STREAM"),
            SockType::Dgram => f.write_str("SOCK_DGRAM"),
            SockType::SeqPacket => f.write_str("SOCK_SEQPACKET"),
            SockType::Raw => f.write_str("SOCK_RAW"),
            SockType::Other(n) => write!(f, "type {n}"),
        }
    }
}

/// A listener's accept queue, as `ss` shows it for a LISTEN socket
/// (`Recv-Q` = connections waiting, `Send-Q` = the backlog limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenQueue {
    /// Connections that finished the handshake and wait for `accept`.
    pub pending: u32,
    /// The queue's limit: `listen`'s backlog, capped by `net.core.somaxconn`.
    pub backlog: u32,
}

/// The depth of a TCP listener's accept queue. `TCP_INFO` on a LISTEN
/// socket reuses two fields: `tcpi_unacked` is the queue length
/// (`sk_ack_backlog`) and `tcpi_sacked` the limit (`sk_max_ack_backlog`)
/// (`tcp_get_info` in `net/ipv4/tcp.c`). `ss` shows the same two numbers
/// but asks for them over netlink (`inet_diag`, `tcp_diag_get_info`). Fails with `InvalidInput` if `fd` is not listening.
pub fn listen_queue(fd: RawFd) -> io::Result<ListenQueue> {
    let info = info::tcp_info(fd)?;
    if info.raw.tcpi_state != TcpState::Listen as u8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a TCP listener (tcpi_state {})", info.raw.tcpi_state),
        ));
    }
    Ok(ListenQueue {
        pending: info.raw.tcpi_unacked,
        backlog: info.raw.tcpi_sacked,
    })
}

/// This socket's row in the kernel's own table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcRow {
    /// From `/proc/net/tcp` or `/proc/net/tcp6`.
    Tcp(TcpRow),
    /// From `/proc/net/unix`.
    Unix(UnixRow),
}

/// Everything the kernel says about one socket.
#[derive(Debug, Clone)]
pub struct SocketReport {
    /// The socket inode (`st_ino`, the number in `socket:[N]`).
    pub inode: u64,
    /// `SO_DOMAIN`.
    pub family: Family,
    /// `SO_TYPE`.
    pub sock_type: SockType,
    /// `getsockname`: our end.
    pub local: Option<Addr>,
    /// `getpeername`: their end; `None` when not connected (`ENOTCONN`),
    /// as for a listener.
    pub peer: Option<Addr>,
    /// The TCP state from `TCP_INFO.tcpi_state` (TCP sockets only).
    pub tcp_state: Option<TcpState>,
    /// The full `TCP_INFO` snapshot (TCP sockets only).
    pub tcp_info: Option<TcpInfo>,
    /// `SO_RCVBUF`, bytes.
    pub recv_buffer: usize,
    /// `SO_SNDBUF`, bytes.
    pub send_buffer: usize,
    /// `SIOCINQ`: bytes received, not yet read (`None` where the kernel
    /// refuses the ioctl, as on a listener).
    pub unread: Option<usize>,
    /// `SIOCOUTQ`: bytes sent, not yet acknowledged.
    pub unacked: Option<usize>,
    /// For a TCP listener: the accept queue.
    pub listen_queue: Option<ListenQueue>,
    /// The row with this inode in `/proc/net/*`, if found.
    pub proc_row: Option<ProcRow>,
}

impl SocketReport {
    /// The state as the `/proc/net/tcp*` row gives it.
    pub fn proc_tcp_state(&self) -> Option<TcpState> {
        match &self.proc_row {
            Some(ProcRow::Tcp(row)) => Some(row.state),
            _ => None,
        }
    }

    /// Do `TCP_INFO` and `/proc/net/tcp*` report the same state? `None` if
    /// one of them is missing (not TCP, or the row was not found).
    pub fn states_agree(&self) -> Option<bool> {
        Some(self.tcp_state? == self.proc_tcp_state()?)
    }

    /// The 4-tuple, for an IP socket whose both ends are known.
    pub fn four_tuple(&self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        match (&self.local, &self.peer) {
            (Some(Addr::Inet(local)), Some(Addr::Inet(peer))) => Some((*local, *peer)),
            _ => None,
        }
    }

    /// The `ss` command line that shows this same socket, so a reader can
    /// check our report against a tool they already trust.
    pub fn ss_command(&self) -> String {
        match (&self.family, &self.local, &self.peer) {
            (Family::Unix, _, _) => format!("ss -xanpe | grep -w {}", self.inode),
            (_, Some(Addr::Inet(local)), Some(Addr::Inet(peer))) => {
                format!("ss -tanpie 'sport = :{} and dport = :{}'", local.port(), peer.port())
            }
            (_, Some(Addr::Inet(local)), None) => format!("ss -tlnpe 'sport = :{}'", local.port()),
            _ => format!("ss -anpe | grep -w ino:{}", self.inode),
        }
    }
}

/// Everything about one fd.
#[derive(Debug, Clone)]
pub struct FdReport {
    /// The integer.
    pub fd: RawFd,
    /// `readlink("/proc/self/fd/N")`.
    pub link: String,
    /// The parsed link, `None` if it had an unknown shape.
    pub target: Option<FdTarget>,
    /// What it is.
    pub kind: FdKind,
    /// `fstat`.
    pub stat: FileStat,
    /// `O_NONBLOCK` on the open file description.
    pub nonblocking: bool,
    /// `FD_CLOEXEC` on the fd slot.
    pub cloexec: bool,
    /// For a socket, the socket's report.
    pub socket: Option<SocketReport>,
}

/// `/proc` tables read once and shared by the reports of many fds.
#[derive(Default)]
pub(crate) struct Tables {
    tcp: Option<Parsed<TcpRow>>,
    unix: Option<Parsed<UnixRow>>,
}

impl Tables {
    fn tcp_row(&mut self, inode: u64) -> io::Result<Option<TcpRow>> {
        if self.tcp.is_none() {
            self.tcp = Some(proc_net::tcp_table()?);
        }
        let rows = self.tcp.as_ref().map(|t| t.rows.as_slice()).unwrap_or_default();
        Ok(rows.iter().find(|r| r.inode == inode).cloned())
    }

    fn unix_row(&mut self, inode: u64) -> io::Result<Option<UnixRow>> {
        if self.unix.is_none() {
            self.unix = Some(proc_net::unix_table()?);
        }
        let rows = self.unix.as_ref().map(|t| t.rows.as_slice()).unwrap_or_default();
        Ok(rows.iter().find(|r| r.inode == inode).cloned())
    }
}

/// `readlink("/proc/self/fd/N")` as text.
pub fn fd_link(fd: RawFd) -> io::Result<String> {
    let path = format!("/proc/self/fd/{fd}");
    let target = std::fs::read_link(&path).map_err(|e| io::Error::new(e.kind(), format!("readlink {path}: {e}")))?;
    Ok(target.to_string_lossy().into_owned())
}

/// Inspect one fd of this process: the whole stack behind the integer.
///
/// ```
/// use std::os::fd::AsRawFd;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let report = connlab::inspect::fd(listener.as_raw_fd())?;
/// let socket = report.socket.as_ref().expect("a listener is a socket");
/// assert_eq!(socket.tcp_state, Some(connlab::inspect::TcpState::Listen));
/// assert_eq!(socket.states_agree(), Some(true));
/// println!("{report}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn fd(fd: RawFd) -> io::Result<FdReport> {
    report(fd, &mut Tables::default())
}

pub(crate) fn report(fd: RawFd, tables: &mut Tables) -> io::Result<FdReport> {
    let link = fd_link(fd)?;
    let stat = info::fstat(fd)?;
    let target = parse_fd_link(&link);
    let kind = classify(target.as_ref(), &stat, &link);
    let socket = if kind == FdKind::Socket {
        Some(socket_report(fd, &stat, tables)?)
    } else {
        None
    };
    Ok(FdReport {
        fd,
        nonblocking: is_nonblocking(fd)?,
        cloexec: is_cloexec(fd)?,
        link,
        target,
        kind,
        stat,
        socket,
    })
}

/// `Ok(None)` for the errnos that mean "this question does not apply to this
/// socket" rather than "something is wrong".
fn not_applicable<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                crate::sys::errno_of(&e),
                Some(libc::ENOTCONN | libc::EINVAL | libc::EOPNOTSUPP)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn socket_report(fd: RawFd, stat: &FileStat, tables: &mut Tables) -> io::Result<SocketReport> {
    let family = Family::from_raw(info::socket_domain(fd)?);
    let sock_type = SockType::from_raw(info::socket_type(fd)?);
    let is_tcp = matches!(family, Family::Inet | Family::Inet6) && sock_type == SockType::Stream;
    let tcp_info = if is_tcp {
        not_applicable(info::tcp_info(fd))?
    } else {
        None
    };
    let tcp_state = tcp_info.and_then(|i| TcpState::from_kernel(i.raw.tcpi_state));
    let listen_queue = match (tcp_state, tcp_info) {
        (Some(TcpState::Listen), Some(i)) => Some(ListenQueue {
            pending: i.raw.tcpi_unacked,
            backlog: i.raw.tcpi_sacked,
        }),
        _ => None,
    };
    let proc_row = match family {
        Family::Inet | Family::Inet6 if is_tcp => tables.tcp_row(stat.inode)?.map(ProcRow::Tcp),
        Family::Unix => tables.unix_row(stat.inode)?.map(ProcRow::Unix),
        _ => None,
    };
    Ok(SocketReport {
        inode: stat.inode,
        family,
        sock_type,
        local: not_applicable(getsockname(fd))?,
        peer: not_applicable(getpeername(fd))?,
        tcp_state,
        tcp_info,
        recv_buffer: info::recv_buffer_size(fd)?,
        send_buffer: info::send_buffer_size(fd)?,
        unread: not_applicable(info::bytes_unread(fd))?,
        unacked: not_applicable(info::bytes_unacked(fd))?,
        listen_queue,
        proc_row,
    })
}

fn opt_addr(addr: &Option<Addr>) -> String {
    addr.as_ref()
        .map_or_else(|| "(not connected)".to_string(), Addr::to_string)
}

fn opt_bytes(n: Option<usize>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: u32) -> String {
    format!("{}.{:03} ms", us / 1000, us % 1000)
}

// ANCHOR: display
/// The stack top to bottom, one layer per line, the way the story draws a
/// connection: fd table slot, open file, inode, socket, TCP state machine,
/// 4-tuple. (The layers above the fd, the Rust object and whoever owns it,
/// are the caller's to print: the kernel does not know them.)
impl fmt::Display for FdReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // FD_CLOEXEC is a flag of the fd-table slot (F_GETFD); O_NONBLOCK
        // one of the open file (F_GETFL), shared by every dup of the fd.
        let slot = if self.cloexec {
            "FD_CLOEXEC"
        } else {
            "inherited across exec"
        };
        let file = if self.nonblocking { "O_NONBLOCK" } else { "blocking" };
        writeln!(
            f,
            "fd table      fd {} -> /proc/self/fd/{} -> {} ({slot})",
            self.fd, self.fd, self.link
        )?;
        writeln!(f, "struct file   {} ({file})", self.kind)?;
        write!(
            f,
            "inode         {} (st_mode type: {})",
            self.stat.inode,
            self.stat.type_name()
        )?;
        let Some(s) = &self.socket else {
            return writeln!(f);
        };
        writeln!(f)?;
        writeln!(f, "struct socket {} {}", s.family, s.sock_type)?;
        writeln!(f, "local end     {}   (getsockname)", opt_addr(&s.local))?;
        writeln!(f, "peer end      {}   (getpeername)", opt_addr(&s.peer))?;
        match (s.tcp_state, s.proc_tcp_state()) {
            (Some(ours), Some(proc)) => writeln!(
                f,
                "TCP state     {ours} = {} ({}); /proc/net/tcp st {:02X}: {}",
                ours as u8,
                ours.kernel_name(),
                proc as u8,
                if ours == proc {
                    "agrees"
                } else {
                    "DIFFERS (the state moved between the two reads)"
                }
            )?,
            (Some(ours), None) => writeln!(
                f,
                "TCP state     {ours} ({}); no /proc/net/tcp row found",
                ours.kernel_name()
            )?,
            _ => {}
        }
        if let Some(ProcRow::Unix(row)) = &s.proc_row {
            writeln!(
                f,
                "unix state    {} (/proc/net/unix St {:02}, path {})",
                row.state_name(),
                row.state,
                row.path.as_deref().unwrap_or("(unnamed)")
            )?;
        }
        if let Some(q) = s.listen_queue {
            writeln!(f, "accept queue  {} waiting, backlog {}", q.pending, q.backlog)?;
        }
        if let Some(info) = &s.tcp_info {
            let r = &info.raw;
            writeln!(
                f,
                "TCP_INFO      rtt {} (var {}), rto {}, cwnd {} segs, mss {}",
                ms(r.tcpi_rtt),
                ms(r.tcpi_rttvar),
                ms(r.tcpi_rto),
                r.tcpi_snd_cwnd,
                r.tcpi_snd_mss
            )?;
            writeln!(
                f,
                "              retransmits {} (total {}), unacked {}, lost {}",
                r.tcpi_retransmits, r.tcpi_total_retrans, r.tcpi_unacked, r.tcpi_lost
            )?;
            let count = |v: Option<u64>| v.map_or_else(|| "n/a (kernel too old)".to_string(), |v| v.to_string());
            writeln!(
                f,
                "              bytes sent {}, received {}",
                count(info.bytes_sent()),
                count(info.bytes_received())
            )?;
        }
        writeln!(
            f,
            "buffers       SO_RCVBUF {} B, SO_SNDBUF {} B; queued: {} unread (SIOCINQ), {} unacked (SIOCOUTQ)",
            s.recv_buffer,
            s.send_buffer,
            opt_bytes(s.unread),
            opt_bytes(s.unacked)
        )?;
        if let Some((local, peer)) = s.four_tuple() {
            writeln!(
                f,
                "4-tuple       ({}, {}, {}, {})",
                local.ip(),
                local.port(),
                peer.ip(),
                peer.port()
            )?;
        }
        writeln!(f, "check with    {}", s.ss_command())
    }
}
// ANCHOR_END: display

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn links_of_every_shape_parse() {
        assert_eq!(parse_fd_link("socket:[53214]"), Some(FdTarget::Socket(53214)));
        assert_eq!(parse_fd_link("pipe:[881]"), Some(FdTarget::Pipe(881)));
        assert_eq!(
            parse_fd_link("anon_inode:[eventpoll]"),
            Some(FdTarget::AnonInode("eventpoll".into()))
        );
        assert_eq!(
            parse_fd_link("anon_inode:inotify"),
            Some(FdTarget::AnonInode("inotify".into()))
        );
        assert_eq!(
            parse_fd_link("/tmp/x (deleted)"),
            Some(FdTarget::Path("/tmp/x (deleted)".into()))
        );
        assert_eq!(
            parse_fd_link("net:[4026531840]"),
            Some(FdTarget::Other {
                kind: "net".into(),
                inode: 4026531840
            })
        );
        for bad in [
            "",
            "socket:[",
            "socket:[]",
            "socket:[12a]",
            "socket:12",
            ":[1]",
            "pipe:[-1]",
            "anon_inode:",
        ] {
            assert_eq!(parse_fd_link(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn link_parser_never_panics(text in ".{0,60}", bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = parse_fd_link(&text);
            let _ = parse_fd_link(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn socket_links_round_trip(inode in any::<u64>()) {
            prop_assert_eq!(parse_fd_link(&format!("socket:[{inode}]")), Some(FdTarget::Socket(inode)));
        }
    }
}

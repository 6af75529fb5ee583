//! What the kernel will tell us about an fd it already gave us:
//!
//! - `fstat(2)`: the file type bits of `st_mode` (socket, pipe, regular file,
//!   ...) and the inode number, the same number `/proc/self/fd/N` prints as
//!   `socket:[INODE]` and `/proc/net/tcp` prints in its `inode` column.
//! - `getsockopt(2)` at `SOL_SOCKET` (`socket(7)`): `SO_DOMAIN` (AF_INET,
//!   AF_INET6, AF_UNIX), `SO_TYPE` (SOCK_STREAM, ...), `SO_RCVBUF` and
//!   `SO_SNDBUF` (the buffer limits, in bytes of kernel memory).
//! - `getsockopt(2)` at `IPPROTO_TCP` with `TCP_INFO` (`tcp(7)`): a snapshot of
//!   the TCP state machine itself: state, RTT, congestion window,
//!   retransmissions, byte counters. It is what `ss -i` prints.
//! - `ioctl(2)` with `SIOCINQ` / `SIOCOUTQ` (`tcp(7)`, `unix(7)`): bytes
//!   waiting in the receive queue (not yet read by us) and in the send queue
//!   (written by us, not yet acknowledged by the peer).
//!
//! Each function is one visible libc call and returns an error that names
//! the call, the fd and the errno.

use std::io;
use std::mem;
use std::os::fd::RawFd;

use super::cvt;
use super::socket::{family_name, getsockopt_int};

/// `SO_DOMAIN` from `asm-generic/socket.h` (Linux 2.6.32+). Declared here
/// because libc 0.2 exports it for Android and not for Linux.
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
pub const SO_DOMAIN: libc::c_int = 39;
/// `SO_DOMAIN` on mips and sparc, which number their socket options apart.
#[cfg(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
pub const SO_DOMAIN: libc::c_int = 0x1029;

/// `SIOCINQ` from `linux/sockios.h`: bytes in the receive queue. It is the
/// same request number as `FIONREAD`; the socket-flavoured name says what it
/// counts for a socket. On a LISTEN socket it fails with `EINVAL`.
pub const SIOCINQ: libc::Ioctl = libc::FIONREAD;

/// `SIOCOUTQ` from `linux/sockios.h`: bytes in the send queue not yet
/// acknowledged by the peer. Same number as the terminal ioctl `TIOCOUTQ`.
pub const SIOCOUTQ: libc::Ioctl = libc::TIOCOUTQ;

/// The parts of `struct stat` that identify what an fd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// `st_mode`: the file type bits (`S_IFMT`) and permissions.
    pub mode: u32,
    /// `st_ino`: the inode number. For a socket, the socket's identity in
    /// `/proc/net/*`.
    pub inode: u64,
    /// `st_dev`: the device of the file system holding the inode (for
    /// sockets and pipes, the kernel's internal `sockfs`/`pipefs`).
    pub dev: u64,
    /// `st_size`: bytes, for a regular file.
    pub size: i64,
}

impl FileStat {
    /// The type bits of `st_mode` as a word: `socket`, `fifo`, `regular`,
    /// `directory`, `char device`, `block device`, `symlink`, or `unknown`
    /// (anonymous inodes such as eventfd and epoll have no type bits).
    pub fn type_name(&self) -> &'static str {
        match self.mode & libc::S_IFMT {
            libc::S_IFSOCK => "socket",
            libc::S_IFIFO => "fifo",
            libc::S_IFREG => "regular",
            libc::S_IFDIR => "directory",
            libc::S_IFCHR => "char device",
            libc::S_IFBLK => "block device",
            libc::S_IFLNK => "symlink",
            _ => "unknown",
        }
    }

    /// True when `st_mode` says socket (`S_ISSOCK`).
    pub fn is_socket(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFSOCK
    }
}

/// `fstat(2)`: the inode behind an fd.
pub fn fstat(fd: RawFd) -> io::Result<FileStat> {
    // SAFETY: struct stat is plain old data; all-zero is a valid value that
    // fstat overwrites.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a valid, writable struct stat for the duration of the call.
    let ret = unsafe { libc::fstat(fd, &mut st) };
    cvt(ret, "fstat", format_args!("fd {fd}"))?;
    crate::narrate!("fstat({fd}) = 0 [st_mode {:#o}, st_ino {}]", st.st_mode, st.st_ino);
    Ok(FileStat {
        mode: st.st_mode,
        inode: st.st_ino,
        dev: st.st_dev,
        size: st.st_size,
    })
}

/// `getsockopt(SOL_SOCKET, SO_DOMAIN)`: the address family the socket was
/// created with (`libc::AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
pub fn socket_domain(fd: RawFd) -> io::Result<libc::c_int> {
    let domain = getsockopt_int(fd, libc::SOL_SOCKET, SO_DOMAIN, "SOL_SOCKET, SO_DOMAIN")?;
    crate::narrate!("getsockopt({fd}, SOL_SOCKET, SO_DOMAIN) = 0 [{}]", family_name(domain));
    Ok(domain)
}

/// `getsockopt(SOL_SOCKET, SO_TYPE)`: `libc::SOCK_STREAM`, `SOCK_DGRAM`, ...
/// (without the `SOCK_NONBLOCK`/`SOCK_CLOEXEC` creation flags, which are fd
/// flags, not socket types).
pub fn socket_type(fd: RawFd) -> io::Result<libc::c_int> {
    let kind = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE, "SOL_SOCKET, SO_TYPE")?;
    crate::narrate!("getsockopt({fd}, SOL_SOCKET, SO_TYPE) = 0 [{kind}]");
    Ok(kind)
}

/// `getsockopt(SOL_SOCKET, SO_RCVBUF)`: the receive buffer limit in bytes.
/// Linux doubles what `setsockopt` asked for, to leave room for its own
/// bookkeeping (`socket(7)`), and autotunes it for TCP unless it was set.
pub fn recv_buffer_size(fd: RawFd) -> io::Result<usize> {
    let n = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, "SOL_SOCKET, SO_RCVBUF")?;
    crate::narrate!("getsockopt({fd}, SOL_SOCKET, SO_RCVBUF) = 0 [{n} bytes]");
    Ok(usize::try_from(n).unwrap_or(0))
}

/// `getsockopt(SOL_SOCKET, SO_SNDBUF)`: the send buffer limit in bytes.
pub fn send_buffer_size(fd: RawFd) -> io::Result<usize> {
    let n = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, "SOL_SOCKET, SO_SNDBUF")?;
    crate::narrate!("getsockopt({fd}, SOL_SOCKET, SO_SNDBUF) = 0 [{n} bytes]");
    Ok(usize::try_from(n).unwrap_or(0))
}

/// `ioctl(fd, request, &int)` for the queue-size requests.
fn ioctl_int(fd: RawFd, request: libc::Ioctl, what: &str) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    // SAFETY: SIOCINQ and SIOCOUTQ write one int through the pointer, which
    // points at a live, writable c_int.
    let ret = unsafe { libc::ioctl(fd, request, &mut value as *mut libc::c_int) };
    cvt(ret, "ioctl", format_args!("fd {fd}, {what}"))?;
    crate::narrate!("ioctl({fd}, {what}) = 0 [{value} bytes]");
    Ok(usize::try_from(value).unwrap_or(0))
}

/// `ioctl(SIOCINQ)`: bytes received by the kernel that we have not read yet
/// (the `Recv-Q` column of `ss` for a connected socket).
pub fn bytes_unread(fd: RawFd) -> io::Result<usize> {
    ioctl_int(fd, SIOCINQ, "SIOCINQ")
}

/// `ioctl(SIOCOUTQ)`: bytes we wrote that the peer has not acknowledged
/// yet (the `Send-Q` column of `ss` for a connected socket).
pub fn bytes_unacked(fd: RawFd) -> io::Result<usize> {
    ioctl_int(fd, SIOCOUTQ, "SIOCOUTQ")
}

// ANCHOR: tcp_info_raw
/// `struct tcp_info` from `linux/tcp.h`, as far as connlab reads it.
///
/// Declared here rather than taken from libc because libc's glibc flavour
/// stops at `tcpi_total_retrans` (Linux 2.6), missing the byte counters.
/// The struct only ever grows at the end, and the kernel copies
/// `min(its size, our size)` bytes and reports how many it wrote, so an older
/// kernel fills a prefix and a newer one simply omits fields we did not
/// declare. [`TcpInfo::has`] tells which fields the kernel actually filled.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawTcpInfo {
    /// Kernel TCP state, `enum` in `include/net/tcp_states.h` (1 = ESTABLISHED ... 10 = LISTEN).
    pub tcpi_state: u8,
    /// Congestion-avoidance state (0 = Open, 1 = Disorder, 2 = CWR, 3 = Recovery, 4 = Loss).
    pub tcpi_ca_state: u8,
    /// Consecutive retransmissions of the segment at the head of the queue (the RTO backoff count).
    pub tcpi_retransmits: u8,
    /// Unanswered zero-window or keepalive probes.
    pub tcpi_probes: u8,
    /// Exponential backoff applied to the RTO.
    pub tcpi_backoff: u8,
    /// Options agreed in the handshake (`TCPI_OPT_TIMESTAMPS` = 1, `SACK` = 2, `WSCALE` = 4, ...).
    pub tcpi_options: u8,
    /// Two 4-bit fields: send window scale (low nibble) and receive window scale (high nibble).
    pub tcpi_wscale: u8,
    /// Bit fields: delivery-rate app-limited (1 bit), fastopen client failure (2 bits).
    pub tcpi_flags: u8,
    /// Retransmission timeout, microseconds.
    pub tcpi_rto: u32,
    /// Delayed-ACK timeout, microseconds.
    pub tcpi_ato: u32,
    /// Maximum segment size we send.
    pub tcpi_snd_mss: u32,
    /// Maximum segment size we receive (estimated).
    pub tcpi_rcv_mss: u32,
    /// Segments sent and not yet acknowledged. On a LISTEN socket: connections in the accept queue.
    pub tcpi_unacked: u32,
    /// Segments selectively acknowledged. On a LISTEN socket: the accept queue's limit (the backlog).
    pub tcpi_sacked: u32,
    /// Segments presumed lost.
    pub tcpi_lost: u32,
    /// Segments retransmitted and not yet acknowledged.
    pub tcpi_retrans: u32,
    /// Unused since Linux 4.x (always 0).
    pub tcpi_fackets: u32,
    /// Milliseconds since we last sent data.
    pub tcpi_last_data_sent: u32,
    /// Not tracked by Linux (always 0).
    pub tcpi_last_ack_sent: u32,
    /// Milliseconds since we last received data.
    pub tcpi_last_data_recv: u32,
    /// Milliseconds since we last received an ACK.
    pub tcpi_last_ack_recv: u32,
    /// Path MTU.
    pub tcpi_pmtu: u32,
    /// Receive slow-start threshold.
    pub tcpi_rcv_ssthresh: u32,
    /// Smoothed round-trip time, microseconds.
    pub tcpi_rtt: u32,
    /// Round-trip time variation, microseconds.
    pub tcpi_rttvar: u32,
    /// Send slow-start threshold, segments.
    pub tcpi_snd_ssthresh: u32,
    /// Congestion window, segments.
    pub tcpi_snd_cwnd: u32,
    /// Advertised MSS.
    pub tcpi_advmss: u32,
    /// Reordering metric.
    pub tcpi_reordering: u32,
    /// Receiver-side RTT estimate, microseconds.
    pub tcpi_rcv_rtt: u32,
    /// Receive buffer space the autotuner aims for.
    pub tcpi_rcv_space: u32,
    /// Retransmitted segments over the connection's life.
    pub tcpi_total_retrans: u32,
    /// Pacing rate, bytes per second (Linux 3.15+).
    pub tcpi_pacing_rate: u64,
    /// Maximum pacing rate, bytes per second.
    pub tcpi_max_pacing_rate: u64,
    /// Sequence space the peer acknowledged (Linux 4.1+): data bytes plus 1 for our SYN.
    pub tcpi_bytes_acked: u64,
    /// Bytes received in order (Linux 4.1+).
    pub tcpi_bytes_received: u64,
    /// Segments sent (Linux 4.2+).
    pub tcpi_segs_out: u32,
    /// Segments received (Linux 4.2+).
    pub tcpi_segs_in: u32,
    /// Bytes written but not yet sent (Linux 4.6+).
    pub tcpi_notsent_bytes: u32,
    /// Minimum RTT seen, microseconds (Linux 4.6+).
    pub tcpi_min_rtt: u32,
    /// Segments received that carried data.
    pub tcpi_data_segs_in: u32,
    /// Segments sent that carried data.
    pub tcpi_data_segs_out: u32,
    /// Delivery rate estimate, bytes per second (Linux 4.9+).
    pub tcpi_delivery_rate: u64,
    /// Microseconds busy sending data (Linux 4.10+).
    pub tcpi_busy_time: u64,
    /// Microseconds limited by the peer's receive window.
    pub tcpi_rwnd_limited: u64,
    /// Microseconds limited by our send buffer.
    pub tcpi_sndbuf_limited: u64,
    /// Segments delivered (Linux 4.18+).
    pub tcpi_delivered: u32,
    /// Segments delivered with an ECN congestion mark.
    pub tcpi_delivered_ce: u32,
    /// Bytes sent, including retransmissions (Linux 4.19+).
    pub tcpi_bytes_sent: u64,
    /// Bytes retransmitted (Linux 4.19+).
    pub tcpi_bytes_retrans: u64,
}
// ANCHOR_END: tcp_info_raw

/// A `TCP_INFO` snapshot plus how many bytes of it the kernel filled.
#[derive(Debug, Clone, Copy)]
pub struct TcpInfo {
    /// The struct as the kernel wrote it; fields past `len` are zero.
    pub raw: RawTcpInfo,
    /// Bytes the kernel wrote (the `optlen` it returned).
    pub len: usize,
}

impl TcpInfo {
    /// Did the kernel fill the field that ends at byte `end`? Use with
    /// `mem::offset_of!(RawTcpInfo, field) + mem::size_of_val(&raw.field)`,
    /// or through the typed accessors such as [`TcpInfo::bytes_sent`].
    pub fn has(&self, end: usize) -> bool {
        end <= self.len
    }

    /// Sequence space acknowledged by the peer, if the kernel reports it
    /// (4.1+). It counts the SYN as one, so it is data bytes + 1.
    pub fn bytes_acked(&self) -> Option<u64> {
        self.has(mem::offset_of!(RawTcpInfo, tcpi_bytes_acked) + 8)
            .then_some(self.raw.tcpi_bytes_acked)
    }

    /// Bytes received in order, if the kernel reports it (4.1+).
    pub fn bytes_received(&self) -> Option<u64> {
        self.has(mem::offset_of!(RawTcpInfo, tcpi_bytes_received) + 8)
            .then_some(self.raw.tcpi_bytes_received)
    }

    /// Bytes sent including retransmissions, if the kernel reports it (4.19+).
    pub fn bytes_sent(&self) -> Option<u64> {
        self.has(mem::offset_of!(RawTcpInfo, tcpi_bytes_sent) + 8)
            .then_some(self.raw.tcpi_bytes_sent)
    }

    /// Segments sent and received, if the kernel reports them (4.2+).
    pub fn segments(&self) -> Option<(u32, u32)> {
        self.has(mem::offset_of!(RawTcpInfo, tcpi_segs_in) + 4)
            .then_some((self.raw.tcpi_segs_out, self.raw.tcpi_segs_in))
    }
}

/// `getsockopt(IPPROTO_TCP, TCP_INFO)`: the TCP state machine's own numbers.
/// Works on any TCP socket, including a listener (where `tcpi_unacked` is the
/// accept queue's length and `tcpi_sacked` its limit). On a non-TCP socket it
/// fails with `EOPNOTSUPP`.
pub fn tcp_info(fd: RawFd) -> io::Result<TcpInfo> {
    let mut raw = RawTcpInfo::default();
    let mut len = mem::size_of::<RawTcpInfo>() as libc::socklen_t;
    // SAFETY: raw is a writable RawTcpInfo and len is its size; the kernel
    // copies at most len bytes and stores the number written in len.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut raw as *mut RawTcpInfo as *mut libc::c_void,
            &mut len,
        )
    };
    cvt(ret, "getsockopt", format_args!("fd {fd}, IPPROTO_TCP, TCP_INFO"))?;
    crate::narrate!(
        "getsockopt({fd}, IPPROTO_TCP, TCP_INFO) = 0 [{len} bytes: state {}, rtt {} us, cwnd {}]",
        raw.tcpi_state,
        raw.tcpi_rtt,
        raw.tcpi_snd_cwnd
    );
    Ok(TcpInfo { raw, len: len as usize })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn tcp_info_layout_matches_linux_tcp_h() {
        // Offsets from linux/tcp.h (pahole struct tcp_info): a wrong field
        // width here would shift every later field silently.
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_rto), 8);
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_rtt), 68);
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_snd_cwnd), 80);
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_total_retrans), 100);
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_pacing_rate), 104);
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_bytes_received), 128);
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_delivery_rate), 160);
        assert_eq!(mem::offset_of!(RawTcpInfo, tcpi_bytes_sent), 200);
        assert_eq!(mem::size_of::<RawTcpInfo>(), 216);
    }

    #[test]
    fn connected_tcp_socket_reports_established_and_counts_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        // Wait (bounded) until the five bytes are in the server's queue.
        let mut queued = 0;
        for _ in 0..200 {
            queued = bytes_unread(server.as_raw_fd()).unwrap();
            if queued == 5 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(queued, 5);

        let info = tcp_info(client.as_raw_fd()).unwrap();
        assert_eq!(info.raw.tcpi_state, 1, "TCP_ESTABLISHED");
        assert_eq!(info.bytes_sent(), Some(5));
        // The SYN occupies one sequence number, and bytes_acked counts
        // sequence space, so it reads one more than the data we sent.
        assert_eq!(info.bytes_acked(), Some(6));
        let server_info = tcp_info(server.as_raw_fd()).unwrap();
        assert_eq!(server_info.bytes_received(), Some(5));

        assert_eq!(socket_domain(client.as_raw_fd()).unwrap(), libc::AF_INET);
        assert_eq!(socket_type(client.as_raw_fd()).unwrap(), libc::SOCK_STREAM);
        assert!(recv_buffer_size(client.as_raw_fd()).unwrap() > 0);
        assert!(send_buffer_size(client.as_raw_fd()).unwrap() > 0);
        assert!(fstat(client.as_raw_fd()).unwrap().is_socket());
    }

    #[test]
    fn listener_tcp_info_reports_accept_queue_and_backlog() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _a = TcpStream::connect(addr).unwrap();
        let _b = TcpStream::connect(addr).unwrap();
        let info = tcp_info(listener.as_raw_fd()).unwrap();
        assert_eq!(info.raw.tcpi_state, 10, "TCP_LISTEN");
        assert_eq!(info.raw.tcpi_unacked, 2, "two connections wait in the accept queue");
        // std listens with a backlog of 128 (capped by net.core.somaxconn).
        assert!(info.raw.tcpi_sacked >= 1);
        let err = bytes_unread(listener.as_raw_fd()).unwrap_err();
        assert!(err.to_string().starts_with("ioctl(fd "), "{err}");
        assert!(err.to_string().contains("SIOCINQ"), "{err}");
    }

    #[test]
    fn tcp_info_on_a_pipe_names_the_call_and_errno() {
        let (r, _w) = std::io::pipe().unwrap();
        let err = tcp_info(r.as_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("TCP_INFO): ENOTSOCK"), "{err}");
        assert_eq!(fstat(r.as_raw_fd()).unwrap().type_name(), "fifo");
    }
}

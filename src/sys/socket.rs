//! Sockets by raw syscalls: `socket(2)`, `bind(2)`, `listen(2)`, `accept4(2)`,
//! `connect(2)`, `shutdown(2)`, `read(2)`, `send(2)`, `getsockopt(2)` and
//! `setsockopt(2)`; the big pictures are `socket(7)`, `tcp(7)` and `unix(7)`.
//!
//! Each function is one visible `libc::` call: the arguments the kernel
//! sees, an error that names the call (`connect(fd 7, 127.0.0.1:1):
//! ECONNREFUSED`), and a narrator line in strace's shape
//! (`connect(7, 127.0.0.1:5432) = -1 EINPROGRESS`).
//!
//! Every socket connlab makes is born with `SOCK_NONBLOCK | SOCK_CLOEXEC`
//! (socket and accept4 take them as flags): one syscall instead of three
//! (`socket` + two `fcntl`), and no window in which another thread could
//! `fork`+`exec` and leak the fd into a child.
//!
//! "Would block" is not an error in the reactor's eyes, but here it still
//! comes back as `Err(kind WouldBlock)`: this layer reports what the kernel
//! said, and `reactor::io` decides that `EAGAIN` means "wait for readiness".

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::addr::{Addr, RawAddr};
use super::{cvt, errno_name, errno_of};

/// `SOCK_NONBLOCK | SOCK_CLOEXEC`, the flags every connlab socket is born with.
const BORN_FLAGS: libc::c_int = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

/// The name of an address family, for narration and errors.
pub fn family_name(domain: libc::c_int) -> &'static str {
    match domain {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_UNIX => "AF_UNIX",
        _ => "AF_?",
    }
}

/// A raw address shown as the kernel would decode it (`127.0.0.1:5432`,
/// `/tmp/.s.PGSQL.5432`). Formatting happens only when it is displayed,
/// which on the success path is only when the narrator is on.
struct Shown<'a>(&'a RawAddr);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.to_addr() {
            Ok(addr) => write!(f, "{addr}"),
            Err(_) => f.write_str("(undecodable address)"),
        }
    }
}

/// How a failed call reads in a narrator line: `-1 EINPROGRESS`.
fn failed(err: &io::Error) -> String {
    format!("-1 {}", errno_name(errno_of(err).unwrap_or(0)))
}

/// `socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`: a new
/// endpoint in state CLOSE, with no address and no peer yet (Q12).
pub fn stream_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket takes three integers and returns a new fd or -1.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | BORN_FLAGS, 0) };
    let fd = cvt(
        fd,
        "socket",
        format_args!("{}, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC", family_name(domain)),
    )?;
    crate::narrate!(
        "socket({}, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC) = {fd}",
        family_name(domain)
    );
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bind(2)`: give the socket its local address (for a listener, the port
/// clients will dial; for a Unix socket, a new file on disk).
pub fn bind(fd: RawFd, addr: &RawAddr) -> io::Result<()> {
    // SAFETY: addr points to addr.len initialised bytes of a sockaddr.
    let ret = unsafe { libc::bind(fd, addr.as_ptr(), addr.len) };
    cvt(ret, "bind", format_args!("fd {fd}, {}", Shown(addr)))?;
    crate::narrate!("bind({fd}, {}) = 0", Shown(addr));
    Ok(())
}

/// `listen(2)`: the socket becomes TCP_LISTEN and gets an accept queue of
/// up to `backlog` finished handshakes (the kernel caps it at
/// `net.core.somaxconn`).
pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes two integers.
    let ret = unsafe { libc::listen(fd, backlog) };
    cvt(ret, "listen", format_args!("fd {fd}, backlog {backlog}"))?;
    crate::narrate!("listen({fd}, {backlog}) = 0");
    Ok(())
}

/// `accept4(fd, &addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC)`: take one
/// finished handshake off the accept queue as a brand-new fd (Q16). The
/// listener itself is unchanged and keeps listening.
///
/// `EAGAIN` means the queue is empty; `EMFILE`/`ENFILE` mean the
/// connection is waiting but we have no fd to give it (see
/// `net::TcpListener` for what to do then).
pub fn accept4(fd: RawFd) -> io::Result<(OwnedFd, Addr)> {
    let mut peer = RawAddr::empty();
    // SAFETY: peer.storage is writable for peer.len bytes; the kernel writes
    // at most that many and stores the real length back into peer.len.
    let ret = unsafe { libc::accept4(fd, peer.as_mut_ptr(), &mut peer.len, BORN_FLAGS) };
    let new_fd = match cvt(ret, "accept4", format_args!("fd {fd}, SOCK_NONBLOCK|SOCK_CLOEXEC")) {
        Ok(new_fd) => new_fd,
        Err(e) => {
            crate::narrate!("accept4({fd}, SOCK_NONBLOCK|SOCK_CLOEXEC) = {}", failed(&e));
            return Err(e);
        }
    };
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(new_fd) };
    crate::narrate!(
        "accept4({fd}, SOCK_NONBLOCK|SOCK_CLOEXEC) = {new_fd} (peer {})",
        Shown(&peer)
    );
    Ok((owned, peer.to_addr()?))
}

/// What a non-blocking `connect(2)` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStatus {
    /// Connected at once (a Unix socket, sometimes loopback TCP).
    Connected,
    /// `EINPROGRESS`: the SYN is sent and the handshake runs without us.
    /// Wait until the socket is writable, then ask `SO_ERROR` how it went.
    InProgress,
}

/// `connect(2)` on a non-blocking socket. For TCP it usually returns
/// `EINPROGRESS` at once: the kernel has picked a source port, filled in
/// the 4-tuple and sent the SYN (Q13), and will finish the handshake on its
/// own. That is a state, not an error, so it comes back as
/// [`ConnectStatus::InProgress`].
pub fn connect(fd: RawFd, addr: &RawAddr) -> io::Result<ConnectStatus> {
    // SAFETY: addr points to addr.len initialised bytes of a sockaddr.
    let ret = unsafe { libc::connect(fd, addr.as_ptr(), addr.len) };
    match cvt(ret, "connect", format_args!("fd {fd}, {}", Shown(addr))) {
        Ok(_) => {
            crate::narrate!("connect({fd}, {}) = 0", Shown(addr));
            Ok(ConnectStatus::Connected)
        }
        Err(e) => {
            crate::narrate!("connect({fd}, {}) = {}", Shown(addr), failed(&e));
            if errno_of(&e) == Some(libc::EINPROGRESS) {
                Ok(ConnectStatus::InProgress)
            } else {
                Err(e)
            }
        }
    }
}

/// `getsockopt(fd, SOL_SOCKET, SO_ERROR)`: read and clear the socket's
/// pending error. After a non-blocking connect turns writable, 0 means the
/// handshake finished (ESTABLISHED) and anything else is why it failed
/// (`ECONNREFUSED`, `ETIMEDOUT`, `EHOSTUNREACH`).
pub fn take_error(fd: RawFd) -> io::Result<i32> {
    let value = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR, "SOL_SOCKET, SO_ERROR")?;
    if value == 0 {
        crate::narrate!("getsockopt({fd}, SO_ERROR) = 0 → ESTABLISHED");
    } else {
        crate::narrate!("getsockopt({fd}, SO_ERROR) = {}", errno_name(value));
    }
    Ok(value)
}

/// `getsockopt(fd, level, name)` for the many options whose value is one C
/// `int` (`SO_ERROR`, `SO_TYPE`, `SO_RCVBUF`, `TCP_NODELAY`, ...). `what`
/// names the option in the error. It does not narrate: each caller says
/// what its value means (an errno, a family, a byte count, on/off).
pub(crate) fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value is a writable c_int and len says so; the kernel writes
    // at most len bytes and updates len.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    cvt(ret, "getsockopt", format_args!("fd {fd}, {what}"))?;
    Ok(value)
}

/// Set an integer socket option that is either on or off.
fn set_flag(fd: RawFd, level: libc::c_int, name: libc::c_int, on: bool, shown: &'static str) -> io::Result<()> {
    set_int(fd, level, name, on.into(), shown)
}

/// Set an integer socket option.
fn set_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    shown: &'static str,
) -> io::Result<()> {
    // SAFETY: value is a readable c_int and the length says so.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(ret, "setsockopt", format_args!("fd {fd}, {shown}, {value}"))?;
    crate::narrate!("setsockopt({fd}, {shown}, {value}) = 0");
    Ok(())
}

/// `setsockopt(TCP_MAXSEG)`: cap the segment size this socket sends and
/// announces (`tcp(7)`). Set on a listener before `listen`, the accepted
/// sockets inherit it; loopback experiments use it to send Ethernet-sized
/// 1,460-byte segments instead of loopback's 32 KiB ones.
pub fn set_maxseg(fd: RawFd, bytes: u16) -> io::Result<()> {
    set_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_MAXSEG,
        libc::c_int::from(bytes),
        "IPPROTO_TCP, TCP_MAXSEG",
    )
}

/// `setsockopt(TCP_CONGESTION)`: choose this socket's congestion control
/// by name (`"cubic"`, `"bbr"`, `"reno"`; see
/// `/proc/sys/net/ipv4/tcp_available_congestion_control`). Set on a
/// listener, the accepted sockets inherit it.
pub fn set_congestion_control(fd: RawFd, name: &str) -> io::Result<()> {
    // SAFETY: name points to name.len() readable bytes; the kernel copies
    // at most that many (it needs no NUL terminator).
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr() as *const libc::c_void,
            name.len() as libc::socklen_t,
        )
    };
    cvt(
        ret,
        "setsockopt",
        format_args!("fd {fd}, IPPROTO_TCP, TCP_CONGESTION, {name:?}"),
    )?;
    crate::narrate!("setsockopt({fd}, IPPROTO_TCP, TCP_CONGESTION, {name:?}) = 0");
    Ok(())
}

/// `setsockopt(SO_KEEPALIVE)`: let the kernel probe an idle connection and
/// reset it when the peer stops answering (`socket(7)`); the timing comes
/// from the three `TCP_KEEP*` options below or the `net.ipv4.tcp_keepalive_*`
/// sysctls (`tcp(7)`).
pub fn set_keepalive(fd: RawFd, on: bool) -> io::Result<()> {
    set_flag(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, on, "SOL_SOCKET, SO_KEEPALIVE")
}

/// `setsockopt(TCP_KEEPIDLE)`: seconds of silence before the first probe
/// (1 to 32767, else `EINVAL`).
pub fn set_keepalive_idle(fd: RawFd, seconds: libc::c_int) -> io::Result<()> {
    set_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPIDLE,
        seconds,
        "IPPROTO_TCP, TCP_KEEPIDLE",
    )
}

/// `setsockopt(TCP_KEEPINTVL)`: seconds between probes (1 to 32767).
pub fn set_keepalive_interval(fd: RawFd, seconds: libc::c_int) -> io::Result<()> {
    set_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        seconds,
        "IPPROTO_TCP, TCP_KEEPINTVL",
    )
}

/// `setsockopt(TCP_KEEPCNT)`: unanswered probes before the reset (1 to 127).
pub fn set_keepalive_count(fd: RawFd, probes: libc::c_int) -> io::Result<()> {
    set_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPCNT,
        probes,
        "IPPROTO_TCP, TCP_KEEPCNT",
    )
}

/// `setsockopt(TCP_NODELAY)`: send small writes at once instead of letting
/// Nagle's algorithm hold them back until the previous segment is acked
/// (`tcp(7)`). Request/response protocols such as PostgreSQL's want it on.
pub fn set_nodelay(fd: RawFd, on: bool) -> io::Result<()> {
    set_flag(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on, "IPPROTO_TCP, TCP_NODELAY")
}

/// Read `TCP_NODELAY` back.
pub fn nodelay(fd: RawFd) -> io::Result<bool> {
    let on = getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, "IPPROTO_TCP, TCP_NODELAY")? != 0;
    crate::narrate!(
        "getsockopt({fd}, IPPROTO_TCP, TCP_NODELAY) = 0 [{}]",
        if on { "on" } else { "off" }
    );
    Ok(on)
}

/// `setsockopt(SO_REUSEADDR)`: let a listener bind a port that still has
/// connections in TIME_WAIT from a previous run (`socket(7)`). Without it,
/// restarting a server right after stopping it fails with `EADDRINUSE`.
pub fn set_reuseaddr(fd: RawFd, on: bool) -> io::Result<()> {
    set_flag(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, on, "SOL_SOCKET, SO_REUSEADDR")
}

/// `setsockopt(SO_REUSEPORT)`: let several sockets bind the same address
/// and port, each with its own accept queue; the kernel hashes each new
/// connection's 4-tuple to one of them (`socket(7)`). Set before `bind`.
pub fn set_reuseport(fd: RawFd, on: bool) -> io::Result<()> {
    set_flag(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, on, "SOL_SOCKET, SO_REUSEPORT")
}

/// Which half (or both) of a connection to shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `SHUT_RD`: we will read no more.
    Read,
    /// `SHUT_WR`: send FIN; the peer reads EOF, and may still answer us.
    Write,
    /// `SHUT_RDWR`: both.
    Both,
}

/// `shutdown(2)`. Unlike `close`, it acts on the connection, not on this
/// fd: `SHUT_WR` sends a FIN even if other fds still refer to the socket,
/// and the read side stays open for the reply (a half-close).
pub fn shutdown(fd: RawFd, how: Shutdown) -> io::Result<()> {
    let (raw, shown) = match how {
        Shutdown::Read => (libc::SHUT_RD, "SHUT_RD"),
        Shutdown::Write => (libc::SHUT_WR, "SHUT_WR"),
        Shutdown::Both => (libc::SHUT_RDWR, "SHUT_RDWR"),
    };
    // SAFETY: shutdown takes two integers.
    let ret = unsafe { libc::shutdown(fd, raw) };
    cvt(ret, "shutdown", format_args!("fd {fd}, {shown}"))?;
    crate::narrate!("shutdown({fd}, {shown}) = 0");
    Ok(())
}

/// `read(2)`: copy up to `buf.len()` bytes out of the socket's receive
/// queue. `Ok(0)` is end of file (the peer sent FIN); `EAGAIN` (kind
/// `WouldBlock`) means the queue is empty right now.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is writable for buf.len() bytes.
    let ret = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    match cvt(ret, "read", format_args!("fd {fd}, {} bytes", buf.len())) {
        Ok(n) => {
            crate::narrate!("read({fd}, {}) = {n}", buf.len());
            Ok(n as usize)
        }
        Err(e) => {
            crate::narrate!("read({fd}, {}) = {}", buf.len(), failed(&e));
            Err(e)
        }
    }
}

/// `send(fd, buf, len, MSG_NOSIGNAL)`: copy bytes into the socket's send
/// buffer; may take fewer than offered (a partial write) when the buffer is
/// nearly full, and fails with `EAGAIN` when it is full.
///
/// Why `send` and not `write(2)`: writing to a connection the peer has
/// reset raises `SIGPIPE`, whose default action kills the process. Rust
/// binaries ignore SIGPIPE at startup, but a library must not rely on its
/// host doing so; `MSG_NOSIGNAL` turns it into a plain `EPIPE` for this one
/// call.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is readable for buf.len() bytes.
    let ret = unsafe { libc::send(fd, buf.as_ptr() as *const libc::c_void, buf.len(), libc::MSG_NOSIGNAL) };
    match cvt(ret, "send", format_args!("fd {fd}, {} bytes", buf.len())) {
        Ok(n) => {
            crate::narrate!("send({fd}, {}, MSG_NOSIGNAL) = {n}", buf.len());
            Ok(n as usize)
        }
        Err(e) => {
            crate::narrate!("send({fd}, {}, MSG_NOSIGNAL) = {}", buf.len(), failed(&e));
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn sockets_are_born_nonblocking_and_cloexec() {
        let fd = stream_socket(libc::AF_INET).unwrap();
        assert!(crate::sys::fd::is_nonblocking(fd.as_raw_fd()).unwrap());
        assert!(crate::sys::fd::is_cloexec(fd.as_raw_fd()).unwrap());
    }

    #[test]
    fn read_on_an_empty_socket_would_block_and_names_the_call() {
        let listener = stream_socket(libc::AF_INET).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        bind(listener.as_raw_fd(), &RawAddr::from_socket_addr(&any)).unwrap();
        listen(listener.as_raw_fd(), 1).unwrap();
        let err = accept4(listener.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().starts_with("accept4(fd "), "{err}");
    }

    #[test]
    fn nodelay_round_trips() {
        let fd = stream_socket(libc::AF_INET).unwrap();
        set_nodelay(fd.as_raw_fd(), true).unwrap();
        assert!(nodelay(fd.as_raw_fd()).unwrap());
        set_nodelay(fd.as_raw_fd(), false).unwrap();
        assert!(!nodelay(fd.as_raw_fd()).unwrap());
    }
}

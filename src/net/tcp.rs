//! TCP over the reactor: [`TcpStream`] (connect, read, write, half-close)
//! and [`TcpListener`] (bind, listen, accept). See `tcp(7)`, `connect(2)`,
//! `accept4(2)`.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};
use std::time::Duration;

use super::accept::Acceptor;
use super::conn::{inet, StreamSocket};
use crate::reactor;
use crate::sys::addr::{self, RawAddr};
use crate::sys::socket::{self, ConnectStatus};

fn domain_of(addr: &SocketAddr) -> libc::c_int {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// A connected TCP socket on the reactor.
///
/// Methods take `&self`, so one task may read while another writes. One
/// task at a time per direction: a second reader waiting on the same stream
/// displaces the first (which is woken and retries), rather than both
/// being served.
pub struct TcpStream {
    conn: StreamSocket,
}

impl TcpStream {
    /// Open a connection, step by step (Q12, Q13):
    ///
    /// 1. `socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)`;
    /// 2. `connect` returns `EINPROGRESS` at once: the SYN is on its way;
    /// 3. wait until the socket is *writable*, which the kernel reports
    ///    when the handshake ends, however it ends;
    /// 4. `getsockopt(SO_ERROR)`: 0 means ESTABLISHED; otherwise it is the
    ///    reason (`ECONNREFUSED`: a RST came back; `ETIMEDOUT`: the kernel
    ///    gave up after its SYN retries, about two minutes).
    ///
    /// To bound step 3 by your own deadline, use [`TcpStream::connect_timeout`].
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        // ANCHOR: connect
        let fd = socket::stream_socket(domain_of(&addr))?;
        let status = socket::connect(fd.as_raw_fd(), &RawAddr::from_socket_addr(&addr))?;
        let stream = TcpStream {
            conn: StreamSocket::new(fd),
        };
        if status == ConnectStatus::InProgress {
            stream.conn.finish_connect(&addr).await?;
        }
        Ok(stream)
        // ANCHOR_END: connect
    }

    /// [`TcpStream::connect`], given up after `timeout`. The deadline is a
    /// reactor timer racing the writable event; when it wins, the socket is
    /// closed (which abandons the handshake) and the error is `TimedOut`.
    /// Without it, a SYN into a black hole or a full accept queue waits for
    /// the kernel's retries (`net.ipv4.tcp_syn_retries`: about 131 s by default on Linux 6.5+, see `examples/kernel_lab.rs`).
    /// A `timeout` too large for an `Instant` (`Duration::MAX`) saturates to
    /// [`FAR_FUTURE`](crate::poller::FAR_FUTURE), never panics.
    pub async fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        match reactor::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(result) => result,
            Err(elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect({addr}): no answer {elapsed} (a reactor timer, not the kernel's SYN retries)"),
            )),
        }
    }

    /// Read some bytes; `Ok(0)` means the peer closed its side (EOF).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read(buf).await
    }

    /// Read exactly `buf.len()` bytes; EOF before that is an
    /// `UnexpectedEof` error saying how many bytes did arrive.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        self.conn.read_exact(buf).await
    }

    /// Write some bytes; may write fewer than offered (a partial write).
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write(buf).await
    }

    /// Write all of `buf`, waiting for room in the send buffer as needed.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.conn.write_all(buf).await
    }

    /// The poll form of [`TcpStream::read`], for hand-written futures.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.conn.poll_read(cx, buf)
    }

    /// The poll form of [`TcpStream::write`].
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.conn.poll_write(cx, buf)
    }

    /// `shutdown(SHUT_WR)`: send FIN. The peer reads EOF; we can still read
    /// its reply (a half-close).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.conn.shutdown_write()
    }

    /// Turn Nagle's algorithm off (`true`) or on; see `tcp(7)`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        socket::set_nodelay(self.conn.fd(), on)
    }

    /// Whether `TCP_NODELAY` is on.
    pub fn nodelay(&self) -> io::Result<bool> {
        socket::nodelay(self.conn.fd())
    }

    /// Our end of the 4-tuple (`getsockname`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        inet(self.conn.local_addr()?)
    }

    /// Their end of the 4-tuple (`getpeername`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        inet(self.conn.peer_addr()?)
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.conn.fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.conn.fd())
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

/// A listening TCP socket.
pub struct TcpListener {
    acceptor: Acceptor,
}

impl TcpListener {
    /// `socket` → `setsockopt(SO_REUSEADDR)` → `bind` → `listen(backlog)`.
    /// Synchronous: none of these wait for the network. Bind port 0 for a
    /// free port and read it back with [`TcpListener::local_addr`].
    ///
    /// The backlog caps the accept queue of finished handshakes (Q14); the
    /// kernel also caps it at `net.core.somaxconn`.
    pub fn bind(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
        Ok(TcpListener::from_fd(TcpListener::listen_fd(addr, backlog, false)?))
    }

    /// The listening socket [`TcpListener::bind`] makes, as a bare fd that
    /// may be sent to another thread (a `TcpListener` belongs to the
    /// thread whose reactor first uses it). With `reuseport`,
    /// `SO_REUSEPORT` is set before `bind`, so several such sockets (one per
    /// reactor thread) can listen on one port, each with its own accept
    /// queue. For one listener shared by several threads instead, bind once
    /// and hand each thread a duplicate (`OwnedFd::try_clone`, a `dup`).
    pub fn listen_fd(addr: SocketAddr, backlog: i32, reuseport: bool) -> io::Result<OwnedFd> {
        let fd = socket::stream_socket(domain_of(&addr))?;
        socket::set_reuseaddr(fd.as_raw_fd(), true)?;
        if reuseport {
            socket::set_reuseport(fd.as_raw_fd(), true)?;
        }
        socket::bind(fd.as_raw_fd(), &RawAddr::from_socket_addr(&addr))?;
        socket::listen(fd.as_raw_fd(), backlog)?;
        Ok(fd)
    }

    /// Wrap a listening fd from [`TcpListener::listen_fd`] (any non-blocking
    /// listening TCP socket will do: a blocking one would stall the reactor
    /// in `accept4`).
    pub fn from_fd(fd: OwnedFd) -> TcpListener {
        TcpListener {
            acceptor: Acceptor::new(fd),
        }
    }

    /// [`TcpListener::from_fd`] for a listener that other reactor threads
    /// also watch: registered with `EPOLLEXCLUSIVE`, so a connection wakes
    /// one thread, not all (see `Registration::new_exclusive`). Needs epoll
    /// in edge mode; accepting on any other reactor fails with an error.
    pub fn from_fd_exclusive(fd: OwnedFd) -> TcpListener {
        TcpListener {
            acceptor: Acceptor::exclusive(fd),
        }
    }

    /// Take the next connection off the accept queue, waiting if it is
    /// empty. EMFILE does not come back as an error: see the module
    /// `net::accept` and [`TcpListener::shed_count`].
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The poll form of [`TcpListener::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.acceptor.poll_accept(cx) {
            Poll::Ready(Ok((fd, peer))) => Poll::Ready(inet(peer).map(|peer| {
                (
                    TcpStream {
                        conn: StreamSocket::new(fd),
                    },
                    peer,
                )
            })),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The address we listen on (with the real port if we bound port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        inet(addr::getsockname(self.acceptor.reg.as_raw_fd())?)
    }

    /// How many queued connections were accepted and closed at once
    /// because the process was out of fds (EMFILE/ENFILE).
    pub fn shed_count(&self) -> u64 {
        self.acceptor.shed_count()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.acceptor.reg.as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

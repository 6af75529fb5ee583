//! Unix-domain stream sockets over the reactor: [`UnixStream`] and
//! [`UnixListener`]; see `unix(7)`. PostgreSQL listens on one
//! (`/var/run/postgresql/.s.PGSQL.5432`): same stream semantics as TCP, no
//! handshake, no ports, no TCP state machine, and the "address" is a file.
//!
//! One difference worth knowing: a non-blocking `connect` to a Unix
//! listener whose backlog is full fails with `EAGAIN` instead of returning
//! `EINPROGRESS` (there is no handshake to wait for), and no readiness event
//! announces room later. We report it as an error naming the cause.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::task::{Context, Poll};

use super::accept::Acceptor;
use super::conn::StreamSocket;
use crate::sys::addr::{self, Addr, RawAddr};
use crate::sys::errno_of;
use crate::sys::socket::{self, ConnectStatus};

/// A connected Unix stream socket on the reactor. Same methods, and same
/// one-reader-one-writer rule, as [`super::TcpStream`].
pub struct UnixStream {
    conn: StreamSocket,
}

impl UnixStream {
    /// `socket(AF_UNIX, ...)` → `connect(path)`; usually done at once.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let raw = RawAddr::from_unix_path(path)?;
        let fd = socket::stream_socket(libc::AF_UNIX)?;
        let status = match socket::connect(fd.as_raw_fd(), &raw) {
            Ok(status) => status,
            Err(e) if errno_of(&e) == Some(libc::EAGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "connect({}): EAGAIN: the listener's backlog is full (unix(7))",
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        let stream = UnixStream {
            conn: StreamSocket::new(fd),
        };
        if status == ConnectStatus::InProgress {
            stream.conn.finish_connect(&path.display()).await?;
        }
        Ok(stream)
    }

    /// Read some bytes; `Ok(0)` means the peer closed its side (EOF).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read(buf).await
    }

    /// Read exactly `buf.len()` bytes, or fail with `UnexpectedEof`.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        self.conn.read_exact(buf).await
    }

    /// Write some bytes; may write fewer than offered.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write(buf).await
    }

    /// Write all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.conn.write_all(buf).await
    }

    /// The poll form of [`UnixStream::read`].
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.conn.poll_read(cx, buf)
    }

    /// The poll form of [`UnixStream::write`].
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.conn.poll_write(cx, buf)
    }

    /// `shutdown(SHUT_WR)`: the peer reads EOF; we can still read.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.conn.shutdown_write()
    }

    /// Our address (usually unnamed for a client).
    pub fn local_addr(&self) -> io::Result<Addr> {
        self.conn.local_addr()
    }

    /// The listener's path.
    pub fn peer_addr(&self) -> io::Result<Addr> {
        self.conn.peer_addr()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.conn.fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.conn.fd())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

/// A listening Unix stream socket. Binding creates the socket file; it is
/// not removed on drop (as with std), so delete it yourself when done.
pub struct UnixListener {
    acceptor: Acceptor,
}

impl UnixListener {
    /// `socket(AF_UNIX)` → `bind(path)` → `listen(backlog)`.
    pub fn bind(path: impl AsRef<Path>, backlog: i32) -> io::Result<UnixListener> {
        let raw = RawAddr::from_unix_path(path.as_ref())?;
        let fd = socket::stream_socket(libc::AF_UNIX)?;
        socket::bind(fd.as_raw_fd(), &raw)?;
        socket::listen(fd.as_raw_fd(), backlog)?;
        Ok(UnixListener {
            acceptor: Acceptor::new(fd),
        })
    }

    /// Take the next connection, waiting if none is queued.
    pub async fn accept(&self) -> io::Result<(UnixStream, Addr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The poll form of [`UnixListener::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, Addr)>> {
        match self.acceptor.poll_accept(cx) {
            Poll::Ready(Ok((fd, peer))) => Poll::Ready(Ok((
                UnixStream {
                    conn: StreamSocket::new(fd),
                },
                peer,
            ))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The path we listen on.
    pub fn local_addr(&self) -> io::Result<Addr> {
        addr::getsockname(self.acceptor.reg.as_raw_fd())
    }

    /// Connections shed because the process was out of fds.
    pub fn shed_count(&self) -> u64 {
        self.acceptor.shed_count()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.acceptor.reg.as_raw_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

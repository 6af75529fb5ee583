//! [`Stream`]: a TCP or Unix connection behind one type, for code (the
//! PostgreSQL client) that speaks the same protocol over either.
//!
//! An enum rather than a trait object: two known cases, no allocation, and
//! `match` shows the reader exactly where the two differ (only in connect
//! and in `TCP_NODELAY`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{TcpStream, UnixStream};
use crate::reactor;
use crate::sys::addr::Addr;

/// A connected stream socket, TCP or Unix.
#[derive(Debug)]
pub enum Stream {
    /// Over TCP/IP.
    Tcp(TcpStream),
    /// Over a Unix-domain socket.
    Unix(UnixStream),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
        }
    };
}

impl Stream {
    /// Connect to `addr`: TCP for an IP address, Unix for a path.
    pub async fn connect(addr: &Addr) -> io::Result<Stream> {
        match addr {
            Addr::Inet(sa) => Ok(Stream::Tcp(TcpStream::connect(*sa).await?)),
            Addr::Unix(Some(path)) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            Addr::Unix(None) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot connect to an unnamed Unix socket",
            )),
        }
    }

    /// [`Stream::connect`] bounded by `timeout` (a reactor timer).
    pub async fn connect_timeout(addr: &Addr, timeout: Duration) -> io::Result<Stream> {
        match addr {
            Addr::Inet(sa) => Ok(Stream::Tcp(TcpStream::connect_timeout(*sa, timeout).await?)),
            other => match reactor::timeout(timeout, Stream::connect(other)).await {
                Ok(result) => result,
                Err(elapsed) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect({other}): no answer {elapsed}"),
                )),
            },
        }
    }

    /// Connect over TCP.
    pub async fn connect_tcp(addr: SocketAddr) -> io::Result<Stream> {
        Ok(Stream::Tcp(TcpStream::connect(addr).await?))
    }

    /// Connect to a Unix socket path.
    pub async fn connect_unix(path: impl AsRef<Path>) -> io::Result<Stream> {
        Ok(Stream::Unix(UnixStream::connect(path).await?))
    }

    /// Read some bytes; `Ok(0)` is EOF.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => s.read(buf).await)
    }

    /// Read exactly `buf.len()` bytes, or fail with `UnexpectedEof`.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        each!(self, s => s.read_exact(buf).await)
    }

    /// Write some bytes.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.write(buf).await)
    }

    /// Write all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        each!(self, s => s.write_all(buf).await)
    }

    /// The poll form of [`Stream::read`].
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_read(cx, buf))
    }

    /// The poll form of [`Stream::write`].
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    /// `shutdown(SHUT_WR)`.
    pub fn shutdown_write(&self) -> io::Result<()> {
        each!(self, s => s.shutdown_write())
    }

    /// Set `TCP_NODELAY` on a TCP stream; a no-op for Unix sockets, which
    /// have no Nagle algorithm.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(on),
            Stream::Unix(_) => Ok(()),
        }
    }

    /// Our address.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Addr::Inet),
            Stream::Unix(s) => s.local_addr(),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Inet),
            Stream::Unix(s) => s.peer_addr(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        each!(self, s => s.as_raw_fd())
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Stream {
        Stream::Unix(s)
    }
}

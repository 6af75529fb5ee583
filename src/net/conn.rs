//! What every connected stream socket does, TCP or Unix: read, write,
//! half-close. `TcpStream` and `UnixStream` are thin wrappers over this.
//!
//! The type is [`StreamSocket`], not `Conn`: "connection" in this crate
//! means the whole stack (a `pg::Connection`, a pool's slot); this is only
//! the socket at the bottom of one.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use crate::reactor::{Direction, Registration};
use crate::sys::addr::{self, Addr};
use crate::sys::socket::{self, Shutdown};

pub(crate) struct StreamSocket {
    pub(crate) reg: Registration,
}

impl StreamSocket {
    pub(crate) fn new(fd: OwnedFd) -> StreamSocket {
        StreamSocket {
            reg: Registration::new(fd),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.reg.as_raw_fd()
    }

    /// The non-blocking connect's second half: wait until writable, then
    /// ask `SO_ERROR` whether the handshake succeeded (the checklist in
    /// `connect(2)`, section EINPROGRESS).
    pub(crate) async fn finish_connect(&self, target: &dyn std::fmt::Display) -> io::Result<()> {
        // ANCHOR: finish_connect
        // Writability must come from the kernel, not from the optimistic
        // "assume ready" every new registration starts with.
        self.reg.clear_ready(Direction::Write)?;
        self.reg.writable().await?;
        match socket::take_error(self.fd())? {
            0 => Ok(()),
            errno => Err(crate::sys::error_from_errno(
                "connect",
                format_args!("fd {}, {target}", self.fd()),
                errno,
            )),
        }
        // ANCHOR_END: finish_connect
    }

    pub(crate) fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // ANCHOR: short_read
        let wanted = buf.len();
        let result = self.reg.poll_io(cx, Direction::Read, |fd| socket::read(fd, buf));
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 && n < wanted {
                self.reg.note_short_read();
            }
        }
        result
        // ANCHOR_END: short_read
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.reg.poll_io(cx, Direction::Write, |fd| socket::write(fd, buf))
    }

    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub(crate) async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "fd {}: peer closed the connection after {filled} of {} bytes",
                        self.fd(),
                        buf.len()
                    ),
                ));
            }
            filled += n;
        }
        Ok(())
    }

    pub(crate) async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("fd {}: send accepted 0 bytes", self.fd()),
                ));
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        socket::shutdown(self.fd(), Shutdown::Write)
    }

    pub(crate) fn local_addr(&self) -> io::Result<Addr> {
        addr::getsockname(self.fd())
    }

    pub(crate) fn peer_addr(&self) -> io::Result<Addr> {
        addr::getpeername(self.fd())
    }
}

/// `Addr` → `SocketAddr` for TCP sockets, whose addresses are always inet.
pub(crate) fn inet(addr: Addr) -> io::Result<std::net::SocketAddr> {
    match addr {
        Addr::Inet(sa) => Ok(sa),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected an IP address, the kernel reported {other}"),
        )),
    }
}

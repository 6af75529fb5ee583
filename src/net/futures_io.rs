//! The `futures-io` traits, `AsyncRead` and `AsyncWrite`, on our streams,
//! so that code written against them (codecs, framed readers, TLS
//! wrappers, `futures::io::copy`) runs on connlab's sockets and reactor.
//!
//! These are the runtime-neutral pair that smol and async-std use (tokio
//! has its own, `tokio::io::AsyncRead`, with a different buffer type; a
//! `tokio-util` compat layer bridges the two). The `futures-io` crate is
//! the traits alone, with no code and no dependencies, which is why it is
//! the one async I/O crate the library takes.
//!
//! Each method is the stream's own poll method, unchanged: one `read(2)` or
//! `send(2)` tried at once, a readiness wait on `EAGAIN`. Two traits'
//! methods need a word:
//!
//! - `poll_flush` is ready at once: a stream keeps no bytes in user space
//!   (each write is a `send(2)`, and what the kernel accepted is on its way),
//!   so there is nothing to flush.
//! - `poll_close` is `shutdown(SHUT_WR)`, a half-close: the peer reads EOF
//!   and may still answer, and the fd itself is closed on drop, as for
//!   `std::net::TcpStream`.
//!
//! As with std's `Read for &TcpStream`, the traits are implemented for
//! shared references too, since reading and writing need only `&self`:
//! one task may read while another writes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::{Stream, TcpStream, UnixStream};

macro_rules! futures_io_for {
    ($($t:ty),*) => {$(
        impl AsyncRead for $t {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                (*self).poll_read(cx, buf)
            }
        }

        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                (*self).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready((*self).shutdown_write())
            }
        }
    )*};
}

futures_io_for!(TcpStream, &TcpStream, UnixStream, &UnixStream, Stream, &Stream);

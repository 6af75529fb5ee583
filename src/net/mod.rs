//! `net`: non-blocking TCP and Unix stream sockets on the reactor.
//!
//! Each operation is a syscall tried at once, and a readiness wait only
//! when the kernel says `EAGAIN`:
//!
//! | operation | syscalls | waits for | file |
//! |---|---|---|---|
//! | [`TcpStream::connect`] | `socket`, `connect` → `EINPROGRESS`, `getsockopt(SO_ERROR)` | writable | `tcp.rs`, `conn.rs` |
//! | [`TcpListener::bind`] | `socket`, `setsockopt(SO_REUSEADDR)`, `bind`, `listen` | (nothing) | `tcp.rs` |
//! | [`TcpListener::accept`] | `accept4(SOCK_NONBLOCK\|SOCK_CLOEXEC)` until `EAGAIN`; EMFILE handling | readable | `accept.rs` |
//! | `read` | `read` until a short read or `EAGAIN` | readable | `conn.rs` |
//! | `write` / `write_all` | `send(MSG_NOSIGNAL)`, partial writes resumed | writable, only while bytes are pending | `conn.rs` |
//! | `shutdown_write` | `shutdown(SHUT_WR)` | (nothing) | `conn.rs` |
//!
//! Errors are per connection: a reset (`ECONNRESET`) or an EOF in the
//! middle of a message ([`TcpStream::read_exact`]) fails that stream's
//! future and nothing else. The raw calls live in [`crate::sys::socket`];
//! the readiness rules in [`crate::reactor`].

mod accept;
mod conn;
pub mod delay;
pub mod echo;
mod stream;
mod tcp;
mod threads;
mod unix;

pub use stream::Stream;
pub use tcp::{TcpListener, TcpStream};
pub use threads::{ListenerKind, ReactorThreads, Stop};
pub use unix::{UnixListener, UnixStream};

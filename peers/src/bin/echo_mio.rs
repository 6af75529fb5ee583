//! An echo server on mio, the way mio's own examples write one: one `Poll`,
//! edge-triggered registrations (mio has no other kind), read until
//! `WouldBlock`, write back, buffer what the socket would not take and ask
//! for `WRITABLE` only while something is pending.
//!
//! Run by `echo_bench`; on its own:
//! `cargo run --release -p connlab-peers --bin echo_mio` prints
//! `LISTENING 127.0.0.1:<port>` and echoes until killed.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use connlab_peers::common::{self, Args};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// Events per `epoll_wait`; the same figure the connlab server uses.
const EVENTS_CAPACITY: usize = 1024;
/// One read buffer for everyone: a 64-byte echo never needs more.
const READ_BUF: usize = 16 * 1024;

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back.
    pending: Vec<u8>,
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("echo_mio.rs"));
    let addr = args.listen_addr(0);
    args.finish();
    common::exit("echo_mio", run(addr))
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    connlab_peers::announce(listener.local_addr()?);

    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(&mut stream, Token(slot), Interest::READABLE)?;
                            conns[slot] = Some(Conn {
                                stream,
                                pending: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let slot = event.token().0;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let done = serve(&poll, slot, conn, &mut buf).unwrap_or(true);
            if done {
                if let Some(mut conn) = conns[slot].take() {
                    // Deregistering a socket we are about to close cannot matter.
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
                free.push(slot);
            }
        }
    }
}

/// Drain the socket, echo what came, and keep WRITABLE interest only while
/// bytes are pending. Returns `Ok(true)` when the connection is finished.
fn serve(poll: &Poll, slot: usize, conn: &mut Conn, buf: &mut [u8]) -> io::Result<bool> {
    let had_pending = !conn.pending.is_empty();
    if had_pending && !flush(conn)? {
        return Ok(false);
    }
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                conn.pending.extend_from_slice(&buf[..n]);
                if !flush(conn)? {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let has_pending = !conn.pending.is_empty();
    if has_pending != had_pending {
        let interest = if has_pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry().reregister(&mut conn.stream, Token(slot), interest)?;
    }
    Ok(false)
}

/// Write pending bytes; `Ok(true)` when all are gone.
fn flush(conn: &mut Conn) -> io::Result<bool> {
    while !conn.pending.is_empty() {
        match conn.stream.write(&conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

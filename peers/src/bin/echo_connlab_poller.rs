//! The mio echo server (`echo_mio.rs`) rewritten line for line on
//! connlab's `poller` layer instead of mio: same buffers, same
//! read-until-`WouldBlock`, same WRITABLE-only-while-pending rule, std
//! sockets in non-blocking mode. No reactor, no tasks, no wakers.
//!
//! It is in the echo comparison as a control: beside `echo_mio` it shows
//! whether connlab's poller costs anything over mio's, and beside
//! `echo_connlab` it shows what connlab's reactor and executor add on top.
//!
//! Run by `echo_bench`; on its own:
//! `cargo run --release -p connlab-peers --bin echo_connlab_poller -- [--backend epoll|poll|select] [--mode edge|level]`
//! prints `LISTENING 127.0.0.1:<port>` and echoes until killed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use connlab::poller::{Backend, Events, Interest, Mode, Poller, Token};
use connlab_peers::common::{self, Args, ModeArg};

const LISTENER: Token = Token(usize::MAX);
/// Events per wait; the same figure the mio server uses.
const EVENTS_CAPACITY: usize = 1024;
/// One read buffer for everyone: a 64-byte echo never needs more.
const READ_BUF: usize = 16 * 1024;

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back.
    pending: Vec<u8>,
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("echo_connlab_poller.rs"));
    let addr = args.listen_addr(0);
    let backend = args.backend();
    let mode = args.opt::<ModeArg>("--mode M", "edge or level (default: edge on epoll, level elsewhere)");
    args.check(
        !matches!(mode, Some(ModeArg(Mode::OneShot))),
        "--mode oneshot: this server never re-arms a registration; use edge or level",
    );
    args.finish();
    let mode = match mode {
        Some(ModeArg(mode)) => mode,
        None if backend == Backend::Epoll => Mode::Edge,
        None => Mode::Level,
    };
    common::exit("echo_connlab_poller", run(addr, backend, mode))
}

fn run(addr: SocketAddr, backend: Backend, mode: Mode) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let mut poller = backend.open()?;
    poller.add(listener.as_raw_fd(), LISTENER, Interest::READABLE, mode)?;
    connlab_peers::announce(listener.local_addr()?);

    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        poller.wait(&mut events, None)?;
        for event in events.iter() {
            if event.token == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(true)?;
                            stream.set_nodelay(true)?;
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poller.add(stream.as_raw_fd(), Token(slot), Interest::READABLE, mode)?;
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
            let slot = event.token.0;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let done = serve(poller.as_mut(), mode, slot, conn, &mut buf).unwrap_or(true);
            if done {
                if let Some(conn) = conns[slot].take() {
                    // Deleting a socket we are about to close cannot matter.
                    let _ = poller.delete(conn.stream.as_raw_fd());
                }
                free.push(slot);
            }
        }
    }
}

/// Drain the socket, echo what came, and keep WRITABLE interest only while
/// bytes are pending. Returns `Ok(true)` when the connection is finished.
fn serve(poller: &mut dyn Poller, mode: Mode, slot: usize, conn: &mut Conn, buf: &mut [u8]) -> io::Result<bool> {
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
            Interest::BOTH
        } else {
            Interest::READABLE
        };
        poller.modify(conn.stream.as_raw_fd(), Token(slot), interest, mode)?;
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

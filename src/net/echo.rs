//! An echo server as a library function, so the `echo_server` example,
//! the tests and the peer comparison (`peers/`, against mio and tokio) all
//! run the very same code.
//!
//! One task per connection: read up to 64 KiB, write it all back, repeat
//! until EOF. The accepting task spawns them. A reset or an error on one
//! connection ends that task only; the server counts it and goes on.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use super::{TcpListener, TcpStream};
use crate::reactor::{self, JoinHandle};

/// How the server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoOptions {
    /// Stop accepting after this many connections, then return once they
    /// have all closed (`None`: serve until `stop`). Makes runs finite.
    pub max_conns: Option<u64>,
    /// Bytes read per `read` call.
    pub buffer_size: usize,
    /// Set `TCP_NODELAY` on accepted connections.
    pub nodelay: bool,
}

/// The read buffer size: a 64 KiB `read` drains a loopback socket's
/// typical queue in one call.
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;

impl Default for EchoOptions {
    fn default() -> EchoOptions {
        EchoOptions {
            max_conns: None,
            buffer_size: DEFAULT_BUFFER_SIZE,
            nodelay: true,
        }
    }
}

/// What the server did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoReport {
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes echoed back, all connections together.
    pub bytes_echoed: u64,
    /// Connections that ended with an error (reset, ...) instead of EOF.
    pub failed: u64,
    /// Connections shed at accept because the process was out of fds.
    pub shed: u64,
}

#[derive(Default)]
struct Tally {
    bytes: Cell<u64>,
    failed: Cell<u64>,
}

/// Echo every connection on `listener` until `stop` completes (or, with
/// `max_conns`, until that many connections have come and gone).
pub async fn serve(
    listener: TcpListener,
    options: EchoOptions,
    stop: impl Future<Output = ()>,
) -> io::Result<EchoReport> {
    let tally = Rc::new(Tally::default());
    let mut stop = pin!(stop);
    let mut accepted = 0u64;
    // Kept only in bounded mode, to wait for the last connections.
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    while options.max_conns.map_or(true, |max| accepted < max) {
        let next = poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        let Some(result) = next else {
            break;
        };
        let (stream, peer) = result?;
        accepted += 1;
        let task = reactor::spawn(echo_connection(stream, peer, options, tally.clone()));
        if options.max_conns.is_some() {
            handles.push(task);
        }
    }
    for handle in handles {
        handle.await;
    }
    Ok(EchoReport {
        accepted,
        bytes_echoed: tally.bytes.get(),
        failed: tally.failed.get(),
        shed: listener.shed_count(),
    })
}

async fn echo_connection(stream: TcpStream, peer: SocketAddr, options: EchoOptions, tally: Rc<Tally>) {
    if options.nodelay {
        // Only latency is at stake if this fails, so the echo goes on.
        let _ = stream.set_nodelay(true);
    }
    let mut buf = vec![0u8; options.buffer_size.max(1)];
    let result: io::Result<()> = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
            tally.bytes.set(tally.bytes.get() + n as u64);
        }
    }
    .await;
    if let Err(e) = result {
        tally.failed.set(tally.failed.get() + 1);
        crate::narrate!("echo: connection from {peer} ended with {e}");
    }
}

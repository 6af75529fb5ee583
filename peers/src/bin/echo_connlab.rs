//! connlab's echo server, exactly as the library ships it
//! (`connlab::net::echo::serve`, the code behind the `echo_server`
//! example): one reactor on one thread, one task per connection, read
//! then `write_all`, on epoll in the reactor's default mode (edge).
//!
//! Run by `echo_bench`; on its own:
//! `cargo run --release -p connlab-peers --bin echo_connlab -- [--backend epoll|poll|select] [--mode edge|level|oneshot] [--drain-to-eagain]`
//! prints `LISTENING 127.0.0.1:<port>` and echoes until killed.
//! `--drain-to-eagain` turns off the reactor's "a short read means the
//! queue is drained" shortcut, so every drain ends in a `read` that fails
//! with `EAGAIN`, as mio's users and the textbook edge-triggered loop do.
//! `--threads N --listener reuseport|exclusive|shared` runs N reactor
//! threads (`connlab::net::echo::EchoThreads`).

use std::io;
use std::net::SocketAddr;

use connlab::net::echo::{self, EchoOptions, EchoThreads, ListenerKind};
use connlab::net::TcpListener;
use connlab::poller::{Backend, Mode};
use connlab::reactor::Config;

/// The accept queue's length: room for the load generator's burst of connects.
const BACKLOG: i32 = 1024;

fn main() -> io::Result<()> {
    let addr: SocketAddr = connlab_peers::arg("--addr", "127.0.0.1:0".parse().expect("literal address"));
    let backend: Backend = connlab_peers::arg("--backend", Backend::Epoll);
    let mut config = Config::new(backend).short_read_means_drained(!connlab_peers::flag("--drain-to-eagain"));
    match connlab_peers::opt_arg::<String>("--mode").as_deref() {
        None => {}
        Some("edge") => config = config.mode(Mode::Edge),
        Some("level") => config = config.mode(Mode::Level),
        Some("oneshot") => config = config.mode(Mode::OneShot),
        Some(other) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown mode {other:?}: expected edge, level or oneshot"),
            ))
        }
    }
    if let Some(threads) = connlab_peers::opt_arg::<usize>("--threads") {
        let kind: ListenerKind = connlab_peers::arg("--listener", ListenerKind::ReusePort);
        let server = EchoThreads::start(config, addr, BACKLOG, threads, kind, EchoOptions::default())?;
        connlab_peers::announce(server.local_addr());
        // Serve until killed: nothing triggers the stop.
        server.join()?;
        return Ok(());
    }
    config.block_on(async move {
        let listener = TcpListener::bind(addr, BACKLOG)?;
        connlab_peers::announce(listener.local_addr()?);
        // Serve until killed: the stop future never completes.
        echo::serve(listener, EchoOptions::default(), std::future::pending()).await?;
        Ok(())
    })?
}

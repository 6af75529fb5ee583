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
use std::process::ExitCode;

use connlab::net::echo::{self, EchoOptions, EchoThreads, ListenerKind};
use connlab::net::TcpListener;
use connlab::reactor::Config;
use connlab_peers::common::{self, Args, ModeArg};

/// The accept queue's length: room for the load generator's burst of connects.
const BACKLOG: i32 = 1024;

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("echo_connlab.rs"));
    let addr = args.listen_addr(0);
    let backend = args.backend();
    let mode = args.opt::<ModeArg>("--mode M", "edge, level or oneshot (default: the reactor's)");
    let drain = args.flag("--drain-to-eagain", "read until EAGAIN after a short read");
    let threads = args.opt::<usize>("--threads N", "N reactor threads (EchoThreads) instead of one reactor");
    let kind = args.value(
        "--listener KIND",
        ListenerKind::ReusePort,
        "with --threads: reuseport, exclusive or shared",
    );
    args.finish();
    let mut config = Config::new(backend).short_read_means_drained(!drain);
    if let Some(ModeArg(mode)) = mode {
        config = config.mode(mode);
    }
    common::exit("echo_connlab", run(config, addr, threads, kind))
}

fn run(config: Config, addr: SocketAddr, threads: Option<usize>, kind: ListenerKind) -> io::Result<()> {
    if let Some(threads) = threads {
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

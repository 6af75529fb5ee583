//! An echo server on tokio's current-thread runtime: one task per
//! connection, `read` then `write_all`, the shape of tokio's own echo
//! example. Single-threaded like connlab's reactor, so the comparison is
//! one event loop against another.
//!
//! Run by `echo_bench`; on its own:
//! `cargo run --release -p connlab-peers --bin echo_tokio` prints
//! `LISTENING 127.0.0.1:<port>` and echoes until killed.
//! `--threads N` runs tokio's multi-threaded runtime with N workers instead
//! (one listener, work-stealing between workers), the peer of connlab's
//! `--threads N` in `echo_bench --threads N`.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use connlab_peers::common::{self, Args};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Per-connection read buffer; a 64-byte echo never needs more.
const READ_BUF: usize = 4096;

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("echo_tokio.rs"));
    let addr = args.listen_addr(0);
    let threads = args.opt::<usize>("--threads N", "the multi-threaded runtime with N workers");
    args.finish();
    common::exit("echo_tokio", run(addr, threads))
}

fn run(addr: SocketAddr, threads: Option<usize>) -> io::Result<()> {
    let rt = match threads {
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_io()
            .build()?,
        None => tokio::runtime::Builder::new_current_thread().enable_io().build()?,
    };
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        connlab_peers::announce(listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = [0u8; READ_BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}

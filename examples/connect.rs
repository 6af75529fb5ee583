//! `connect`: the three ways a TCP connect ends, side by side with their
//! timings. Which question: Q13, "what does connect() do, and what happens
//! when nobody answers?"
//!
//! ```text
//! cargo run --example connect
//! cargo run --example connect -- --timeout-ms 500 --backend poll
//! CONNLAB_TRACE=1 cargo run --example connect     # every syscall, narrated
//! ```
//!
//! What you will see (times from this machine; yours will differ a little):
//!
//! ```text
//! outcome                  result                                                  time
//! listener accepting       ESTABLISHED 127.0.0.1:58568 -> 127.0.0.1:33221          130 µs
//! nothing listening        ECONNREFUSED (the RST came straight back)               30.0 µs
//! accept queue full        TimedOut after 1.00 s (our timer; SYNs were dropped)    1.00 s
//! ```
//!
//! 1. A listener that accepts: `connect` says `EINPROGRESS`, the socket
//!    turns writable one loopback round trip later, `SO_ERROR` is 0.
//! 2. A port with no listener: the kernel answers the SYN with a RST at
//!    once, so `SO_ERROR` is `ECONNREFUSED` within a fraction of a millisecond.
//! 3. A listener whose accept queue is full (`listen(fd, 0)`, never
//!    accepting, a few connections already queued): the kernel drops the
//!    SYN, the client retransmits it, and only our reactor timer ends the
//!    wait. Left alone, this kernel (Linux 6.5+, `tcp_syn_linear_timeouts`
//!    = 4) resends at 1, 2, 3, 4, 5, 7, 11, 19, 35 and 67 s and fails with
//!    `ETIMEDOUT` at about 131 s; `cargo run --example kernel_lab -- syn`
//!    measures the rule in a private network namespace. Check with `nstat -az
//!    TcpExtListenOverflows` before and after.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use connlab::net::{TcpListener, TcpStream};
use connlab::reactor;

mod common;

/// How long the filling connects may take before we call the queue full.
const FILL_TIMEOUT: Duration = Duration::from_millis(200);
/// The longest `--timeout-ms`: five minutes, well past the kernel's SYN retries.
const MAX_TIMEOUT_MS: u64 = 300_000;
/// An upper bound on queue-filling attempts (the queue holds backlog + 1).
const MAX_FILL: usize = 16;

fn main() -> ExitCode {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("connect.rs"));
    let backend = args.backend();
    let timeout_ms: u64 = args.value("--timeout-ms MS", 1000, "our connect timer, 1 to 300000 (default 1000)");
    // 0 would time out the successful connect too before its SYN-ACK came
    // back, and the table would contradict itself; past the kernel's own SYN
    // retries (about 127 s) our timer would never be the one that fires.
    args.check(
        (1..=MAX_TIMEOUT_MS).contains(&timeout_ms),
        format!("--timeout-ms {timeout_ms}: must be from 1 to {MAX_TIMEOUT_MS}"),
    );
    args.finish();
    let timeout = Duration::from_millis(timeout_ms);
    common::exit(
        "connect",
        reactor::block_on(backend, three_outcomes(timeout)).and_then(|r| r),
    )
}

async fn three_outcomes(timeout: Duration) -> std::io::Result<()> {
    let loopback: SocketAddr = "127.0.0.1:0"
        .parse()
        .unwrap_or_else(|_| unreachable!("a valid literal"));
    println!("{:<24} {:<55} time", "outcome", "result");

    // 1. Success.
    let listener = TcpListener::bind(loopback, 16)?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    let result = TcpStream::connect_timeout(addr, timeout).await;
    let elapsed = start.elapsed();
    let text = match &result {
        Ok(stream) => format!("ESTABLISHED {} -> {}", stream.local_addr()?, stream.peer_addr()?),
        Err(e) => format!("unexpected: {e}"),
    };
    row("listener accepting", &text, elapsed);

    // 2. Refused: bind a port, close it, dial it.
    let closed = {
        let probe = TcpListener::bind(loopback, 1)?;
        probe.local_addr()?
    };
    let start = Instant::now();
    let result = TcpStream::connect_timeout(closed, timeout).await;
    let elapsed = start.elapsed();
    let text = match &result {
        Ok(_) => "unexpected: connected to a closed port".to_string(),
        Err(e) => format!("{} (the RST came straight back)", short(e)),
    };
    row("nothing listening", &text, elapsed);

    // 3. Full accept queue: backlog 0, never accept, fill it.
    let full = TcpListener::bind(loopback, 0)?;
    let full_addr = full.local_addr()?;
    let mut queued = Vec::new();
    for _ in 0..MAX_FILL {
        match TcpStream::connect_timeout(full_addr, FILL_TIMEOUT).await {
            Ok(stream) => queued.push(stream),
            Err(_) => break,
        }
    }
    let start = Instant::now();
    let result = TcpStream::connect_timeout(full_addr, timeout).await;
    let elapsed = start.elapsed();
    let text = match &result {
        Ok(_) => format!("connected anyway (the queue took {} first)", queued.len()),
        Err(e) => format!(
            "{:?} after {} (our timer; SYNs were dropped)",
            e.kind(),
            common::show(timeout)
        ),
    };
    row("accept queue full", &text, elapsed);
    println!(
        "\n({} connection(s) sat in the full queue; the kernel drops further SYNs, and without\n\
         a timer connect would wait for the kernel's SYN retries, about 131 s with\n\
         this kernel's defaults: `kernel_lab -- syn` measures the rule.)",
        queued.len()
    );
    Ok(())
}

fn short(e: &std::io::Error) -> String {
    match connlab::sys::errno_of(e) {
        Some(errno) => connlab::sys::errno_name(errno).to_string(),
        None => e.to_string(),
    }
}

fn row(outcome: &str, result: &str, elapsed: Duration) {
    println!("{outcome:<24} {result:<55} {}", common::show(elapsed));
}

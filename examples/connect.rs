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
//! listener accepting       ESTABLISHED 127.0.0.1:58568 -> 127.0.0.1:33221          0.13 ms
//! nothing listening        ECONNREFUSED (the RST came straight back)               0.03 ms
//! accept queue full        TimedOut after 1s (our timer; SYNs were dropped)        1001.27 ms
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
use connlab::poller::Backend;
use connlab::reactor;

/// How long the filling connects may take before we call the queue full.
const FILL_TIMEOUT: Duration = Duration::from_millis(200);
/// An upper bound on queue-filling attempts (the queue holds backlog + 1).
const MAX_FILL: usize = 16;

fn main() -> ExitCode {
    let mut backend = Backend::Epoll;
    let mut timeout = Duration::from_secs(1);
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words.next();
        let parsed = match (flag.as_str(), value) {
            ("--backend", Some(v)) => v.parse().map(|b| backend = b).map_err(|e| e.to_string()),
            ("--timeout-ms", Some(v)) => v
                .parse::<u64>()
                .map(|ms| timeout = Duration::from_millis(ms))
                .map_err(|e| format!("--timeout-ms {v:?}: {e}")),
            (other, _) => Err(format!(
                "unknown option or missing value: {other} (see examples/connect.rs)"
            )),
        };
        if let Err(e) = parsed {
            eprintln!("connect: {e}");
            return ExitCode::from(2);
        }
    }
    match reactor::block_on(backend, three_outcomes(timeout)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) | Err(e) => {
            eprintln!("connect: {e}");
            ExitCode::FAILURE
        }
    }
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
        Err(e) => format!("{:?} after {timeout:?} (our timer; SYNs were dropped)", e.kind()),
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
    println!("{outcome:<24} {result:<55} {:.2} ms", elapsed.as_secs_f64() * 1e3);
}

//! `echo_server`: one event loop, many connections, on the backend you pick.
//! Which question: Q8 and Q26, "the server is asleep in epoll_wait; what
//! wakes it, and what does it do then?"
//!
//! ```text
//! cargo run --example echo_server -- --backend epoll --mode edge --addr 127.0.0.1:7878
//! ```
//!
//! It prints the address it listens on, then echoes every connection until
//! Ctrl-C (or `--max-conns N` connections have come and gone, or
//! `--duration SECS` passes), and ends with a summary:
//!
//! ```text
//! listening on 127.0.0.1:7878 (backend epoll, mode Edge); Ctrl-C to stop
//! ^C
//! SIGINT: stopping
//! 3 connection(s), 18 bytes echoed, 0 failed, 0 shed at EMFILE
//! reactor: 9 waits, 11 events, 14 task polls, 7 poller changes
//! ```
//!
//! Talk to it from another terminal with `nc 127.0.0.1 7878` (type a line,
//! it comes back), watch it with `ss -tnp 'sport = :7878'`, and run it with
//! `CONNLAB_TRACE=1` in front to see every syscall: on epoll in edge mode,
//! each connection costs one `epoll_ctl` for its whole life; with
//! `--mode level` you will see interest change as writes wait. Options:
//!
//! - `--backend epoll|poll|select` (default epoll)
//! - `--mode edge|level|oneshot` (default: edge on epoll, level elsewhere;
//!   edge on poll or select is refused with an error, not faked)
//! - `--addr IP:PORT` (default 127.0.0.1:7878; port 0 picks a free one)
//! - `--max-conns N`: serve N connections, then exit when they close
//! - `--duration SECS`: stop after that long (CI runs use this)
//! - `--drain-to-eagain`: after a short read, read again until `EAGAIN`
//!   (the textbook edge-triggered rule) instead of taking the short read as
//!   proof the socket is drained; costs one failing `read` per message
//! - `--threads N`: N reactor threads (default 1), each with its own poller
//! - `--listener reuseport|exclusive|shared`: how N threads get connections
//!   (default reuseport; see `connlab::net::echo::ListenerKind`); each
//!   thread's accepts and wake-ups are printed at the end
//! - `--max-open N`: connections open at once (per thread); more are closed
//!   at accept
//! - `--idle-timeout SECS`: close a connection silent that long (default off)
//! - `--write-stall-timeout SECS`: close a connection that has not read our
//!   bytes for that long (default 30; 0 turns it off)

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::pin;
use std::process::ExitCode;
use std::task::Poll;
use std::time::Duration;

use connlab::net::echo::{self, EchoOptions, EchoReport, EchoThreads, ListenerKind};
use connlab::net::TcpListener;
use connlab::poller::{Backend, Mode};
use connlab::reactor::{self, Config, Signals};
use connlab::sys::signal::signal_name;

mod common;

/// The accept queue's length: plenty for a load generator's burst of connects.
const BACKLOG: i32 = 1024;

struct Args {
    backend: Backend,
    mode: Option<Mode>,
    addr: SocketAddr,
    max_conns: Option<u64>,
    duration: Option<Duration>,
    drain_to_eagain: bool,
    threads: usize,
    listener: ListenerKind,
    options: EchoOptions,
}

/// A timeout flag's value: 0 turns it off.
fn off_if_zero(seconds: common::Seconds) -> Option<Duration> {
    Some(seconds.0).filter(|d| !d.is_zero())
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("echo_server.rs"));
    let mut parsed = Args {
        backend: args.backend(),
        mode: args
            .opt::<common::ModeArg>("--mode M", "edge, level or oneshot")
            .map(|m| m.0),
        addr: args.listen_addr(7878),
        max_conns: args.opt("--max-conns N", "serve N connections, then exit when they close"),
        duration: args
            .opt::<common::Seconds>("--duration SECS", "stop after that long")
            .map(|s| s.0),
        drain_to_eagain: args.flag("--drain-to-eagain", "read until EAGAIN after a short read"),
        threads: args.value(
            "--threads N",
            1,
            "reactor threads, each with its own poller (default 1)",
        ),
        listener: args.value(
            "--listener KIND",
            ListenerKind::ReusePort,
            "how threads share the port: reuseport, exclusive or shared (default reuseport)",
        ),
        options: EchoOptions::default(),
    };
    let defaults = EchoOptions::default();
    parsed.options = EchoOptions {
        max_open: args.opt(
            "--max-open N",
            "connections open at once, per thread (default: the fd limit)",
        ),
        idle_timeout: args
            .opt::<common::Seconds>(
                "--idle-timeout SECS",
                "close a connection silent that long (default off)",
            )
            .and_then(off_if_zero),
        write_stall_timeout: args
            .opt::<common::Seconds>(
                "--write-stall-timeout SECS",
                "close a connection that leaves our bytes unread that long (default 30; 0: never)",
            )
            .map_or(defaults.write_stall_timeout, off_if_zero),
        ..defaults
    };
    args.check((1..=1024).contains(&parsed.threads), "--threads: expected 1 to 1024");
    args.finish();
    parsed
}

/// Completes when a signal arrives or the duration (if any) passes.
async fn stop_signal(signals: Signals, duration: Option<Duration>) {
    let mut signal = pin!(signals.recv());
    let mut deadline = duration.map(|d| Box::pin(reactor::sleep(d)));
    poll_fn(|cx| {
        if let Poll::Ready(received) = signal.as_mut().poll(cx) {
            match received {
                Ok(number) => eprintln!("{}: stopping", signal_name(number)),
                Err(e) => eprintln!("signalfd failed ({e}); stopping"),
            }
            return Poll::Ready(());
        }
        if let Some(deadline) = deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                eprintln!("--duration reached: stopping");
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

fn main() -> ExitCode {
    common::exit("echo_server", run(parse_args()))
}

fn run(args: Args) -> std::io::Result<()> {
    // Before anything else, so no thread starts with SIGINT unblocked.
    let signals = Signals::new(&[libc::SIGINT, libc::SIGTERM])?;
    let mut config = Config::new(args.backend).short_read_means_drained(!args.drain_to_eagain);
    if let Some(mode) = args.mode {
        config = config.mode(mode);
    }
    let options = EchoOptions {
        max_conns: args.max_conns,
        ..args.options
    };
    if args.threads > 1 {
        return run_threads(&args, config, options, signals);
    }
    let listener = TcpListener::bind(args.addr, BACKLOG)?;
    let report = config.block_on(async move {
        // Printed from inside the reactor, so an unsupported mode fails
        // before we claim to be listening.
        println!(
            "listening on {} (backend {}, mode {:?}); Ctrl-C to stop",
            listener.local_addr()?,
            reactor::current_backend(),
            reactor::current_mode()
        );
        echo::serve(listener, options, stop_signal(signals, args.duration)).await
    })??;
    let stats = reactor::stats();
    println!("{report}");
    println!(
        "reactor: {} waits, {} events, {} task polls, {} poller changes",
        stats.waits, stats.events, stats.tasks_polled, stats.poller_changes
    );
    Ok(())
}

/// `--threads N`: the library's `EchoThreads`; this thread only waits for
/// the stop signal.
fn run_threads(args: &Args, config: Config, options: EchoOptions, signals: Signals) -> std::io::Result<()> {
    let server = EchoThreads::start(config, args.addr, BACKLOG, args.threads, args.listener, options)?;
    println!(
        "listening on {} ({} threads, {} listener, backend {}); Ctrl-C to stop",
        server.local_addr(),
        args.threads,
        args.listener,
        args.backend
    );
    let stopper = server.stopper();
    let waiting = stopper.clone();
    reactor::block_on(Backend::Epoll, async move {
        let stopped = waiting.wait();
        let signalled = stop_signal(signals, args.duration);
        let (mut stopped, mut signalled) = (pin!(stopped), pin!(signalled));
        // Ends on a signal, or when the threads stop by themselves (an
        // error, or each has served its --max-conns).
        poll_fn(|cx| {
            if stopped.as_mut().poll(cx).is_ready() || signalled.as_mut().poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    })?;
    stopper.trigger();
    let reports = server.join()?;
    for (index, report) in reports.iter().enumerate() {
        println!(
            "thread {index}: accepted {}, {} wake-ups ({} found nothing), {:.2} wake-ups per accept",
            report.accepted,
            report.wakeups,
            report.futile_wakeups,
            report.wakeups_per_accept()
        );
    }
    println!("{}", EchoReport::total(&reports));
    Ok(())
}

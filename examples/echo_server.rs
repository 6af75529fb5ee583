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

/// `SECS` as a duration; 0 means "off" where `zero_is_off`.
fn seconds(flag: &str, text: &str, zero_is_off: bool) -> Result<Option<Duration>, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{flag} {text:?}: {e}"))?;
    if !(secs.is_finite() && (0.0..=1e9).contains(&secs)) {
        return Err(format!("{flag} {text:?}: expected seconds from 0 to 1e9"));
    }
    Ok((secs > 0.0 || !zero_is_off).then(|| Duration::from_secs_f64(secs)))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backend: Backend::Epoll,
        mode: None,
        addr: SocketAddr::from(([127, 0, 0, 1], 7878)),
        max_conns: None,
        duration: None,
        drain_to_eagain: false,
        threads: 1,
        listener: ListenerKind::ReusePort,
        options: EchoOptions::default(),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => args.backend = value()?.parse().map_err(|e| format!("{e}"))?,
            "--mode" => {
                args.mode = Some(match value()?.as_str() {
                    "edge" => Mode::Edge,
                    "level" => Mode::Level,
                    "oneshot" => Mode::OneShot,
                    other => return Err(format!("unknown mode {other:?}: expected edge, level or oneshot")),
                })
            }
            "--addr" => {
                let text = value()?;
                args.addr = text.parse().map_err(|e| format!("--addr {text:?}: {e}"))?;
            }
            "--max-conns" => {
                let text = value()?;
                args.max_conns = Some(text.parse().map_err(|e| format!("--max-conns {text:?}: {e}"))?);
            }
            "--duration" => args.duration = seconds(&flag, &value()?, false)?,
            "--threads" => {
                let text = value()?;
                args.threads = match text.parse() {
                    Ok(n) if (1..=1024).contains(&n) => n,
                    _ => return Err(format!("--threads {text:?}: expected 1 to 1024")),
                };
            }
            "--listener" => args.listener = value()?.parse()?,
            "--max-open" => {
                let text = value()?;
                args.options.max_open = Some(text.parse().map_err(|e| format!("--max-open {text:?}: {e}"))?);
            }
            "--idle-timeout" => args.options.idle_timeout = seconds(&flag, &value()?, true)?,
            "--write-stall-timeout" => args.options.write_stall_timeout = seconds(&flag, &value()?, true)?,
            "--drain-to-eagain" => args.drain_to_eagain = true,
            other => {
                return Err(format!(
                    "unknown option {other:?} (see the header of examples/echo_server.rs)"
                ))
            }
        }
    }
    Ok(args)
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("echo_server: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
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
        // Ends on a signal, or when the threads stop by themselves (an error).
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

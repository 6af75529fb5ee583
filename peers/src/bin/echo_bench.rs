//! Echo throughput, side by side in one run: connlab's reactor (epoll)
//! against mio and tokio (current-thread), each server in its own process.
//!
//! ```text
//! cargo build --release -p connlab-peers
//! cargo run --release -p connlab-peers --bin echo_bench [-- --rounds 5 --secs 1.5 --conns 50 --same-cpu --strace --no-syscalls]
//! cargo run --release -p connlab-peers --bin echo_bench -- --against 127.0.0.1:PORT   # load only, to profile a server
//! cargo run --release -p connlab-peers --bin echo_bench -- --threads 2 --no-syscalls  # one reactor per thread vs tokio multi-threaded
//! ```
//!
//! With `--threads N` the contestants are connlab's `EchoThreads` with N
//! reactor threads under each listener kind (`SO_REUSEPORT`,
//! `EPOLLEXCLUSIVE`, a plain shared listener) against tokio's
//! multi-threaded runtime with N workers; nothing is pinned then (N server
//! threads need the CPUs the client also uses).
//!
//! What you will see (about 50 s): one line per run, then a table of
//! medians — messages per second, server CPU µs per message — and the
//! median of the per-round ratios connlab/mio and connlab/tokio (and
//! against two controls, see [`SERVERS`]); then, if `perf` or `strace` is
//! installed, syscalls per echoed message for each server.
//!
//! How it measures:
//! - **One load generator for everyone**: this process, one thread, a mio
//!   poll over `--conns` connections, each ping-ponging a `MSG_LEN`-byte
//!   message (send, wait for all of it back, check it, send the next). A
//!   "message" below is one such round trip. One thread rather than one
//!   per connection, so the generator spends its CPU on sockets, not on
//!   context switches, and leaves the other core to the server.
//! - **Servers in their own processes**, so their CPU time (`utime + stime`
//!   from `/proc/<pid>/stat`) is theirs alone. CPU per message is steadier
//!   than throughput on a shared machine: it does not care how long the
//!   server waited for the CPU.
//! - **Pinned**: the load generator on CPU 0, the servers on CPU 1
//!   (`--same-cpu`: all on CPU 0), so every server gets the same
//!   placement; see `connlab_peers::pin_to_cpu` for why it matters here.
//! - **Interleaved**: every round runs each server once, in a shuffled
//!   order, so a noisy neighbour hurts everyone alike; ratios are taken
//!   within a round and their median reported.
//! - **Bounded**: every run stops at its deadline; connecting has its own
//!   timeout.
//! - **Syscalls**: one extra run per server with a counter attached:
//!   `perf stat` on the kernel's syscall tracepoints (counted in the
//!   kernel, the server keeps its speed), or `strace -c -f -p` with
//!   `--strace` or when perf is missing (ptrace stops the server on every
//!   call, which changes what it does: see [`Counter::Strace`]). Calls are
//!   divided by messages echoed during that run. The throughput comparison
//!   needs neither tool; the count is skipped with a note when both are
//!   missing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use connlab_peers::common::{self, Args, Seconds};
use connlab_peers::{fmt_rate, fmt_ratio, median, ServerProcess, Shuffler, Table};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Bytes per message, as in the issue's "64-byte messages".
const MSG_LEN: usize = 64;
/// A run that sees no reply for this long is stuck, not slow.
const STALL_LIMIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Warm-up per server before the measured rounds (page faults, caches).
const WARMUP: Duration = Duration::from_millis(300);

/// The contestants: (label, binary, arguments). connlab's is first so the
/// ratios read "connlab ÷ peer". The last two are controls, not
/// contestants: connlab's server made to read until `EAGAIN` like a
/// textbook edge-triggered loop (what the reactor's short-read shortcut
/// saves), and mio's server rewritten on connlab's poller with no reactor
/// (see `echo_connlab_poller.rs`).
const SERVERS: [(&str, &str, &[&str]); 5] = [
    ("connlab (reactor, epoll)", "echo_connlab", &[]),
    ("mio", "echo_mio", &[]),
    ("tokio (current-thread)", "echo_tokio", &[]),
    (
        "control: connlab, read to EAGAIN",
        "echo_connlab",
        &["--drain-to-eagain"],
    ),
    ("control: connlab poller, no reactor", "echo_connlab_poller", &[]),
];

/// The syscall-counting run is one per server and only needs a count.
const SYSCALL_RUN: Duration = Duration::from_secs(1);

struct Client {
    stream: TcpStream,
    msg: [u8; MSG_LEN],
    written: usize,
    received: usize,
    reply: [u8; MSG_LEN],
}

/// What one run measured.
struct Run {
    messages: u64,
    elapsed: Duration,
    server_cpu: Duration,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    fn cpu_us_per_msg(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.messages.max(1) as f64
    }
}

fn connect_all(addr: SocketAddr, n: usize) -> io::Result<Vec<Client>> {
    (0..n)
        .map(|i| {
            let std_stream = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
            std_stream.set_nodelay(true)?;
            std_stream.set_nonblocking(true)?;
            let mut msg = [0u8; MSG_LEN];
            for (j, b) in msg.iter_mut().enumerate() {
                *b = (i + j) as u8;
            }
            Ok(Client {
                stream: TcpStream::from_std(std_stream),
                msg,
                written: 0,
                received: 0,
                reply: [0; MSG_LEN],
            })
        })
        .collect()
}

/// Write what is left of the current message; Ok(false) if the socket is full.
fn send(c: &mut Client) -> io::Result<bool> {
    while c.written < MSG_LEN {
        match c.stream.write(&c.msg[c.written..]) {
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Ping-pong on every client until `duration` has passed; returns the
/// number of complete, verified round trips.
fn drive(clients: &mut [Client], duration: Duration) -> io::Result<(u64, Duration)> {
    let mut poll = Poll::new()?;
    for (i, c) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(&mut c.stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
    }
    let mut events = Events::with_capacity(clients.len());
    let start = Instant::now();
    let deadline = start + duration;
    let mut last_reply = start;
    let mut messages = 0u64;
    for c in clients.iter_mut() {
        send(c)?;
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now - last_reply > STALL_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no echo for 5 s: the server is stuck",
            ));
        }
        poll.poll(&mut events, Some(deadline - now))?;
        // ANCHOR: pingpong
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            if c.written < MSG_LEN {
                send(c)?;
            }
            // mio is edge-triggered: read until WouldBlock or this event is lost.
            loop {
                match c.stream.read(&mut c.reply[c.received..]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "server closed a connection",
                        ))
                    }
                    Ok(n) => {
                        c.received += n;
                        if c.received < MSG_LEN {
                            continue;
                        }
                        if c.reply != c.msg {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs from message"));
                        }
                        messages += 1;
                        c.msg.rotate_left(1);
                        c.written = 0;
                        c.received = 0;
                        send(c)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            last_reply = Instant::now();
        }
        // ANCHOR_END: pingpong
    }
    Ok((messages, start.elapsed()))
}

fn run(server: &ServerProcess, conns: usize, duration: Duration) -> io::Result<Run> {
    let mut clients = connect_all(server.addr, conns)?;
    let cpu0 = server.cpu()?;
    let (messages, elapsed) = drive(&mut clients, duration)?;
    let cpu1 = server.cpu()?;
    Ok(Run {
        messages,
        elapsed,
        server_cpu: cpu1.saturating_sub(cpu0),
    })
}

/// Syscalls the per-message breakdown names; the rest are summed as "other".
const NAMED_SYSCALLS: [&str; 11] = [
    "read",
    "write",
    "recvfrom",
    "sendto",
    "readv",
    "writev",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
    "poll",
    "futex",
];

/// How syscalls are counted.
#[derive(Clone, Copy, PartialEq)]
enum Counter {
    /// `perf stat` on the kernel's syscall tracepoints: counted in the
    /// kernel, the server runs at full speed.
    Perf,
    /// `strace -c`: ptrace stops the server at every call. That slows it so
    /// much that its reads nearly always find the client's next message
    /// waiting, which hides the EAGAIN reads a full-speed server makes.
    Strace,
}

/// Per-syscall counts (name, calls, failed with EAGAIN) over one run with
/// the counter attached to the server, and the messages echoed meanwhile.
type Counts = (u64, Vec<(String, u64, u64)>);

fn syscall_run(counter: Counter, server: &ServerProcess, conns: usize, duration: Duration) -> io::Result<Counts> {
    let mut clients = connect_all(server.addr, conns)?;
    let out = std::env::temp_dir().join(format!("connlab-echo-syscalls-{}-{}", std::process::id(), server.pid()));
    let pid = server.pid().to_string();
    let mut cmd = match counter {
        Counter::Perf => {
            let mut cmd = Command::new("perf");
            cmd.args(["stat", "-x", ",", "-o"]).arg(&out);
            cmd.args([
                "-e",
                "raw_syscalls:sys_enter",
                "-e",
                "raw_syscalls:sys_exit",
                "--filter",
                "ret == -11",
            ]);
            for name in NAMED_SYSCALLS {
                cmd.args(["-e", &format!("syscalls:sys_enter_{name}")]);
            }
            cmd.args(["-p", &pid]);
            cmd
        }
        Counter::Strace => {
            let mut cmd = Command::new("strace");
            cmd.args(["-c", "-f", "-o"]).arg(&out).args(["-p", &pid]);
            cmd
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if counter == Counter::Strace {
        // strace says "Process N attached" on stderr once it is in place.
        let mut stderr = BufReader::new(child.stderr.take().ok_or_else(|| io::Error::other("strace stderr"))?);
        let mut line = String::new();
        stderr.read_line(&mut line)?;
        if !line.contains("attached") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!("strace did not attach: {}", line.trim())));
        }
    } else {
        // perf prints nothing when it is ready; give it time to open its events.
        std::thread::sleep(Duration::from_millis(300));
    }
    let result = drive(&mut clients, duration);
    // SIGINT makes perf and strace detach and write their summaries.
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait()?;
    let (messages, _) = result?;
    let text = std::fs::read_to_string(&out)
        .map_err(|e| io::Error::other(format!("no summary from the syscall counter ({status}): {e}")))?;
    // Best effort: a temp file left behind is harmless.
    let _ = std::fs::remove_file(&out);
    let rows = match counter {
        Counter::Perf => parse_perf_csv(&text),
        Counter::Strace => parse_strace_summary(&text),
    };
    if rows.is_empty() {
        return Err(io::Error::other(format!("syscall counter gave no counts ({status})")));
    }
    Ok((messages, rows))
}

/// `perf stat -x,` lines are `value,unit,event,...`. Returns ("total",
/// calls, EAGAIN) first, then one row per named syscall.
fn parse_perf_csv(text: &str) -> Vec<(String, u64, u64)> {
    let mut total = None;
    let mut eagain = 0;
    let mut rows = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        let (Some(value), Some(event)) = (cols.first(), cols.get(2)) else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else { continue };
        match *event {
            "raw_syscalls:sys_enter" => total = Some(value),
            "raw_syscalls:sys_exit" => eagain = value,
            e => {
                if let Some(name) = e.strip_prefix("syscalls:sys_enter_") {
                    rows.push((name.to_string(), value, 0));
                }
            }
        }
    }
    match total {
        Some(total) => std::iter::once(("total".to_string(), total, eagain))
            .chain(rows)
            .collect(),
        None => Vec::new(),
    }
}

/// Rows of `strace -c` output: (syscall, calls, errors). The table is
/// `% time  seconds  usecs/call  calls  errors  syscall`, with `errors`
/// blank when zero.
fn parse_strace_summary(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let name = (*cols.last()?).to_string();
            let calls: u64 = cols.get(3)?.parse().ok()?;
            let errors = if cols.len() == 6 { cols[4].parse().ok()? } else { 0 };
            Some((name, calls, errors))
        })
        .collect()
}

fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `--threads N`: connlab under each listener kind, then tokio's
/// multi-threaded runtime, all with N threads. connlab's reuseport server is
/// first, so the ratios read "connlab (reuseport) ÷ this".
fn threaded_contestants(n: usize) -> Vec<(String, &'static str, Vec<String>)> {
    let mut list: Vec<(String, &'static str, Vec<String>)> = ["reuseport", "exclusive", "shared"]
        .iter()
        .map(|kind| {
            (
                format!("connlab x{n} ({kind})"),
                "echo_connlab",
                vec![
                    "--threads".to_string(),
                    n.to_string(),
                    "--listener".to_string(),
                    kind.to_string(),
                ],
            )
        })
        .collect();
    list.push((
        format!("tokio multi-thread x{n}"),
        "echo_tokio",
        vec!["--threads".to_string(), n.to_string()],
    ));
    list
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("echo_bench.rs"));
    let options = Options {
        rounds: args.value("--rounds N", 5, "rounds, each server once per round (default 5)"),
        secs: args
            .value(
                "--secs S",
                Seconds(Duration::from_millis(1500)),
                "seconds per run, 0.1 to 30 (default 1.5)",
            )
            .0
            .as_secs_f64(),
        conns: args.value("--conns N", 50, "client connections (default 50)"),
        against: args.opt("--against IP:PORT", "load only, against a server started by hand"),
        same_cpu: args.flag("--same-cpu", "pin client and servers to the same CPU"),
        strace: args.flag("--strace", "count syscalls with strace even if perf is installed"),
        no_syscalls: args.flag("--no-syscalls", "skip the syscall count"),
        threads: args.opt(
            "--threads N",
            "connlab with N reactor threads (each listener kind) against tokio multi-threaded",
        ),
    };
    args.finish();
    common::exit("echo_bench", run_all(options))
}

/// The command line.
struct Options {
    rounds: usize,
    secs: f64,
    conns: usize,
    against: Option<SocketAddr>,
    same_cpu: bool,
    strace: bool,
    no_syscalls: bool,
    threads: Option<usize>,
}

fn run_all(options: Options) -> io::Result<()> {
    let Options {
        rounds,
        secs,
        conns,
        against,
        same_cpu,
        strace,
        no_syscalls,
        threads,
    } = options;
    let duration = Duration::from_secs_f64(secs.clamp(0.1, 30.0));
    if let Some(addr) = against {
        // Load only, for profiling a server started by hand.
        let mut clients = connect_all(addr, conns)?;
        let (messages, elapsed) = drive(&mut clients, duration)?;
        println!("{addr}: {} msgs/s", fmt_rate(messages as f64 / elapsed.as_secs_f64()));
        return Ok(());
    }

    let contestants: Vec<(String, &str, Vec<String>)> = match threads {
        None => SERVERS
            .iter()
            .map(|(label, bin, args)| (label.to_string(), *bin, args.iter().map(|a| a.to_string()).collect()))
            .collect(),
        Some(n) => threaded_contestants(n),
    };
    let first_label = contestants[0].0.clone();
    let mut servers = Vec::new();
    for (label, bin, args) in &contestants {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match ServerProcess::start(bin, &args) {
            Ok(s) => servers.push((label.as_str(), s)),
            Err(e) => eprintln!("skipping {label}: {e}"),
        }
    }
    if servers.is_empty() {
        return Err(io::Error::other("no server could be started"));
    }
    // Counted before pinning: afterwards this process sees only its own CPU.
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pids: Vec<u32> = servers.iter().map(|(_, s)| s.pid()).collect();
    let pinning = match threads {
        Some(n) if n > 1 => format!("not pinned ({n} server threads and the client share the CPUs)"),
        _ => connlab_peers::pin_client_and_server(&pids, same_cpu),
    };
    println!(
        "echo: {conns} connections × {MSG_LEN}-byte ping-pong, {rounds} rounds × {secs} s per server, shuffled; \
         one mio client thread; {cpus} CPUs, {pinning}"
    );
    for (label, s) in &servers {
        run(s, conns, WARMUP).map_err(|e| io::Error::other(format!("{label} warm-up: {e}")))?;
    }

    let mut shuffler = Shuffler::from_env_or_clock();
    // results[server][round]
    let mut results: Vec<Vec<Run>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..servers.len()).collect();
        shuffler.shuffle(&mut order);
        for i in order {
            let (label, s) = &servers[i];
            let r = run(s, conns, duration).map_err(|e| io::Error::other(format!("{label}: {e}")))?;
            println!(
                "round {round}  {label:<36} {:>9} msgs/s  {:>6.2} µs CPU/msg",
                fmt_rate(r.per_second()),
                r.cpu_us_per_msg()
            );
            results[i].push(r);
        }
    }

    let mut table = Table::new(&[
        "server",
        "msgs/s (median)",
        "server CPU µs/msg (median)",
        "connlab ÷ this (msgs/s)",
    ]);
    let connlab = servers.iter().position(|(label, _)| *label == first_label);
    for (i, (label, _)) in servers.iter().enumerate() {
        let rate = median(&results[i].iter().map(Run::per_second).collect::<Vec<_>>());
        let cpu = median(&results[i].iter().map(Run::cpu_us_per_msg).collect::<Vec<_>>());
        let ratio = connlab.filter(|&c| c != i).map_or("—".to_string(), |c| {
            let per_round: Vec<f64> = results[c]
                .iter()
                .zip(&results[i])
                .map(|(a, b)| a.per_second() / b.per_second())
                .collect();
            fmt_ratio(median(&per_round))
        });
        table.row(vec![label.to_string(), fmt_rate(rate), format!("{cpu:.2}"), ratio]);
    }
    println!("\n{}", table.render());
    if let Some(c) = connlab {
        for (i, (label, _)) in servers.iter().enumerate() {
            if i != c {
                let cpu: Vec<f64> = results[c]
                    .iter()
                    .zip(&results[i])
                    .map(|(a, b)| a.cpu_us_per_msg() / b.cpu_us_per_msg())
                    .collect();
                println!(
                    "CPU per message, connlab ÷ {label}: {} (median of per-round ratios)",
                    fmt_ratio(median(&cpu))
                );
            }
        }
    }

    if no_syscalls {
        return Ok(());
    }
    let counter = if !strace && tool_available("perf") {
        Counter::Perf
    } else if tool_available("strace") {
        Counter::Strace
    } else {
        println!("\nneither perf nor strace installed: syscalls per message skipped (apt-get install strace)");
        return Ok(());
    };
    let how = match counter {
        Counter::Perf => "perf stat on the syscall tracepoints",
        Counter::Strace => "strace -c -f (ptrace slows the server and hides EAGAIN reads)",
    };
    println!(
        "\nsyscalls per echoed message ({how}; one {} s run per server):",
        SYSCALL_RUN.as_secs_f64()
    );
    let mut table = Table::new(&["server", "messages", "syscalls/msg", "EAGAIN/msg", "per message"]);
    for (label, s) in &servers {
        match syscall_run(counter, s, conns, SYSCALL_RUN) {
            Ok((messages, rows)) => {
                let m = messages.max(1) as f64;
                let (total, mut eagain) = rows.iter().find(|r| r.0 == "total").map_or((0, 0), |r| (r.1, r.2));
                let mut named = 0;
                let mut detail: Vec<String> = rows
                    .iter()
                    .filter(|r| r.0 != "total" && r.1 as f64 / m >= 0.005)
                    .map(|(name, calls, _)| {
                        named += calls;
                        format!("{name} {:.2}", *calls as f64 / m)
                    })
                    .collect();
                let other = total.saturating_sub(named);
                if other as f64 / m >= 0.005 {
                    detail.push(format!("other {:.2}", other as f64 / m));
                }
                if counter == Counter::Strace {
                    eagain = rows.iter().filter(|r| r.0 != "total").map(|r| r.2).sum();
                }
                table.row(vec![
                    label.to_string(),
                    messages.to_string(),
                    format!("{:.2}", total as f64 / m),
                    format!("{:.2}", eagain as f64 / m),
                    detail.join(", "),
                ]);
            }
            Err(e) => println!("{label}: syscall count failed: {e}"),
        }
    }
    println!("{}", table.render());
    Ok(())
}

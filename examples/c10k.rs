//! `c10k`: what does one connection cost, in user space and in the kernel?
//! Which question: Q26, "how does one server hold thousands of connections?"
//!
//! ```text
//! cargo run --release --example c10k                       # 1,000 / 5,000 / 19,000 connections
//! cargo run --release --example c10k -- --conns 2000 --threads 2 --listener exclusive
//! cargo run --release --example c10k -- --peers mio=target/release/echo_mio  # a peer beside connlab
//! cargo run --release --example c10k -- --soak 60 --conns 19000              # scripts/c10k-soak
//! ```
//!
//! Three processes: this one measures; a **server** (connlab's echo server,
//! `net::echo`, in a child running this same binary with `--serve`, or a
//! peer's server given with `--peer`); and a **client**, another child,
//! that opens N connections to it. The fd limit is raised to the hard
//! limit first (`setrlimit(RLIMIT_NOFILE)`; children inherit it), and N is
//! capped to what it allows. For each N and each server it prints, from
//! `/proc/<server>/status`, `/proc/<server>/fd`, `/proc/net/sockstat` and
//! `/proc/slabinfo` (root only):
//!
//! ```text
//! connections  server    idle B/conn  busy B/conn  after close KiB  reopened B/conn  kernel B/conn  fds
//!       19000  connlab           ...          ...              ...              ...            ...  ...
//! ```
//!
//! - **idle**: growth of the server's VmRSS since before the client
//!   connected, divided by N, with every connection open and silent;
//! - **busy**: the most VmRSS seen while every connection ping-pongs
//!   64-byte messages (each byte checked by the client), per connection;
//! - **after close**: what the server still holds once all have closed
//!   (memory kept by the allocator for reuse, not leaked: see *reopened*);
//! - **reopened**: idle cost of N new connections after those closed;
//! - **kernel**: socket buffers (`sockstat` TCP `mem`, pages) plus slab
//!   objects (`TCP`, `sock_inode_cache`, `filp`, `dentry`, `eventpoll_epi`)
//!   gained, per connection. On loopback both ends live in this kernel,
//!   so this counts two sockets (and the client's epoll entry) per
//!   connection.
//!
//! Then, for connlab, `size_of` of what the reactor keeps per connection
//! (`reactor::bookkeeping`) and of the connection's task. VmRSS is pages
//! touched, so small figures move in 4 KiB steps: read the 19,000 row.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use connlab::net::echo::{self, EchoOptions, EchoReport, EchoThreads, ListenerKind};
use connlab::net::TcpStream;
use connlab::poller::Backend;
use connlab::reactor::{self, Config};

/// Bytes per message in the busy phase, as in the usual echo benchmarks.
const MSG_LEN: usize = 64;
/// The server's accept queue: deep enough for the client's batches.
const BACKLOG: i32 = 4096;
/// Connections the client opens at once by default (each batch completes
/// before the next); `--batch 1` connects one at a time, which is what
/// shows the thundering herd (every connection finds every thread asleep).
const CONNECT_BATCH: usize = 512;
/// fds kept free for the process's own needs (stdio, epoll, the listener...).
const FD_RESERVE: u64 = 64;
/// How long the client may take to connect one batch.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Slab caches that grow with each connection.
const SLABS: [&str; 5] = ["TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi"];
const PAGE: u64 = 4096;

mod common;

struct Args {
    conns: Vec<usize>,
    busy: Duration,
    threads: usize,
    listener: ListenerKind,
    peers: Vec<(String, String)>,
    soak: Option<Duration>,
    batch: usize,
}

/// `--conns 1000,5000,19000`.
struct Counts(Vec<usize>);

impl FromStr for Counts {
    type Err = String;
    fn from_str(text: &str) -> Result<Counts, String> {
        text.split(',')
            .map(|n| n.trim().parse().ok().filter(|&n: &usize| n > 0))
            .collect::<Option<_>>()
            .map(Counts)
            .ok_or_else(|| "expected counts like 1000,5000".to_string())
    }
}

/// `--peers mio=PATH,tokio=PATH`.
struct Peers(Vec<(String, String)>);

impl FromStr for Peers {
    type Err = String;
    fn from_str(text: &str) -> Result<Peers, String> {
        text.split(',')
            .map(|p| p.split_once('=').map(|(n, path)| (n.to_string(), path.to_string())))
            .collect::<Option<_>>()
            .map(Peers)
            .ok_or_else(|| "expected NAME=PATH[,NAME=PATH...]".to_string())
    }
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("c10k.rs"));
    let parsed = Args {
        conns: args
            .value(
                "--conns N[,N...]",
                Counts(vec![1_000, 5_000, 19_000]),
                "connection counts to measure (default 1000,5000,19000; capped by RLIMIT_NOFILE)",
            )
            .0,
        busy: args
            .value(
                "--busy-secs S",
                common::Seconds(Duration::from_secs(2)),
                "length of the busy phase (default 2)",
            )
            .0,
        threads: args.value("--threads N", 1, "reactor threads in connlab's server (default 1)"),
        listener: args.value(
            "--listener KIND",
            ListenerKind::ReusePort,
            "reuseport, exclusive or shared: how those threads share the port (default reuseport)",
        ),
        peers: args
            .value(
                "--peers NAME=PATH,...",
                Peers(Vec::new()),
                "also measure other echo servers that print `LISTENING <addr>`",
            )
            .0,
        soak: args
            .opt::<common::Seconds>(
                "--soak SECS",
                "one long busy phase at the largest --conns; fails on any error or growth",
            )
            .map(|s| s.0),
        batch: args.value(
            "--batch N",
            CONNECT_BATCH,
            "connections the client opens at once (default 512; 1 shows the thundering herd)",
        ),
    };
    args.check((1..=256).contains(&parsed.threads), "--threads: expected 1 to 256");
    args.check(parsed.batch > 0, "--batch: expected a count > 0");
    args.finish();
    parsed
}

fn main() -> ExitCode {
    // The two child roles, started by this program itself with words it
    // chose; everything else is the user's command line.
    let role = std::env::args_os().nth(1);
    let child = |rest: fn(&[String]) -> io::Result<()>| {
        // If the measuring parent dies, our stdout's reader is gone: end
        // quietly. (Best effort: without it, a write fails with EPIPE.)
        let _ = connlab::sys::signal::default_sigpipe();
        let words: Vec<String> = std::env::args().skip(2).collect();
        common::exit("c10k", rest(&words))
    };
    match role.as_ref().and_then(|w| w.to_str()) {
        Some("--serve") => child(serve),
        Some("--client") => child(client),
        _ => common::exit("c10k", measure(parse_args())),
    }
}

// ---------------------------------------------------------------- server

/// `--serve THREADS LISTENER`: connlab's echo server until stdin closes,
/// then its report on stdout.
fn serve(words: &[String]) -> io::Result<()> {
    let threads: usize = words.first().and_then(|w| w.parse().ok()).unwrap_or(1);
    let kind: ListenerKind = words
        .get(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or(ListenerKind::ReusePort);
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = EchoThreads::start(
        Config::new(Backend::Epoll),
        addr,
        BACKLOG,
        threads,
        kind,
        EchoOptions::default(),
    )?;
    println!("LISTENING {}", server.local_addr());
    io::stdout().flush()?;
    // Blocks this (otherwise idle) thread until the parent closes our stdin.
    io::copy(&mut io::stdin().lock(), &mut io::sink())?;
    server.stopper().trigger();
    let reports = server.join()?;
    for (i, r) in reports.iter().enumerate() {
        println!("THREAD {i} {} {} {}", r.accepted, r.wakeups, r.futile_wakeups);
    }
    let total = EchoReport::total(&reports);
    println!("REPORT {} {} {}", total.accepted, total.bytes_echoed, total.failed);
    Ok(())
}

// ---------------------------------------------------------------- client

/// `--client ADDR N BATCH`: open N connections, then obey commands on stdin:
/// `busy SECS` (ping-pong on every connection, reply `BUSY msgs bytes
/// errors`), `close` (reply `CLOSED`), `open` (reconnect, reply `CONNECTED n`).
fn client(words: &[String]) -> io::Result<()> {
    let addr: SocketAddr = words
        .first()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| io::Error::other("--client needs ADDR N"))?;
    let n: usize = words
        .get(1)
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| io::Error::other("--client needs ADDR N"))?;
    let batch: usize = words.get(2).and_then(|w| w.parse().ok()).unwrap_or(CONNECT_BATCH);
    reactor::block_on(Backend::Epoll, async move {
        let mut conns = open_all(addr, n, batch).await?;
        println!("CONNECTED {}", conns.len());
        // Reading stdin blocks the reactor, which is fine: while we wait for
        // the next command there is nothing for it to do.
        for line in io::stdin().lock().lines() {
            let line = line?;
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("busy"), Some(secs)) => {
                    let secs: f64 = secs.parse().map_err(io::Error::other)?;
                    let (msgs, errors) = ping_pong_all(&conns, Duration::from_secs_f64(secs)).await;
                    println!("BUSY {msgs} {} {errors}", msgs * MSG_LEN as u64);
                }
                (Some("close"), _) => {
                    conns.clear();
                    println!("CLOSED");
                }
                (Some("open"), _) => {
                    conns = open_all(addr, n, batch).await?;
                    println!("CONNECTED {}", conns.len());
                }
                _ => return Err(io::Error::other(format!("client: unknown command {line:?}"))),
            }
            io::stdout().flush()?;
        }
        Ok(())
    })?
}

async fn open_all(addr: SocketAddr, n: usize, batch: usize) -> io::Result<Vec<Rc<TcpStream>>> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let handles: Vec<_> = (conns.len()..n.min(conns.len() + batch))
            .map(|_| reactor::spawn(TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)))
            .collect();
        let first_new = conns.len();
        for handle in handles {
            conns.push(Rc::new(handle.await?));
        }
        // One byte there and back on each: proof the server has accepted
        // it, so the next batch finds the server's threads asleep again.
        for conn in &conns[first_new..] {
            let mut back = [0u8; 1];
            conn.write_all(b"!").await?;
            conn.read_exact(&mut back).await?;
        }
    }
    Ok(conns)
}

/// Every connection sends a 64-byte message, waits for all of it back,
/// checks every byte, and sends the next, until `length` has passed.
async fn ping_pong_all(conns: &[Rc<TcpStream>], length: Duration) -> (u64, u64) {
    let deadline = Instant::now() + length;
    let tasks: Vec<_> = conns
        .iter()
        .enumerate()
        .map(|(id, conn)| reactor::spawn(ping_pong(conn.clone(), id as u64, deadline)))
        .collect();
    let (mut msgs, mut errors) = (0, 0);
    for task in tasks {
        match task.await {
            Ok(n) => msgs += n,
            Err(n) => {
                msgs += n;
                errors += 1;
            }
        }
    }
    (msgs, errors)
}

/// `Ok(messages)`, or `Err(messages before the failure)`.
async fn ping_pong(conn: Rc<TcpStream>, id: u64, deadline: Instant) -> Result<u64, u64> {
    let mut sent = [0u8; MSG_LEN];
    let mut back = [0u8; MSG_LEN];
    let mut seq = 0u64;
    while Instant::now() < deadline {
        // Each message names its connection and number, so a byte delivered
        // to the wrong connection, or out of order, cannot pass the check.
        sent[..8].copy_from_slice(&id.to_le_bytes());
        sent[8..16].copy_from_slice(&seq.to_le_bytes());
        for (i, b) in sent[16..].iter_mut().enumerate() {
            *b = (id as u8)
                .wrapping_mul(31)
                .wrapping_add(seq as u8)
                .wrapping_add(i as u8);
        }
        if conn.write_all(&sent).await.is_err() || conn.read_exact(&mut back).await.is_err() || back != sent {
            return Err(seq);
        }
        seq += 1;
    }
    Ok(seq)
}

// ---------------------------------------------------------------- /proc

/// One process's memory and fds, and the kernel's socket memory.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    fds: u64,
    /// `sockstat`'s TCP `mem`: pages of socket buffers, system-wide.
    tcp_mem_pages: u64,
    /// Bytes in the socket-related slab caches, system-wide (0 unreadable).
    slab_bytes: u64,
}

fn sample(pid: u32) -> io::Result<Sample> {
    Ok(Sample {
        rss_kib: rss_kib(pid)?,
        fds: fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64,
        tcp_mem_pages: tcp_mem_pages()?,
        slab_bytes: slab_bytes().unwrap_or(0),
    })
}

fn rss_kib(pid: u32) -> io::Result<u64> {
    let pid = i32::try_from(pid).map_err(io::Error::other)?;
    common::memory_kb(pid)
        .map(|m| m.rss)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status: unreadable or no VmRSS")))
}

/// `TCP: inuse 3 orphan 0 tw 0 alloc 5 mem 2` → 2.
fn tcp_mem_pages() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/net/sockstat")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .ok_or_else(|| io::Error::other("/proc/net/sockstat: no TCP line"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mem")
        .and_then(|w| w[1].parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/net/sockstat: no mem in {line:?}")))
}

/// Sum of active objects × object size over [`SLABS`]. `/proc/slabinfo`
/// is readable by root only.
fn slab_bytes() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/slabinfo")?;
    let mut total = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 3 && SLABS.contains(&fields[0]) {
            let active: u64 = fields[1].parse().unwrap_or(0);
            let size: u64 = fields[3].parse().unwrap_or(0);
            total += active * size;
        }
    }
    Ok(total)
}

/// Voluntary context switches of the server's reactor threads (named
/// `echo-N`), summed. Each time a thread sleeps in `epoll_wait` and is woken,
/// it counts one. This sees what user space cannot: a thread that the
/// kernel wakes for a connection another thread then accepts finds, when
/// epoll re-checks the listener, nothing to report, and goes back to sleep
/// without its reactor ever returning from the wait.
fn reactor_switches(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = task?.path();
        let name = fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.starts_with("echo-") {
            continue;
        }
        let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

// ---------------------------------------------------------------- children

/// A child that talks in lines: our stdin is its commands, its stdout its answers.
struct LineChild {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl LineChild {
    fn start(mut command: Command) -> io::Result<LineChild> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let input = child.stdin.take();
        let output = child
            .stdout
            .take()
            .map(BufReader::new)
            .ok_or_else(|| io::Error::other("child stdout not piped"))?;
        Ok(LineChild { child, input, output })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line that starts with `prefix`, without the prefix.
    fn expect(&mut self, prefix: &str) -> io::Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.output.read_line(&mut line)? == 0 {
                return Err(io::Error::other(format!("child exited before `{prefix}`")));
            }
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
    }

    fn send(&mut self, command: &str) -> io::Result<()> {
        let input = self
            .input
            .as_mut()
            .ok_or_else(|| io::Error::other("child stdin closed"))?;
        writeln!(input, "{command}")?;
        input.flush()
    }

    /// Close its stdin: connlab's server stops, prints one `THREAD i
    /// accepted wakeups futile` line per thread, then `REPORT accepted
    /// bytes failed`. Returns the per-thread lines and the report.
    fn stop_and_report(&mut self) -> io::Result<(Vec<[u64; 3]>, [u64; 3])> {
        self.input = None;
        let mut threads = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.output.read_line(&mut line)? == 0 {
                return Err(io::Error::other("server exited without its REPORT line"));
            }
            let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            match (line.split_whitespace().next(), numbers.as_slice()) {
                (Some("THREAD"), [_, a, w, f]) => threads.push([*a, *w, *f]),
                (Some("REPORT"), [a, b, f]) => return Ok((threads, [*a, *b, *f])),
                _ => {}
            }
        }
    }

    /// Close its stdin (connlab's server's cue to stop; a client's too) and
    /// wait for it to exit.
    fn finish(&mut self) -> io::Result<()> {
        self.input = None;
        self.child.wait().map(|_| ())
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        // Already exited if `finish` ran; errors mean there is nothing to kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn me() -> io::Result<Command> {
    Ok(Command::new(std::env::current_exe()?))
}

fn start_client(addr: SocketAddr, n: usize, batch: usize) -> io::Result<LineChild> {
    let mut command = me()?;
    command.args(["--client", &addr.to_string(), &n.to_string(), &batch.to_string()]);
    LineChild::start(command)
}

fn start_server(spec: &ServerSpec) -> io::Result<(LineChild, SocketAddr)> {
    let command = match spec {
        ServerSpec::Connlab { threads, kind } => {
            let mut c = me()?;
            c.args(["--serve", &threads.to_string(), kind.name()]);
            c
        }
        ServerSpec::Peer { path, .. } => Command::new(path),
    };
    let mut server = LineChild::start(command)?;
    let addr = server
        .expect("LISTENING ")?
        .parse()
        .map_err(|e| io::Error::other(format!("server's LISTENING address: {e}")))?;
    Ok((server, addr))
}

enum ServerSpec {
    Connlab { threads: usize, kind: ListenerKind },
    Peer { name: String, path: String },
}

impl ServerSpec {
    fn name(&self) -> String {
        match self {
            ServerSpec::Connlab { threads: 1, .. } => "connlab".to_string(),
            ServerSpec::Connlab { threads, kind } => format!("connlab x{threads} {kind}"),
            ServerSpec::Peer { name, .. } => name.clone(),
        }
    }
}

// ---------------------------------------------------------------- measuring

/// Wait (bounded) until the server holds `want` fds or more.
fn wait_for_fds(pid: u32, want: u64) -> io::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
        if now >= want || Instant::now() > deadline {
            return Ok(now);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Run `command` on the client and sample the server's VmRSS until the
/// client answers; returns the answer and the largest VmRSS seen.
fn sample_while(client: &mut LineChild, server: u32, command: &str, answer: &str) -> io::Result<(String, u64)> {
    client.send(command)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(server).unwrap_or(0));
                thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let reply = client.expect(answer);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().map_err(|_| io::Error::other("sampler panicked"))?;
    Ok((reply?, peak))
}

struct Row {
    server: String,
    conns: usize,
    idle: f64,
    busy: f64,
    after_close_kib: i64,
    reopened: f64,
    kernel: f64,
    fds: u64,
    busy_msgs: u64,
    busy_errors: u64,
    /// connlab only: per thread, [accepted, wake-ups, futile wake-ups].
    accepts: Option<Vec<[u64; 3]>>,
    /// connlab only: reactor threads' voluntary context switches while the
    /// client connected (each connection also carries one byte each way).
    connect_switches: u64,
}

fn per_conn_bytes(now_kib: u64, base_kib: u64, n: usize) -> f64 {
    (now_kib as f64 - base_kib as f64) * 1024.0 / n as f64
}

fn measure_one(spec: &ServerSpec, n: usize, busy: Duration, batch: usize) -> io::Result<Row> {
    let (mut server, addr) = start_server(spec)?;
    let pid = server.pid();
    thread::sleep(Duration::from_millis(200));
    let base = sample(pid)?;
    let switches_before = reactor_switches(pid)?;
    let mut client = start_client(addr, n, batch)?;
    client.expect("CONNECTED ")?;
    wait_for_fds(pid, base.fds + n as u64)?;
    let connect_switches = reactor_switches(pid)? - switches_before;
    thread::sleep(Duration::from_millis(300));
    let idle = sample(pid)?;
    let (reply, peak) = sample_while(&mut client, pid, &format!("busy {}", busy.as_secs_f64()), "BUSY ")?;
    let counts: Vec<u64> = reply.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let (busy_msgs, busy_errors) = (
        counts.first().copied().unwrap_or(0),
        counts.get(2).copied().unwrap_or(u64::MAX),
    );
    client.send("close")?;
    client.expect("CLOSED")?;
    thread::sleep(Duration::from_millis(500));
    let closed = sample(pid)?;
    client.send("open")?;
    client.expect("CONNECTED ")?;
    wait_for_fds(pid, base.fds + n as u64)?;
    thread::sleep(Duration::from_millis(300));
    let reopened = sample(pid)?;
    client.send("close")?;
    client.expect("CLOSED")?;
    client.finish()?;
    // connlab's server stops when its stdin closes; a peer is killed (on drop).
    let accepts = match spec {
        ServerSpec::Connlab { .. } => {
            let threads = server.stop_and_report()?.0;
            server.finish()?;
            Some(threads)
        }
        ServerSpec::Peer { .. } => None,
    };
    drop(server);
    let kernel_bytes = (idle.tcp_mem_pages as f64 - base.tcp_mem_pages as f64) * PAGE as f64 + idle.slab_bytes as f64
        - base.slab_bytes as f64;
    Ok(Row {
        server: spec.name(),
        conns: n,
        idle: per_conn_bytes(idle.rss_kib, base.rss_kib, n),
        busy: per_conn_bytes(peak.max(idle.rss_kib), base.rss_kib, n),
        after_close_kib: closed.rss_kib as i64 - base.rss_kib as i64,
        reopened: per_conn_bytes(reopened.rss_kib, base.rss_kib, n),
        kernel: kernel_bytes / n as f64,
        fds: idle.fds,
        busy_msgs,
        busy_errors,
        accepts,
        connect_switches,
    })
}

fn fd_budget() -> io::Result<usize> {
    let limit = connlab::sys::fd::raise_nofile_limit()?;
    Ok(limit.saturating_sub(FD_RESERVE) as usize)
}

fn measure(args: Args) -> io::Result<()> {
    let budget = fd_budget()?;
    let mut specs = vec![ServerSpec::Connlab {
        threads: args.threads,
        kind: args.listener,
    }];
    specs.extend(args.peers.iter().map(|(name, path)| ServerSpec::Peer {
        name: name.clone(),
        path: path.clone(),
    }));
    if let Some(length) = args.soak {
        let n = args.conns.iter().copied().max().unwrap_or(1).min(budget);
        return soak(&specs[0], n, length, args.batch);
    }
    println!(
        "RLIMIT_NOFILE raised to {}; counts above {budget} are capped",
        budget as u64 + FD_RESERVE
    );
    println!(
        "{:>11}  {:<24} {:>11} {:>11} {:>15} {:>15} {:>13} {:>6}  busy msgs (errors)",
        "connections",
        "server",
        "idle B/conn",
        "busy B/conn",
        "after close KiB",
        "reopened B/conn",
        "kernel B/conn",
        "fds"
    );
    let mut ok = true;
    for &wanted in &args.conns {
        let n = wanted.min(budget);
        for spec in &specs {
            let row = measure_one(spec, n, args.busy, args.batch)?;
            ok &= row.busy_errors == 0;
            println!(
                "{:>11}  {:<24} {:>11.0} {:>11.0} {:>15} {:>15.0} {:>13.0} {:>6}  {} ({})",
                row.conns,
                row.server,
                row.idle,
                row.busy,
                row.after_close_kib,
                row.reopened,
                row.kernel,
                row.fds,
                row.busy_msgs,
                row.busy_errors
            );
            if let Some(threads) = row.accepts.as_ref().filter(|t| t.len() > 1) {
                println!(
                    "{:>11}  {}; reactor threads slept and woke {:.2} times per connection while connecting",
                    "",
                    accept_balance(threads),
                    row.connect_switches as f64 / row.conns as f64
                );
            }
        }
    }
    print_sizes()?;
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(
            "some echoed bytes came back wrong (see the errors column)",
        ))
    }
}

/// "accepted 9500 / 9500 (50% / 50%), 1.32 wake-ups per accept (0.32 futile)".
fn accept_balance(threads: &[[u64; 3]]) -> String {
    let accepted: u64 = threads.iter().map(|t| t[0]).sum();
    let wakeups: u64 = threads.iter().map(|t| t[1]).sum();
    let futile: u64 = threads.iter().map(|t| t[2]).sum();
    let counts: Vec<String> = threads.iter().map(|t| t[0].to_string()).collect();
    let shares: Vec<String> = threads
        .iter()
        .map(|t| format!("{:.0}%", 100.0 * t[0] as f64 / accepted.max(1) as f64))
        .collect();
    format!(
        "accepted per thread {} ({}), {:.2} wake-ups per accept ({:.2} futile)",
        counts.join(" / "),
        shares.join(" / "),
        wakeups as f64 / accepted.max(1) as f64,
        futile as f64 / accepted.max(1) as f64
    )
}

/// `size_of` of connlab's per-connection state, from a one-connection run.
fn print_sizes() -> io::Result<()> {
    let books = reactor::bookkeeping();
    let task = reactor::block_on(Backend::Epoll, async {
        let listener = connlab::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), 1)?;
        let addr = listener.local_addr()?;
        let options = EchoOptions {
            max_conns: Some(1),
            ..EchoOptions::default()
        };
        let server = reactor::spawn(echo::serve(listener, options, std::future::pending()));
        drop(TcpStream::connect(addr).await?);
        server.await.map(|report| report.task_bytes)
    })??;
    println!(
        "connlab keeps per connection: source {} B + task record {} B + waker {} B (reactor::bookkeeping) + the task's future {} B (size_of_val); \
         read buffer: none (one {} KiB scratch buffer per reactor thread)",
        books.source,
        books.task,
        books.waker,
        task,
        reactor::SCRATCH_SIZE / 1024
    );
    Ok(())
}

/// One long busy phase: every byte checked, RSS and fds at start and end.
fn soak(spec: &ServerSpec, n: usize, length: Duration, batch: usize) -> io::Result<()> {
    let (mut server, addr) = start_server(spec)?;
    let pid = server.pid();
    let base = sample(pid)?;
    let mut client = start_client(addr, n, batch)?;
    client.expect("CONNECTED ")?;
    wait_for_fds(pid, base.fds + n as u64)?;
    // Warm-up: a short busy phase, so the start figures include the
    // scratch buffers and the allocator's working set.
    let (warm, _) = sample_while(&mut client, pid, "busy 2", "BUSY ")?;
    let start = sample(pid)?;
    let started = Instant::now();
    let (reply, peak) = sample_while(&mut client, pid, &format!("busy {}", length.as_secs_f64()), "BUSY ")?;
    let elapsed = started.elapsed();
    let end = sample(pid)?;
    client.send("close")?;
    client.expect("CLOSED")?;
    client.finish()?;
    // connlab's server reports when its stdin closes; a peer has no report.
    let (threads, report) = match spec {
        ServerSpec::Connlab { .. } => server.stop_and_report()?,
        ServerSpec::Peer { .. } => (Vec::new(), [0; 3]),
    };
    drop(server);
    let counts: Vec<u64> = reply.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let warm_counts: Vec<u64> = warm.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let (msgs, bytes, errors) = (
        counts[0],
        counts[1],
        counts[2] + warm_counts.get(2).copied().unwrap_or(0),
    );
    let server_failed = report[2];
    println!(
        "soak: {n} connections to {} for {:.1} s",
        spec.name(),
        elapsed.as_secs_f64()
    );
    println!(
        "  {msgs} messages, {bytes} bytes echoed and checked, {errors} client errors, {server_failed} server-side failures"
    );
    println!("  {:.0} messages/s", msgs as f64 / elapsed.as_secs_f64());
    if threads.len() > 1 {
        println!("  {}", accept_balance(&threads));
    }
    println!(
        "  server VmRSS {} KiB at start, {} KiB at end, {} KiB peak; fds {} at start, {} at end",
        start.rss_kib, end.rss_kib, peak, start.fds, end.fds
    );
    // Growth tolerance: one 4 KiB page per 1,000 connections of allocator noise.
    let grew = end.rss_kib > start.rss_kib + (n as u64 / 1000).max(1) * 4;
    let ok = errors == 0 && server_failed == 0 && !grew && end.fds == start.fds;
    if !ok {
        println!("  FAIL");
        return Err(io::Error::other("soak failed: errors, or growth in RSS or fds"));
    }
    println!("  PASS");
    Ok(())
}

//! journey: what is a connection? The story's path from `pool.acquire()` down
//! to the wire and back, done for real and measured in this run.
//!
//! ```text
//! cargo run --release --example journey
//! cargo run --release --example journey -- --backend poll      # or select
//! cargo run --release --example journey -- --trace             # narrate every syscall and message
//! cargo run --release --example journey -- --bytes             # hex of every message of the query
//! cargo run --release --example journey -- --url postgres://user:pw@127.0.0.1:5432/db
//! cargo run --release --example journey -- --rtt 0.5ms         # PostgreSQL 0.5 ms away: a LAN
//! ```
//!
//! `--rtt 0.5ms` routes every PostgreSQL connection through a delay proxy
//! (`connlab::net::delay`) that holds each direction's bytes for half of
//! it, so the round-trip counts below cost what they would on a LAN. The
//! sockets you then see are the client's to the proxy.
//!
//! Where it connects: `--url`, else `DATABASE_URL`, else the `PG*`
//! variables if any is set, else a throwaway PostgreSQL it starts itself
//! (initdb in a temp dir, a free port, SCRAM-SHA-256) and removes on exit.
//! Without PostgreSQL's server binaries it stops with the install command.
//!
//! What you will see, in six stops (each names the story's questions):
//!
//! 1. `pool.acquire()` from a warm pool: nanoseconds, a pop from a deque (Q9).
//! 2. What the pool saved you from: a new connection built step by step:
//!    `socket()`, `connect()` → `EINPROGRESS` → writable → `SO_ERROR`, the
//!    server's accept queue, then startup and SCRAM message by message, with
//!    round trips and timings (Q12–Q17).
//! 3. What the connection *is*: the story's "connections at every level"
//!    table with this run's values: the Rust object, fd, `/proc` link, inode,
//!    4-tuple, TCP state and `TCP_INFO`, and the server's end of it (Q10, Q11, Q16).
//! 4. The query: the extended-protocol messages sent and received, with
//!    sizes (and hex with `--bytes`), the row that came back: `Alice` (Q18).
//! 5. Release, and what pooling saved: pooled vs fresh-connection queries,
//!    TIME_WAIT sockets left behind, server memory per connection (Q20, Q28, Q31).
//! 6. How the kernel finds the ready socket: one wait on select, poll and
//!    epoll at a few fd counts (Q26).
//!
//! It finishes in well under 30 seconds. Check it while it runs, or after:
//! `ss -tanpe`, `ls -l /proc/<pid>/fd`, `strace -f -e trace=network,epoll_wait`.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::show;
use connlab::inspect::{self, TcpState};
use connlab::lab;
use connlab::net::delay;
use connlab::pg::config::Config as PgConfig;
use connlab::pg::connection::tap::{self, Direction, WireRecord};
use connlab::pg::connection::{Connection, Endpoint};
use connlab::poller::{Backend, Events, Interest, Mode};
use connlab::pool::pg::PgManager;
use connlab::pool::{Config as PoolConfig, Pool, Validation};
use connlab::reactor::{self, Direction as Ready, Registration};
use connlab::sys::{self, addr::RawAddr, socket};
use connlab::trace;

mod common;

/// The story's query, with the story's user.
const QUERY: &str = "SELECT name FROM users WHERE id = $1";
const USER_ID: i32 = 42;

/// Warm connections the pool opens up front (asyncpg's `min_size` in the story is 5; 2 is enough here).
const POOL_MIN: usize = 2;
/// Acquire+release pairs timed in stop 1.
const ACQUIRE_PAIRS: usize = 20_000;
/// Fresh connections and pooled queries compared in stop 5: enough for a
/// steady median, few enough to finish in seconds.
const FRESH_RUNS: usize = 40;
const POOLED_RUNS: usize = 400;
/// Let the last FINs and ACKs land before counting TIME_WAIT sockets.
const SETTLE: Duration = Duration::from_millis(200);
/// Registered fd counts for stop 6, all below select's FD_SETSIZE of 1024.
const WAIT_FDS: [usize; 3] = [8, 64, 400];
/// Fds made ready in stop 6, like the story's "5 have data".
const WAIT_READY: usize = 5;
const WAIT_CALLS: usize = 2_000;

struct Args {
    backend: Backend,
    trace: bool,
    bytes: bool,
    url: Option<String>,
    rtt: Option<Duration>,
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("journey.rs"));
    let parsed = Args {
        backend: args.backend(),
        trace: args.flag("--trace", "narrate every syscall and message of stops 2 to 4 (stderr)"),
        bytes: args.flag("--bytes", "hex of every message of the query"),
        url: args.opt(
            "--url URL",
            "a PostgreSQL server (default: DATABASE_URL, PG*, or a throwaway one)",
        ),
        rtt: args
            .opt::<delay::Rtt>(
                "--rtt DURATION",
                "reach PostgreSQL through a delay proxy adding this round trip (e.g. 0.5ms): a LAN on loopback",
            )
            .map(|r| r.0),
    };
    args.finish();
    parsed
}

fn main() -> ExitCode {
    let args = parse_args();
    println!("connlab journey: what is a connection? (backend: {})", args.backend);
    let (mut pg, _cluster) = match common::choose_server(args.url.clone()) {
        Ok(chosen) => chosen,
        Err(msg) => {
            eprintln!("journey: {msg}");
            return ExitCode::FAILURE;
        }
    };
    let _lan = match args.rtt.map(|rtt| lab::through_lan(&mut pg, rtt)).transpose() {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("journey: --rtt: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(proxy) = &_lan {
        println!(
            "PostgreSQL is reached through a delay proxy at {} adding {:?} each way: a LAN on loopback",
            proxy.addr(),
            proxy.one_way()
        );
    }
    let started = Instant::now();
    let result = reactor::block_on(args.backend, run(&args, &pg))
        .map_err(|e| format!("the {} reactor failed: {e}", args.backend))
        .and_then(|r| r);
    if result.is_ok() {
        println!(
            "\nThe whole journey took {} on {}.",
            show(started.elapsed()),
            args.backend
        );
    }
    common::exit("journey", result)
}

async fn run(args: &Args, pg: &PgConfig) -> Result<(), String> {
    let pool = Pool::open(
        PgManager::new(pg.clone()),
        PoolConfig {
            min_size: POOL_MIN,
            max_size: POOL_MIN * 2,
            validation: Validation::None,
            ..PoolConfig::default()
        },
    )
    .await
    .map_err(|e| format!("opening the pool: {e}"))?;

    let pop = stop1_acquire(&pool).await?;
    if args.trace {
        println!("\n(--trace: the narrator is on for stops 2 to 4; its lines go to stderr)");
        trace::set_enabled(true);
    }
    let server = server_addr(&pool).await?;
    let fresh = stop2_new_connection(pg, server, pop).await?;
    stop3_what_it_is(&pool).await?;
    stop4_query(args, &pool).await?;
    trace::set_enabled(false);
    stop5_savings(pg, &pool, server, fresh, args.rtt).await?;
    stop6_readiness()?;
    Ok(())
}

fn heading(title: &str, questions: &str) {
    println!(
        "\n── {title} ({questions}) {}",
        "─".repeat(70usize.saturating_sub(title.len() + questions.len()))
    );
}

/// Stop 1: the pool pops a warm connection off its idle deque.
async fn stop1_acquire(pool: &Pool<PgManager>) -> Result<Duration, String> {
    heading("1. pool.acquire()", "Q9");
    let stats = pool.stats();
    println!(
        "The pool opened {} connections up front (min_size {POOL_MIN}): {} idle, {} active.",
        stats.created, stats.idle, stats.active
    );
    let t = Instant::now();
    for _ in 0..ACQUIRE_PAIRS {
        let conn = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
        drop(conn);
    }
    let per_pair = t.elapsed() / ACQUIRE_PAIRS as u32;
    println!(
        "acquire + release of a warm connection: {} per pair (mean of {ACQUIRE_PAIRS}).",
        show(per_pair)
    );
    println!("No syscall, no packet: a pop from a deque and a push back. The story says ~0.1 µs.");
    Ok(per_pair)
}

/// The server's TCP address, learnt from a pooled connection (the URL may
/// name a host or come from the environment).
async fn server_addr(pool: &Pool<PgManager>) -> Result<std::net::SocketAddr, String> {
    let conn = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    match conn.endpoint() {
        Endpoint::Tcp(addr) => Ok(*addr),
        Endpoint::Unix(path) => Err(format!(
            "the journey follows a TCP connection, but the server is the Unix socket {}; give a TCP --url",
            path.display()
        )),
    }
}

/// Stop 2: everything `acquire()` skipped, one syscall and one message at a time.
async fn stop2_new_connection(pg: &PgConfig, server: std::net::SocketAddr, pop: Duration) -> Result<Duration, String> {
    heading("2. what the pool saved you from: a new connection", "Q12-Q17");
    let err = |e: io::Error| e.to_string();

    // socket(): an endpoint with no address, no peer, state CLOSE.
    let t = Instant::now();
    let fd = socket::stream_socket(libc::AF_INET).map_err(err)?;
    let socket_time = t.elapsed();
    let raw = fd.as_raw_fd();
    step(
        format!("socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC) = {raw}"),
        Some(socket_time),
        "an endpoint in state CLOSE, in the lowest free fd slot",
    );

    // connect(): the kernel picks a source port, sends the SYN, and a
    // non-blocking socket returns at once.
    let t = Instant::now();
    let status = socket::connect(raw, &RawAddr::from_socket_addr(&server)).map_err(err)?;
    let connect_time = t.elapsed();
    let local = sys::addr::getsockname(raw).map_err(err)?;
    let result = match status {
        socket::ConnectStatus::InProgress => "-1 EINPROGRESS",
        socket::ConnectStatus::Connected => "0",
    };
    step(
        format!("connect({raw}, {server}) = {result}"),
        Some(connect_time),
        &format!("SYN sent from {local}: the kernel chose the port"),
    );

    // Writable means the handshake ended, one way or the other.
    let registration = Registration::new(fd);
    registration.clear_ready(Ready::Write).map_err(err)?;
    let t = Instant::now();
    poll_fn(|cx| registration.poll_ready(cx, Ready::Write))
        .await
        .map_err(err)?;
    let wait_time = t.elapsed();
    step(
        format!("{} reports fd {raw} writable", reactor::current_backend()),
        Some(wait_time),
        "the SYN-ACK came back: one loopback round trip",
    );
    let so_error = socket::take_error(raw).map_err(err)?;
    let state = inspect::fd(raw).ok().and_then(|r| r.socket.and_then(|s| s.tcp_state));
    step(
        format!("getsockopt({raw}, SO_ERROR) = {so_error}"),
        None,
        &format!(
            "0 means connected: {}",
            state.map_or("(state unknown)".to_string(), |s| s.ss_name().to_string())
        ),
    );
    println!("  the server's listening socket: {}", listen_socket_line(server));
    drop(registration);

    // The application handshake, on a real connection with the wire tap on.
    let t = Instant::now();
    let mut conn = Connection::connect_tapped(pg, false)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let total = t.elapsed();
    let records = conn.take_wire_tap();
    let timings = conn.timings();
    println!("\nThen PostgreSQL's own handshake, message by message:");
    print_records(&records, false);
    let auth = records
        .iter()
        .find(|r| r.name == "AuthenticationSASL")
        .map_or("its auth method", |_| "SCRAM-SHA-256");
    println!(
        "connect() until writable on the reactor {} (the handshake above, plus the reactor's wake-up), startup + {auth} {} \
         in {} round trips (the client runs PBKDF2, the server checks the proof and forks a backend: pid {}).",
        show(timings.connect),
        show(timings.startup),
        tap::round_trips(&records),
        conn.backend_pid()
    );
    println!(
        "A new connection: {} in all = {:.0}× the pooled acquire. The story: 10–20 ms on a LAN.",
        show(total),
        total.as_secs_f64() / pop.as_secs_f64().max(1e-9)
    );
    conn.close().await.map_err(|e| format!("close: {e}"))?;
    Ok(total)
}

/// The server's listening socket as the kernel lists it in `/proc/net/tcp`.
fn listen_socket_line(server: std::net::SocketAddr) -> String {
    let table = match inspect::tcp_table() {
        Ok(t) => t,
        Err(e) => return format!("/proc/net/tcp unreadable: {e}"),
    };
    match table
        .rows
        .iter()
        .find(|r| r.state == TcpState::Listen && r.local.port() == server.port())
    {
        Some(row) => format!(
            "{} {} (inode {}), {} connection(s) waiting in its accept queue right now",
            row.local,
            row.state.ss_name(),
            row.inode,
            row.rx_queue
        ),
        None => format!(
            "no LISTEN row for port {} in /proc/net/tcp (a remote server?)",
            server.port()
        ),
    }
}

/// One line of stop 2: the call and its result, how long it took, what it means.
fn step(call: String, took: Option<Duration>, meaning: &str) {
    let took = took.map(show).unwrap_or_default();
    println!("  {call:<60} {took:>9}  {meaning}");
}

fn print_records(records: &[WireRecord], hex: bool) {
    for r in records {
        let arrow = match r.direction {
            Direction::Sent => "  →",
            Direction::Received => "  ←",
        };
        let summary = r.summary.as_deref().map(short).unwrap_or_default();
        println!("{arrow} {:<28} {:>5} B  {summary}", r.name, r.len);
        if let (true, Some(bytes)) = (hex, &r.bytes) {
            for line in hex_lines(bytes) {
                println!("        {line}");
            }
        }
    }
}

/// At most one line of a message's summary.
fn short(text: &str) -> String {
    const MAX: usize = 70;
    let mut s: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        s.push('…');
    }
    s
}

/// `hexdump -C` style lines: offset, 16 bytes in hex, printable ASCII.
fn hex_lines(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:04x}  {:<47}  |{text}|", i * 16, hex.join(" "))
        })
        .collect()
}

/// Stop 3: the stack behind the pooled connection, top to bottom.
async fn stop3_what_it_is(pool: &Pool<PgManager>) -> Result<(), String> {
    heading("3. what the connection is", "Q10, Q11, Q16");
    let conn = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    let fd = conn.as_raw_fd();
    let report = inspect::fd(fd).map_err(|e| format!("inspect fd {fd}: {e}"))?;
    let sock = report.socket.as_ref();
    let (local, peer) = sock
        .and_then(|s| s.four_tuple())
        .ok_or_else(|| format!("fd {fd} has no TCP 4-tuple"))?;
    let state = sock.and_then(|s| s.tcp_state).map_or("?", |s| s.ss_name());
    let info = sock.and_then(|s| s.tcp_info.as_ref());
    let rows: Vec<(&str, String)> = vec![
        (
            "database connection pool",
            format!("a slot checked out of Pool<PgManager> ({} active)", pool.stats().active),
        ),
        (
            "Rust object",
            "Pooled<PgManager> → pg::Connection → net::Stream::Tcp".to_string(),
        ),
        (
            "file descriptor",
            format!("fd {fd}, an index into this process's fd table"),
        ),
        ("kernel VFS layer", format!("/proc/self/fd/{fd} → {}", report.link)),
        (
            "kernel network layer",
            format!(
                "struct sock in state {state}{}",
                info.map_or(String::new(), |i| format!(
                    ", rtt {} µs, cwnd {}",
                    i.raw.tcpi_rtt, i.raw.tcpi_snd_cwnd
                ))
            ),
        ),
        (
            "network identity (4-tuple)",
            format!("({}, {}, {}, {})", local.ip(), local.port(), peer.ip(), peer.port()),
        ),
        ("server end", server_end(peer, local, conn.backend_pid())),
    ];
    for (layer, what) in rows {
        println!("  {layer:<28} {what}");
    }
    println!("\nThe full report for fd {fd}:");
    for line in report.to_string().lines() {
        println!("  {line}");
    }
    if let Some(s) = sock {
        println!("Check it: {}", s.ss_command());
    }
    Ok(())
}

/// The server's socket for the same connection: the 4-tuple reversed,
/// found in `/proc/net/tcp`, and the fd that holds it in the backend.
fn server_end(server_local: std::net::SocketAddr, server_peer: std::net::SocketAddr, backend_pid: i32) -> String {
    let Ok(table) = inspect::tcp_table() else {
        return format!("backend pid {backend_pid} (no /proc/net/tcp)");
    };
    let Some(row) = table
        .rows
        .iter()
        .find(|r| r.local == server_local && r.remote == server_peer)
    else {
        return format!("backend pid {backend_pid} (its socket is not in this machine's /proc/net/tcp)");
    };
    let holder = fd_holding(backend_pid, row.inode).map_or(String::new(), |fd| format!(" as its fd {fd}"));
    format!(
        "{} → {} {}, inode {}, held by backend pid {backend_pid}{holder}",
        row.local,
        row.remote,
        row.state.ss_name(),
        row.inode
    )
}

/// Which fd of process `pid` is `socket:[inode]` (needs permission to read
/// `/proc/<pid>/fd`: root, or the same user).
fn fd_holding(pid: i32, inode: u64) -> Option<RawFd> {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find_map(|entry| {
            let link = std::fs::read_link(entry.path()).ok()?;
            (link.to_str()? == want).then(|| entry.file_name().to_str()?.parse().ok())?
        })
}

/// Stop 4: the query, as the messages that carry it.
async fn stop4_query(args: &Args, pool: &Pool<PgManager>) -> Result<(), String> {
    heading("4. the query", "Q18");
    let mut conn = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    conn.start_wire_tap(args.bytes);
    let t = Instant::now();
    let rows = conn
        .query(QUERY, &[&USER_ID])
        .await
        .map_err(|e| format!("{QUERY}: {e}"))?;
    let elapsed = t.elapsed();
    let records = conn.take_wire_tap();
    println!("conn.query({QUERY:?}, {USER_ID}) on fd {}:", conn.as_raw_fd());
    print_records(&records, args.bytes);
    let sent: usize = records
        .iter()
        .filter(|r| r.direction == Direction::Sent)
        .map(|r| r.len)
        .sum();
    let received: usize = records
        .iter()
        .filter(|r| r.direction == Direction::Received)
        .map(|r| r.len)
        .sum();
    println!(
        "{sent} B out in one write(), {received} B back, {} round trip in {}.",
        tap::round_trips(&records),
        show(elapsed)
    );
    let name: String = rows
        .get(0)
        .ok_or("the query returned no row: is the users table there?")?
        .get(0)
        .map_err(|e| format!("decoding the name: {e}"))?;
    println!("The row: name = {name:?}");

    // The second path: the connection's statement cache now holds the SQL.
    conn.start_wire_tap(false);
    let t = Instant::now();
    conn.query(QUERY, &[&USER_ID])
        .await
        .map_err(|e| format!("{QUERY} again: {e}"))?;
    let again = t.elapsed();
    let records = conn.take_wire_tap();
    let names = |dir: Direction| {
        records
            .iter()
            .filter(|r| r.direction == dir)
            .map(|r| r.name)
            .collect::<Vec<_>>()
    };
    let sent_again: usize = records
        .iter()
        .filter(|r| r.direction == Direction::Sent)
        .map(|r| r.len)
        .sum();
    println!(
        "The same query again on this connection: its statement cache ({} statement(s)) already holds the parsed\n\
         statement, so only → {} go out ({sent_again} B instead of {sent} B) and ← {} come back, in {}.\n\
         (statement_cache_size=0 in the URL turns the cache off: every query then sends Parse again.)",
        conn.cached_statements(),
        names(Direction::Sent).join(" → "),
        names(Direction::Received).join(" ← "),
        show(again)
    );
    println!(
        "Transaction status at release (from ReadyForQuery): {:?}: nothing to roll back, so the slot goes straight back.",
        conn.transaction_status()
    );
    Ok(())
}

/// Stop 5: the Q31 comparison, measured.
async fn stop5_savings(
    pg: &PgConfig,
    pool: &Pool<PgManager>,
    server: std::net::SocketAddr,
    fresh_connect: Duration,
    rtt: Option<Duration>,
) -> Result<(), String> {
    heading("5. release, and what pooling saved", "Q20, Q28, Q31");
    let stats = pool.stats();
    println!(
        "After release: {} idle, {} active; {} acquires served by {} connections.",
        stats.idle, stats.active, stats.acquires, stats.created
    );
    let time_wait = || inspect::tcp_census(Some(server.port())).map(|c| c.time_wait()).ok();

    reactor::sleep(SETTLE).await;
    let tw_before = time_wait();
    let mut fresh = Vec::with_capacity(FRESH_RUNS);
    for _ in 0..FRESH_RUNS {
        let t = Instant::now();
        let mut conn = Connection::connect(pg).await.map_err(|e| format!("connect: {e}"))?;
        conn.query(QUERY, &[&USER_ID])
            .await
            .map_err(|e| format!("{QUERY}: {e}"))?;
        conn.close().await.map_err(|e| format!("close: {e}"))?;
        fresh.push(t.elapsed());
    }
    reactor::sleep(SETTLE).await;
    let tw_after_fresh = time_wait();
    let mut pooled = Vec::with_capacity(POOLED_RUNS);
    for _ in 0..POOLED_RUNS {
        let t = Instant::now();
        let mut conn = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
        conn.query(QUERY, &[&USER_ID])
            .await
            .map_err(|e| format!("{QUERY}: {e}"))?;
        drop(conn);
        pooled.push(t.elapsed());
    }
    reactor::sleep(SETTLE).await;
    let tw_after_pooled = time_wait();

    let fresh_median = common::median(&mut fresh);
    let pooled_median = common::median(&mut pooled);
    let delta = |a: Option<usize>, b: Option<usize>| {
        a.zip(b)
            .map_or("n/a".to_string(), |(a, b)| a.saturating_sub(b).to_string())
    };
    println!("\n  per query (median)           fresh connection   pooled");
    println!(
        "  connect + auth + query + close {:>14}   {:>10}   ({FRESH_RUNS} fresh, {POOLED_RUNS} pooled)",
        show(fresh_median),
        show(pooled_median)
    );
    println!(
        "  new TIME_WAIT sockets        {:>16}   {:>10}",
        delta(tw_after_fresh, tw_before),
        delta(tw_after_pooled, tw_after_fresh)
    );
    let ratio = fresh_median.as_secs_f64() / pooled_median.as_secs_f64().max(1e-9);
    match rtt {
        Some(rtt) => println!(
            "Pooling is {ratio:.1}× faster per query with {rtt:?} added to every round trip; the story says 10× on a\n\
             0.5 ms LAN. A fresh connection pays the round trips of TCP, startup and SCRAM, plus the backend's fork."
        ),
        None => println!(
            "Pooling is {ratio:.0}× faster per query here; the story says 10× on a 0.5 ms LAN (try --rtt 0.5ms). On\n\
             loopback the round trip is tens of µs, so the fixed costs dominate: the backend's fork and start-up, then SCRAM."
        ),
    }
    println!("(The first connection took {}.)", show(fresh_connect));
    println!("Each fresh close left its client port in TIME_WAIT for 60 s; the pooled socket never closed.");

    let conn = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    let pid = conn.backend_pid();
    match common::memory_kb(pid) {
        Some(common::MemoryKb { rss, anon, .. }) => println!(
            "Server memory for one connection (backend pid {pid}): {:.1} MB resident, {:.1} MB of it private (RssAnon).\n\
             The story says 5–10 MB; most of the resident set is shared code and buffers, the private part is the real cost.",
            rss as f64 / 1024.0,
            anon as f64 / 1024.0
        ),
        None => println!("Server memory: /proc/{pid}/status is not readable here (a remote server?)."),
    }
    Ok(())
}

/// Stop 6: one wait on each backend with N registered fds, 5 of them ready.
fn stop6_readiness() -> Result<(), String> {
    heading("6. how the kernel finds the ready socket", "Q26");
    println!(
        "One wait (timeout 0) with N registered sockets, {WAIT_READY} of them readable; median of {WAIT_CALLS} waits:"
    );
    print!("  {:>8}", "fds");
    for backend in Backend::ALL {
        print!("  {:>10}", backend.name());
    }
    println!();
    for n in WAIT_FDS {
        print!("  {n:>8}");
        for backend in Backend::ALL {
            let cost = wait_cost(backend, n).map_err(|e| format!("{backend} with {n} fds: {e}"))?;
            print!("  {:>10}", show(cost));
        }
        println!();
    }
    println!(
        "select and poll scan every registered fd on every call (O(N)); epoll hands back its ready list (O(ready))."
    );
    println!("The full curve to 16,000 fds: cargo bench --bench wait_scaling (docs/wait_scaling.md).");
    Ok(())
}

fn wait_cost(backend: Backend, n: usize) -> io::Result<Duration> {
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push(std::os::unix::net::UnixStream::pair()?);
    }
    let mut poller = backend.open()?;
    for (i, (ours, _)) in pairs.iter().enumerate() {
        poller.add(
            ours.as_raw_fd(),
            connlab::poller::Token(i),
            Interest::READABLE,
            Mode::Level,
        )?;
    }
    for (_, theirs) in pairs.iter().take(WAIT_READY) {
        io::Write::write_all(&mut &*theirs, b"x")?;
    }
    let mut events = Events::with_capacity(64);
    let mut samples = Vec::with_capacity(WAIT_CALLS);
    for _ in 0..WAIT_CALLS {
        let t = Instant::now();
        poller.wait(&mut events, Some(Duration::ZERO))?;
        samples.push(t.elapsed());
    }
    if events.len() != WAIT_READY {
        return Err(io::Error::other(format!(
            "expected {WAIT_READY} ready fds, the wait reported {}",
            events.len()
        )));
    }
    Ok(common::median(&mut samples))
}

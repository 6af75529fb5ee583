//! load_balancer: Q7, the load balancer in front, on the real engine. Two
//! connections and two 4-tuples where the client thinks there is one, the
//! balancer's choice of backend, and what a backend that dies costs.
//!
//! ```text
//! cargo run --release --example load_balancer
//! cargo run --release --example load_balancer -- --backends 3 --requests 60
//! ```
//!
//! It starts two (`--backends N`) of connlab's own echo servers, each on
//! its own thread and reactor, and in front of them Debian's `haproxy`
//! (`scripts/install-haproxy`) in TCP mode, health-checking each backend
//! every 100 ms; all removed on exit.
//!
//! What you will see:
//!
//! 1. **Two legs.** One client connection through the balancer, then every
//!    socket of it in the kernel's table (`/proc/net/tcp`, read by
//!    `inspect`), with its owner (the client or an echo backend, both in
//!    this process, or HAProxy: matched by the socket inodes in
//!    `/proc/HAPROXY_PID/fd`): the client's socket and the
//!    balancer's accepted one form one connection; the balancer's own
//!    outgoing socket and the backend's accepted one form a second, with a
//!    different 4-tuple.
//! 2. **Spreading.** Connections opened one after another, every other one
//!    kept open: round-robin sends every kept connection to the same
//!    backend (it counts turns, not load), least-connections spreads them.
//!    Counted by HAProxy (`show stat`, `scur`) and by the kernel
//!    (ESTABLISHED sockets on each backend's port).
//! 3. **Reuse.** N client connections, one request each, and the backend
//!    connections that carried them. In TCP mode each client connection is
//!    paired with its own backend connection: N and N. Then the same with
//!    connlab's HTTP server (`http::Server`) as the backends and HAProxy in
//!    HTTP mode with `http-reuse`: a handful of backend connections carry
//!    all N requests, counted twice: by the backends (each response names
//!    the backend connection, numbered in accept order) and by HAProxy
//!    (`show stat` `connect` and `reuse`). That is the balancer's own pool.
//! 4. **A backend dies mid-run.** A client sends requests in a loop; one
//!    backend is killed (its listener and connections close). Requests
//!    answered and failed, how long the worst failure took, and how long
//!    until HAProxy's health checks marked the backend DOWN; after that,
//!    every request goes to the survivors.
//!
//! Loopback on one machine: the figures are for the mechanisms (two
//! connections, the choice, the failover), not for network latencies.
//! Check the legs yourself while it waits: `ss -tnp state established`.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::show;
use connlab::inspect::{self, FdTarget, TcpState};
use connlab::testbed::backend::{self, Backend};
use connlab::testbed::haproxy::{Balance, HaProxy, Mode, Settings};

/// How long HAProxy's first health checks may take to see every backend.
const UP_WITHIN: Duration = Duration::from_secs(5);
/// Pause after closing a connection, so HAProxy has seen the FIN before
/// its next choice (least-connections counts open connections).
const SETTLE: Duration = Duration::from_millis(30);
/// How long the load runs before the kill, and after DOWN.
const BEFORE_KILL: Duration = Duration::from_millis(300);
const AFTER_DOWN: Duration = Duration::from_millis(300);

fn main() -> ExitCode {
    let mut cli = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("load_balancer.rs"));
    let backends: usize = cli.value("--backends N", 2, "echo backends behind HAProxy (default 2)");
    let requests: usize = cli.value(
        "--requests N",
        40,
        "connections for the spreading and reuse counts (default 40)",
    );
    cli.check((2..=16).contains(&backends), "--backends must be from 2 to 16");
    cli.check((2..=10_000).contains(&requests), "--requests must be from 2 to 10000");
    cli.finish();
    common::exit("load_balancer", run(backends, requests))
}

fn run(n_backends: usize, requests: usize) -> Result<(), String> {
    let mut backends: Vec<Backend> = (0..n_backends)
        .map(|_| Backend::echo())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("starting an echo backend: {e}"))?;
    let addrs: Vec<SocketAddr> = backends.iter().map(Backend::addr).collect();
    let names: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("b{i} {a}")).collect();
    println!("backends (connlab's echo server): {}", names.join(", "));

    let lb = start(&addrs, Balance::RoundRobin)?;
    println!(
        "HAProxy on {} (pid {}), TCP mode, health checks every 100 ms, DOWN after 2 failures\n",
        lb.addr(),
        lb.pid()
    );
    two_legs(&lb, &addrs).map_err(|e| format!("part 1: {e}"))?;
    spreading(&lb, &addrs, requests)?;
    reuse(&lb, n_backends, requests).map_err(|e| format!("part 3: {e}"))?;
    let victim = backends.pop().ok_or("no backend to kill")?;
    dies(&lb, victim, n_backends - 1)
}

/// HAProxy in TCP mode in front of `addrs`, once every backend is UP.
fn start(addrs: &[SocketAddr], balance: Balance) -> Result<HaProxy, String> {
    let mut settings = Settings::tcp(addrs.to_vec());
    settings.balance = balance;
    start_with(settings)
}

/// HAProxy with `settings`, once every backend is UP.
fn start_with(settings: Settings) -> Result<HaProxy, String> {
    let servers = settings.servers.len();
    let lb = HaProxy::start(settings).map_err(|e| format!("starting HAProxy: {e}"))?;
    for i in 0..servers {
        let up = lb
            .wait_for_status(&format!("b{i}"), "UP", UP_WITHIN)
            .map_err(|e| e.to_string())?;
        up.ok_or_else(|| format!("b{i} not UP after {UP_WITHIN:?}:\n{}", lb.log_tail()))?;
    }
    Ok(lb)
}

/// Part 1: the client's connection and the balancer's, from the kernel.
fn two_legs(lb: &HaProxy, backends: &[SocketAddr]) -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let mut client = std::net::TcpStream::connect(lb.addr())?;
    client.write_all(b"one request")?;
    let mut echo = [0u8; 11];
    client.read_exact(&mut echo)?;
    let report = inspect::fd(client.as_raw_fd())?;
    let (local, _) = report
        .socket
        .as_ref()
        .and_then(|socket| socket.four_tuple())
        .ok_or_else(|| std::io::Error::other("the client socket has no 4-tuple in /proc/net/tcp"))?;
    let haproxy = socket_inodes(lb.pid());
    let rows = inspect::tcp_table()?.rows;
    let ports: Vec<u16> = backends.iter().map(SocketAddr::port).collect();
    let owner = |row: &inspect::TcpRow| match () {
        _ if haproxy.contains(&row.inode) => "HAProxy",
        _ if ports.contains(&row.local.port()) => "echo backend",
        _ => "client",
    };
    println!("1. one request through the balancer: the kernel's sockets for it (/proc/net/tcp)");
    println!("   owner         local                  remote                 state        inode");
    let established = || rows.iter().filter(|r| r.state == TcpState::Established);
    // Other programs share loopback, so match exact 4-tuples, not ports.
    let lb_addr = lb.addr();
    let front =
        established().filter(|r| (r.local, r.remote) == (local, lb_addr) || (r.local, r.remote) == (lb_addr, local));
    // The balancer's leg: its socket toward a backend and the backend's
    // accepted socket, the two ends of one 4-tuple. (A health check in
    // flight would show here too; they live for microseconds.)
    let outgoing: Vec<_> = established()
        .filter(|r| haproxy.contains(&r.inode) && backends.contains(&r.remote))
        .collect();
    let back = established().filter(|r| {
        outgoing
            .iter()
            .any(|o| (o.local, o.remote) == (r.local, r.remote) || (o.local, o.remote) == (r.remote, r.local))
    });
    for (leg, row) in front
        .map(|r| ("client ↔ LB", r))
        .chain(back.map(|r| ("LB ↔ backend", r)))
    {
        println!(
            "   {:<13} {:<22} {:<22} {:<12} {}   ({leg})",
            owner(row),
            row.local.to_string(),
            row.remote.to_string(),
            row.state.ss_name(),
            row.inode
        );
    }
    println!(
        "   two connections, two 4-tuples: the client's ends at the balancer, which opened its own to the backend\n"
    );
    Ok(())
}

/// The socket inodes in a process's fd table (`/proc/PID/fd/*` links).
/// Unreadable entries are skipped: an fd closed while we read is normal.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|link| match inspect::parse_fd_link(&link.to_string_lossy()) {
            Some(FdTarget::Socket(inode)) => Some(inode),
            _ => None,
        })
        .collect()
}

/// Part 2: round-robin vs least-connections, counted twice.
fn spreading(rr: &HaProxy, addrs: &[SocketAddr], requests: usize) -> Result<(), String> {
    println!(
        "2. {requests} connections one after another, every other one kept open ({} kept)",
        requests.div_ceil(2)
    );
    println!("   balance     open per backend, HAProxy scur         ESTABLISHED on each backend port (kernel)");
    for balance in [Balance::RoundRobin, Balance::LeastConn] {
        let fresh;
        let lb = if balance == Balance::RoundRobin {
            rr
        } else {
            fresh = start(addrs, balance)?;
            &fresh
        };
        let kept = backend::alternate_long_and_short(lb.addr(), requests, SETTLE).map_err(|e| e.to_string())?;
        std::thread::sleep(SETTLE);
        let scur: Vec<String> = lb
            .stats()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| s.current.to_string())
            .collect();
        let kernel: Vec<String> = addrs
            .iter()
            .map(|a| inspect::tcp_census(Some(a.port())).map(|c| c.count(TcpState::Established) / 2))
            .map(|n| n.map_or("?".to_string(), |n| n.to_string()))
            .collect();
        println!(
            "   {:<11} {:<38} {}",
            balance.as_str(),
            scur.join(" / "),
            kernel.join(" / ")
        );
        drop(kept);
        std::thread::sleep(SETTLE);
    }
    println!("   (kernel: both ends of each loopback connection are in the table, so halved; a health check in flight may add one)\n");
    Ok(())
}

/// Part 3: backend connections per client connection, TCP mode then
/// HTTP mode (connlab's HTTP server behind HAProxy with `http-reuse`).
fn reuse(lb: &HaProxy, n_backends: usize, requests: usize) -> Result<(), String> {
    let before: u64 = lb.stats().map_err(|e| e.to_string())?.iter().map(|s| s.total).sum();
    for _ in 0..requests {
        backend::round_trip(lb.addr()).map_err(|e| e.to_string())?;
    }
    let after: u64 = lb.stats().map_err(|e| e.to_string())?.iter().map(|s| s.total).sum();
    println!("3. {requests} client connections, one request each, closed after it");
    println!(
        "   TCP mode:  {} backend connections opened (show stat stot): one per client connection",
        after - before
    );

    let web: Vec<Backend> = (0..n_backends)
        .map(|i| Backend::http(&format!("b{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("starting an HTTP backend: {e}"))?;
    let mut settings = Settings::tcp(web.iter().map(Backend::addr).collect());
    settings.mode = Mode::Http;
    let http_lb = start_with(settings)?;
    let mut carried_by = std::collections::BTreeSet::new();
    for _ in 0..requests {
        let mut client = std::net::TcpStream::connect(http_lb.addr()).map_err(|e| e.to_string())?;
        let body = backend::http_get(&mut client, "/").map_err(|e| e.to_string())?;
        // "b0 connection 3 request 7": which backend connection carried it.
        let words: Vec<&str> = body.split_whitespace().collect();
        if let [server, _, conn, ..] = words.as_slice() {
            carried_by.insert((server.to_string(), conn.to_string()));
        }
    }
    let stats = http_lb.stats().map_err(|e| e.to_string())?;
    let connects: u64 = stats.iter().map(|s| s.connects).sum();
    let reuses: u64 = stats.iter().map(|s| s.reuses).sum();
    println!(
        "   HTTP mode: {} distinct backend connections carried them (named by the backends in each response); \
         HAProxy counted {connects} connects and {reuses} reuses (show stat connect/reuse)",
        carried_by.len()
    );
    println!("   the balancer keeps its backend connections alive and lends them to the next client's request: its own pool (Q7)\n");
    Ok(())
}

/// Part 4: kill one backend under load.
fn dies(lb: &HaProxy, victim: Backend, survivors: usize) -> Result<(), String> {
    let name = format!("b{survivors}");
    let stop = AtomicBool::new(false);
    let (report, down_after) = std::thread::scope(|scope| {
        let client = scope.spawn(|| backend::load_until(lb.addr(), &stop, Duration::from_secs(30)));
        std::thread::sleep(BEFORE_KILL);
        let killed = victim.kill();
        let down = lb.wait_for_status(&name, "DOWN", Duration::from_secs(5));
        std::thread::sleep(AFTER_DOWN);
        stop.store(true, Ordering::Release);
        let report = client.join();
        (report, killed.and(down))
    });
    let report = report.map_err(|_| "the client thread panicked".to_string())?;
    let down_after = down_after.map_err(|e| e.to_string())?;
    println!(
        "4. {name} killed after {} of requests in a loop, one connection each",
        show(BEFORE_KILL)
    );
    match down_after {
        Some(after) => println!(
            "   HAProxy marked {name} DOWN {} after the kill (2 failed checks, 100 ms apart)",
            show(after)
        ),
        None => println!("   HAProxy did not mark {name} DOWN within 5 s"),
    }
    println!(
        "   requests: {} answered, {} failed; the slowest failure took {} (HAProxy retried the dead server once before giving up)",
        report.ok,
        report.failed,
        show(report.slowest_failure)
    );
    println!("   after DOWN every request went to the {survivors} survivor(s); `option redispatch` would retry a failed connect elsewhere");
    if down_after.is_none() {
        return Err(format!("{name} was never marked DOWN"));
    }
    Ok(())
}

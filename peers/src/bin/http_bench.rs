//! The click's endpoint under load, side by side in one run: connlab's
//! HTTP server + pool (`http_connlab`) against hyper + deadpool-postgres +
//! tokio-postgres (`http_hyper`), both single-threaded, both in front of
//! ONE throwaway PostgreSQL, both asked `GET /api/users/42` (pool →
//! `SELECT` → JSON) by the same load generator.
//!
//! ```text
//! cargo build --release -p connlab-peers
//! cargo run --release -p connlab-peers --bin http_bench [-- --rounds 3 --secs 2 --conns 64 --same-cpu]
//! ```
//!
//! What you will see (about 30 s): one line per run, then a table per
//! mode, **keep-alive** (`--conns` connections, each sending its next
//! request as soon as the last answer is in) and **Connection: close**
//! (as many concurrent clients, each request on a new TCP connection,
//! the server closing it): requests/s, p99 latency (median over rounds),
//! the server's CPU per request, and the median of the per-round
//! ratios connlab/hyper.
//!
//! How it measures (as `echo_bench` does): the load generator is this
//! process, one tokio current-thread runtime, pinned to CPU 0; each server
//! runs in its own process on CPU 1 with the PostgreSQL server (so the
//! servers' CPU time is theirs alone, read from `/proc/<pid>/stat`);
//! rounds are interleaved in a shuffled order; every run stops at its
//! deadline. Latency is from writing the request (or, with close, from
//! `connect`) to the last byte of the body.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use connlab::testbed::postgres::Cluster;
use connlab_peers::common::{self, Args, Seconds};
use connlab_peers::{fmt_rate, fmt_ratio, median, percentile, ServerProcess, Shuffler, Table};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const SERVERS: [&str; 2] = ["http_connlab", "http_hyper"];
const KEEP_ALIVE_REQUEST: &[u8] = b"GET /api/users/42 HTTP/1.1\r\nHost: bench\r\n\r\n";
const CLOSE_REQUEST: &[u8] = b"GET /api/users/42 HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
const WARMUP: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    KeepAlive,
    Close,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::Close => "Connection: close",
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<f64>,
    errors: u64,
}

/// Read one response framed by Content-Length; `Ok(false)` on a non-200.
async fn read_response(reader: &mut BufReader<TcpStream>, line: &mut String, body: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    reader.read_line(line).await?;
    let ok = line.starts_with("HTTP/1.1 200");
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| io::Error::other("no Content-Length"))?;
    body.resize(length, 0);
    reader.read_exact(body).await?;
    Ok(ok)
}

async fn client(addr: SocketAddr, mode: Mode, deadline: Instant, tally: Rc<RefCell<Tally>>) {
    let (mut line, mut body) = (String::new(), Vec::new());
    let mut kept: Option<BufReader<TcpStream>> = None;
    while Instant::now() < deadline {
        let started = Instant::now();
        let result: io::Result<bool> = async {
            let reader = match kept.take() {
                Some(reader) => reader,
                None => {
                    let stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    BufReader::new(stream)
                }
            };
            let mut reader = reader;
            let request = if mode == Mode::Close {
                CLOSE_REQUEST
            } else {
                KEEP_ALIVE_REQUEST
            };
            reader.get_mut().write_all(request).await?;
            let ok = read_response(&mut reader, &mut line, &mut body).await?;
            if mode == Mode::KeepAlive {
                kept = Some(reader);
            }
            Ok(ok)
        }
        .await;
        let mut t = tally.borrow_mut();
        match result {
            Ok(true) => t.latencies_us.push(started.elapsed().as_secs_f64() * 1e6),
            _ => t.errors += 1,
        }
    }
}

struct Run {
    rps: f64,
    p99_us: f64,
    cpu_us_per_request: f64,
    errors: u64,
}

fn run_one(
    rt: &tokio::runtime::Runtime,
    server: &ServerProcess,
    mode: Mode,
    conns: usize,
    duration: Duration,
) -> io::Result<Run> {
    let tally = Rc::new(RefCell::new(Tally::default()));
    let cpu_before = server.cpu()?;
    let started = Instant::now();
    let deadline = started + duration;
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async {
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::task::spawn_local(client(server.addr, mode, deadline, tally.clone())))
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    let elapsed = started.elapsed();
    let cpu = server.cpu()?.saturating_sub(cpu_before);
    let mut t = tally.take();
    t.latencies_us.sort_by(f64::total_cmp);
    let n = t.latencies_us.len() as f64;
    Ok(Run {
        rps: n / elapsed.as_secs_f64(),
        p99_us: percentile(&t.latencies_us, 99.0),
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / n.max(1.0),
        errors: t.errors,
    })
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("http_bench.rs"));
    let rounds = args.value(
        "--rounds N",
        3,
        "rounds, each server once per mode per round (default 3)",
    );
    let secs = args.value(
        "--secs S",
        Seconds(Duration::from_secs(2)),
        "seconds per run, 0.5 to 30 (default 2)",
    );
    let conns = args.value("--conns N", 64, "concurrent connections (default 64)");
    let same_cpu = args.flag("--same-cpu", "pin client and servers to the same CPU");
    args.check(rounds >= 1 && conns >= 1, "--rounds and --conns must be at least 1");
    args.finish();
    common::exit("http_bench", run(rounds, secs.0.as_secs_f64(), conns, same_cpu))
}

fn run(rounds: usize, secs: f64, conns: usize, same_cpu: bool) -> io::Result<()> {
    let duration = Duration::from_secs_f64(secs.clamp(0.5, 30.0));

    let cluster = Cluster::start()?;
    let url = cluster.url();
    // Pin PostgreSQL before the servers open their pools, so the backends
    // they fork inherit the placement.
    let pinning = connlab_peers::pin_client_and_server(&cluster.pid().into_iter().collect::<Vec<_>>(), same_cpu);
    let servers: Vec<ServerProcess> = SERVERS
        .iter()
        .map(|name| ServerProcess::start(name, &["--url", &url, "--pool", "8"]))
        .collect::<io::Result<_>>()?;
    let pids: Vec<u32> = servers.iter().map(ServerProcess::pid).collect();
    let _ = connlab_peers::pin_client_and_server(&[pids, cluster.pid().into_iter().collect()].concat(), same_cpu);
    println!(
        "http: GET /api/users/42 → pool of 8 → PostgreSQL on 127.0.0.1:{}; {conns} connections, \
         {rounds} rounds × {secs} s per mode, shuffled; {pinning}",
        cluster.port()
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for server in &servers {
        run_one(&rt, server, Mode::KeepAlive, conns, WARMUP)?;
    }
    let modes = [Mode::KeepAlive, Mode::Close];
    // results[mode][server] = runs
    let mut results: Vec<Vec<Vec<Run>>> = modes
        .iter()
        .map(|_| servers.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut shuffler = Shuffler::from_env_or_clock();
    for round in 1..=rounds {
        for (m, &mode) in modes.iter().enumerate() {
            let mut order: Vec<usize> = (0..servers.len()).collect();
            shuffler.shuffle(&mut order);
            for s in order {
                let r = run_one(&rt, &servers[s], mode, conns, duration)?;
                println!(
                    "round {round}  {:<18} {:<13} {:>8} req/s  p99 {:>7.0} µs  {:>5.1} µs CPU/req  {} errors",
                    mode.label(),
                    servers[s].name,
                    fmt_rate(r.rps),
                    r.p99_us,
                    r.cpu_us_per_request,
                    r.errors
                );
                results[m][s].push(r);
            }
        }
    }
    for (m, mode) in modes.iter().enumerate() {
        let mut table = Table::new(&[
            "server",
            "req/s (median)",
            "p99 µs (median)",
            "server CPU µs/req",
            "errors",
        ]);
        for (s, server) in servers.iter().enumerate() {
            let runs = &results[m][s];
            let pick = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
            table.row(vec![
                server.name.clone(),
                fmt_rate(pick(|r| r.rps)),
                format!("{:.0}", pick(|r| r.p99_us)),
                format!("{:.1}", pick(|r| r.cpu_us_per_request)),
                runs.iter().map(|r| r.errors).sum::<u64>().to_string(),
            ]);
        }
        let ratio = |f: fn(&Run) -> f64| {
            median(
                &(0..rounds)
                    .map(|i| f(&results[m][0][i]) / f(&results[m][1][i]))
                    .collect::<Vec<_>>(),
            )
        };
        println!(
            "\n{}\n{}connlab/hyper, median of per-round ratios: req/s {}, p99 {}, CPU/req {}",
            mode.label(),
            table.render(),
            fmt_ratio(ratio(|r| r.rps)),
            fmt_ratio(ratio(|r| r.p99_us)),
            fmt_ratio(ratio(|r| r.cpu_us_per_request)),
        );
    }
    Ok(())
}

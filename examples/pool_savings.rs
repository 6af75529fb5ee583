//! pool_savings: what did pooling save you? The story's Q31 table, measured
//! on this machine instead of quoted.
//!
//! ```text
//! cargo run --release --example pool_savings
//! cargo run --release --example pool_savings -- --n 500 --backend poll
//! cargo run --release --example pool_savings -- --url postgres://me:pw@127.0.0.1:5432/db
//! cargo run --release --example pool_savings -- --rtt 0.5ms   # the story's LAN
//! ```
//!
//! `--rtt 0.5ms` puts a delay proxy (`connlab::net::delay`) between the
//! client and the server that holds each direction's bytes for half of it,
//! so every round trip costs what it would on a 0.5 ms LAN. The story's
//! "10× on a LAN" is then measured, not quoted.
//!
//! Where it connects: `--url`, else `DATABASE_URL`, else the `PG*`
//! variables if any is set, else a throwaway local cluster it starts (and
//! removes) itself (SCRAM-SHA-256 authentication, like a default server).
//!
//! What you will see, for N runs of `SELECT 1`:
//!
//! 1. **Unpooled**: each query opens its own connection (TCP handshake,
//!    StartupMessage, SCRAM's two round trips and the client's PBKDF2, the
//!    server's `fork()` of a backend), runs, and closes (Terminate). The median cost
//!    per query, split into those phases; with the throwaway cluster, the
//!    same startup over its `trust` login (no authentication) too, which
//!    separates SCRAM's cost from the fork's.
//! 2. **Pooled**: the same N queries through a pool of one connection: the
//!    median cost per query, which is the query's own round trip.
//! 3. The ratio. The story says 10× on a LAN (0.5 ms RTT). On loopback the
//!    round trip is ~50 µs while a backend's fork and start-up still cost
//!    milliseconds, so expect far more; with `--rtt 0.5ms`, see for yourself.
//! 4. TIME_WAIT sockets toward the server's port, counted from
//!    `/proc/net/tcp` (`inspect::tcp_census`) before and after each phase:
//!    about N after the unpooled run (the client closes first, so its side
//!    waits 60 s), none after the pooled one (Q28).
//! 5. What one connection costs the server: its backend process's resident
//!    memory (`VmRSS` in `/proc/<backend_pid>/status`), split into private
//!    (`RssAnon`) and the shared buffers it has mapped (`RssShmem`, shared
//!    with every other backend, so not a per-connection cost).
//!
//! Check it yourself: `ss -tan state time-wait | grep -c :PORT` right after.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::{median, show, MemoryKb};
use connlab::inspect;
use connlab::lab;
use connlab::net::delay;
use connlab::pg::config::Config as PgConfig;
use connlab::pg::connection::{Connection, Endpoint};
use connlab::poller::Backend;
use connlab::pool::pg::PgManager;
use connlab::pool::{Config, Pool, Validation};
use connlab::reactor;
use connlab::testbed::postgres::TRUST;

mod common;

/// The query both approaches run.
const QUERY: &str = "SELECT 1";

/// How many unpooled connections the trust-login comparison makes.
const TRUST_RUNS: usize = 100;

/// How long to let the last FIN/ACK exchanges finish before counting
/// TIME_WAIT sockets.
const SETTLE: Duration = Duration::from_millis(200);

struct Args {
    n: usize,
    url: Option<String>,
    backend: Backend,
    rtt: Option<Duration>,
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("pool_savings.rs"));
    let parsed = Args {
        n: args.value("--n N", 200, "queries each way, 1 or more (default 200)"),
        url: args.opt(
            "--url URL",
            "a PostgreSQL server (default: DATABASE_URL, PG*, or a throwaway one)",
        ),
        backend: args.backend(),
        rtt: args
            .opt::<delay::Rtt>(
                "--rtt DURATION",
                "add this round-trip time (e.g. 0.5ms) with a delay proxy: a LAN on loopback",
            )
            .map(|r| r.0),
    };
    args.check(parsed.n > 0, "--n must be at least 1");
    args.finish();
    parsed
}

/// TIME_WAIT sockets with `port` at either end, or `None` if `/proc/net/tcp`
/// cannot be read (then the line says so instead of printing a wrong 0).
fn time_wait(port: Option<u16>) -> Option<usize> {
    let port = port?;
    inspect::tcp_census(Some(port)).ok().map(|census| census.time_wait())
}

struct Unpooled {
    total: Vec<Duration>,
    connect: Vec<Duration>,
    startup: Vec<Duration>,
    query: Vec<Duration>,
    close: Vec<Duration>,
}

async fn unpooled(pg: &PgConfig, n: usize) -> Result<Unpooled, String> {
    let mut out = Unpooled {
        total: vec![],
        connect: vec![],
        startup: vec![],
        query: vec![],
        close: vec![],
    };
    for _ in 0..n {
        let started = Instant::now();
        let mut conn = Connection::connect(pg).await.map_err(|e| format!("connect: {e}"))?;
        let opened = Instant::now();
        conn.simple_query(QUERY).await.map_err(|e| format!("{QUERY}: {e}"))?;
        let queried = Instant::now();
        let timings = conn.timings();
        conn.close().await.map_err(|e| format!("close: {e}"))?;
        let closed = Instant::now();
        out.total.push(closed - started);
        out.connect.push(timings.connect);
        out.startup.push(timings.startup);
        out.query.push(queried - opened);
        out.close.push(closed - queried);
    }
    Ok(out)
}

async fn pooled(pool: &Pool<PgManager>, n: usize) -> Result<Vec<Duration>, String> {
    let mut total = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        conn.simple_query(QUERY).await.map_err(|e| format!("{QUERY}: {e}"))?;
        drop(conn);
        total.push(started.elapsed());
    }
    Ok(total)
}

async fn run(args: &Args, pg: PgConfig, trust: Option<PgConfig>) -> Result<(), String> {
    let n = args.n;
    // Learn the server's port from a first connection (the URL may name a
    // host, a Unix socket, or come from PG* variables).
    let probe = Connection::connect(&pg).await.map_err(|e| format!("connect: {e}"))?;
    let port = match probe.endpoint() {
        Endpoint::Tcp(addr) => Some(addr.port()),
        Endpoint::Unix(_) => None,
    };
    probe.close().await.map_err(|e| format!("close: {e}"))?;
    reactor::sleep(SETTLE).await;
    let show_tw = |count: Option<usize>| count.map_or("n/a (Unix socket or no /proc)".to_string(), |c| c.to_string());

    println!(
        "\n{n} × `{QUERY}`, backend {:?}, server port {}",
        args.backend,
        port.map_or("unix".into(), |p| p.to_string())
    );

    let tw_start = time_wait(port);
    let started = Instant::now();
    let mut fresh = unpooled(&pg, n).await?;
    let fresh_elapsed = started.elapsed();
    reactor::sleep(SETTLE).await;
    let tw_after_fresh = time_wait(port);

    let pool = Pool::open(
        PgManager::new(pg),
        Config {
            min_size: 1,
            max_size: 1,
            validation: Validation::None,
            ..Config::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut reused = pooled(&pool, n).await?;
    let pooled_elapsed = started.elapsed();
    reactor::sleep(SETTLE).await;
    let tw_after_pooled = time_wait(port);

    let fresh_median = median(&mut fresh.total);
    let pooled_median = median(&mut reused);
    println!("\n                          per query (median)   TIME_WAIT left   server processes forked");
    println!(
        "fresh connection each    {:>14}       {:>10}       {n}",
        show(fresh_median),
        show_tw(tw_after_fresh.zip(tw_start).map(|(a, b)| a.saturating_sub(b)))
    );
    println!(
        "pooled (one connection)  {:>14}       {:>10}       1",
        show(pooled_median),
        show_tw(tw_after_pooled.zip(tw_after_fresh).map(|(a, b)| a.saturating_sub(b)))
    );
    let ratio = fresh_median.as_secs_f64() / pooled_median.as_secs_f64().max(1e-9);
    match args.rtt {
        Some(rtt) => println!(
            "pooling is {ratio:.1}× faster per query with {rtt:?} added to each round trip (the story: 10× on a 0.5 ms LAN)"
        ),
        None => println!(
            "pooling is {ratio:.0}× faster per query on loopback (the story: 10× on a 0.5 ms LAN; try --rtt 0.5ms)"
        ),
    }
    println!(
        "one client, one query at a time: {:.0} queries/s unpooled, {:.0} queries/s pooled",
        n as f64 / fresh_elapsed.as_secs_f64(),
        n as f64 / pooled_elapsed.as_secs_f64()
    );

    println!("\nWhere an unpooled query's time goes (medians):");
    println!(
        "  TCP connect (SYN, SYN-ACK, ACK)            {:>10}",
        show(median(&mut fresh.connect))
    );
    println!(
        "  startup + SCRAM + backend fork             {:>10}",
        show(median(&mut fresh.startup))
    );
    println!(
        "  the query itself                           {:>10}   (vs {} pooled: a new backend's caches are cold)",
        show(median(&mut fresh.query)),
        show(pooled_median)
    );
    println!(
        "  Terminate + close                          {:>10}",
        show(median(&mut fresh.close))
    );
    match trust {
        // Our own cluster has a `trust` login: the same startup without
        // SCRAM, which splits "startup" into the fork and the key stretching.
        Some(trust) => {
            let mut without = unpooled(&trust, n.min(TRUST_RUNS)).await?;
            let startup_scram = median(&mut fresh.startup);
            let startup_trust = median(&mut without.startup);
            println!(
                "  of the startup: {} without authentication (trust login: the fork, settings, \
                 ReadyForQuery),\n  so SCRAM-SHA-256 costs {}: two more round trips and the client's PBKDF2\n  \
                 (4096 HMAC-SHA-256 rounds); the server only checks the proof against its stored keys",
                show(startup_trust),
                show(startup_scram.saturating_sub(startup_trust))
            );
        }
        None => println!(
            "  (the server's fork and start-up of a backend dominate; SCRAM adds two round trips and the client's PBKDF2)"
        ),
    }
    println!("  and each close leaves a TIME_WAIT socket holding a port for 60 s");

    let conn = pool.acquire().await.map_err(|e| e.to_string())?;
    let pid = conn.backend_pid();
    match common::memory_kb(pid) {
        Some(MemoryKb { rss, anon, file, shmem }) => {
            let mb = |kb: u64| kb as f64 / 1024.0;
            println!(
                "\nOne connection on the server: backend pid {pid}, VmRSS {:.1} MB, of which",
                mb(rss)
            );
            println!(
                "  {:>5.1} MB RssAnon: private to this backend, the real per-connection cost",
                mb(anon)
            );
            println!(
                "  {:>5.1} MB RssFile: the postgres binary and libraries, shared by every backend",
                mb(file)
            );
            println!(
                "  {:>5.1} MB RssShmem: shared buffers this backend has touched, shared too",
                mb(shmem)
            );
        }
        None => println!("\nbackend pid {pid}: /proc/{pid}/status is not readable here (a remote server?)"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = parse_args();
    let result = common::choose_server(args.url.clone()).and_then(|(mut pg, cluster)| {
        let mut trust = cluster
            .as_ref()
            .and_then(|c| PgConfig::from_url(&c.url_for(&TRUST)).ok());
        // The proxies live as long as this closure: the whole run.
        let mut _lan = Vec::new();
        if let Some(rtt) = args.rtt {
            for config in std::iter::once(&mut pg).chain(trust.as_mut()) {
                _lan.push(lab::through_lan(config, rtt).map_err(|e| format!("--rtt: {e}"))?);
            }
            println!("every round trip goes through a delay proxy adding {rtt:?} (half each way): a LAN on loopback");
        }
        reactor::block_on(args.backend, run(&args, pg, trust))
            .map_err(|e| format!("the reactor failed: {e}"))
            .and_then(|r| r)
    });
    common::exit("pool_savings", result)
}

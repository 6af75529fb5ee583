//! Pools, side by side in one run: connlab's `pool::Pool` against
//! deadpool-postgres (on tokio's current-thread runtime), on ONE throwaway
//! PostgreSQL server; then what the pool saves, pooled against unpooled.
//!
//! ```text
//! cargo build --release -p connlab-peers
//! cargo run --release -p connlab-peers --bin pool_bench [-- --rounds 3 --secs 2 --same-cpu]
//! ```
//!
//! What you will see (about 30 s):
//! 1. **acquire + release, uncontended**, no query: the pool's own
//!    bookkeeping. Timed in batches of `BATCH` (one clock read costs about
//!    as much as what is measured), the median batch's time per operation.
//! 2. **pooled throughput**: `TASKS` tasks on a pool of `POOL_SIZE`, each
//!    looping acquire → cached `SELECT name FROM users WHERE id = $1` →
//!    release, for `--secs`; rounds interleaved, median queries/s.
//! 3. **pooled vs unpooled**, connlab alone: the same 8 tasks, but each
//!    query on a fresh `pg::Connection` (TCP connect, startup, SCRAM,
//!    query, Terminate, close); queries/s, the ratio, and the TIME_WAIT
//!    sockets the unpooled run left behind (counted in `/proc/net/tcp`).
//! 4. **where the unpooled time goes**: a TCP handshake alone, a
//!    connection with `trust` auth (the backend fork and its start-up, no
//!    password), and one with SCRAM-SHA-256 (the same plus PBKDF2's 4096
//!    HMAC-SHA-256 rounds on the client and the exchange's extra round
//!    trips); medians of `CONNECTS` each, on connlab's client, whose
//!    `timings()` split each connect into the TCP handshake and the rest.
//!
//! This process runs on CPU 0 and the server on CPU 1 (`--same-cpu`: both
//! on CPU 0), so both pools get the same placement (see
//! `connlab_peers::pin_to_cpu`).
//!
//! Both pools are configured alike: 8 connections opened before timing, no
//! validation round trip on a hot connection (deadpool's `Fast` recycling;
//! connlab's default `OnAcquire` skips the ping for a connection used in
//! the last 500 ms, which under load is every one), and each task reuses a
//! statement prepared once per connection, each in its own idiom:
//! deadpool's `prepare_cached`, and connlab's plain `query()`, whose
//! per-connection statement cache does the same.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use connlab::testbed::postgres::{Cluster, TRUST};
use connlab_peers::common::{self, Args, Seconds};
use connlab_peers::{fmt_rate, fmt_ratio, median, Shuffler, Table};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// The query every pooled task runs.
const QUERY: &str = "SELECT name FROM users WHERE id = $1";
/// The `users` table the cluster creates has ids 1..=1000.
const MAX_ID: i32 = 1000;
/// Concurrent tasks and pool size, as the issue asks: 8 on 8.
const TASKS: usize = 8;
const POOL_SIZE: usize = 8;
/// Acquire+release pairs timed together.
const BATCH: usize = 1000;
/// Batches in the uncontended measurement (200 × 1000 × ~300 ns ≈ 60 ms).
const BATCHES: usize = 200;
/// Fresh connections per kind in the breakdown.
const CONNECTS: usize = 50;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contestant {
    Connlab,
    Deadpool,
}

impl Contestant {
    fn label(self) -> &'static str {
        match self {
            Contestant::Connlab => "connlab",
            Contestant::Deadpool => "deadpool-postgres",
        }
    }
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// An id for task `task`'s `n`-th query, spread over the table.
fn id_for(task: usize, n: u64) -> i32 {
    ((n.wrapping_mul(2_654_435_761).wrapping_add(task as u64 * 97)) % MAX_ID as u64) as i32 + 1
}

// ---------------------------------------------------------------- deadpool

mod deadpool {
    use super::*;

    pub fn pool(url: &str) -> io::Result<Pool> {
        let config: tokio_postgres::Config = url.parse().map_err(io::Error::other)?;
        // Fast recycling (deadpool's default) checks only that the client is
        // not closed: no round trip on acquire, like connlab's default.
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(io::Error::other)
    }

    /// Median ns per acquire+release over batches, one connection warm.
    pub fn acquire_release_ns(url: &str) -> io::Result<f64> {
        runtime()?.block_on(async {
            let pool = pool(url)?;
            drop(pool.get().await.map_err(io::Error::other)?);
            let mut per_op = Vec::with_capacity(BATCHES);
            for _ in 0..BATCHES {
                let t = Instant::now();
                for _ in 0..BATCH {
                    let conn = pool.get().await.map_err(io::Error::other)?;
                    drop(std::hint::black_box(conn));
                }
                per_op.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
            }
            Ok(median(&per_op))
        })
    }

    /// Queries per second from `TASKS` tasks sharing a pool of `POOL_SIZE`.
    pub fn pooled_qps(url: &str, duration: Duration) -> io::Result<f64> {
        runtime()?.block_on(async {
            let pool = pool(url)?;
            // Fill the pool first (connlab's `Pool::open` does the same):
            // a pool's steady state is what we compare.
            drop(open_all(&pool).await?);
            let start = Instant::now();
            let deadline = start + duration;
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let client = pool.get().await.map_err(io::Error::other)?;
                            let stmt = client.prepare_cached(QUERY).await.map_err(io::Error::other)?;
                            let id = id_for(task, n);
                            let row = client.query_one(&stmt, &[&id]).await.map_err(io::Error::other)?;
                            check_row(id, row.get(0))?;
                            n += 1;
                        }
                        Ok::<u64, io::Error>(n)
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.map_err(io::Error::other)??;
            }
            Ok(total as f64 / start.elapsed().as_secs_f64())
        })
    }

    /// Hold `POOL_SIZE` connections at once, so the pool opens all of them.
    async fn open_all(pool: &Pool) -> io::Result<Vec<deadpool_postgres::Object>> {
        let mut held = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            held.push(pool.get().await.map_err(io::Error::other)?);
        }
        Ok(held)
    }
}

// ---------------------------------------------------------------- connlab

mod connlab_pool {
    use super::*;
    use std::rc::Rc;

    use connlab::pg::Connection;
    use connlab::poller::Backend;
    use connlab::pool::pg::PgManager;
    use connlab::pool::{Config, Pool};
    use connlab::reactor;

    fn block_on<T>(future: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
        reactor::block_on(Backend::Epoll, future)?
    }

    /// A pool of `POOL_SIZE`, all of them open, otherwise as shipped.
    async fn pool(url: &str) -> io::Result<Pool<PgManager>> {
        let manager = PgManager::from_url(url).map_err(io::Error::other)?;
        let config = Config {
            min_size: POOL_SIZE,
            max_size: POOL_SIZE,
            ..Config::default()
        };
        Ok(Pool::open(manager, config).await?)
    }

    pub fn acquire_release_ns(url: &str) -> io::Result<f64> {
        block_on(async {
            let pool = pool(url).await?;
            let mut per_op = Vec::with_capacity(BATCHES);
            for _ in 0..BATCHES {
                let t = Instant::now();
                for _ in 0..BATCH {
                    let conn = pool.acquire().await?;
                    drop(std::hint::black_box(conn));
                }
                per_op.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
            }
            Ok(median(&per_op))
        })
    }

    pub fn pooled_qps(url: &str, duration: Duration) -> io::Result<f64> {
        block_on(async {
            let pool = pool(url).await?;
            let start = Instant::now();
            let deadline = start + duration;
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let pool = pool.clone();
                    reactor::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let mut conn = pool.acquire().await?;
                            let id = id_for(task, n);
                            // ANCHOR: connlab_pooled_query
                            // The idiomatic call: the connection's statement
                            // cache turns it into Bind/Execute/Sync after the
                            // first time on each connection.
                            let rows = conn.query(QUERY, &[&id]).await.map_err(io::Error::other)?;
                            // ANCHOR_END: connlab_pooled_query
                            let row = rows
                                .get(0)
                                .ok_or_else(|| io::Error::other(format!("id {id}: no row")))?;
                            check_row(id, row.get::<&str>(0).map_err(io::Error::other)?)?;
                            n += 1;
                        }
                        Ok::<u64, io::Error>(n)
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await?;
            }
            Ok(total as f64 / start.elapsed().as_secs_f64())
        })
    }

    /// `TASKS` tasks, each query on a brand-new connection, closed after.
    pub fn unpooled_qps(url: &str, duration: Duration) -> io::Result<f64> {
        block_on(async {
            let url: Rc<str> = url.into();
            let start = Instant::now();
            let deadline = start + duration;
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let url = url.clone();
                    reactor::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let mut conn = Connection::connect_url(&url).await.map_err(io::Error::other)?;
                            let id = id_for(task, n);
                            let rows = conn.query(QUERY, &[&id]).await.map_err(io::Error::other)?;
                            let row = rows
                                .get(0)
                                .ok_or_else(|| io::Error::other(format!("id {id}: no row")))?;
                            check_row(id, row.get::<&str>(0).map_err(io::Error::other)?)?;
                            conn.close().await.map_err(io::Error::other)?;
                            n += 1;
                        }
                        Ok::<u64, io::Error>(n)
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await?;
            }
            Ok(total as f64 / start.elapsed().as_secs_f64())
        })
    }

    /// Medians over `CONNECTS` fresh connections to each URL, each closed
    /// at once, alternating between them so a noisy moment hurts both
    /// alike: for each, (whole connect, its TCP handshake part) in ms.
    pub fn connect_ms(urls: [&str; 2]) -> io::Result<[(f64, f64); 2]> {
        block_on(async {
            let mut samples = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
            for _ in 0..CONNECTS {
                for (url, (total, tcp)) in urls.iter().zip(samples.iter_mut()) {
                    let t = Instant::now();
                    let conn = Connection::connect_url(url).await.map_err(io::Error::other)?;
                    total.push(t.elapsed().as_secs_f64() * 1e3);
                    tcp.push(conn.timings().connect.as_secs_f64() * 1e3);
                    conn.close().await.map_err(io::Error::other)?;
                }
            }
            Ok(samples.map(|(total, tcp)| (median(&total), median(&tcp))))
        })
    }
}

/// Median ms of a bare TCP handshake on loopback (connect + accept + close),
/// against a listener of our own so no server process is involved.
fn tcp_handshake_ms() -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr: SocketAddr = listener.local_addr()?;
    let mut ms = Vec::with_capacity(CONNECTS);
    for _ in 0..CONNECTS {
        let t = Instant::now();
        let stream = TcpStream::connect(addr)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        let (accepted, _) = listener.accept()?;
        drop(accepted);
        drop(stream);
    }
    Ok(median(&ms))
}

/// Sockets in TIME_WAIT (state `06` in `/proc/net/tcp`, see proc(5))
/// whose local or remote port is `port`.
fn time_wait_count(port: u16) -> io::Result<usize> {
    const TCP_TIME_WAIT: &str = "06";
    let text = std::fs::read_to_string("/proc/net/tcp")?;
    let port_hex = format!(":{port:04X}");
    Ok(text
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state)) = (cols.get(1), cols.get(2), cols.get(3)) else {
                return false;
            };
            *state == TCP_TIME_WAIT && (local.ends_with(&port_hex) || remote.ends_with(&port_hex))
        })
        .count())
}

/// This process's CPU time.
fn own_cpu() -> io::Result<Duration> {
    connlab_peers::process_cpu(std::process::id())
}

/// The fixture row 42 is 'Alice'; every other id `i` is `user i`.
fn check_row(id: i32, name: &str) -> io::Result<()> {
    let ok = if id == 42 {
        name == "Alice"
    } else {
        name.strip_prefix("user ") == Some(&id.to_string())
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("id {id} came back as {name:?}"),
        ))
    }
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("pool_bench.rs"));
    let rounds = args.value("--rounds N", 3, "rounds, each pool once per round (default 3)");
    let secs = args.value(
        "--secs S",
        Seconds(Duration::from_secs(2)),
        "seconds per run, 0.5 to 30 (default 2)",
    );
    let same_cpu = args.flag("--same-cpu", "pin client and server to the same CPU");
    args.finish();
    common::exit("pool_bench", run(rounds, secs.0.as_secs_f64(), same_cpu))
}

fn run(rounds: usize, secs: f64, same_cpu: bool) -> io::Result<()> {
    let duration = Duration::from_secs_f64(secs.clamp(0.5, 30.0));

    let cluster = Cluster::start()?;
    let url = cluster.url();
    let contestants = [Contestant::Connlab, Contestant::Deadpool];
    let pinning = connlab_peers::pin_client_and_server(&cluster.pid().into_iter().collect::<Vec<_>>(), same_cpu);
    println!(
        "pool: one throwaway server on 127.0.0.1:{} (SCRAM-SHA-256); {TASKS} tasks on a pool of {POOL_SIZE}, \
         {rounds} rounds × {secs} s, shuffled; {pinning}",
        cluster.port()
    );

    // 1. uncontended acquire + release
    let mut acquire = Table::new(&["pool", "acquire + release, uncontended (ns, median of batches)"]);
    for c in contestants {
        let ns = match c {
            Contestant::Connlab => connlab_pool::acquire_release_ns(&url)?,
            Contestant::Deadpool => deadpool::acquire_release_ns(&url)?,
        };
        acquire.row(vec![c.label().to_string(), format!("{ns:.0}")]);
    }
    println!("\n{}", acquire.render());

    // 2. pooled throughput, interleaved
    let mut qps: Vec<Vec<f64>> = contestants.iter().map(|_| Vec::new()).collect();
    let mut shuffler = Shuffler::from_env_or_clock();
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..contestants.len()).collect();
        shuffler.shuffle(&mut order);
        for i in order {
            let q = match contestants[i] {
                Contestant::Connlab => connlab_pool::pooled_qps(&url, duration)?,
                Contestant::Deadpool => deadpool::pooled_qps(&url, duration)?,
            };
            println!(
                "round {round}  {:<18} pooled {:>7} q/s",
                contestants[i].label(),
                fmt_rate(q)
            );
            qps[i].push(q);
        }
    }
    let mut pooled = Table::new(&["pool", "pooled q/s (median)", "connlab ÷ this (median of per-round)"]);
    for (i, (c, q)) in contestants.iter().zip(&qps).enumerate() {
        let per_round: Vec<f64> = qps[0].iter().zip(q).map(|(a, b)| a / b).collect();
        let ratio = if i == 0 {
            "—".to_string()
        } else {
            fmt_ratio(median(&per_round))
        };
        pooled.row(vec![c.label().to_string(), fmt_rate(median(q)), ratio]);
    }
    println!("\n{}", pooled.render());

    // 3. pooled vs unpooled, connlab on both sides, with the CPU each
    // query costs this process (the client) and the rest of the machine
    // (the server: postmaster, backends; and whatever else runs here).
    let measured = |run: &dyn Fn() -> io::Result<f64>| -> io::Result<(f64, f64, f64)> {
        let (own0, all0) = (own_cpu()?, connlab_peers::machine_busy_cpu()?);
        let started = Instant::now();
        let qps = run()?;
        let queries = qps * started.elapsed().as_secs_f64();
        let (own, all) = (own_cpu()? - own0, connlab_peers::machine_busy_cpu()? - all0);
        let per_query_us = |d: Duration| d.as_secs_f64() * 1e6 / queries.max(1.0);
        Ok((qps, per_query_us(own), per_query_us(all.saturating_sub(own))))
    };
    let (pooled, pooled_client, pooled_rest) = measured(&|| connlab_pool::pooled_qps(&url, duration))?;
    let before = time_wait_count(cluster.port())?;
    let (unpooled, unpooled_client, unpooled_rest) = measured(&|| connlab_pool::unpooled_qps(&url, duration))?;
    let time_wait = time_wait_count(cluster.port())?.saturating_sub(before);
    let mut savings = Table::new(&[
        "connlab, 8 tasks",
        "q/s",
        "client CPU µs/query",
        "rest of machine CPU µs/query",
        "TIME_WAIT sockets left",
    ]);
    savings.row(vec![
        "pooled (8 connections, reused)".into(),
        fmt_rate(pooled),
        format!("{pooled_client:.0}"),
        format!("{pooled_rest:.0}"),
        "0".into(),
    ]);
    savings.row(vec![
        "unpooled (new connection per query)".into(),
        fmt_rate(unpooled),
        format!("{unpooled_client:.0}"),
        format!("{unpooled_rest:.0}"),
        time_wait.to_string(),
    ]);
    println!(
        "{}pooled ÷ unpooled: {}\n",
        savings.render(),
        fmt_ratio(pooled / unpooled)
    );

    // 4. where the unpooled time goes
    let tcp_alone = tcp_handshake_ms()?;
    let [(trust, trust_tcp), (scram, scram_tcp)] = connlab_pool::connect_ms([&cluster.url_for(&TRUST), &url])?;
    let mut parts = Table::new(&[
        "one fresh connection (median)",
        "ms",
        "of which TCP connect",
        "what it adds",
    ]);
    parts.row(vec![
        "TCP handshake to our own listener".into(),
        format!("{tcp_alone:.3}"),
        format!("{tcp_alone:.3}"),
        "SYN, SYN-ACK, ACK: no process is created".into(),
    ]);
    parts.row(vec![
        "PostgreSQL, trust login".into(),
        format!("{trust:.3}"),
        format!("{trust_tcp:.3}"),
        format!(
            "{:+.3} ms: the postmaster forks a backend, which starts up and reports its settings",
            trust - tcp_alone
        ),
    ]);
    parts.row(vec![
        "PostgreSQL, SCRAM-SHA-256".into(),
        format!("{scram:.3}"),
        format!("{scram_tcp:.3}"),
        format!(
            "{:+.3} ms vs trust: PBKDF2 (4096 HMAC-SHA-256 rounds) and two more round trips; noisy beside the fork",
            scram - trust
        ),
    ]);
    println!("{}", parts.render());
    Ok(())
}

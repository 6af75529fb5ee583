//! Pools, side by side in one run: connlab's `pool::Pool` against
//! deadpool-postgres (on tokio's current-thread runtime), on ONE throwaway
//! PostgreSQL server; then what the pool saves, pooled against unpooled.
//!
//! ```text
//! cargo build --release -p connlab-peers
//! cargo run --release -p connlab-peers --bin pool_bench [-- --rounds 3 --secs 2]
//! ```
//!
//! What you will see (about 30 s):
//! 1. **acquire + release, uncontended**, no query: the pool's own
//!    bookkeeping. Timed in batches of `BATCH` (one clock read costs about
//!    as much as what is measured), the median batch's time per operation.
//! 2. **pooled throughput**: `TASKS` tasks on a pool of `POOL_SIZE`, each
//!    looping acquire → prepared `SELECT name FROM users WHERE id = $1` →
//!    release, for `--secs`; rounds interleaved, median queries/s.
//! 3. **pooled vs unpooled**: the same 8 tasks, but each query on a fresh
//!    connection (TCP connect, startup, SCRAM, query, Terminate, close);
//!    queries/s, the ratio, and the TIME_WAIT sockets the unpooled run left
//!    behind (counted in `/proc/net/tcp`).
//! 4. **where the unpooled time goes**: a TCP handshake alone, a
//!    connection with `trust` auth (the backend fork and its start-up, no
//!    password), and one with SCRAM-SHA-256 (the same plus PBKDF2's 4096
//!    HMAC-SHA-256 rounds on the client and the exchange's extra round
//!    trips); medians of `CONNECTS` each.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use connlab::pg::cluster::{Cluster, TRUST};
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
const CONNECTS: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contestant {
    Deadpool,
}

impl Contestant {
    fn label(self) -> &'static str {
        match self {
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
            // Fill the pool first: a pool's steady state is what we compare.
            let warm: Vec<_> = futures_free_join(&pool).await?;
            drop(warm);
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

    /// Take `POOL_SIZE` connections at once so the pool opens all of them.
    async fn futures_free_join(pool: &Pool) -> io::Result<Vec<deadpool_postgres::Object>> {
        let mut held = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            held.push(pool.get().await.map_err(io::Error::other)?);
        }
        Ok(held)
    }
}

// ---------------------------------------------------------------- unpooled, and its parts

/// Open a tokio-postgres connection and drive it on the current runtime.
async fn tokio_pg_connect(url: &str) -> io::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(io::Error::other)?;
    tokio::task::spawn_local(async move {
        // Ends with Terminate when the client is dropped.
        if let Err(e) = connection.await {
            eprintln!("tokio-postgres connection: {e}");
        }
    });
    Ok(client)
}

/// `TASKS` tasks, each query on a brand-new connection (tokio-postgres).
fn unpooled_qps(url: &str, duration: Duration) -> io::Result<f64> {
    let url: Rc<str> = url.into();
    let local = tokio::task::LocalSet::new();
    let rt = runtime()?;
    local.block_on(&rt, async {
        let start = Instant::now();
        let deadline = start + duration;
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let url = url.clone();
                tokio::task::spawn_local(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let client = tokio_pg_connect(&url).await?;
                        let id = id_for(task, n);
                        let row = client.query_one(QUERY, &[&id]).await.map_err(io::Error::other)?;
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

/// Median ms of `CONNECTS` connections to `url`, each closed at once.
fn connect_ms(url: &str) -> io::Result<f64> {
    let local = tokio::task::LocalSet::new();
    let rt = runtime()?;
    local.block_on(&rt, async {
        let mut ms = Vec::with_capacity(CONNECTS);
        for _ in 0..CONNECTS {
            let t = Instant::now();
            let client = tokio_pg_connect(url).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            drop(client);
        }
        Ok(median(&ms))
    })
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

fn main() -> io::Result<()> {
    let rounds: usize = connlab_peers::arg("--rounds", 3);
    let secs: f64 = connlab_peers::arg("--secs", 2.0);
    let duration = Duration::from_secs_f64(secs.clamp(0.5, 30.0));

    let cluster = Cluster::start()?;
    let url = cluster.url();
    let contestants = [Contestant::Deadpool];
    println!(
        "pool: one throwaway server on 127.0.0.1:{} (SCRAM-SHA-256); {TASKS} tasks on a pool of {POOL_SIZE}, \
         {rounds} rounds × {secs} s, shuffled",
        cluster.port()
    );

    // 1. uncontended acquire + release
    let mut acquire = Table::new(&["pool", "acquire + release, uncontended (ns, median of batches)"]);
    for c in contestants {
        let ns = match c {
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
    let mut pooled = Table::new(&["pool", "pooled q/s (median)"]);
    for (c, q) in contestants.iter().zip(&qps) {
        pooled.row(vec![c.label().to_string(), fmt_rate(median(q))]);
    }
    println!("\n{}", pooled.render());

    // 3. pooled vs unpooled
    let before = time_wait_count(cluster.port())?;
    let unpooled = unpooled_qps(&url, duration)?;
    let time_wait = time_wait_count(cluster.port())?.saturating_sub(before);
    let pooled_ref = median(&qps[0]);
    let mut savings = Table::new(&["", "q/s", "TIME_WAIT sockets left"]);
    savings.row(vec![
        format!("pooled ({})", contestants[0].label()),
        fmt_rate(pooled_ref),
        "0".into(),
    ]);
    savings.row(vec![
        "unpooled (new connection per query)".into(),
        fmt_rate(unpooled),
        time_wait.to_string(),
    ]);
    println!(
        "{}pooled ÷ unpooled: {}\n",
        savings.render(),
        fmt_ratio(pooled_ref / unpooled)
    );

    // 4. where the unpooled time goes
    let tcp = tcp_handshake_ms()?;
    let trust = connect_ms(&cluster.url_for(&TRUST))?;
    let scram = connect_ms(&url)?;
    let mut parts = Table::new(&["one fresh connection", "median ms", "what it adds"]);
    parts.row(vec![
        "TCP handshake alone (own listener)".into(),
        format!("{tcp:.3}"),
        "SYN, SYN-ACK, ACK; accept".into(),
    ]);
    parts.row(vec![
        "connect + startup, trust auth".into(),
        format!("{trust:.3}"),
        format!(
            "{:.3} ms: postmaster forks a backend, it starts up, ParameterStatus × ~14",
            trust - tcp
        ),
    ]);
    parts.row(vec![
        "connect + startup, SCRAM-SHA-256".into(),
        format!("{scram:.3}"),
        format!("{:.3} ms: PBKDF2 (4096 rounds) + 2 more round trips", scram - trust),
    ]);
    println!("{}", parts.render());
    Ok(())
}

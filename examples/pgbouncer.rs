//! pgbouncer: Q30, the other architecture of pooling, on the real engine.
//! A hundred clients through PgBouncer onto twenty PostgreSQL connections,
//! what that saves and costs, and the four ways transaction pooling loses
//! session state.
//!
//! ```text
//! cargo run --release --example pgbouncer
//! cargo run --release --example pgbouncer -- --clients 200 --pool-size 10 --rounds 2000
//! ```
//!
//! It starts a throwaway PostgreSQL and, in front of it, Debian's
//! `pgbouncer` (`scripts/install-pgbouncer`) in `pool_mode = transaction`
//! with `default_pool_size = 20`, both removed on exit.
//!
//! What you will see:
//!
//! 1. **Multiplexing, counted on both sides.** 100 client connections each
//!    run a stream of short transactions at once. Halfway through,
//!    PgBouncer's admin console (`SHOW POOLS`, `SHOW CLIENTS`) and the
//!    server's `pg_stat_activity` are read: 100 clients on PgBouncer's
//!    side, 20 server connections on both. Afterwards, how many distinct
//!    server processes (`pg_backend_pid()`) served the 100 clients.
//! 2. **Server memory saved**: the backends' resident memory from
//!    `/proc/PID/status`, the private part (`RssAnon`) times the 80
//!    connections PgBouncer did not open (arithmetic, labelled so); the
//!    shared part (shared buffers, libraries) is mapped once by all.
//! 3. **Latency it adds**: `SELECT 1` direct vs through PgBouncer, the two
//!    interleaved in one run, medians (one extra loopback hop and
//!    PgBouncer's event loop).
//! 4. **Connect cost it saves**: connect + SCRAM + close, direct vs to
//!    PgBouncer, interleaved. Direct, PostgreSQL forks a backend per
//!    connection; PgBouncer hands out one it already has.
//! 5. **The footguns** (`testbed::footguns`), each a numbered record with
//!    the server pid that ran each statement: a `SET` seen by another
//!    client; a named prepared statement that "does not exist"; a `LISTEN`
//!    whose notification goes to another client; an advisory lock that
//!    outlives its transaction. Then the same four with connlab's
//!    `transaction_pooling` setting, which avoids each.
//!
//! Loopback on one machine: the figures are for the mechanisms
//! (connections multiplexed, forks avoided, state lost), not for the
//! network latency a real deployment adds. Check the counts yourself
//! while it runs: `ss -tn state established '( sport = :PORT )'`.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use connlab::pg::connection::Error;
use connlab::pg::{Config, Connection};
use connlab::poller::Backend;
use connlab::reactor;
use connlab::testbed::footguns;
use connlab::testbed::pgbouncer::{self, PgBouncer, PoolCounts, Settings};
use connlab::testbed::process::memory_kb;
use connlab::testbed::Cluster;

const USAGE: &str =
    "usage: pgbouncer [--clients N] [--pool-size N] [--transactions N] [--rounds N] [--backend epoll|poll|select]";

/// Each client's transaction: short, but long enough that 100 clients at
/// once keep all 20 server connections busy while we count.
const TRANSACTION: &str = "SELECT pg_backend_pid() FROM pg_sleep(0.002)";

/// How often to count while the clients run. PgBouncer opens server
/// connections as demand grows, so the first counts see fewer; the
/// busiest count is printed.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Connects timed per side for the connect-cost comparison.
const CONNECTS: usize = 40;

struct Args {
    clients: usize,
    pool_size: u32,
    transactions: usize,
    rounds: usize,
    backend: Backend,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        clients: 100,
        pool_size: 20,
        transactions: 50,
        rounds: 1000,
        backend: Backend::Epoll,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        let number = |text: String| -> Result<usize, String> {
            match text.parse() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{arg}: {text:?} is not a number above 0")),
            }
        };
        match arg.as_str() {
            "--clients" => args.clients = number(value()?)?,
            "--pool-size" => {
                args.pool_size = u32::try_from(number(value()?)?).map_err(|e| format!("--pool-size: {e}"))?
            }
            "--transactions" => args.transactions = number(value()?)?,
            "--rounds" => args.rounds = number(value()?)?,
            "--backend" => {
                let name = value()?;
                args.backend = name.parse().map_err(|e| format!("--backend {name}: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(usage) if usage == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pgbouncer: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgbouncer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let cluster = Cluster::start().map_err(|e| format!("starting PostgreSQL: {e}"))?;
    let settings = Settings {
        default_pool_size: args.pool_size,
        max_client_conn: u32::try_from(args.clients + 50).unwrap_or(u32::MAX),
        ..Settings::default()
    };
    let bouncer = PgBouncer::start(&cluster, settings).map_err(|e| format!("starting PgBouncer: {e}"))?;
    println!(
        "PostgreSQL on 127.0.0.1:{} (postmaster pid {}), PgBouncer on 127.0.0.1:{} (pid {}, pool_mode = {}, default_pool_size = {})\n",
        cluster.port(),
        cluster.pid().unwrap_or_default(),
        bouncer.port(),
        bouncer.pid(),
        settings.mode.as_str(),
        settings.default_pool_size,
    );
    let direct = Config::from_url(&cluster.url()).map_err(|e| e.to_string())?;
    let through = Config::from_url(&bouncer.url()).map_err(|e| e.to_string())?;
    let admin = Config::from_url(&bouncer.admin_url()).map_err(|e| e.to_string())?;
    reactor::block_on(args.backend, async {
        let backends = multiplex(args, &direct, &through, &admin).await?;
        memory(args, &backends);
        latency(args.rounds, &direct, &through).await?;
        connect_cost(&direct, &through).await?;
        show_footguns(&direct, &through).await
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// What both sides counted while the clients were busy.
struct Counts {
    pools: PoolCounts,
    show_clients: usize,
    server_backends: Vec<u32>,
}

/// Part 1. Returns the server backends' pids (for part 2).
async fn multiplex(args: &Args, direct: &Config, through: &Config, admin: &Config) -> Result<Vec<u32>, Error> {
    println!(
        "1. {} clients through PgBouncer, {} transactions each",
        args.clients, args.transactions
    );
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(Connection::connect(through).await?);
    }
    let workers: Vec<_> = clients
        .into_iter()
        .map(|mut conn| {
            let transactions = args.transactions;
            reactor::spawn(async move {
                let mut pids = BTreeSet::new();
                for _ in 0..transactions {
                    let rows = conn.query(TRANSACTION, &[]).await?;
                    if let Some(pid) = rows.get(0).and_then(|row| row.get::<i32>(0).ok()) {
                        pids.insert(pid);
                    }
                }
                Ok::<_, Error>((pids, conn))
            })
        })
        .collect();
    let mut counts: Option<Counts> = None;
    let mut samples = 0;
    while workers.iter().any(|worker| !worker.is_finished()) {
        reactor::sleep(SAMPLE_EVERY).await;
        let now = count(direct, admin).await?;
        samples += 1;
        let busier = match &counts {
            Some(best) => now.pools.servers() > best.pools.servers(),
            None => true,
        };
        if busier {
            counts = Some(now);
        }
    }
    let counts = match counts {
        Some(counts) => counts,
        None => count(direct, admin).await?,
    };
    let mut served_by = BTreeSet::new();
    let mut done = Vec::new();
    for worker in workers {
        let (pids, conn) = worker.await?;
        served_by.extend(pids);
        done.push(conn);
    }
    let pools = counts.pools;
    println!(
        "   counted {samples} times while they ran, every {} ms; the count with the most server connections:",
        SAMPLE_EVERY.as_millis()
    );
    println!(
        "   PgBouncer SHOW POOLS   clients: {} ({} active, {} waiting for a server)   servers: {} ({} active, {} idle, {} used, {} logging in)",
        pools.clients(),
        pools.cl_active,
        pools.cl_waiting,
        pools.servers(),
        pools.sv_active,
        pools.sv_idle,
        pools.sv_used,
        pools.sv_login
    );
    println!("   PgBouncer SHOW CLIENTS  {} client connections", counts.show_clients);
    println!(
        "   PostgreSQL pg_stat_activity  {} client backends (besides the one counting)",
        counts.server_backends.len()
    );
    println!(
        "   afterwards: {} clients were served by {} distinct server processes (pg_backend_pid)\n",
        done.len(),
        served_by.len()
    );
    for conn in done {
        conn.close().await?;
    }
    Ok(counts.server_backends)
}

async fn count(direct: &Config, admin: &Config) -> Result<Counts, Error> {
    let mut console = Connection::connect(admin).await?;
    let pools = pgbouncer::show_pools(&mut console).await?;
    let show_clients = pgbouncer::show_clients(&mut console).await?;
    console.close().await?;
    let mut referee = Connection::connect(direct).await?;
    let rows = referee
        .query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .await?;
    let server_backends = rows
        .iter()
        .filter_map(|row| row.get::<i32>(0).ok())
        .filter_map(|pid| u32::try_from(pid).ok())
        .collect();
    referee.close().await?;
    Ok(Counts {
        pools,
        show_clients,
        server_backends,
    })
}

/// Part 2: what the connections PgBouncer did not open would have cost.
fn memory(args: &Args, backends: &[u32]) {
    let mut rss: Vec<u64> = Vec::new();
    let mut private: Vec<u64> = Vec::new();
    for (all, anon) in backends.iter().filter_map(|&pid| memory_kb(pid)) {
        rss.push(all);
        private.push(anon);
    }
    let (Some(rss), Some(private)) = (median(&mut rss), median(&mut private)) else {
        println!("2. server memory: no backend's /proc/PID/status could be read\n");
        return;
    };
    let servers = backends.len();
    let not_opened = args.clients.saturating_sub(servers) as u64;
    println!("2. server memory per backend (median of {servers}, measured): VmRSS {rss} kB, of which private (RssAnon) {private} kB");
    println!(
        "   arithmetic: {not_opened} connections not opened × {private} kB private = {:.1} MB never allocated on the server",
        (not_opened * private) as f64 / 1024.0
    );
    println!(
        "   (the other {} kB of each VmRSS is shared buffers and libraries, mapped by every backend once: \
         {not_opened} × VmRSS = {:.0} MB is what `ps` would add up, not what RAM would lose)\n",
        rss.saturating_sub(private),
        (not_opened * rss) as f64 / 1024.0
    );
}

/// Part 3: `SELECT 1` direct vs through PgBouncer, interleaved.
async fn latency(rounds: usize, direct: &Config, through: &Config) -> Result<(), Error> {
    let mut to_server = Connection::connect(direct).await?;
    let mut to_bouncer = Connection::connect(through).await?;
    let (mut direct_us, mut bounced_us) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        direct_us.push(timed(to_server.query("SELECT 1", &[])).await?);
        bounced_us.push(timed(to_bouncer.query("SELECT 1", &[])).await?);
    }
    let direct_us = median(&mut direct_us).unwrap_or_default();
    let bounced_us = median(&mut bounced_us).unwrap_or_default();
    println!("3. latency of SELECT 1 (median of {rounds}, interleaved, measured):");
    println!(
        "   direct {direct_us} µs   through PgBouncer {bounced_us} µs   added {} µs per query\n",
        bounced_us.saturating_sub(direct_us)
    );
    to_server.close().await?;
    to_bouncer.close().await
}

/// Part 4: connect + authenticate + close, direct vs through PgBouncer.
async fn connect_cost(direct: &Config, through: &Config) -> Result<(), Error> {
    let (mut direct_us, mut bounced_us) = (Vec::new(), Vec::new());
    for _ in 0..CONNECTS {
        direct_us.push(timed(async { Connection::connect(direct).await?.close().await }).await?);
        bounced_us.push(timed(async { Connection::connect(through).await?.close().await }).await?);
    }
    let direct_us = median(&mut direct_us).unwrap_or_default();
    let bounced_us = median(&mut bounced_us).unwrap_or_default();
    println!("4. connect + SCRAM + close (median of {CONNECTS}, interleaved, measured):");
    println!(
        "   to PostgreSQL {direct_us} µs (a fork per connection)   to PgBouncer {bounced_us} µs (a server connection it already has)   ratio {:.1}×\n",
        direct_us as f64 / bounced_us.max(1) as f64
    );
    Ok(())
}

/// Part 5: the footguns without and with connlab's setting.
async fn show_footguns(direct: &Config, through: &Config) -> Result<(), Error> {
    println!("5. the transaction-pooling footguns, plain client (each line: client, server pid that ran it, statement → answer)\n");
    for outcome in footguns::all(through, direct).await? {
        println!("{outcome}");
    }
    let mut guarded = through.clone();
    guarded.transaction_pooling = true;
    println!("   the same, with connlab's transaction_pooling = true\n");
    for outcome in footguns::all(&guarded, direct).await? {
        println!("{outcome}");
    }
    Ok(())
}

async fn timed<T>(work: impl std::future::Future<Output = Result<T, Error>>) -> Result<u64, Error> {
    let started = Instant::now();
    work.await?;
    Ok(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
}

fn median(samples: &mut [u64]) -> Option<u64> {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied()
}

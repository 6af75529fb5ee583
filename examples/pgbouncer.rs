//! pgbouncer: Q30, the other architecture of pooling, on the real engine.
//! A hundred clients through PgBouncer onto twenty PostgreSQL connections,
//! what that saves and costs, and the ways transaction pooling loses
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
//!    outlives its transaction; and the client's own statement cache,
//!    whose `s1` meets another client's `s1` ("already exists"). Then the
//!    same five with connlab's `transaction_pooling` setting, which avoids
//!    each. (Parts 1–4 run with the setting on, as a client behind
//!    transaction pooling should.)
//!
//! Loopback on one machine: the figures are for the mechanisms
//! (connections multiplexed, forks avoided, state lost), not for the
//! network latency a real deployment adds. Check the counts yourself
//! while it runs: `ss -tn state established '( sport = :PORT )'`.

mod common;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::{median, show};
use connlab::pg::connection::Error;
use connlab::pg::{Config, Connection};
use connlab::poller::Backend;
use connlab::reactor;
use connlab::testbed::footguns;
use connlab::testbed::pgbouncer::{self, PgBouncer, PoolCounts, Settings};
use connlab::testbed::Cluster;

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

fn main() -> ExitCode {
    let mut cli = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("pgbouncer.rs"));
    let args = Args {
        clients: cli.value("--clients N", 100, "client connections to PgBouncer (default 100)"),
        pool_size: cli.value("--pool-size N", 20, "PgBouncer's default_pool_size (default 20)"),
        transactions: cli.value("--transactions N", 50, "transactions per client (default 50)"),
        rounds: cli.value(
            "--rounds N",
            1000,
            "SELECT 1 round trips per side for the latency (default 1000)",
        ),
        backend: cli.backend(),
    };
    cli.check(args.clients > 0, "--clients must be at least 1");
    cli.check(args.pool_size > 0, "--pool-size must be at least 1");
    cli.check(args.transactions > 0, "--transactions must be at least 1");
    cli.check(args.rounds > 0, "--rounds must be at least 1");
    cli.check(
        args.clients <= 10_000,
        "--clients above 10000 would exceed the fd limit this example assumes",
    );
    cli.finish();
    common::exit("pgbouncer", run(&args))
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
    // The plain client, for the footguns; everything else runs as a client
    // behind transaction pooling should: with connlab's setting on.
    let plain = Config::from_url(&bouncer.url()).map_err(|e| e.to_string())?;
    let through = Config {
        transaction_pooling: true,
        ..plain.clone()
    };
    let admin = Config::from_url(&bouncer.admin_url()).map_err(|e| e.to_string())?;
    reactor::block_on(args.backend, async {
        let backends = multiplex(args, &direct, &through, &admin).await?;
        memory(args, &backends);
        latency(args.rounds, &direct, &through).await?;
        connect_cost(&direct, &through).await?;
        show_footguns(&direct, &plain).await
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// What both sides counted while the clients were busy.
struct Counts {
    pools: PoolCounts,
    show_clients: usize,
    server_backends: Vec<i32>,
}

/// Part 1. Returns the server backends' pids (for part 2).
async fn multiplex(args: &Args, direct: &Config, through: &Config, admin: &Config) -> Result<Vec<i32>, Error> {
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
    let server_backends = rows.iter().filter_map(|row| row.get::<i32>(0).ok()).collect();
    referee.close().await?;
    Ok(Counts {
        pools,
        show_clients,
        server_backends,
    })
}

/// Part 2: what the connections PgBouncer did not open would have cost.
fn memory(args: &Args, backends: &[i32]) {
    let mut rss: Vec<u64> = Vec::new();
    let mut private: Vec<u64> = Vec::new();
    for memory in backends.iter().filter_map(|&pid| common::memory_kb(pid)) {
        rss.push(memory.rss);
        private.push(memory.anon);
    }
    rss.sort_unstable();
    private.sort_unstable();
    let (Some(&rss), Some(&private)) = (rss.get(rss.len() / 2), private.get(private.len() / 2)) else {
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
    // The same messages on both sides: through PgBouncer the setting keeps
    // the statement cache off, so direct runs without it too (Parse, Bind,
    // Describe, Execute, Sync each time).
    let mut to_server = Connection::connect(&footguns::without_cache(direct)).await?;
    let mut to_bouncer = Connection::connect(through).await?;
    let (mut direct_t, mut bounced_t) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        direct_t.push(timed(to_server.query("SELECT 1", &[])).await?);
        bounced_t.push(timed(to_bouncer.query("SELECT 1", &[])).await?);
    }
    let (direct_t, bounced_t) = (median(&mut direct_t), median(&mut bounced_t));
    println!("3. latency of SELECT 1 (median of {rounds}, interleaved, measured):");
    println!(
        "   direct {}   through PgBouncer {}   added {} per query\n",
        show(direct_t),
        show(bounced_t),
        show(bounced_t.saturating_sub(direct_t))
    );
    to_server.close().await?;
    to_bouncer.close().await
}

/// Part 4: connect + authenticate + close, direct vs through PgBouncer.
async fn connect_cost(direct: &Config, through: &Config) -> Result<(), Error> {
    let (mut direct_t, mut bounced_t) = (Vec::new(), Vec::new());
    for _ in 0..CONNECTS {
        direct_t.push(timed(async { Connection::connect(direct).await?.close().await }).await?);
        bounced_t.push(timed(async { Connection::connect(through).await?.close().await }).await?);
    }
    let (direct_t, bounced_t) = (median(&mut direct_t), median(&mut bounced_t));
    println!("4. connect + SCRAM + close (median of {CONNECTS}, interleaved, measured):");
    println!(
        "   to PostgreSQL {} (a fork per connection)   to PgBouncer {} (a server connection it already has)   ratio {:.1}×\n",
        show(direct_t),
        show(bounced_t),
        direct_t.as_secs_f64() / bounced_t.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// Part 5: the footguns without and with connlab's setting.
async fn show_footguns(direct: &Config, plain: &Config) -> Result<(), Error> {
    println!("5. the transaction-pooling footguns, plain client (each line: client, server pid that ran it, statement → answer)\n");
    for outcome in footguns::all(plain, direct).await? {
        println!("{outcome}");
    }
    let guarded = Config {
        transaction_pooling: true,
        ..plain.clone()
    };
    println!("   the same, with connlab's transaction_pooling = true\n");
    for outcome in footguns::all(&guarded, direct).await? {
        println!("{outcome}");
    }
    Ok(())
}

async fn timed<T>(work: impl std::future::Future<Output = Result<T, Error>>) -> Result<Duration, Error> {
    let started = Instant::now();
    work.await?;
    Ok(started.elapsed())
}

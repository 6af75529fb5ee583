//! One PostgreSQL connection, side by side in one run: connlab's
//! `pg::Connection` against tokio-postgres (current-thread runtime) and
//! libpq (driven by `pgbench`), all on ONE throwaway server.
//!
//! ```text
//! cargo build --release -p connlab-peers
//! cargo run --release -p connlab-peers --bin pg_bench [-- --rounds 5 --secs 1 --connects 10 --same-cpu]
//! cargo run --release -p connlab-peers --bin pg_bench -- --serve 600   # just the server, to poke at by hand
//! ```
//!
//! What you will see (about 40 s): one line per run, then a table of
//! medians per client and the ratios connlab ÷ tokio-postgres and
//! connlab ÷ libpq:
//! - **connect + SCRAM**: TCP connect, StartupMessage, the SCRAM-SHA-256
//!   exchange (the client runs PBKDF2 with 4096 iterations; the server checks the proof with a few HMACs), the server's
//!   ParameterStatus flood, ReadyForQuery. libpq's figure is pgbench's
//!   `-C` "average connection time": a mean, not a median.
//! - **sequential**: one connection, the statement prepared once (connlab:
//!   by its statement cache, on the first plain `query()`), then
//!   `SELECT name FROM users WHERE id = $1` with a random id in 1..=1000,
//!   one at a time: p50, p99 and queries per second. pgbench's per-query
//!   latencies come from its `-l` log.
//! - **pipelined**: batches of `PIPELINE_DEPTH` queries sent before
//!   waiting for any reply, then all replies read. Each client in its own
//!   idiom: connlab's `Connection::pipeline` (Bind/Execute per query once
//!   the statement cache has it, one Sync per batch), pgbench's `\startpipeline` …
//!   `\endpipeline` with `-M extended` (the same messages), and
//!   tokio-postgres running `PIPELINE_DEPTH` queries of a prepared
//!   statement at once (its connection task writes them back to back, one
//!   Sync each). pgbench's `-M prepared` pipeline (Bind/Execute only) is
//!   printed after the table as the ceiling.
//!
//! Every client does each measurement once per round, in a shuffled order;
//! rounds are repeated and medians taken. This process (and pgbench) runs
//! on CPU 0 and the server on CPU 1, or all on CPU 0 with `--same-cpu`:
//! the two placements differ by about 3× in round-trip time here (see
//! `connlab_peers::pin_to_cpu`), so every client must get the same one.
//!
//! Needs PostgreSQL's server binaries (see `scripts/install-postgres`) and
//! `pgbench` (Debian's `postgresql-client` package) for the libpq column,
//! which is skipped with a note when pgbench is missing.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connlab::testbed::postgres::{Cluster, DATABASE, SCRAM};
use connlab_peers::common::{self, Args, Seconds};
use connlab_peers::{fmt_rate, fmt_ratio, median, percentile, Shuffler, Table};

/// The query every client runs.
const QUERY: &str = "SELECT name FROM users WHERE id = $1";
/// The `users` table the cluster creates has ids 1..=1000.
const MAX_ID: i32 = 1000;
/// Executions sent per pipelined batch before reading any reply.
const PIPELINE_DEPTH: usize = 16;
/// The pipelined runs are shorter: they only need a rate.
const PIPELINE_SECS_FRACTION: f64 = 0.5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Connlab,
    TokioPostgres,
    Libpq,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::Connlab => "connlab",
            Client::TokioPostgres => "tokio-postgres",
            Client::Libpq => "libpq (pgbench)",
        }
    }
}

/// Everything one client measured, over all rounds.
#[derive(Default)]
struct Results {
    connect_ms: Vec<f64>,
    /// p50 and p99 of each round's per-query latencies, in µs. Per round,
    /// then the median of those: pooling every query of every round would
    /// weigh a fast round (more queries) above a slow one.
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    /// Queries per second, one per round.
    sequential_qps: Vec<f64>,
    /// Client CPU µs per sequential query, one per round.
    cpu_us_per_query: Vec<f64>,
    pipelined_qps: Vec<f64>,
}

/// A pseudo-random id in 1..=MAX_ID, so the server does not serve one
/// cached row over and over (pgbench's `random(1, 1000)` does the same).
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % MAX_ID as u64) as i32 + 1
    }
}

/// One sequential run's outcome.
struct Sequential {
    latency_us: Vec<f64>,
    qps: f64,
    /// The client's own CPU time per query: a client that spun instead of
    /// sleeping in its poller would show low latency and a full core here.
    cpu_us_per_query: f64,
}

/// This process's CPU time (every in-process client runs on this thread).
fn own_cpu() -> io::Result<Duration> {
    connlab_peers::process_cpu(std::process::id())
}

fn cpu_us_per(cpu: Duration, queries: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / queries.max(1) as f64
}

// ---------------------------------------------------------------- connlab

mod connlab_pg {
    use super::*;
    use connlab::pg::connection::types::ToSql;
    use connlab::pg::connection::Rows;
    use connlab::pg::Connection;
    use connlab::poller::Backend;
    use connlab::reactor;

    /// connlab's client on its own reactor, epoll, default (edge) mode.
    fn block_on<T>(future: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
        reactor::block_on(Backend::Epoll, future)?
    }

    fn name_of(id: i32, rows: &Rows) -> io::Result<()> {
        let row = rows
            .get(0)
            .ok_or_else(|| io::Error::other(format!("id {id}: no row")))?;
        check_name(id, row.get::<&str>(0).map_err(io::Error::other)?)
    }

    pub fn connect_times(url: &str, n: usize) -> io::Result<Vec<f64>> {
        block_on(async {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let conn = Connection::connect_url(url).await.map_err(io::Error::other)?;
                out.push(t.elapsed().as_secs_f64() * 1e3);
                conn.close().await.map_err(io::Error::other)?;
            }
            Ok(out)
        })
    }

    pub fn sequential(url: &str, duration: Duration, ids: &mut Ids) -> io::Result<Sequential> {
        block_on(async {
            let mut conn = Connection::connect_url(url).await.map_err(io::Error::other)?;
            let mut latency_us = Vec::new();
            let cpu0 = own_cpu()?;
            let start = Instant::now();
            while start.elapsed() < duration {
                let id = ids.next();
                let t = Instant::now();
                // Plain query(): the statement cache parses it on the first call only.
                let rows = conn.query(QUERY, &[&id]).await.map_err(io::Error::other)?;
                latency_us.push(t.elapsed().as_secs_f64() * 1e6);
                name_of(id, &rows)?;
            }
            let qps = latency_us.len() as f64 / start.elapsed().as_secs_f64();
            let cpu_us_per_query = cpu_us_per(own_cpu()? - cpu0, latency_us.len());
            conn.close().await.map_err(io::Error::other)?;
            Ok(Sequential {
                latency_us,
                qps,
                cpu_us_per_query,
            })
        })
    }

    pub fn pipelined(url: &str, duration: Duration, ids: &mut Ids) -> io::Result<f64> {
        block_on(async {
            let mut conn = Connection::connect_url(url).await.map_err(io::Error::other)?;
            let mut done = 0usize;
            let start = Instant::now();
            while start.elapsed() < duration {
                // ANCHOR: connlab_pipeline
                let batch_ids: Vec<i32> = (0..PIPELINE_DEPTH).map(|_| ids.next()).collect();
                let params: Vec<[&dyn ToSql; 1]> = batch_ids.iter().map(|id| [id as &dyn ToSql]).collect();
                let batch: Vec<(&str, &[&dyn ToSql])> = params.iter().map(|p| (QUERY, &p[..])).collect();
                // One write: Bind/Execute × depth (Parse + Describe too, the
                // first time, before the statement cache has it), then one Sync.
                let results = conn.pipeline(&batch).await.map_err(io::Error::other)?;
                for (id, rows) in batch_ids.iter().zip(results) {
                    name_of(*id, &rows.map_err(io::Error::other)?)?;
                    done += 1;
                }
                // ANCHOR_END: connlab_pipeline
            }
            let qps = done as f64 / start.elapsed().as_secs_f64();
            conn.close().await.map_err(io::Error::other)?;
            Ok(qps)
        })
    }
}

// ---------------------------------------------------------------- tokio-postgres

mod tokio_pg {
    use super::*;
    use tokio_postgres::NoTls;

    fn runtime() -> io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    }

    async fn connect(url: &str) -> io::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(io::Error::other)?;
        // The connection future drives the socket; it ends when the client
        // is dropped (Terminate), so its result only matters if it fails.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("tokio-postgres connection: {e}");
            }
        });
        Ok(client)
    }

    pub fn connect_times(url: &str, n: usize) -> io::Result<Vec<f64>> {
        runtime()?.block_on(async {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let client = connect(url).await?;
                out.push(t.elapsed().as_secs_f64() * 1e3);
                drop(client);
            }
            Ok(out)
        })
    }

    pub fn sequential(url: &str, duration: Duration, ids: &mut Ids) -> io::Result<Sequential> {
        runtime()?.block_on(async {
            let client = connect(url).await?;
            let stmt = client.prepare(QUERY).await.map_err(io::Error::other)?;
            let mut latency_us = Vec::new();
            let cpu0 = own_cpu()?;
            let start = Instant::now();
            while start.elapsed() < duration {
                let id = ids.next();
                let t = Instant::now();
                let row = client.query_one(&stmt, &[&id]).await.map_err(io::Error::other)?;
                latency_us.push(t.elapsed().as_secs_f64() * 1e6);
                let name: &str = row.get(0);
                check_name(id, name)?;
            }
            let qps = latency_us.len() as f64 / start.elapsed().as_secs_f64();
            let cpu_us_per_query = cpu_us_per(own_cpu()? - cpu0, latency_us.len());
            Ok(Sequential {
                latency_us,
                qps,
                cpu_us_per_query,
            })
        })
    }

    pub fn pipelined(url: &str, duration: Duration, ids: &mut Ids) -> io::Result<f64> {
        runtime()?.block_on(async {
            let client = Arc::new(connect(url).await?);
            let stmt = client.prepare(QUERY).await.map_err(io::Error::other)?;
            let mut done = 0usize;
            let start = Instant::now();
            while start.elapsed() < duration {
                // Queries in flight together are written back to back by
                // tokio-postgres's connection task: that is its pipelining.
                let batch: Vec<_> = (0..PIPELINE_DEPTH)
                    .map(|_| {
                        let (client, stmt, id) = (client.clone(), stmt.clone(), ids.next());
                        tokio::spawn(async move { (id, client.query_one(&stmt, &[&id]).await) })
                    })
                    .collect();
                for handle in batch {
                    let (id, row) = handle.await.map_err(io::Error::other)?;
                    let row = row.map_err(io::Error::other)?;
                    check_name(id, row.get(0))?;
                    done += 1;
                }
            }
            Ok(done as f64 / start.elapsed().as_secs_f64())
        })
    }
}

// ---------------------------------------------------------------- libpq via pgbench

mod libpq {
    use super::*;

    /// `pgbench` against the cluster as the SCRAM login; returns its stdout.
    fn pgbench(cluster: &Cluster, args: &[&str]) -> io::Result<String> {
        let out = Command::new("pgbench")
            .args(["-h", "127.0.0.1", "-p", &cluster.port().to_string(), "-U", SCRAM.user])
            .env("PGPASSWORD", SCRAM.password.unwrap_or_default())
            .args(args)
            .arg(DATABASE)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "pgbench {args:?}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The number after `key` in pgbench's report (`tps = 10012.3 (...)`).
    fn report_value(report: &str, key: &str) -> io::Result<f64> {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| io::Error::other(format!("pgbench report has no `{key}`:\n{report}")))
    }

    pub fn available() -> bool {
        Command::new("pgbench")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub struct Scripts {
        dir: PathBuf,
    }

    impl Scripts {
        /// The two pgbench scripts, in a temp dir removed on drop.
        pub fn write() -> io::Result<Scripts> {
            let dir = std::env::temp_dir().join(format!("connlab-pg-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let select = "SELECT name FROM users WHERE id = :id;\n";
            std::fs::write(
                dir.join("select.sql"),
                format!("\\set id random(1, {MAX_ID})\n{select}"),
            )?;
            let mut pipe = String::from("\\startpipeline\n");
            for _ in 0..PIPELINE_DEPTH {
                pipe.push_str(&format!("\\set id random(1, {MAX_ID})\n{select}"));
            }
            pipe.push_str("\\endpipeline\n");
            std::fs::write(dir.join("pipeline.sql"), pipe)?;
            Ok(Scripts { dir })
        }

        fn path(&self, name: &str) -> String {
            self.dir.join(name).display().to_string()
        }
    }

    impl Drop for Scripts {
        fn drop(&mut self) {
            // Best effort: a leftover temp dir is harmless.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `pgbench -C` opens a new connection per transaction and reports the
    /// mean time `PQconnectdb` took.
    pub fn connect_mean_ms(cluster: &Cluster, scripts: &Scripts, n: usize) -> io::Result<f64> {
        let t = n.to_string();
        let report = pgbench(
            cluster,
            &["-n", "-C", "-c", "1", "-t", &t, "-f", &scripts.path("select.sql")],
        )?;
        report_value(&report, "average connection time =")
    }

    pub fn sequential(cluster: &Cluster, scripts: &Scripts, duration: Duration) -> io::Result<Sequential> {
        let secs = duration.as_secs().max(1).to_string();
        let log_prefix = scripts.dir.join("log");
        let prefix_arg = format!("--log-prefix={}", log_prefix.display());
        let cpu0 = connlab_peers::children_cpu()?;
        let report = pgbench(
            cluster,
            &[
                "-n",
                "-c",
                "1",
                "-M",
                "prepared",
                "-f",
                &scripts.path("select.sql"),
                "-T",
                &secs,
                "-l",
                &prefix_arg,
            ],
        )?;
        let qps = report_value(&report, "tps =")?;
        let latency_us = read_logs(&scripts.dir, "log")?;
        // pgbench's whole life, connect included: a slight overestimate.
        let cpu_us_per_query = cpu_us_per(connlab_peers::children_cpu()? - cpu0, latency_us.len());
        Ok(Sequential {
            latency_us,
            qps,
            cpu_us_per_query,
        })
    }

    /// Per-transaction latencies from pgbench's `-l` logs (`prefix.PID`),
    /// which are removed once read. Each line is `client_id
    /// transaction_no latency_us script_no epoch_s epoch_us`.
    fn read_logs(dir: &Path, prefix: &str) -> io::Result<Vec<f64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{prefix}.")))
            {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            out.extend(
                text.lines()
                    .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok()),
            );
            std::fs::remove_file(&path)?;
        }
        if out.is_empty() {
            return Err(io::Error::other("pgbench wrote no transaction log"));
        }
        Ok(out)
    }

    /// `-M extended` sends Parse (unnamed), Bind, Describe, Execute per
    /// query, as connlab's `pipeline` does; `-M prepared` only Bind and
    /// Execute of a statement parsed once.
    pub fn pipelined(cluster: &Cluster, scripts: &Scripts, duration: Duration, mode: &str) -> io::Result<f64> {
        let secs = duration.as_secs().max(1).to_string();
        let report = pgbench(
            cluster,
            &[
                "-n",
                "-c",
                "1",
                "-M",
                mode,
                "-f",
                &scripts.path("pipeline.sql"),
                "-T",
                &secs,
            ],
        )?;
        Ok(report_value(&report, "tps =")? * PIPELINE_DEPTH as f64)
    }
}

/// The fixture row 42 is 'Alice'; every other id `i` is `user i`.
fn check_name(id: i32, name: &str) -> io::Result<()> {
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
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("pg_bench.rs"));
    // Many short rounds rather than a few long ones: on this shared machine
    // a round trip's cost jumps between two regimes for seconds at a time
    // (see docs/comparisons.md), and a median needs many samples of each.
    let options = Options {
        rounds: args.value("--rounds N", 5, "rounds, each client once per round (default 5)"),
        secs: args
            .value(
                "--secs S",
                Seconds(Duration::from_secs(1)),
                "seconds per sequential run, 1 to 30 (default 1)",
            )
            .0
            .as_secs_f64(),
        connects: args.value("--connects N", 10, "connects timed per round (default 10)"),
        serve: args.opt(
            "--serve SECS",
            "no benchmark: keep the server up that long (at most 3600)",
        ),
        same_cpu: args.flag("--same-cpu", "pin client and server to the same CPU"),
    };
    args.finish();
    common::exit("pg_bench", run(options))
}

/// The command line.
struct Options {
    rounds: usize,
    secs: f64,
    connects: usize,
    serve: Option<u64>,
    same_cpu: bool,
}

fn run(options: Options) -> io::Result<()> {
    let Options {
        rounds,
        secs,
        connects,
        serve,
        same_cpu,
    } = options;
    let duration = Duration::from_secs_f64(secs.clamp(1.0, 30.0));
    let pipe_duration = Duration::from_secs_f64((secs * PIPELINE_SECS_FRACTION).clamp(1.0, 30.0));

    let cluster = Cluster::start()?;
    let url = cluster.url();
    if let Some(secs) = serve {
        // No benchmark: keep the server up for poking at by hand (psql, pgbench).
        println!("{url}  (up for {secs} s)");
        std::thread::sleep(Duration::from_secs(secs.min(3600)));
        return Ok(());
    }
    let pinning = connlab_peers::pin_client_and_server(&cluster.pid().into_iter().collect::<Vec<_>>(), same_cpu);
    let scripts = libpq::Scripts::write()?;
    let mut clients = vec![Client::Connlab, Client::TokioPostgres];
    if libpq::available() {
        clients.push(Client::Libpq);
    } else {
        println!("pgbench not found: the libpq column is skipped (apt-get install postgresql-client)");
    }
    println!(
        "postgres: one throwaway server on 127.0.0.1:{} (SCRAM-SHA-256); {rounds} rounds, shuffled; \
         sequential {secs} s, pipelined {} s in batches of {PIPELINE_DEPTH}, {connects} connects per round; {pinning}",
        cluster.port(),
        pipe_duration.as_secs_f64()
    );

    let mut ids = Ids(0x9E37_79B9_7F4A_7C15);
    // Warm the server's caches (catalog, the users pages) and each client's
    // code paths so round 1 is not special.
    let warm = Duration::from_millis(300);
    connlab_pg::sequential(&url, warm, &mut ids)?;
    tokio_pg::sequential(&url, warm, &mut ids)?;

    let mut results: Vec<Results> = clients.iter().map(|_| Results::default()).collect();
    let mut libpq_prepared_pipeline = Vec::new();
    let mut shuffler = Shuffler::from_env_or_clock();
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..clients.len()).collect();
        shuffler.shuffle(&mut order);
        for i in order {
            let client = clients[i];
            let r = &mut results[i];
            let (connect, seq, pipe) = match client {
                Client::Connlab => (
                    connlab_pg::connect_times(&url, connects)?,
                    connlab_pg::sequential(&url, duration, &mut ids)?,
                    connlab_pg::pipelined(&url, pipe_duration, &mut ids)?,
                ),
                Client::TokioPostgres => (
                    tokio_pg::connect_times(&url, connects)?,
                    tokio_pg::sequential(&url, duration, &mut ids)?,
                    tokio_pg::pipelined(&url, pipe_duration, &mut ids)?,
                ),
                Client::Libpq => (
                    vec![libpq::connect_mean_ms(&cluster, &scripts, connects)?],
                    libpq::sequential(&cluster, &scripts, duration)?,
                    libpq::pipelined(&cluster, &scripts, pipe_duration, "extended")?,
                ),
            };
            println!(
                "round {round}  {:<16} connect {:>6.2} ms  sequential {:>7} q/s ({:.1} µs client CPU/q)  pipelined {:>7} q/s",
                client.label(),
                median(&connect),
                fmt_rate(seq.qps),
                seq.cpu_us_per_query,
                fmt_rate(pipe)
            );
            r.connect_ms.extend(connect);
            let mut sorted = seq.latency_us;
            sorted.sort_by(f64::total_cmp);
            r.p50_us.push(percentile(&sorted, 50.0));
            r.p99_us.push(percentile(&sorted, 99.0));
            r.sequential_qps.push(seq.qps);
            r.cpu_us_per_query.push(seq.cpu_us_per_query);
            r.pipelined_qps.push(pipe);
            if client == Client::Libpq {
                libpq_prepared_pipeline.push(libpq::pipelined(&cluster, &scripts, pipe_duration, "prepared")?);
            }
        }
    }
    report(&clients, &results);
    if !libpq_prepared_pipeline.is_empty() {
        println!(
            "libpq pipelined with -M prepared (Bind/Execute only, no Parse or Describe per query): {} q/s (median)",
            fmt_rate(median(&libpq_prepared_pipeline))
        );
    }
    Ok(())
}

fn report(clients: &[Client], results: &[Results]) {
    let mut table = Table::new(&[
        "client",
        "connect + SCRAM (ms)",
        "sequential p50 (µs)",
        "p99 (µs)",
        "sequential q/s",
        "client CPU µs/query",
        "pipelined q/s",
    ]);
    for (client, r) in clients.iter().zip(results) {
        let connect_note = if *client == Client::Libpq { " (mean)" } else { "" };
        table.row(vec![
            client.label().to_string(),
            format!("{:.2}{connect_note}", median(&r.connect_ms)),
            format!("{:.1}", median(&r.p50_us)),
            format!("{:.1}", median(&r.p99_us)),
            fmt_rate(median(&r.sequential_qps)),
            format!("{:.1}", median(&r.cpu_us_per_query)),
            fmt_rate(median(&r.pipelined_qps)),
        ]);
    }
    println!("\n{}", table.render());

    let Some(c) = clients.iter().position(|&c| c == Client::Connlab) else {
        println!("(connlab's client is not on main yet: no ratios)");
        return;
    };
    let mut ratios = Table::new(&[
        "connlab ÷",
        "connect time",
        "p50 latency (median of per-round)",
        "p99 latency (median of per-round)",
        "sequential q/s (median of per-round)",
        "pipelined q/s (median of per-round)",
    ]);
    for (i, client) in clients.iter().enumerate() {
        if i == c {
            continue;
        }
        let (a, b) = (&results[c], &results[i]);
        let per_round = |x: &[f64], y: &[f64]| median(&x.iter().zip(y).map(|(x, y)| x / y).collect::<Vec<_>>());
        ratios.row(vec![
            client.label().to_string(),
            fmt_ratio(median(&a.connect_ms) / median(&b.connect_ms)),
            fmt_ratio(per_round(&a.p50_us, &b.p50_us)),
            fmt_ratio(per_round(&a.p99_us, &b.p99_us)),
            fmt_ratio(per_round(&a.sequential_qps, &b.sequential_qps)),
            fmt_ratio(per_round(&a.pipelined_qps, &b.pipelined_qps)),
        ]);
    }
    println!(
        "{}\n(times: below 1× is faster; rates: above 1× is faster)",
        ratios.render()
    );
}

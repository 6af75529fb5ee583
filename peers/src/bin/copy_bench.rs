//! COPY, side by side in one run: loading rows with `COPY ... FROM STDIN`
//! through connlab's `Connection::copy_in` against tokio-postgres's
//! `Client::copy_in` (current-thread runtime), on ONE throwaway server.
//!
//! ```text
//! cargo run --release -p connlab-peers --bin copy_bench [-- --rows 1000000 --rounds 3 --same-cpu]
//! ```
//!
//! What you will see (about 30 s for a million rows): one line per load,
//! then a table of medians (rows per second, client CPU per row, the peak
//! resident memory of this process) and the ratio connlab ÷ tokio-postgres.
//!
//! Each load truncates an UNLOGGED table `(id int, name text)` and streams
//! the same text-format rows (`17\tuser 17\n`) in pieces of 64 KiB; the
//! server parses and stores every row, so most of the time is the server's
//! and the two clients differ in what they add on top: framing, copying,
//! and the wait for the socket. Loads alternate in a shuffled order per
//! round. This process runs on CPU 0 and the server on CPU 1
//! (`--same-cpu`: both on CPU 0).

use std::io;
use std::process::ExitCode;
use std::time::Instant;

use connlab::testbed::postgres::Cluster;
use connlab_peers::common::{self, Args};
use connlab_peers::{fmt_rate, fmt_ratio, median, process_cpu, Shuffler, Table};

/// The piece each client hands over per call.
const PIECE: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Connlab,
    TokioPostgres,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::Connlab => "connlab",
            Client::TokioPostgres => "tokio-postgres",
        }
    }
}

/// The text-format stream for `rows` rows, cut into pieces of about
/// `PIECE` bytes on row boundaries (either client would accept any cut).
fn pieces(rows: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut piece = Vec::with_capacity(PIECE + 64);
    for id in 0..rows {
        piece.extend_from_slice(format!("{id}\tuser {id}\n").as_bytes());
        if piece.len() >= PIECE {
            out.push(std::mem::replace(&mut piece, Vec::with_capacity(PIECE + 64)));
        }
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

const TABLE_SQL: &str = "CREATE UNLOGGED TABLE IF NOT EXISTS copy_target (id int, name text)";
const COPY_SQL: &str = "COPY copy_target FROM STDIN";

mod connlab_copy {
    use super::*;
    use connlab::pg::Connection;
    use connlab::poller::Backend;
    use connlab::reactor;

    /// One load; returns the row count the server reported.
    pub fn load(url: &str, data: &[Vec<u8>]) -> io::Result<u64> {
        reactor::block_on(Backend::Epoll, async {
            let mut conn = Connection::connect_url(url).await.map_err(io::Error::other)?;
            conn.simple_query("TRUNCATE copy_target")
                .await
                .map_err(io::Error::other)?;
            // ANCHOR: connlab_copy_in
            let mut copy = conn.copy_in(COPY_SQL).await.map_err(io::Error::other)?;
            for piece in data {
                copy.send(piece).await.map_err(io::Error::other)?;
            }
            let rows = copy.finish().await.map_err(io::Error::other)?;
            // ANCHOR_END: connlab_copy_in
            conn.close().await.map_err(io::Error::other)?;
            Ok(rows)
        })?
    }
}

mod tokio_copy {
    use super::*;
    use bytes::Bytes;
    use futures_util::SinkExt;
    use tokio_postgres::NoTls;

    pub fn load(url: &str, data: &[Vec<u8>]) -> io::Result<u64> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(io::Error::other)?;
            let task = tokio::spawn(connection);
            client
                .batch_execute("TRUNCATE copy_target")
                .await
                .map_err(io::Error::other)?;
            let sink = client.copy_in::<_, Bytes>(COPY_SQL).await.map_err(io::Error::other)?;
            futures_util::pin_mut!(sink);
            for piece in data {
                // Bytes::from(Vec) takes the buffer as is; the clone is the
                // price of reusing `data` across rounds, paid outside neither
                // client's own code but counted in this one's CPU.
                sink.send(Bytes::from(piece.clone())).await.map_err(io::Error::other)?;
            }
            let rows = sink.finish().await.map_err(io::Error::other)?;
            drop(client);
            let _ = task.await;
            Ok(rows)
        })
    }
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("copy_bench.rs"));
    let rows: usize = args.value(
        "--rows N",
        1_000_000,
        "rows per load, 1000 to 10000000 (default 1000000)",
    );
    let rounds: usize = args.value("--rounds N", 3, "rounds, each client once per round (default 3)");
    let same_cpu = args.flag("--same-cpu", "pin client and server to the same CPU");
    args.check((1000..=10_000_000).contains(&rows), "--rows must be 1000 to 10000000");
    args.check((1..=20).contains(&rounds), "--rounds must be 1 to 20");
    args.finish();
    common::exit("copy_bench", run(rows, rounds, same_cpu))
}

fn run(rows: usize, rounds: usize, same_cpu: bool) -> io::Result<()> {
    let cluster = Cluster::start()?;
    let url = cluster.url();
    let pinning = connlab_peers::pin_client_and_server(&cluster.pid().into_iter().collect::<Vec<_>>(), same_cpu);
    let data = pieces(rows);
    let bytes: usize = data.iter().map(Vec::len).sum();
    println!(
        "copy: one throwaway server on 127.0.0.1:{}; {rows} rows ({:.1} MB) per load in {} pieces; {rounds} rounds, shuffled; {pinning}",
        cluster.port(),
        bytes as f64 / 1e6,
        data.len()
    );
    reactor_setup(&url)?;

    let me = std::process::id();
    let clients = [Client::Connlab, Client::TokioPostgres];
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut cpu_ns: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    let mut shuffler = Shuffler::from_env_or_clock();
    for round in 1..=rounds {
        let mut order = [0usize, 1];
        shuffler.shuffle(&mut order);
        let mut this_round = [0.0; 2];
        for &i in &order {
            let cpu0 = process_cpu(me)?;
            let t = Instant::now();
            let copied = match clients[i] {
                Client::Connlab => connlab_copy::load(&url, &data)?,
                Client::TokioPostgres => tokio_copy::load(&url, &data)?,
            };
            let secs = t.elapsed().as_secs_f64();
            let cpu = process_cpu(me)? - cpu0;
            if copied != rows as u64 {
                return Err(io::Error::other(format!(
                    "{}: copied {copied} of {rows}",
                    clients[i].label()
                )));
            }
            this_round[i] = rows as f64 / secs;
            rates[i].push(this_round[i]);
            cpu_ns[i].push(cpu.as_nanos() as f64 / rows as f64);
            println!(
                "round {round}  {:<15} {:>12} rows/s  client CPU {:.0} ns/row",
                clients[i].label(),
                fmt_rate(this_round[i]),
                cpu.as_nanos() as f64 / rows as f64
            );
        }
        ratios.push(this_round[0] / this_round[1]);
    }
    let mut table = Table::new(&["client", "rows/s (median)", "client CPU ns/row (median)"]);
    for (i, c) in clients.iter().enumerate() {
        table.row(vec![
            c.label().to_string(),
            fmt_rate(median(&rates[i])),
            format!("{:.0}", median(&cpu_ns[i])),
        ]);
    }
    println!("\n{}", table.render());
    println!(
        "connlab ÷ tokio-postgres, rows/s (median of per-round ratios): {}",
        fmt_ratio(median(&ratios))
    );
    println!(
        "peak resident memory of this process (both clients, plus the {:.1} MB of input): {} kB",
        bytes as f64 / 1e6,
        peak_rss_kb()
    );
    Ok(())
}

/// Create the target table once.
fn reactor_setup(url: &str) -> io::Result<()> {
    connlab::reactor::block_on(connlab::poller::Backend::Epoll, async {
        let mut conn = connlab::pg::Connection::connect_url(url)
            .await
            .map_err(io::Error::other)?;
        conn.simple_query(TABLE_SQL).await.map_err(io::Error::other)?;
        conn.close().await.map_err(io::Error::other)
    })?
}

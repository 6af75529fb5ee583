//! tls: what does TLS add to a database connection?
//!
//! The story's Q5, on the database leg: the browser's connection pays a TLS
//! handshake once and then keeps the connection; so does a backend's
//! connection to PostgreSQL, and this measures what that handshake costs.
//!
//! ```text
//! cargo run --release --example tls
//! cargo run --release --example tls -- --rounds 50 --backend poll
//! CONNLAB_TRACE=1 cargo run --example tls -- --rounds 1
//! ```
//!
//! It starts a throwaway cluster with `ssl = on` and certificates made for
//! the run, then opens connections in turn (interleaved, so a busy machine
//! slows every mode alike) with `sslmode=disable`, `require` and
//! `verify-full` (which also checks the certificate against the run's CA),
//! and reports the median of each phase: the TCP handshake, the TLS leg
//! (SSLRequest, the one-byte `S`, the TLS handshake; and the handshake
//! alone, since the `S` waits for the server to fork the backend that
//! answers it, which in clear happens during startup), and startup (with
//! TLS, SCRAM-SHA-256-PLUS, bound to the server's certificate). Then the
//! median round trip of `SELECT 1` on a kept connection, in clear and
//! under TLS: what each query pays once the handshake is behind it.
//!
//! What you will see: the TLS leg is one extra round trip for the
//! SSLRequest plus the TLS 1.3 handshake (one more round trip and the
//! key exchange and signature computations), typically a millisecond or
//! less on loopback, small beside SCRAM's PBKDF2; a query under TLS costs
//! a few microseconds more (encryption of a few dozen bytes each way).
//! With `CONNLAB_TRACE=1`, every TLS record of the handshake as it crosses
//! the socket (`→ TLS record handshake: ClientHello, 250 bytes`...); in
//! TLS 1.3 everything after ServerHello, the certificate included, is
//! already encrypted.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use connlab::pg::connection::{ConnectTimings, Connection};
use connlab::pg::Config;
use connlab::poller::Backend;
use connlab::reactor;
use connlab::testbed::Cluster;

mod common;

/// Queries per mode for the round-trip median.
const QUERIES: usize = 200;

struct Args {
    rounds: usize,
    backend: Backend,
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("tls.rs"));
    let rounds = args.value("--rounds N", 30usize, "connections per mode");
    args.check(rounds > 0, "--rounds must be at least 1");
    let backend = args.backend();
    args.finish();
    Args { rounds, backend }
}

fn main() -> ExitCode {
    common::exit("tls", run(parse_args()))
}

/// One way to connect, and what its connections measured.
struct Mode {
    name: &'static str,
    config: Config,
    connect: Vec<Duration>,
    tls: Vec<Duration>,
    handshake: Vec<Duration>,
    startup: Vec<Duration>,
    query: Vec<Duration>,
}

impl Mode {
    fn new(name: &'static str, url: &str) -> Result<Mode, String> {
        Ok(Mode {
            name,
            config: Config::from_url(url).map_err(|e| e.to_string())?,
            connect: Vec::new(),
            tls: Vec::new(),
            handshake: Vec::new(),
            startup: Vec::new(),
            query: Vec::new(),
        })
    }

    fn record(&mut self, conn: &Connection) {
        let t: ConnectTimings = conn.timings();
        self.handshake
            .push(conn.tls().map(|tls| tls.handshake).unwrap_or_default());
        self.connect.push(t.connect);
        self.tls.push(t.tls);
        self.startup.push(t.startup);
    }
}

fn run(args: Args) -> Result<(), String> {
    let cluster = Cluster::start_with_tls().map_err(|e| format!("starting a TLS cluster: {e}"))?;
    let ca = cluster.tls_ca().ok_or("the cluster has no CA file")?;
    println!("server: a throwaway cluster with ssl = on, port {}", cluster.port());
    let base = cluster.url();
    let mut modes = vec![
        Mode::new("disable", &format!("{base}?sslmode=disable"))?,
        Mode::new("require", &format!("{base}?sslmode=require"))?,
        Mode::new(
            "verify-full",
            &format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()),
        )?,
    ];
    reactor::block_on(args.backend, async {
        for _ in 0..args.rounds {
            for mode in modes.iter_mut() {
                let conn = Connection::connect(&mode.config)
                    .await
                    .map_err(|e| format!("sslmode={}: {e}", mode.name))?;
                mode.record(&conn);
            }
        }
        for mode in modes.iter_mut() {
            let mut conn = Connection::connect(&mode.config).await.map_err(|e| e.to_string())?;
            describe(mode.name, &conn);
            for _ in 0..QUERIES {
                let started = Instant::now();
                conn.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
                mode.query.push(started.elapsed());
            }
        }
        Ok::<(), String>(())
    })
    .map_err(|e| e.to_string())??;
    report(&mut modes, args.rounds);
    Ok(())
}

/// What the session agreed on.
fn describe(name: &str, conn: &Connection) {
    match conn.tls() {
        Some(tls) => println!("sslmode={name}: {tls}"),
        None => println!("sslmode={name}: plaintext"),
    }
}

fn report(modes: &mut [Mode], rounds: usize) {
    println!(
        "\nmedians of {rounds} connections per mode (interleaved), then of {QUERIES} `SELECT 1` on one connection:"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "sslmode", "TCP", "TLS leg", "handshake", "startup", "total", "SELECT 1"
    );
    let mut totals = Vec::new();
    for mode in modes.iter_mut() {
        let mut total: Vec<Duration> = (0..mode.connect.len())
            .map(|i| mode.connect[i] + mode.tls[i] + mode.startup[i])
            .collect();
        let total = common::median(&mut total);
        let query = common::median(&mut mode.query);
        totals.push((mode.name, total, query));
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            mode.name,
            common::show(common::median(&mut mode.connect)),
            common::show(common::median(&mut mode.tls)),
            common::show(common::median(&mut mode.handshake)),
            common::show(common::median(&mut mode.startup)),
            common::show(total),
            common::show(query),
        );
    }
    let (_, plain_total, plain_query) = totals[0];
    for (name, total, query) in &totals[1..] {
        println!(
            "sslmode={name}: connecting takes {:.2}x as long as in clear, a query {:.2}x (ratios of the medians above)",
            total.as_secs_f64() / plain_total.as_secs_f64().max(1e-9),
            query.as_secs_f64() / plain_query.as_secs_f64().max(1e-9),
        );
    }
}

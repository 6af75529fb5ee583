//! psql: run SQL, print the rows, then show the connection behind them.
//!
//! The story's Q9/Q17: what does `SELECT … WHERE id = 42` cost, and what
//! is the "connection" it travels on?
//!
//! ```text
//! cargo run --example psql -- "SELECT * FROM users WHERE id = 42"
//! cargo run --example psql -- --url postgres://me:pw@127.0.0.1:5432/db "SELECT now()"
//! CONNLAB_TRACE=1 cargo run --example psql -- --backend select "SELECT 1; SELECT 2"
//! ```
//!
//! Where it connects: `--url`, else `DATABASE_URL`, else the `PG*`
//! variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`) if
//! any is set, else a throwaway local cluster it starts (and removes) itself,
//! which has a `users` table with `(42, 'Alice')`.
//!
//! What you will see: the rows as a table, like `psql`; then the socket
//! (its fd, both ends of the 4-tuple from `getsockname(2)`/`getpeername(2)`,
//! the server process's pid, which you can find with `ps` or in
//! `pg_stat_activity`); then where the time went: the connect (~0.1 ms on
//! loopback, of which the TCP handshake itself is tens of µs and the rest
//! is the reactor waking up), startup + authentication (a few ms: mostly
//! the server forking and starting a backend, about 0.5 ms of it the
//! client's PBKDF2 for SCRAM), and the query itself (a fraction of a
//! millisecond). With `CONNLAB_TRACE=1`, every protocol message too. A
//! failed statement (`ERROR 42601` and the like), a protocol error or a lost
//! connection ends with the error on stderr and exit status 1.

use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use connlab::pg::connection::{Connection, Rows};
use connlab::poller::Backend;
use connlab::{reactor, sys};

mod common;

struct Args {
    url: Option<String>,
    backend: Backend,
    sql: String,
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("psql.rs"));
    let url = args.opt(
        "--url URL",
        "a PostgreSQL server (default: DATABASE_URL, PG*, or a throwaway one)",
    );
    let backend = args.backend();
    let sql = args.free("SQL", "the statements to run (after `--` if they start with `-`)");
    args.finish();
    Args {
        url,
        backend,
        sql: sql.unwrap_or_else(|| "SELECT * FROM users WHERE id = 42".to_string()),
    }
}

fn main() -> ExitCode {
    common::exit("psql", run(parse_args()))
}

/// Connect, run the SQL, show the connection. A failed statement, a
/// protocol error or a lost connection is the program's failure: its error
/// goes to stderr and the exit status is 1, as `psql -v ON_ERROR_STOP=1`.
fn run(args: Args) -> Result<(), String> {
    let (config, _cluster) = common::choose_server(args.url)?;
    let backend = args.backend;
    reactor::block_on(backend, async move {
        let mut conn = Connection::connect(&config)
            .await
            .map_err(|e| format!("{config}: {e}"))?;
        let started = Instant::now();
        let results = conn.simple_query(&args.sql).await;
        let query_time = started.elapsed();
        if let Ok(results) = &results {
            results.iter().for_each(print_table);
        }
        print_connection(&conn, backend, query_time);
        let closed = conn.close().await.map_err(|e| format!("close: {e}"));
        results.map_err(|e| e.to_string())?;
        closed
    })
    .map_err(|e| format!("reactor: {e}"))?
}

/// The rows as psql draws them: padded columns, a rule, a row count.
fn print_table(rows: &Rows) {
    if rows.columns().is_empty() {
        println!("{}\n", rows.tag());
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.value(i).map_or_else(|e| format!("<{e}>"), |v| v.to_string()))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = rows
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let widest = cells.iter().filter_map(|r| r.get(i)).map(|s| s.chars().count()).max();
            widest.unwrap_or(0).max(c.name.chars().count())
        })
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!(" {v:<w$} ")).collect();
        println!("{}", padded.join("|").trim_end());
    };
    line(rows.columns().iter().map(|c| c.name.as_str()).collect());
    println!(
        "{}",
        widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+")
    );
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    let n = rows.len();
    println!("({n} row{})\n", if n == 1 { "" } else { "s" });
}

/// The socket and the timings, printed whether the statements worked or not.
fn print_connection(conn: &Connection, backend: Backend, query_time: Duration) {
    let fd = conn.as_raw_fd();
    let show = |addr: std::io::Result<sys::addr::Addr>| addr.map_or_else(|e| e.to_string(), |a| a.to_string());
    let timings = conn.timings();
    println!("the connection behind those rows");
    println!("  fd              {fd}   (ls -l /proc/{}/fd/{fd})", std::process::id());
    println!("  local address   {}", show(sys::addr::getsockname(fd)));
    println!("  peer address    {}", show(sys::addr::getpeername(fd)));
    println!("  server pid      {}   (SELECT pg_backend_pid())", conn.backend_pid());
    println!("  server version  {}", conn.parameter("server_version").unwrap_or("?"));
    println!("  transaction     {:?}", conn.transaction_status());
    println!("  poller          {}", backend.name());
    match conn.tls() {
        Some(tls) => println!("  TLS             {tls}"),
        None => println!("  TLS             none (sslmode=require to insist)"),
    }
    println!("timings");
    println!(
        "  connect         {}   (socket, connect, EINPROGRESS, writable: handshake + reactor wake-up)",
        common::show(timings.connect)
    );
    println!(
        "  SSLRequest+TLS  {}   (the one-byte answer, and the TLS handshake if it was 'S')",
        common::show(timings.tls)
    );
    println!(
        "  startup + auth  {}   (StartupMessage .. ReadyForQuery: backend fork and start-up, SCRAM)",
        common::show(timings.startup)
    );
    println!(
        "  query           {}   (Query .. ReadyForQuery)",
        common::show(query_time)
    );
}

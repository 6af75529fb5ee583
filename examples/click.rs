//! click: the story's first sentence, "You click a button. A name appears
//! on screen", served for real: a page with the **Load More** button, an
//! HTTP/1.1 backend on connlab's reactor, a pool, and PostgreSQL, with
//! the path of each click measured from both ends (Q1–Q8, Q22–Q25, Q29).
//!
//! ```text
//! cargo run --release --example click
//! cargo run --release --example click -- --addr 127.0.0.1:0 --backend poll
//! cargo run --release --example click -- --url postgres://me:pw@127.0.0.1:5432/db
//! ```
//!
//! Where it connects: `--url`, else `DATABASE_URL`, else the `PG*`
//! variables, else a throwaway local cluster it starts (and removes on
//! exit, Ctrl-C included). It prints the page's URL; open it and click.
//!
//! What you will see, in the browser: the name `Alice` (the story's three
//! lines of JavaScript: `fetch('/api/users/42')`, `res.json()`,
//! `textContent`), and under it the click's waterfall:
//!
//! - the browser's half, from its own Resource Timing API: TCP connect
//!   (zero on the second click: the browser kept the connection, Q3),
//!   request sent, first byte, done;
//! - the server's half, sent back with the response: the 4-tuple as the
//!   server sees it and whether the connection is new, the `read` calls
//!   and bytes, parse, `pool.acquire()` (an idle pop in microseconds, or a
//!   whole new PostgreSQL connection), every PostgreSQL message out and in,
//!   JSON, the response `write`, and `TCP_INFO` (rtt, cwnd).
//!
//! Toggles on the page change the path: a fresh PostgreSQL connection
//! instead of the pool (Q31); `Connection: close` (a new TCP handshake per
//! click, and a TIME_WAIT left on the server's side, Q27–Q29); a response
//! larger than the initial congestion window (Q23's slow start).
//!
//! In the terminal, one line per request tells the same path, so the
//! example teaches without a browser too (`curl -v` the API URL). Check
//! the 4-tuple with `ss -tnp state established '( sport = :8042 )'`.
//!
//! `--pool-max`, `--acquire-timeout-ms` and the API's `hold_ms` parameter
//! exist for the failure tests (an exhausted pool answers 503).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::Seconds;
use connlab::http::{Exchange, Limits, Request, Response, Server, Status};
use connlab::net::TcpListener;
use connlab::pg::config::Config as PgConfig;
use connlab::pg::connection::tap::{Direction, WireRecord};
use connlab::pg::Connection;
use connlab::poller::Backend;
use connlab::pool::pg::PgManager;
use connlab::pool::{Config as PoolConfig, Pool, Validation};
use connlab::reactor::{self, Signals};
use connlab::sys::info::tcp_info;
use serde_json::{json, Value};

mod common;

/// The page: one HTML file with its script and style inline, so nothing is
/// fetched from anywhere else.
const PAGE: &str = include_str!("click.html");

/// The story's query. `users` is the table the throwaway cluster creates
/// (1000 rows, Alice is 42); the e-mail is derived so the JSON matches the
/// story's `{"id": 42, "name": "Alice", "email": "alice@example.com"}`.
const QUERY: &str = "SELECT id, name, lower(name) || '@example.com' FROM users WHERE id = $1";

/// How many finished exchanges the server remembers for the page's
/// follow-up request (the write of a response can only be reported after
/// that response was sent).
const EXCHANGES_KEPT: usize = 256;

struct Args {
    addr: SocketAddr,
    url: Option<String>,
    backend: Backend,
    pool_max: usize,
    acquire_timeout: Duration,
    keep_alive: Duration,
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("click.rs"));
    let parsed = Args {
        addr: args.listen_addr(8042),
        url: args.opt(
            "--url URL",
            "PostgreSQL to use (default: DATABASE_URL, PG*, or a throwaway cluster)",
        ),
        backend: args.backend(),
        pool_max: args.value("--pool-max N", 4, "the pool's max_size, 1 or more (default 4)"),
        acquire_timeout: Duration::from_millis(args.value(
            "--acquire-timeout-ms MS",
            2000,
            "how long a request waits for a pooled connection before its 503 (default 2000)",
        )),
        keep_alive: args
            .value(
                "--keep-alive S",
                Seconds(Limits::default().keep_alive_timeout),
                "seconds an idle browser connection is kept before the server closes it (default 75)",
            )
            .0,
    };
    args.check(parsed.pool_max >= 1, "--pool-max must be at least 1");
    args.finish();
    parsed
}

/// What the handlers share: the pool, how to open a fresh connection, and
/// the recent exchanges.
struct App {
    pool: Pool<PgManager>,
    pg: PgConfig,
    backend: Backend,
    /// Finished exchanges by (connection id, request number on it).
    exchanges: RefCell<VecDeque<((u64, u64), Value)>>,
    /// The handler's account of a request, waiting for its write to finish
    /// so the terminal line can be printed whole.
    pending_lines: RefCell<HashMap<(u64, u64), String>>,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn flag(target: &str, name: &str) -> bool {
    query_param(target, name).is_some_and(|v| v == "1")
}

fn error_json(status: Status, message: String) -> Response {
    Response::json(status, json!({ "error": message }).to_string())
}

async fn route(app: Rc<App>, req: Request) -> Response {
    let path = req.head.target.split('?').next().unwrap_or("");
    match (req.head.method.as_str(), path) {
        ("GET", "/") => Response::with_body(Status::OK, "text/html; charset=utf-8", PAGE),
        ("GET", "/api/users/42") => user(&app, &req).await,
        ("GET", p) if p.starts_with("/api/exchanges/") => exchange(&app, p),
        (_, "/" | "/api/users/42") => Response::text(Status::METHOD_NOT_ALLOWED, "GET only\n"),
        _ => Response::text(Status::NOT_FOUND, "not found\n"),
    }
}

/// How the handler got its PostgreSQL connection.
enum Source {
    Pooled(connlab::pool::Pooled<PgManager>),
    Fresh(Connection),
}

impl Source {
    fn conn(&mut self) -> &mut Connection {
        match self {
            Source::Pooled(c) => c,
            Source::Fresh(c) => c,
        }
    }
}

/// `GET /api/users/42`: acquire, query, JSON, with every step measured.
async fn user(app: &App, req: &Request) -> Response {
    // ANCHOR: handler
    let target = &req.head.target;
    let tcp_before = tcp_info(req.conn.fd).ok();

    // pool.acquire() (Q9), or a whole new connection when the page asks.
    let started = Instant::now();
    let created_before = app.pool.stats().created;
    let mut source = if flag(target, "fresh") {
        match Connection::connect_tapped(&app.pg, false).await {
            Ok(conn) => Source::Fresh(conn),
            Err(e) => return error_json(Status::SERVICE_UNAVAILABLE, format!("connect to PostgreSQL: {e}")),
        }
    } else {
        match app.pool.acquire().await {
            Ok(conn) => Source::Pooled(conn),
            Err(e) => return error_json(Status::SERVICE_UNAVAILABLE, format!("pool.acquire(): {e}")),
        }
    };
    let acquire = started.elapsed();
    let how = match &source {
        Source::Fresh(_) => "fresh connection (no pool)",
        Source::Pooled(_) if app.pool.stats().created > created_before => "new pooled connection",
        Source::Pooled(_) => "idle pop",
    };
    let conn = source.conn();
    let startup_messages = conn.take_wire_tap();

    // The query: Parse/Bind/Describe/Execute/Sync out, one round trip back.
    conn.start_wire_tap(false);
    let started = Instant::now();
    let rows = conn.query(QUERY, &[&42i32]).await;
    let db = started.elapsed();
    let messages = conn.take_wire_tap();
    let backend_pid = conn.backend_pid();
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return error_json(Status::SERVICE_UNAVAILABLE, format!("query: {e}")),
    };
    if let Some(ms) = query_param(target, "hold_ms").and_then(|v| v.parse().ok()) {
        reactor::sleep(Duration::from_millis(ms)).await; // hold the connection
    }
    if let Source::Fresh(conn) = source {
        // A fresh connection is closed (Terminate, FIN): the cost Q31 counts.
        let _ = conn.close().await;
    } // a pooled one goes back to the idle deque when `source` drops here

    let started = Instant::now();
    let Some(row) = rows.get(0) else {
        return error_json(Status::NOT_FOUND, "no user 42".into());
    };
    let (id, name, email): (i32, String, String) = match (row.get(0), row.get(1), row.get(2)) {
        (Ok(id), Ok(name), Ok(email)) => (id, name, email),
        _ => return error_json(Status::INTERNAL_ERROR, "unexpected row shape".into()),
    };
    let pad_bytes: usize = query_param(target, "pad")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(4 << 20);
    let server = server_half(
        app,
        req,
        how,
        acquire,
        db,
        &startup_messages,
        &messages,
        backend_pid,
        tcp_before,
    );
    let body =
        json!({ "id": id, "name": name, "email": email, "server": server, "pad": "x".repeat(pad_bytes) }).to_string();
    let json_time = started.elapsed();
    // ANCHOR_END: handler

    remember_line(app, req, how, acquire, db, &messages);
    let mut response = Response::json(Status::OK, body)
        .header("Cache-Control", "no-store")
        .timing("acquire", acquire, Some(how.to_string()))
        .timing("db", db, Some(format!("{} messages, 1 round trip", messages.len())))
        .timing("json", json_time, None);
    if flag(target, "close") {
        response = response.close();
    }
    response
}

fn message_list(records: &[WireRecord]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            json!({
                "dir": if r.direction == Direction::Sent { "out" } else { "in" },
                "name": r.name,
                "bytes": r.len,
            })
        })
        .collect()
}

fn bytes_each_way(records: &[WireRecord]) -> (usize, usize) {
    records.iter().fold((0, 0), |(out, inn), r| match r.direction {
        Direction::Sent => (out + r.len, inn),
        Direction::Received => (out, inn + r.len),
    })
}

#[allow(clippy::too_many_arguments)]
fn server_half(
    app: &App,
    req: &Request,
    how: &str,
    acquire: Duration,
    db: Duration,
    startup: &[WireRecord],
    messages: &[WireRecord],
    backend_pid: i32,
    tcp: Option<connlab::sys::info::TcpInfo>,
) -> Value {
    let c = &req.conn;
    let (out_bytes, in_bytes) = bytes_each_way(messages);
    let stats = app.pool.stats();
    json!({
        "backend": app.backend.to_string(),
        "conn": {
            "id": c.id, "fd": c.fd, "peer": c.peer.to_string(), "local": c.local.to_string(),
            "reused": c.served_before > 0, "served_before": c.served_before,
            "accepted_ms_ago": c.accepted_at.elapsed().as_secs_f64() * 1e3,
        },
        "read": { "bytes": req.arrival.bytes, "calls": req.arrival.read_calls, "us": us(req.arrival.read) },
        "parse_us": us(req.arrival.parse),
        "acquire": { "us": us(acquire), "how": how, "startup_messages": message_list(startup) },
        "pg": {
            "us": us(db), "messages": message_list(messages), "bytes_out": out_bytes, "bytes_in": in_bytes,
            "round_trips": 1, "backend_pid": backend_pid,
        },
        "pool": { "idle": stats.idle, "active": stats.active, "size": stats.size(), "max": stats.max_size },
        "tcp_before": tcp.map(|t| json!({ "rtt_us": t.raw.tcpi_rtt, "cwnd": t.raw.tcpi_snd_cwnd })),
        "exchange": format!("/api/exchanges/{}/{}", c.id, c.served_before),
    })
}

/// The terminal's account of a request, completed by [`on_exchange`].
fn remember_line(app: &App, req: &Request, how: &str, acquire: Duration, db: Duration, messages: &[WireRecord]) {
    let names = |dir| {
        messages
            .iter()
            .filter(|r| r.direction == dir)
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (out_bytes, in_bytes) = bytes_each_way(messages);
    let mut line = String::new();
    let _ = write!(
        line,
        "  acquire {:.1} µs ({how})\n  postgres → {} ({out_bytes} B)\n           ← {} ({in_bytes} B), {:.0} µs",
        us(acquire),
        names(Direction::Sent),
        names(Direction::Received),
        us(db)
    );
    app.pending_lines
        .borrow_mut()
        .insert((req.conn.id, req.conn.served_before), line);
}

/// After a response is written: complete its record and print its path.
fn on_exchange(app: &App, ex: &Exchange) {
    let key = (ex.conn.id, ex.conn.served_before);
    let tcp = tcp_info(ex.conn.fd).ok();
    let record = json!({
        "status": ex.status.0, "response_bytes": ex.response_bytes, "write_calls": ex.write_calls,
        "write_us": us(ex.write), "app_us": us(ex.app), "closed": ex.closed,
        "tcp_after": tcp.map(|t| json!({ "rtt_us": t.raw.tcpi_rtt, "cwnd": t.raw.tcpi_snd_cwnd })),
    });
    let mut kept = app.exchanges.borrow_mut();
    if kept.len() == EXCHANGES_KEPT {
        kept.pop_front();
    }
    kept.push_back((key, record));
    if ex.target.starts_with("/api/exchanges/") {
        return; // the page's follow-up request: not a click
    }
    let c = &ex.conn;
    println!(
        "{} {} → {} | connection {} {} → {} ({}, fd {})",
        ex.method,
        ex.target,
        ex.status,
        c.id,
        c.peer,
        c.local,
        if c.served_before == 0 { "new" } else { "reused" },
        c.fd,
    );
    println!(
        "  read {} B in {} call(s), {:.1} µs; parse {:.1} µs",
        ex.arrival.bytes,
        ex.arrival.read_calls,
        us(ex.arrival.read),
        us(ex.arrival.parse)
    );
    if let Some(line) = app.pending_lines.borrow_mut().remove(&key) {
        println!("{line}");
    }
    let tcp = tcp.map_or(String::new(), |t| {
        format!("; TCP_INFO rtt {} µs, cwnd {}", t.raw.tcpi_rtt, t.raw.tcpi_snd_cwnd)
    });
    println!(
        "  write {} B in {} call(s), {:.1} µs{}{tcp}",
        ex.response_bytes,
        ex.write_calls,
        us(ex.write),
        if ex.closed {
            "; then close (our end gets TIME_WAIT)"
        } else {
            ""
        },
    );
}

/// `GET /api/exchanges/{conn}/{n}`: the server's record of a finished exchange.
fn exchange(app: &App, path: &str) -> Response {
    let mut parts = path.trim_start_matches("/api/exchanges/").split('/');
    let key = match (parts.next().map(str::parse), parts.next().map(str::parse)) {
        (Some(Ok(conn)), Some(Ok(n))) => (conn, n),
        _ => return Response::text(Status::BAD_REQUEST, "expected /api/exchanges/CONN/N\n"),
    };
    let kept = app.exchanges.borrow();
    match kept.iter().rev().find(|(k, _)| *k == key) {
        Some((_, record)) => Response::json(Status::OK, record.to_string()).header("Cache-Control", "no-store"),
        None => Response::text(Status::NOT_FOUND, "no such exchange (yet)\n"),
    }
}

async fn run(args: Args, pg: PgConfig) -> Result<(), String> {
    let pool_config = PoolConfig {
        min_size: 1,
        max_size: args.pool_max,
        acquire_timeout: args.acquire_timeout,
        validation: Validation::None,
        ..PoolConfig::default()
    };
    let pool = Pool::open(PgManager::new(pg.clone()), pool_config)
        .await
        .map_err(|e| format!("opening the pool: {e}"))?;
    let listener = TcpListener::bind(args.addr, 1024).map_err(|e| format!("listening on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Rc::new(App {
        pool,
        pg,
        backend: args.backend,
        exchanges: RefCell::new(VecDeque::new()),
        pending_lines: RefCell::new(HashMap::new()),
    });
    let limits = Limits {
        keep_alive_timeout: args.keep_alive,
        ..Limits::default()
    };
    let hook_app = app.clone();
    let server = Server::new(listener, limits).on_exchange(move |ex| on_exchange(&hook_app, ex));
    let signals = Signals::new(&[libc::SIGINT, libc::SIGTERM]).map_err(|e| format!("signalfd: {e}"))?;
    println!(
        "click: open http://{addr}/ and press Load More (poller: {}; Ctrl-C stops)",
        args.backend
    );
    let stop = async move {
        if let Ok(signal) = signals.recv().await {
            println!("click: signal {signal}, finishing requests in flight");
        }
    };
    let handler_app = app.clone();
    let stats = server
        .serve(move |req| route(handler_app.clone(), req), stop)
        .await
        .map_err(|e| format!("server: {e}"))?;
    app.pool.close();
    println!(
        "click: served {} requests on {} connections ({} refused, {} idle connections closed by us)",
        stats.requests, stats.accepted, stats.refused, stats.idle_closed
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = parse_args();
    // Kept alive until the server stops; dropping it removes the cluster.
    let (pg, _cluster) = match common::choose_server(args.url.clone()) {
        Ok(chosen) => chosen,
        Err(msg) => return common::exit("click", Err(msg)),
    };
    let result = match reactor::block_on(args.backend, run(args, pg)) {
        Ok(result) => result,
        Err(e) => Err(format!("the reactor failed: {e}")),
    };
    common::exit("click", result)
}

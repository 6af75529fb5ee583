//! The click's endpoint, `GET /api/users/42` → pool → PostgreSQL → JSON,
//! on connlab's HTTP server, reactor and pool: one thread, one reactor
//! (or `--threads N`: N reactors, each with its own pool of `--pool`
//! connections, fed by `--listener reuseport|exclusive|shared`).
//! The contestant `http_bench` measures against `http_hyper`.
//!
//! `cargo run --release -p connlab-peers --bin http_connlab -- --url URL [--threads 2]`
//! prints `LISTENING 127.0.0.1:<port>` and serves until killed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use connlab::http::{Limits, Request, Response, Server, Status};
use connlab::net::{ListenerKind, ReactorThreads, Stop, TcpListener};
use connlab::pg::connection::Statement;
use connlab::poller::Backend;
use connlab::pool::pg::PgManager;
use connlab::pool::{Config as PoolConfig, Pool, Validation};
use connlab::reactor::{self, Config};
use connlab_peers::common::{self, Args};

/// The same statement the click example runs.
const QUERY: &str = "SELECT id, name, lower(name) || '@example.com' FROM users WHERE id = $1";

/// The statement each pooled connection has prepared, by the pool's id for
/// it: one round trip per request (Bind/Execute/Sync), as hyper's side gets
/// with deadpool's `prepare_cached`.
type Prepared = RefCell<HashMap<u64, Rc<Statement>>>;

async fn user(pool: Rc<Pool<PgManager>>, prepared: Rc<Prepared>, req: Request) -> Response {
    if req.head.target != "/api/users/42" {
        return Response::text(Status::NOT_FOUND, "not found\n");
    }
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            return Response::json(
                Status::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": e.to_string() }).to_string(),
            )
        }
    };
    let known = prepared.borrow().get(&conn.id()).cloned();
    let statement = match known {
        Some(statement) => statement,
        None => match conn.prepare(QUERY).await {
            Ok(statement) => {
                let statement = Rc::new(statement);
                prepared.borrow_mut().insert(conn.id(), statement.clone());
                statement
            }
            Err(e) => {
                return Response::json(
                    Status::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "error": e.to_string() }).to_string(),
                )
            }
        },
    };
    let rows = match conn.query_prepared(&statement, &[&42i32]).await {
        Ok(rows) => rows,
        Err(e) => {
            return Response::json(
                Status::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": e.to_string() }).to_string(),
            )
        }
    };
    drop(conn);
    let row = rows
        .get(0)
        .map(|r| (r.get::<i32>(0), r.get::<String>(1), r.get::<String>(2)));
    match row {
        Some((Ok(id), Ok(name), Ok(email))) => Response::json(
            Status::OK,
            serde_json::json!({ "id": id, "name": name, "email": email }).to_string(),
        ),
        _ => Response::text(Status::INTERNAL_ERROR, "unexpected row\n"),
    }
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("http_connlab.rs"));
    let addr = args.listen_addr(0);
    let url: String = args.value("--url URL", String::new(), "the PostgreSQL to query");
    let pool_size: usize = args.value("--pool N", 8, "pool size, per thread (default 8)");
    let threads: usize = args.value("--threads N", 1, "reactor threads (default 1)");
    let kind: ListenerKind = args.value(
        "--listener KIND",
        ListenerKind::ReusePort,
        "with --threads: reuseport, exclusive or shared (default reuseport)",
    );
    args.check(threads >= 1, "--threads must be at least 1");
    args.finish();
    common::exit("http_connlab", run(addr, url, pool_size, threads, kind))
}

fn run(addr: SocketAddr, url: String, pool_size: usize, threads: usize, kind: ListenerKind) -> io::Result<()> {
    if threads == 1 {
        let listener = TcpListener::bind(addr, 1024)?;
        return reactor::block_on(Backend::Epoll, serve(listener, url, pool_size, Stop::new(), true))?;
    }
    let servers = ReactorThreads::start(
        Config::new(Backend::Epoll),
        addr,
        1024,
        threads,
        kind,
        "http",
        move |listener, stop| serve(listener, url.clone(), pool_size, stop, false),
    )?;
    connlab_peers::announce(servers.local_addr());
    servers.join().map(drop)
}

/// One reactor's server: its own pool, its own listener (announced once
/// the pool is open, if `announce`: with threads, `run` announces), until
/// `stop`.
async fn serve(listener: TcpListener, url: String, pool_size: usize, stop: Stop, announce: bool) -> io::Result<()> {
    let config = PoolConfig {
        min_size: pool_size,
        max_size: pool_size,
        validation: Validation::None,
        ..PoolConfig::default()
    };
    let manager = PgManager::from_url(&url).map_err(io::Error::other)?;
    let pool = Rc::new(Pool::open(manager, config).await.map_err(io::Error::other)?);
    if announce {
        connlab_peers::announce(listener.local_addr()?);
    }
    let limits = Limits {
        max_connections: 4096,
        ..Limits::default()
    };
    let server = Server::new(listener, limits);
    let prepared: Rc<Prepared> = Rc::default();
    server
        .serve(move |req| user(pool.clone(), prepared.clone(), req), stop.wait())
        .await?;
    Ok(())
}

//! The click's endpoint, `GET /api/users/42` → pool → PostgreSQL → JSON,
//! on hyper's HTTP/1 server, deadpool-postgres and tokio-postgres, on
//! tokio's current-thread runtime: one thread, like connlab's reactor.
//! The peer `http_bench` measures `http_connlab` against.
//!
//! `cargo run --release -p connlab-peers --bin http_hyper -- --url URL`
//! prints `LISTENING 127.0.0.1:<port>` and serves until killed.
//!
//! The statement is prepared once per connection (`prepare_cached`), so
//! each request is one round trip, as connlab's unnamed Parse/Bind/
//! Execute/Sync batch is.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use connlab_peers::common::{self, Args};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_postgres::NoTls;

const QUERY: &str = "SELECT id, name, lower(name) || '@example.com' FROM users WHERE id = $1";

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn user(pool: Pool, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/api/users/42" {
        return Ok(json(StatusCode::NOT_FOUND, "{}".into()));
    }
    let unavailable = |e: String| {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": e }).to_string(),
        )
    };
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => return Ok(unavailable(e.to_string())),
    };
    let statement = match client.prepare_cached(QUERY).await {
        Ok(s) => s,
        Err(e) => return Ok(unavailable(e.to_string())),
    };
    let row = match client.query_one(&statement, &[&42i32]).await {
        Ok(row) => row,
        Err(e) => return Ok(unavailable(e.to_string())),
    };
    drop(client);
    let (id, name, email): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "id": id, "name": name, "email": email }).to_string(),
    ))
}

fn main() -> ExitCode {
    let mut args = Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("http_hyper.rs"));
    let addr = args.listen_addr(0);
    let url: String = args.value("--url URL", String::new(), "the PostgreSQL to query");
    let pool_size: usize = args.value("--pool N", 8, "pool size (default 8)");
    args.finish();
    common::exit("http_hyper", run(addr, url, pool_size))
}

fn run(addr: SocketAddr, url: String, pool_size: usize) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let pg: tokio_postgres::Config = url.parse().map_err(io::Error::other)?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .build()
            .map_err(io::Error::other)?;
        // Open every connection before the first request, as connlab's
        // `Pool::open` does with min_size = max_size.
        let warm: Vec<_> = futures_join(&pool, pool_size).await?;
        drop(warm);
        let listener = TcpListener::bind(addr).await?;
        connlab_peers::announce(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let pool = pool.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| user(pool.clone(), req));
                // A reset or a malformed request ends that connection only.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Check out `n` connections at once (so `n` are opened), then give them back.
async fn futures_join(pool: &Pool, n: usize) -> io::Result<Vec<deadpool_postgres::Object>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.map_err(io::Error::other)?);
    }
    Ok(held)
}

//! `pool`: what an uncontended `acquire()` + release costs, with no query.
//!
//! ```text
//! cargo bench --bench pool
//! ```
//!
//! This is the pool's own overhead, the story's "about 0.1 microseconds"
//! (Q9): one `RefCell` borrow, a `VecDeque` pop, a clock read and a slot in
//! the checkout table, then the same in reverse on drop. The goal is
//! ≤ 100 ns; deadpool takes about 320 ns on this machine. The connection
//! behind it is a real loopback TCP socket, but nothing is sent: acquire and
//! release never touch the wire. Each group name says what it compares:
//!
//! - `pool/acquire_release/idle`: the fast path, a connection waiting idle;
//! - `pool/acquire_release/validate_bypass`: the same with
//!   `Validation::OnAcquire` configured, inside its bypass window (the
//!   default configuration's hot path);
//! - `pool/acquire_release/leak_tracking`: with a leak threshold set (the
//!   checkout table is kept either way; this shows it costs nothing extra).
//!
//! The acquire future is polled once by hand, with a waker that does
//! nothing: on the fast path it is ready at once, and no reactor turn is
//! involved. The numbers land in `docs/pool.md`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use connlab::net::{TcpListener, TcpStream};
use connlab::poller::Backend;
use connlab::pool::{Config, Health, Manager, Pool, Validation};
use connlab::reactor;

/// Opens loopback TCP connections; nothing is ever sent on them.
struct Loopback {
    addr: SocketAddr,
}

impl Manager for Loopback {
    type Connection = TcpStream;
    type Error = io::Error;

    async fn connect(&self) -> io::Result<TcpStream> {
        TcpStream::connect(self.addr).await
    }

    async fn validate(&self, _conn: &mut TcpStream) -> io::Result<()> {
        Ok(())
    }

    fn check(&self, _conn: &mut TcpStream) -> Health {
        Health::Clean
    }

    async fn reset(&self, _conn: &mut TcpStream) -> io::Result<()> {
        Ok(())
    }
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// Poll a future once; the fast path must be ready on the first poll.
fn poll_once<F: Future>(cx: &mut Context<'_>, fut: F) -> F::Output {
    match pin!(fut).poll(cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the benchmark expects the idle fast path"),
    }
}

fn bench(c: &mut Criterion) {
    let variants = [
        (
            "idle",
            Config {
                validation: Validation::None,
                ..Config::default()
            },
        ),
        (
            "validate_bypass",
            Config {
                validation: Validation::OnAcquire {
                    idle_longer_than: Duration::from_secs(60),
                },
                ..Config::default()
            },
        ),
        (
            "leak_tracking",
            Config {
                validation: Validation::None,
                leak_threshold: Some(Duration::from_secs(60)),
                ..Config::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("pool/acquire_release");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let result = reactor::block_on(Backend::Epoll, async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().expect("a literal address"), 16)?;
        let addr = listener.local_addr()?;
        for (name, config) in variants {
            let config = Config {
                min_size: 1,
                max_size: 1,
                ..config
            };
            let pool = Pool::open(Loopback { addr }, config).await.map_err(io::Error::from)?;
            let waker = Waker::from(Arc::new(NoopWaker));
            let mut cx = Context::from_waker(&waker);
            group.bench_function(name, |b| {
                b.iter(|| {
                    let conn = poll_once(&mut cx, pool.acquire()).expect("an idle connection");
                    drop(conn);
                })
            });
        }
        drop(listener);
        Ok::<(), io::Error>(())
    });
    group.finish();
    if let Err(e) = result.and_then(|inner| inner) {
        eprintln!("pool bench could not run: {e}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The pool's behaviour, on real loopback sockets, on every poller backend.
//!
//! The first part drives the pool with a tiny TCP manager (`util::pool`):
//! the policy (FIFO, timeouts, cancellation, reset, lifetimes, leaks) needs
//! a real connection that can really die, not PostgreSQL. The second runs
//! the same promises against a real PostgreSQL server started by the test
//! itself (`testbed::postgres`), with `PgManager`. A model check at the end throws
//! random interleavings of cancellations at the bookkeeping.

mod util;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use connlab::poller::Backend;
use connlab::pool::{CloseReason, Config, Pool, PoolError, Stats, Validation};
use connlab::reactor;
use util::on_every_backend;
use util::pool::{SilentServer, TcpManager, TestServer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A small, fast pool: no background surprises unless a test asks for them.
fn quick(max_size: usize) -> Config {
    Config {
        min_size: 0,
        max_size,
        acquire_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
        validation: Validation::None,
        leak_threshold: None,
        maintenance_interval: ms(20),
        connect_retry: ms(5),
    }
}

/// Poll `stats` until `done` holds, or fail after `limit` naming `what`.
async fn wait_for<M: connlab::pool::Manager>(
    pool: &Pool<M>,
    limit: Duration,
    what: &str,
    done: impl Fn(&Stats) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let stats = pool.stats();
        if done(&stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stats: {stats}"
        );
        reactor::sleep(ms(10)).await;
    }
}

/// Every connection ever opened is either still in the pool or counted as
/// closed: the bookkeeping lost nothing.
fn assert_books_balance(stats: &Stats) {
    assert_eq!(
        stats.created,
        stats.closed.total() + stats.size() as u64,
        "created != closed + open: {stats:?}"
    );
    assert!(stats.size() <= stats.max_size, "over max_size: {stats:?}");
}

/// An address where nothing listens (a listener bound and closed).
fn dead_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    probe.local_addr().expect("local_addr of a bound listener")
}

#[test]
fn exhaustion_then_acquire_timeout() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::new(
            TcpManager::new(server.addr),
            Config {
                acquire_timeout: ms(100),
                ..quick(2)
            },
        );
        let a = pool.acquire().await.expect("first slot");
        let b = pool.acquire().await.expect("second slot");

        let started = Instant::now();
        let err = pool.acquire().await.expect_err("the pool is exhausted");
        assert!(
            matches!(
                err,
                PoolError::Timeout {
                    active: 2,
                    max_size: 2,
                    ..
                }
            ),
            "{backend:?}: {err}"
        );
        assert!(started.elapsed() >= ms(100), "{backend:?}: gave up early");
        let stats = pool.stats();
        assert_eq!(
            (stats.active, stats.idle, stats.waiting, stats.timeouts),
            (2, 0, 0, 1),
            "{backend:?}"
        );

        // A release makes room again, without a new connection.
        drop(a);
        let c = pool.acquire().await.expect("after a release");
        assert_eq!(pool.manager().connects.get(), 2, "{backend:?}");
        drop((b, c));
        assert_books_balance(&pool.stats());
    });
}

#[test]
fn waiters_are_served_in_fifo_order_and_newcomers_do_not_barge() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::new(TcpManager::new(server.addr), quick(1));
        let held = pool.acquire().await.expect("the only slot");
        let served = Rc::new(RefCell::new(Vec::new()));
        let spawn_waiter = |i: usize| {
            let (pool, served) = (pool.clone(), served.clone());
            reactor::spawn(async move {
                let conn = pool.acquire().await.expect("served in turn");
                served.borrow_mut().push(i);
                reactor::yield_now().await;
                drop(conn);
            })
        };
        let mut tasks = Vec::new();
        for i in 0..5 {
            tasks.push(spawn_waiter(i));
            // Let waiter i queue before spawning i + 1, so the queue order is known.
            while pool.stats().waiting < i + 1 {
                reactor::yield_now().await;
            }
        }
        drop(held);
        // Released, granted to waiter 0, not yet claimed: a newcomer queues behind.
        tasks.push(spawn_waiter(5));
        for task in tasks {
            task.await;
        }
        assert_eq!(*served.borrow(), [0, 1, 2, 3, 4, 5], "{backend:?}");
        assert_eq!(pool.stats().created, 1, "{backend:?}: one connection, reused six times");
    });
}

/// Regression: `Instant::now() + max_lifetime` panicked for a lifetime
/// meant as "never" (`Duration::MAX`); the deadline now saturates.
#[test]
fn a_huge_max_lifetime_means_never_not_a_panic() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            max_lifetime: Some(Duration::MAX),
            ..quick(1)
        };
        let pool = Pool::new(TcpManager::new(server.addr), config);
        let mut conn = pool.acquire().await.expect("acquire");
        conn.ping().await.expect("ping");
        drop(conn);
        assert_eq!(pool.stats().created, 1, "{backend:?}");
    });
}

#[test]
fn sequential_acquires_reuse_one_connection() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::new(TcpManager::new(server.addr), quick(4));
        let mut ids = Vec::new();
        for _ in 0..100 {
            let mut conn = pool.acquire().await.expect("acquire");
            conn.ping().await.expect("ping");
            ids.push(conn.id());
        }
        assert!(
            ids.iter().all(|&id| id == ids[0]),
            "{backend:?}: LIFO hands back the hot connection"
        );
        let stats = pool.stats();
        assert_eq!((stats.created, stats.acquires, stats.idle), (1, 100, 1), "{backend:?}");
        assert_eq!(
            stats.wait.samples, 1,
            "{backend:?}: only the first acquire took the slow path"
        );
    });
}

#[test]
fn a_dirty_connection_is_reset_before_anyone_else_gets_it() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::new(TcpManager::new(server.addr), quick(1));
        let mut conn = pool.acquire().await.expect("acquire");
        let id = conn.id();
        conn.dirty = true;
        drop(conn);
        // The slot stays busy until the background task's reset round trip.
        assert_eq!(pool.stats().active, 1, "{backend:?}");
        let conn = pool.acquire().await.expect("after the reset");
        assert_eq!(conn.id(), id, "{backend:?}: same connection, reset");
        assert!(!conn.dirty, "{backend:?}");
        assert_eq!(server.resets.get(), 1, "{backend:?}");
    });
}

#[test]
fn a_broken_connection_is_discarded_never_handed_out() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::new(TcpManager::new(server.addr), quick(1));
        let mut conn = pool.acquire().await.expect("acquire");
        let id = conn.id();
        conn.broken = true;
        drop(conn);
        let stats = pool.stats();
        assert_eq!((stats.closed.broken, stats.size()), (1, 0), "{backend:?}");
        let conn = pool.acquire().await.expect("a fresh one");
        assert_ne!(conn.id(), id, "{backend:?}");

        // `discard` does the same for a connection the caller knows is bad,
        // and `detach` takes one out for good; both free the slot.
        conn.discard();
        let conn = pool.acquire().await.expect("another fresh one");
        let raw = conn.detach();
        drop(raw);
        let stats = pool.stats();
        assert_eq!(
            (stats.closed.broken, stats.closed.detached, stats.size()),
            (2, 1, 0),
            "{backend:?}"
        );
        assert_books_balance(&stats);
    });
}

#[test]
fn killed_connections_are_replaced_and_the_pool_returns_to_min_size() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            min_size: 3,
            validation: Validation::OnAcquire {
                idle_longer_than: Duration::ZERO,
            },
            ..quick(5)
        };
        let pool = Pool::open(TcpManager::new(server.addr), config).await.expect("open");
        assert_eq!(pool.stats().idle, 3, "{backend:?}");
        server.kill_all();
        reactor::sleep(ms(20)).await; // let the FINs arrive
        for _ in 0..5 {
            let mut conn = pool.acquire().await.expect("acquire after the kill");
            conn.ping().await.expect("a live connection");
        }
        wait_for(&pool, Duration::from_secs(5), "three idle connections", |s| s.idle == 3).await;
        let stats = pool.stats();
        assert_eq!(stats.closed.validation_failed, 3, "{backend:?}: {stats:?}");
        assert_books_balance(&stats);
    });
}

#[test]
fn validation_on_acquire_skips_hot_connections_and_pings_cold_ones() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            validation: Validation::OnAcquire {
                idle_longer_than: ms(100),
            },
            ..quick(2)
        };
        let pool = Pool::new(TcpManager::new(server.addr), config);
        for _ in 0..10 {
            drop(pool.acquire().await.expect("acquire"));
        }
        assert_eq!(pool.manager().validations.get(), 0, "{backend:?}: hot, no round trip");
        reactor::sleep(ms(150)).await;
        drop(pool.acquire().await.expect("acquire a cold one"));
        assert_eq!(pool.manager().validations.get(), 1, "{backend:?}: cold, one ping");
    });
}

#[test]
fn periodic_validation_replaces_dead_idle_connections_before_anyone_asks() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            min_size: 2,
            validation: Validation::Periodic { every: ms(30) },
            ..quick(4)
        };
        let pool = Pool::open(TcpManager::new(server.addr), config).await.expect("open");
        server.kill_all();
        // No acquire from here on: only the background task can notice.
        wait_for(&pool, Duration::from_secs(5), "two replaced", |s| {
            s.closed.validation_failed == 2 && s.idle == 2
        })
        .await;
        let stats = pool.stats();
        assert_eq!(stats.created, 4, "{backend:?}: {stats:?}");
        // The replacements are alive, and pinged again each period.
        let mut conn = pool.acquire().await.expect("acquire");
        conn.ping().await.expect("a live replacement");
        drop(conn);
        let pings = pool.manager().validations.get();
        reactor::sleep(ms(100)).await;
        assert!(pool.manager().validations.get() > pings, "{backend:?}: still pinging");
    });
}

#[test]
fn connect_failures_are_retried_until_the_server_is_back() {
    on_every_backend(|backend| async move {
        let addr = dead_addr();
        let pool = Pool::new(
            TcpManager::new(addr),
            Config {
                acquire_timeout: Duration::from_secs(5),
                ..quick(2)
            },
        );
        let restarter = reactor::spawn(async move {
            reactor::sleep(ms(100)).await;
            TestServer::start_on(addr).expect("test server on the old address")
        });
        let mut conn = pool.acquire().await.expect("rides out the outage");
        conn.ping().await.expect("ping");
        let stats = pool.stats();
        assert!(stats.connect_errors >= 1, "{backend:?}: {stats:?}");
        drop(conn);
        drop(restarter.await);
    });
}

#[test]
fn open_fails_fast_when_nothing_listens_and_timeout_names_the_cause() {
    on_every_backend(|backend| async move {
        let addr = dead_addr();
        let err = Pool::open(
            TcpManager::new(addr),
            Config {
                min_size: 1,
                ..quick(1)
            },
        )
        .await
        .expect_err("refused");
        assert!(matches!(err, PoolError::Connect(_)), "{backend:?}: {err}");

        let pool = Pool::new(
            TcpManager::new(addr),
            Config {
                acquire_timeout: ms(60),
                ..quick(1)
            },
        );
        let err = pool.acquire().await.expect_err("nothing listens");
        match err {
            PoolError::Timeout {
                last_connect_error: Some(cause),
                ..
            } => {
                assert!(cause.contains("ECONNREFUSED"), "{backend:?}: {cause}")
            }
            other => panic!("{backend:?}: {other}"),
        }
        assert_eq!(pool.stats().size(), 0, "{backend:?}: the failed connects hold no slot");
    });
}

#[test]
fn max_lifetime_recycles_connections() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            min_size: 2,
            max_lifetime: Some(ms(150)),
            ..quick(2)
        };
        let pool = Pool::open(TcpManager::new(server.addr), config).await.expect("open");
        wait_for(&pool, Duration::from_secs(5), "two recycled", |s| {
            s.closed.max_lifetime >= 2 && s.idle == 2
        })
        .await;
        let stats = pool.stats();
        assert!(stats.created >= 4, "{backend:?}: {stats:?}");
        assert_books_balance(&stats);
    });
}

#[test]
fn idle_timeout_trims_down_to_min_size_and_no_further() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            min_size: 2,
            idle_timeout: Some(ms(100)),
            ..quick(6)
        };
        let pool = Pool::new(TcpManager::new(server.addr), config);
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(pool.acquire().await.expect("acquire"));
        }
        drop(held);
        assert_eq!(pool.stats().idle, 6, "{backend:?}");
        wait_for(&pool, Duration::from_secs(5), "trimmed to min_size", |s| s.idle == 2).await;
        reactor::sleep(ms(300)).await; // three more idle timeouts: still 2
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.closed.idle_timeout), (2, 4), "{backend:?}");
        assert_books_balance(&stats);
    });
}

#[test]
fn a_leak_is_reported_with_where_it_was_acquired() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            leak_threshold: Some(ms(50)),
            maintenance_interval: ms(10),
            ..quick(2)
        };
        let pool = Pool::new(TcpManager::new(server.addr), config);
        let line = line!() + 1;
        let leaked = pool.acquire().await.expect("acquire");
        assert_eq!(leaked.acquired_at().line(), line, "{backend:?}");
        wait_for(&pool, Duration::from_secs(5), "a leak report", |s| s.leaks == 1).await;
        reactor::sleep(ms(100)).await; // reported once, not every round
        let reports = pool.leak_reports();
        assert_eq!(reports.len(), 1, "{backend:?}");
        assert_eq!(
            (reports[0].acquired_at.file(), reports[0].acquired_at.line()),
            (file!(), line),
            "{backend:?}"
        );
        assert_eq!(reports[0].conn_id, leaked.id(), "{backend:?}");
        assert!(reports[0].held_for >= ms(50), "{backend:?}");
        assert!(
            reports[0].to_string().contains("tests/pool.rs"),
            "{backend:?}: {}",
            reports[0]
        );
    });
}

/// Regression: the background task used to await each connect, ping and
/// reset in turn, so one server that accepted and never answered stopped
/// every other step (a leak report due at 1 s arrived at 9.1 s). Here a
/// replenishing connect hangs on a silent server, and the leak report must
/// still come within a few maintenance ticks of its threshold; the hung
/// connect itself ends at the deadline (the acquire timeout) and frees its slot.
#[test]
fn a_hung_connect_does_not_delay_the_leak_report() {
    const THRESHOLD: Duration = Duration::from_millis(300);
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let silent = SilentServer::start().expect("silent server");
        let config = Config {
            min_size: 2,
            acquire_timeout: Duration::from_secs(2),
            leak_threshold: Some(THRESHOLD),
            ..quick(3)
        };
        let pool = Pool::new(TcpManager::new(server.addr), config);
        let leaked = pool.acquire().await.expect("acquire");
        let acquired = Instant::now();
        wait_for(&pool, Duration::from_secs(5), "min_size reached", |s| s.idle == 1).await;
        let other = pool.acquire().await.expect("the idle one");

        // From now on connects go to the silent server; dropping a
        // connection below min_size starts a replenishing connect there.
        pool.manager().point_at(silent.addr);
        other.discard();
        let report_at = loop {
            if pool.stats().leaks == 1 {
                break acquired.elapsed();
            }
            assert!(
                acquired.elapsed() < Duration::from_secs(5),
                "{backend:?}: no leak report"
            );
            reactor::sleep(ms(5)).await;
        };
        assert_eq!(
            silent.accepted.get(),
            1,
            "{backend:?}: the connect reached the silent server"
        );
        assert_eq!(pool.stats().connect_errors, 0, "{backend:?}: and is still waiting");
        assert!(
            report_at < THRESHOLD + ms(700),
            "{backend:?}: leak report after {report_at:?} for a {THRESHOLD:?} threshold"
        );

        wait_for(&pool, Duration::from_secs(5), "the hung connect to time out", |s| {
            s.connect_errors >= 1
        })
        .await;
        // The next tick may already have started another hung connect; with
        // the server back, the pool settles at min_size (held + idle).
        pool.manager().point_at(server.addr);
        wait_for(&pool, Duration::from_secs(5), "replenished from the good server", |s| {
            s.idle == 1
        })
        .await;
        assert_eq!(leaked.id(), 1);
        assert_books_balance(&pool.stats());
    });
}

/// The same for a reset: a `ROLLBACK` the server never answers must not stop
/// idle trimming, and is given up at the deadline, its connection closed.
#[test]
fn a_hung_reset_does_not_stop_idle_trimming_and_ends_at_the_deadline() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let config = Config {
            acquire_timeout: Duration::from_secs(2),
            idle_timeout: Some(ms(100)),
            ..quick(3)
        };
        let pool = Pool::new(TcpManager::new(server.addr), config);
        let mut dirty = pool.acquire().await.expect("acquire");
        let clean = pool.acquire().await.expect("acquire");
        drop(clean);
        server.mute.set(true);
        dirty.dirty = true;
        let returned = Instant::now();
        drop(dirty); // queued for a reset the server will never answer

        wait_for(&pool, Duration::from_secs(3), "the idle one trimmed", |s| {
            s.closed.idle_timeout == 1
        })
        .await;
        let trimmed_at = returned.elapsed();
        let stats = pool.stats();
        assert_eq!(
            (stats.active, stats.closed.reset_failed),
            (1, 0),
            "{backend:?}: reset still hanging"
        );
        assert!(trimmed_at < ms(1500), "{backend:?}: trimmed after {trimmed_at:?}");

        wait_for(&pool, Duration::from_secs(5), "the hung reset given up", |s| {
            s.closed.reset_failed == 1
        })
        .await;
        let stats = pool.stats();
        assert_eq!(stats.size(), 0, "{backend:?}: {stats}");
        assert_books_balance(&stats);
    });
}

#[test]
fn a_grant_to_a_waiter_that_is_gone_passes_to_the_next() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::new(TcpManager::new(server.addr), quick(1));
        let held = pool.acquire().await.expect("the only slot");
        let spawn_waiter = || {
            let pool = pool.clone();
            reactor::spawn(async move { pool.acquire().await.map(|c| c.id()) })
        };
        let first = spawn_waiter();
        while pool.stats().waiting < 1 {
            reactor::yield_now().await;
        }
        let second = spawn_waiter();
        while pool.stats().waiting < 2 {
            reactor::yield_now().await;
        }
        let id = held.id();
        drop(held); // granted to `first`, which has not run yet ...
        first.abort(); // ... and never will
        assert_eq!(second.await.expect("the grant was passed on"), id, "{backend:?}");
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.active, stats.waiting), (1, 0, 0), "{backend:?}");
    });
}

#[test]
fn cancelled_and_timed_out_acquires_leave_the_counts_exact() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::new(
            TcpManager::new(server.addr),
            Config {
                acquire_timeout: ms(15),
                ..quick(3)
            },
        );
        let mut running = Vec::new();
        let mut doomed = Vec::new();
        for i in 0..90u64 {
            let pool = pool.clone();
            let task = reactor::spawn(async move {
                // Some acquires are cancelled from outside by a shorter timeout.
                let acquire = async {
                    match pool.acquire().await {
                        Ok(conn) => {
                            reactor::sleep(ms(i % 4 * 3)).await;
                            if i % 11 == 0 {
                                conn.discard();
                            }
                            true
                        }
                        Err(PoolError::Timeout { .. }) => false,
                        Err(e) => panic!("unexpected: {e}"),
                    }
                };
                if i % 3 == 0 {
                    reactor::timeout(ms(i % 5), acquire).await.unwrap_or(false)
                } else {
                    acquire.await
                }
            });
            // And some tasks are aborted outright, wherever they are.
            if i % 7 == 0 {
                doomed.push(task);
            } else {
                running.push(task);
            }
            if i % 2 == 0 {
                reactor::yield_now().await;
            }
            if i % 10 == 0 {
                reactor::sleep(ms(2)).await;
                for task in doomed.drain(..) {
                    task.abort();
                }
            }
        }
        for task in doomed.drain(..) {
            task.abort();
        }
        let mut served = 0;
        for task in running {
            served += u64::from(task.await);
        }
        let stats = pool.stats();
        assert!(
            served > 0 && stats.timeouts > 0,
            "{backend:?}: the test should mix both: {stats:?}"
        );
        assert_eq!((stats.active, stats.waiting), (0, 0), "{backend:?}: {stats:?}");
        assert_books_balance(&stats);
        // No slot was lost: all three can be held at once, right now.
        let all: Vec<_> = futures_of_three(&pool).await;
        assert_eq!(all.len(), 3, "{backend:?}");
        assert_eq!(pool.stats().active, 3, "{backend:?}");
    });
}

async fn futures_of_three(pool: &Pool<TcpManager>) -> Vec<connlab::pool::Pooled<TcpManager>> {
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.acquire().await.expect("a slot that was not lost"));
    }
    held
}

#[test]
fn closing_fails_waiters_and_stops_the_background_task() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let tasks_before = reactor::stats().live_tasks;
        let pool = Pool::new(TcpManager::new(server.addr), quick(1));
        let held = pool.acquire().await.expect("acquire");
        assert_eq!(
            reactor::stats().live_tasks,
            tasks_before + 2,
            "{backend:?}: maintenance + server handler"
        );
        let waiter = {
            let pool = pool.clone();
            reactor::spawn(async move { pool.acquire().await.map(|_| ()) })
        };
        while pool.stats().waiting < 1 {
            reactor::yield_now().await;
        }
        pool.close();
        assert!(matches!(waiter.await, Err(PoolError::Closed)), "{backend:?}");
        assert!(matches!(pool.acquire().await, Err(PoolError::Closed)), "{backend:?}");
        drop(held); // returned to a closed pool: closed
        let stats = pool.stats();
        assert_eq!(
            (stats.size(), stats.closed.get(CloseReason::PoolClosed)),
            (0, 1),
            "{backend:?}"
        );
        reactor::yield_now().await;
        assert_eq!(
            reactor::stats().live_tasks,
            tasks_before + 1,
            "{backend:?}: maintenance ended"
        );
    });
}

#[test]
fn dropping_the_last_handle_closes_the_pool() {
    on_every_backend(|backend| async move {
        let server = TestServer::start().expect("test server");
        let pool = Pool::open(
            TcpManager::new(server.addr),
            Config {
                min_size: 2,
                ..quick(2)
            },
        )
        .await
        .expect("open");
        reactor::sleep(ms(20)).await; // the server accepts both
                                      // Alive now: the acceptor, two server handlers, the pool's task.
        let before = reactor::stats().live_tasks;
        let clone = pool.clone();
        drop(pool);
        assert!(!clone.is_closed(), "{backend:?}: a clone keeps it open");
        drop(clone);
        // The idle sockets closed, so both handlers read EOF and end; the
        // background task ends too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while reactor::stats().live_tasks != before - 3 {
            assert!(Instant::now() < deadline, "{backend:?}: {:?}", reactor::stats());
            reactor::sleep(ms(5)).await;
        }
    });
}

#[test]
fn a_pool_outlives_its_first_reactor_and_its_background_task_restarts() {
    for backend in Backend::ALL {
        let config = Config {
            idle_timeout: Some(ms(50)),
            ..quick(3)
        };
        let pool = reactor::block_on(backend, async move {
            // The server dies with this reactor; after it, nothing needs
            // an answer (the fast path and idle trimming do no I/O).
            let server = TestServer::start().expect("test server");
            let pool = Pool::new(TcpManager::new(server.addr), config);
            let held = futures_of_three(&pool).await;
            drop(held);
            pool
        })
        .expect("first reactor");
        // That reactor, and the pool's task on it, are gone.
        assert_eq!(pool.stats().idle, 3, "{backend:?}");
        reactor::block_on(backend, async {
            drop(pool.acquire().await.expect("the fast path, on a new reactor"));
            wait_for(&pool, Duration::from_secs(5), "trimmed by a new task", |s| s.idle == 0).await;
        })
        .expect("second reactor");
    }
}

// ---------------------------------------------------------------------------
// The same promises against a real PostgreSQL, with the manager we ship.
// One server per test binary (`Cluster::shared`); the restart test starts
// its own so it does not pull the floor from under the others.
// ---------------------------------------------------------------------------

mod postgres {
    use super::*;
    use connlab::pg::connection::Connection;
    use connlab::pg::protocol::TransactionStatus;
    use connlab::pool::pg::PgManager;
    use connlab::testbed::Cluster;

    fn manager_for(cluster: &Cluster) -> PgManager {
        PgManager::from_url(&cluster.url()).expect("the cluster's URL parses")
    }

    fn manager() -> PgManager {
        manager_for(Cluster::shared().expect("a throwaway PostgreSQL (see testbed::postgres for what it needs)"))
    }

    /// The first column of the first row, as an integer.
    async fn scalar(conn: &mut Connection, sql: &str) -> i64 {
        let results = conn.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let row = results
            .first()
            .and_then(|rows| rows.get(0))
            .unwrap_or_else(|| panic!("{sql}: no row"));
        row.get::<i64>(0).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The server processes behind the pool's connections, by holding all
    /// of them at once.
    async fn backend_pids(pool: &Pool<PgManager>, n: usize) -> Vec<i32> {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(pool.acquire().await.expect("acquire"));
        }
        held.iter().map(|c| c.backend_pid()).collect()
    }

    #[test]
    fn pg_exhaustion_then_acquire_timeout() {
        on_every_backend(|backend| async move {
            // Opened before the clock starts: under load, two SCRAM
            // handshakes alone could take longer than the timeout.
            let config = Config {
                min_size: 2,
                acquire_timeout: ms(150),
                ..quick(2)
            };
            let pool = Pool::open(manager(), config).await.expect("open");
            let mut a = pool.acquire().await.expect("first");
            let _b = pool.acquire().await.expect("second");
            assert_eq!(scalar(&mut a, "SELECT 1").await, 1);
            let err = pool.acquire().await.expect_err("exhausted");
            assert!(
                matches!(err, PoolError::Timeout { active: 2, .. }),
                "{backend:?}: {err}"
            );
            assert_eq!(pool.stats().timeouts, 1, "{backend:?}");
        });
    }

    #[test]
    fn pg_waiters_are_served_in_fifo_order() {
        on_every_backend(|backend| async move {
            let pool = Pool::new(manager(), quick(1));
            let held = pool.acquire().await.expect("the only slot");
            let served = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..4 {
                let (handle, served) = (pool.clone(), served.clone());
                tasks.push(reactor::spawn(async move {
                    let mut conn = handle.acquire().await.expect("served in turn");
                    served.borrow_mut().push(i);
                    scalar(&mut conn, "SELECT 1").await;
                }));
                while pool.stats().waiting < i + 1 {
                    reactor::yield_now().await;
                }
            }
            drop(held);
            for task in tasks {
                task.await;
            }
            assert_eq!(*served.borrow(), [0, 1, 2, 3], "{backend:?}");
        });
    }

    // ANCHOR: rollback_test
    #[test]
    fn pg_a_released_transaction_is_rolled_back_before_the_next_holder() {
        on_every_backend(|backend| async move {
            let pool = Pool::new(manager(), quick(1));
            let ghost = format!("ghost-{backend:?}-{}", std::process::id());
            let mut first = pool.acquire().await.expect("acquire");
            let pid = first.backend_pid();
            first.simple_query("BEGIN").await.expect("BEGIN");
            let insert = format!("INSERT INTO users (id, name) VALUES ((SELECT max(id) + 1 FROM users), '{ghost}')");
            first.simple_query(&insert).await.expect("INSERT");
            assert_eq!(first.transaction_status(), TransactionStatus::InTransaction);
            drop(first); // returned mid-transaction, never committed

            let mut next = pool.acquire().await.expect("acquire again");
            assert_eq!(
                next.backend_pid(),
                pid,
                "{backend:?}: the same session, so it would see its own row"
            );
            assert_eq!(next.transaction_status(), TransactionStatus::Idle, "{backend:?}");
            let count = format!("SELECT count(*) FROM users WHERE name = '{ghost}'");
            assert_eq!(
                scalar(&mut next, &count).await,
                0,
                "{backend:?}: the row was rolled back"
            );

            // A failed transaction ('E') is rolled back the same way.
            next.simple_query("BEGIN").await.expect("BEGIN");
            next.simple_query("SELECT 1/0").await.expect_err("division by zero");
            assert_eq!(next.transaction_status(), TransactionStatus::Failed);
            drop(next);
            let mut again = pool.acquire().await.expect("acquire a third time");
            assert_eq!(again.transaction_status(), TransactionStatus::Idle, "{backend:?}");
            assert_eq!(scalar(&mut again, "SELECT 1").await, 1);
            assert_eq!(pool.stats().created, 1, "{backend:?}: reset, not replaced");
        });
    }
    // ANCHOR_END: rollback_test

    #[test]
    fn pg_terminated_backends_are_replaced_and_the_pool_returns_to_min_size() {
        on_every_backend(|backend| async move {
            let config = Config {
                min_size: 3,
                validation: Validation::OnAcquire {
                    idle_longer_than: connlab::pool::DEFAULT_VALIDATION_BYPASS,
                },
                ..quick(5)
            };
            let pool = Pool::open(manager(), config).await.expect("open");
            let pids = backend_pids(&pool, 3).await;
            let mut admin = Connection::connect_url(&Cluster::shared().expect("cluster").url())
                .await
                .expect("admin");
            for pid in &pids {
                let killed = scalar(&mut admin, &format!("SELECT pg_terminate_backend({pid})::int")).await;
                assert_eq!(killed, 1, "{backend:?}: terminate {pid}");
            }
            // Past the bypass window, so acquire pings before handing out.
            reactor::sleep(connlab::pool::DEFAULT_VALIDATION_BYPASS + ms(100)).await;
            for _ in 0..3 {
                let mut conn = pool.acquire().await.expect("acquire after the kill");
                assert_eq!(scalar(&mut conn, "SELECT 1").await, 1, "{backend:?}");
                assert!(!pids.contains(&conn.backend_pid()), "{backend:?}: a new backend");
            }
            wait_for(&pool, Duration::from_secs(10), "min_size idle", |s| s.idle == 3).await;
            let stats = pool.stats();
            assert_eq!(stats.closed.validation_failed, 3, "{backend:?}: {stats:?}");
            assert_books_balance(&stats);
        });
    }

    #[test]
    fn pg_the_pool_recovers_from_a_server_restart_without_caller_retries() {
        let cluster = Cluster::start().expect("a throwaway PostgreSQL of our own");
        for backend in Backend::ALL {
            let pool_cluster = &cluster;
            reactor::block_on(backend, async move {
                let config = Config {
                    min_size: 2,
                    validation: Validation::OnAcquire {
                        idle_longer_than: connlab::pool::DEFAULT_VALIDATION_BYPASS,
                    },
                    ..quick(4)
                };
                let pool = Pool::open(manager_for(pool_cluster), config).await.expect("open");
                let before = backend_pids(&pool, 2).await;
                pool_cluster.restart().expect("restart"); // blocks this thread: every connection dies meanwhile
                reactor::sleep(connlab::pool::DEFAULT_VALIDATION_BYPASS).await;
                for _ in 0..4 {
                    let mut conn = pool.acquire().await.expect("acquire after the restart");
                    assert_eq!(scalar(&mut conn, "SELECT 1").await, 1, "{backend:?}");
                    assert!(!before.contains(&conn.backend_pid()), "{backend:?}");
                }
                wait_for(&pool, Duration::from_secs(10), "min_size again", |s| s.idle >= 2).await;
            })
            .expect("reactor");
        }
    }

    #[test]
    fn pg_max_lifetime_recycles_backends() {
        on_every_backend(|backend| async move {
            let config = Config {
                min_size: 1,
                max_lifetime: Some(ms(200)),
                ..quick(1)
            };
            let pool = Pool::open(manager(), config).await.expect("open");
            let first = backend_pids(&pool, 1).await;
            wait_for(&pool, Duration::from_secs(10), "a recycle", |s| {
                s.closed.max_lifetime >= 1 && s.idle == 1
            })
            .await;
            let later = backend_pids(&pool, 1).await;
            assert_ne!(first, later, "{backend:?}: a new server process");
        });
    }

    #[test]
    fn pg_idle_timeout_trims_to_min_size_and_no_further() {
        on_every_backend(|backend| async move {
            let config = Config {
                min_size: 1,
                idle_timeout: Some(ms(100)),
                ..quick(4)
            };
            let pool = Pool::new(manager(), config);
            drop(backend_pids(&pool, 4).await);
            assert_eq!(pool.stats().idle, 4, "{backend:?}");
            wait_for(&pool, Duration::from_secs(10), "trimmed", |s| s.idle == 1).await;
            reactor::sleep(ms(300)).await;
            let stats = pool.stats();
            assert_eq!((stats.idle, stats.closed.idle_timeout), (1, 3), "{backend:?}");
        });
    }

    #[test]
    fn pg_a_leak_is_reported() {
        on_every_backend(|backend| async move {
            let config = Config {
                leak_threshold: Some(ms(80)),
                maintenance_interval: ms(10),
                ..quick(2)
            };
            let pool = Pool::new(manager(), config);
            let line = line!() + 1;
            let _leaked = pool.acquire().await.expect("acquire");
            wait_for(&pool, Duration::from_secs(5), "a leak report", |s| s.leaks == 1).await;
            let report = pool.leak_reports().pop().expect("one report");
            assert_eq!(
                (report.acquired_at.file(), report.acquired_at.line()),
                (file!(), line),
                "{backend:?}"
            );
        });
    }

    #[test]
    fn pg_timed_out_and_cancelled_acquires_leave_the_counts_exact() {
        on_every_backend(|backend| async move {
            // 40 requests of 40 ms on 3 connections take ~530 ms: the last
            // third outlive a 300 ms acquire timeout. The connections are
            // opened first, so a slow SCRAM handshake on a loaded machine
            // cannot eat the timeout (connect cancellation is covered by the
            // TCP and model tests).
            let config = Config {
                min_size: 3,
                acquire_timeout: ms(300),
                ..quick(3)
            };
            let pool = Pool::open(manager(), config).await.expect("open");
            let mut tasks = Vec::new();
            for i in 0..40u64 {
                let pool = pool.clone();
                tasks.push(reactor::spawn(async move {
                    // Only the acquire is cancelled (by the outer timeout),
                    // never a query halfway: see docs/pool.md.
                    let acquired = if i % 3 == 0 {
                        reactor::timeout(ms(i % 7), pool.acquire()).await.ok()
                    } else {
                        Some(pool.acquire().await)
                    };
                    match acquired {
                        Some(Ok(mut conn)) => {
                            scalar(&mut conn, "SELECT 1 FROM pg_sleep(0.04)").await;
                            true
                        }
                        Some(Err(PoolError::Timeout { .. })) | None => false,
                        Some(Err(e)) => panic!("unexpected: {e}"),
                    }
                }));
                if i % 4 == 0 {
                    reactor::yield_now().await;
                }
            }
            let mut served = 0;
            for task in tasks {
                served += u64::from(task.await);
            }
            let stats = pool.stats();
            assert!(
                served > 0 && stats.timeouts > 0,
                "{backend:?}: the test should mix both: {stats:?}"
            );
            assert_eq!((stats.active, stats.waiting), (0, 0), "{backend:?}: {stats:?}");
            assert_books_balance(&stats);
            drop(backend_pids(&pool, 3).await); // all three slots still there
        });
    }
}

// ---------------------------------------------------------------------------
// A model check: random interleavings of acquires, releases, discards,
// dirty returns, timeouts and aborts, with a manager that does no I/O (the
// bookkeeping is what is under test). After any such history, every slot
// is accounted for.
// ---------------------------------------------------------------------------

mod model {
    use super::*;
    use connlab::pool::{Health, Manager};
    use proptest::prelude::*;

    /// Connections are plain numbers; `reset` and `connect` yield once, so
    /// they are real suspension points where a cancellation can land.
    struct Plain;

    #[derive(Debug)]
    struct PlainConn {
        dirty: bool,
    }

    impl Manager for Plain {
        type Connection = PlainConn;
        type Error = std::io::Error;

        async fn connect(&self) -> std::io::Result<PlainConn> {
            reactor::yield_now().await;
            Ok(PlainConn { dirty: false })
        }

        async fn validate(&self, _conn: &mut PlainConn) -> std::io::Result<()> {
            Ok(())
        }

        fn check(&self, conn: &mut PlainConn) -> Health {
            if conn.dirty {
                Health::NeedsReset
            } else {
                Health::Clean
            }
        }

        async fn reset(&self, conn: &mut PlainConn) -> std::io::Result<()> {
            reactor::yield_now().await;
            conn.dirty = false;
            Ok(())
        }
    }

    /// What one task does with the connection it gets.
    #[derive(Debug, Clone, Copy)]
    enum Ending {
        Release,
        Dirty,
        Discard,
    }

    #[derive(Debug, Clone, Copy)]
    struct Op {
        hold_yields: u8,
        ending: Ending,
        /// Cancel the acquire from outside after this many ms (`None`: let it run).
        outer_timeout_ms: Option<u8>,
        /// Abort the whole task after this many yields (`None`: never).
        abort_after: Option<u8>,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0u8..4,
            prop_oneof![Just(Ending::Release), Just(Ending::Dirty), Just(Ending::Discard)],
            proptest::option::of(0u8..3),
            proptest::option::weighted(0.2, 0u8..4),
        )
            .prop_map(|(hold_yields, ending, outer_timeout_ms, abort_after)| Op {
                hold_yields,
                ending,
                outer_timeout_ms,
                abort_after,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn no_history_of_cancellations_loses_a_slot(max in 1usize..4, ops in proptest::collection::vec(op(), 1..24)) {
            reactor::block_on(Backend::Epoll, async move {
                let config = Config { acquire_timeout: ms(5), maintenance_interval: ms(1), ..quick(max) };
                let pool = Pool::new(Plain, config);
                let mut tasks = Vec::new();
                for op in &ops {
                    let (pool, op) = (pool.clone(), *op);
                    let task = reactor::spawn(async move {
                        let acquired = match op.outer_timeout_ms {
                            Some(t) => reactor::timeout(ms(u64::from(t)), pool.acquire()).await.ok(),
                            None => Some(pool.acquire().await),
                        };
                        if let Some(Ok(mut conn)) = acquired {
                            for _ in 0..op.hold_yields {
                                reactor::yield_now().await;
                            }
                            match op.ending {
                                Ending::Release => drop(conn),
                                Ending::Dirty => conn.dirty = true,
                                Ending::Discard => conn.discard(),
                            }
                        }
                    });
                    tasks.push((task, op.abort_after));
                }
                for step in 0..4u8 {
                    reactor::yield_now().await;
                    for (task, abort_after) in tasks.iter_mut() {
                        if *abort_after == Some(step) {
                            *abort_after = None;
                            let doomed = std::mem::replace(task, reactor::spawn(async {}));
                            doomed.abort();
                        }
                    }
                }
                for (task, _) in tasks {
                    task.await;
                }
                // Let the background task finish any resets.
                wait_for(&pool, Duration::from_secs(5), "resets done", |s| s.active == 0).await;
                let stats = pool.stats();
                assert_eq!(stats.waiting, 0, "{stats:?}");
                assert_books_balance(&stats);
                let mut held = Vec::new();
                for _ in 0..max {
                    held.push(pool.acquire().await.expect("every slot is still there"));
                }
            })
            .expect("reactor");
        }
    }
}

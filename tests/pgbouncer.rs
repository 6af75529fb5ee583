//! connlab's client and pool through a real, throwaway PgBouncer
//! (`testbed::pgbouncer`) in front of the throwaway PostgreSQL.
//!
//! The transaction-pooling footguns (`testbed::footguns`: the story's
//! four with the statement cache off, and the cache's own) are made to
//! happen with a plain client, and shown avoided by the
//! `transaction_pooling` setting; the client's queries, prepared statements
//! and the pool work through transaction pooling with that setting.

use std::sync::{Mutex, MutexGuard, OnceLock};

use connlab::pg::{Config, Connection};
use connlab::poller::Backend;
use connlab::pool::{pg::PgManager, Config as PoolConfig, Pool};
use connlab::reactor;
use connlab::testbed::footguns::{self, Outcome};
use connlab::testbed::pgbouncer::{self, PgBouncer, PoolMode, Settings};
use connlab::testbed::Cluster;

fn cluster() -> &'static Cluster {
    Cluster::shared().expect("a throwaway PostgreSQL (see testbed::postgres for what it needs)")
}

/// One PgBouncer per test binary, transaction mode, two server connections:
/// the fewest that let a client's next transaction land elsewhere.
fn bouncer() -> &'static PgBouncer {
    static BOUNCER: OnceLock<PgBouncer> = OnceLock::new();
    BOUNCER.get_or_init(|| {
        let settings = Settings {
            default_pool_size: 2,
            ..Settings::default()
        };
        PgBouncer::start(cluster(), settings).expect("a throwaway PgBouncer (scripts/install-pgbouncer)")
    })
}

fn config(transaction_pooling: bool) -> Config {
    let mut config = Config::from_url(&bouncer().url()).unwrap();
    config.transaction_pooling = transaction_pooling;
    config
}

fn direct() -> Config {
    Config::from_url(&cluster().url()).unwrap()
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    reactor::block_on(Backend::Epoll, future).unwrap()
}

/// The tests share one bouncer, and the footgun scenarios lean on its
/// reuse order (last in, first out), which another test's clients would
/// reshuffle: they take turns.
fn turn() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one scenario without and with the guard: (plain, guarded).
fn both<Fut>(scenario: impl Fn(Config, Config) -> Fut) -> (Outcome, Outcome)
where
    Fut: std::future::Future<Output = Result<Outcome, connlab::pg::connection::Error>>,
{
    let _turn = turn();
    let plain = run(scenario(config(false), direct())).expect("the plain scenario ran");
    let guarded = run(scenario(config(true), direct())).expect("the guarded scenario ran");
    (plain, guarded)
}

#[test]
fn set_by_one_client_is_seen_by_another_unless_the_guard_refuses_it() {
    let (plain, guarded) = both(|b, _| async move { footguns::set_leaks(&footguns::without_cache(&b)).await });
    assert!(plain.went_off, "without the setting, B sees A's SET:\n{plain}");
    assert!(!guarded.went_off, "with it, the SET is refused:\n{guarded}");
    assert!(guarded.steps[0].result.contains("refused"), "{guarded}");
}

#[test]
fn named_prepared_statement_does_not_exist_on_the_next_server_unless_unnamed() {
    let (plain, guarded) = both(|b, _| async move { footguns::prepared_vanishes(&footguns::without_cache(&b)).await });
    assert!(plain.went_off, "without the setting, 26000 does not exist:\n{plain}");
    assert!(
        !guarded.went_off,
        "with it, the unnamed statement runs anywhere:\n{guarded}"
    );
    // And it did run on a different server connection than the one B held.
    let b_pid = guarded.steps[1].server_pid;
    let a_pid = guarded.steps[2].server_pid;
    assert!(a_pid.is_some() && a_pid != b_pid, "{guarded}");
}

#[test]
fn listen_stops_receiving_unless_the_guard_refuses_it() {
    let (plain, guarded) =
        both(|b, d| async move { footguns::listen_goes_deaf(&footguns::without_cache(&b), &d).await });
    assert!(plain.went_off, "without the setting, A hears nothing:\n{plain}");
    assert!(!guarded.went_off, "{guarded}");
    assert!(guarded.steps[0].result.contains("refused"), "{guarded}");
}

#[test]
fn advisory_lock_outlives_the_transaction_unless_the_guard_refuses_it() {
    let (plain, guarded) =
        both(|b, d| async move { footguns::advisory_lock_stays(&footguns::without_cache(&b), &d).await });
    assert!(plain.went_off, "without the setting, the lock stays:\n{plain}");
    assert!(!guarded.went_off, "{guarded}");
    assert!(guarded.steps[0].result.contains("refused"), "{guarded}");
}

#[test]
fn statement_cache_names_collide_across_clients_unless_the_setting_turns_it_off() {
    let (plain, guarded) = both(|b, _| async move { footguns::cached_names_collide(&b).await });
    assert!(plain.went_off, "with the cache on, B's s1 already exists:\n{plain}");
    assert!(!guarded.went_off, "{guarded}");
}

#[test]
fn guarded_client_runs_queries_pipelines_and_prepared_statements_through_transaction_pooling() {
    let _turn = turn();
    run(async {
        let mut conn = Connection::connect(&config(true)).await.unwrap();
        assert!(conn.transaction_pooling());
        let rows = conn
            .query("SELECT name FROM users WHERE id = $1", &[&42i32])
            .await
            .unwrap();
        assert_eq!(rows.get(0).unwrap().get::<String>(0).unwrap(), "Alice");
        let statement = conn.prepare("SELECT name FROM users WHERE id = $1").await.unwrap();
        assert_eq!(statement.name(), "", "unnamed under transaction pooling");
        for _ in 0..3 {
            let rows = conn.query_prepared(&statement, &[&42i32]).await.unwrap();
            assert_eq!(rows.get(0).unwrap().get::<String>(0).unwrap(), "Alice");
        }
        conn.close_statement(statement).await.unwrap();
        // Transaction-scoped state is fine: it ends where the server connection is released.
        conn.simple_query("BEGIN; SET LOCAL statement_timeout = '1s'; SELECT pg_advisory_xact_lock(7); COMMIT")
            .await
            .unwrap();
        let err = conn.simple_query("SET search_path = public").await.unwrap_err();
        assert!(err.to_string().contains("SET LOCAL"), "{err}");
        assert!(conn.is_usable(), "a refusal sends nothing and breaks nothing");
        conn.close().await.unwrap();
    });
}

#[test]
fn pool_behind_transaction_pooling_resets_an_open_transaction_with_rollback() {
    let _turn = turn();
    run(async {
        let manager = PgManager::new(config(true));
        // One connection: the next acquire waits for the reset (which the
        // pool runs in the background) instead of opening another.
        let pool_config = PoolConfig {
            max_size: 1,
            ..PoolConfig::default()
        };
        let pool = Pool::new(manager, pool_config);
        {
            let mut conn = pool.acquire().await.unwrap();
            conn.simple_query("BEGIN").await.unwrap();
            conn.query("SELECT pg_advisory_xact_lock(9)", &[]).await.unwrap();
            // Released mid-transaction: PgBouncer keeps the server connection
            // pinned until the transaction ends, so the pool's ROLLBACK
            // reaches the right server and frees it (and the xact lock).
        }
        let mut conn = pool.acquire().await.unwrap();
        let rows = conn
            .query(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 9",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.get(0).unwrap().get::<i64>(0).unwrap(), 0);
        let statement = conn.prepare("SELECT 1").await.unwrap();
        drop(conn);
        // Another checkout, maybe another server connection: still runs.
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(conn.query_prepared(&statement, &[]).await.unwrap().len(), 1);
    });
}

#[test]
fn session_mode_keeps_session_state_like_a_direct_connection() {
    let cluster = cluster();
    let settings = Settings {
        mode: PoolMode::Session,
        default_pool_size: 2,
        ..Settings::default()
    };
    let session = PgBouncer::start(cluster, settings).unwrap();
    run(async {
        let mut conn = Connection::connect_url(&session.url()).await.unwrap();
        conn.simple_query("SET statement_timeout = '4321ms'").await.unwrap();
        let statement = conn
            .prepare("SELECT current_setting('statement_timeout')")
            .await
            .unwrap();
        let rows = conn.query_prepared(&statement, &[]).await.unwrap();
        assert_eq!(rows.get(0).unwrap().get::<String>(0).unwrap(), "4321ms");
    });
    let port = session.port();
    drop(session);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped on drop"
    );
}

#[test]
fn twelve_clients_share_three_server_connections_counted_by_the_admin_console() {
    let settings = Settings {
        default_pool_size: 3,
        ..Settings::default()
    };
    let bouncer = PgBouncer::start(cluster(), settings).unwrap();
    let (clients, pools, pids) = run(async {
        let config = Config::from_url(&format!("{}?transaction_pooling=true", bouncer.url())).unwrap();
        let mut conns = Vec::new();
        for _ in 0..12 {
            conns.push(Connection::connect(&config).await.unwrap());
        }
        let workers: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                reactor::spawn(async move {
                    let mut pids = Vec::new();
                    for _ in 0..5 {
                        let rows = conn
                            .query("SELECT pg_backend_pid() FROM pg_sleep(0.01)", &[])
                            .await
                            .unwrap();
                        pids.push(rows.get(0).unwrap().get::<i32>(0).unwrap());
                    }
                    (pids, conn)
                })
            })
            .collect();
        reactor::sleep(std::time::Duration::from_millis(50)).await;
        let mut admin = Connection::connect_url(&bouncer.admin_url()).await.unwrap();
        let pools = pgbouncer::show_pools(&mut admin).await.unwrap();
        let clients = pgbouncer::show_clients(&mut admin).await.unwrap();
        let mut pids = std::collections::BTreeSet::new();
        for worker in workers {
            pids.extend(worker.await.0);
        }
        (clients, pools, pids)
    });
    assert_eq!(clients, 12, "SHOW CLIENTS counts every client connection");
    assert_eq!(pools.clients(), 12, "{pools:?}");
    assert!(
        pools.servers() <= 3,
        "at most default_pool_size server connections: {pools:?}"
    );
    assert!(pools.cl_waiting > 0, "the rest wait their turn: {pools:?}");
    assert!(!pids.is_empty() && pids.len() <= 3, "served by {pids:?}");
}

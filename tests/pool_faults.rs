//! Faults under load: the pool, eight tasks writing and reading through it,
//! and a real PostgreSQL that is restarted, crashed, frozen and purged under
//! them. Figures, not just a pass: the test prints one table, copied into
//! `docs/faults.md`.
//!
//! ```text
//! cargo test --release --test pool_faults -- --ignored --nocapture
//! ```
//!
//! Ignored by default: it takes about a quarter of a minute, and it
//! restarts, crashes and freezes its server. That server is a throwaway
//! cluster of its own (one per test binary), so no other test sees it.
//!
//! The faults, one after the other, each after a second of steady load:
//!
//! 1. `pg_ctl restart -m fast`: the postmaster tells every backend to end
//!    (SIGINT to the postmaster), checkpoints, and starts again;
//! 2. `-m immediate`: SIGQUIT to the postmaster, every backend dies without
//!    cleanup, and the next start runs crash recovery from the WAL;
//! 3. the postmaster frozen with `SIGSTOP` for 2.5 s, longer than the
//!    1 s acquire timeout. Only the postmaster: the backends are processes
//!    of their own and keep serving the connections the pool already has;
//! 4. the same freeze, with every backend terminated as it starts, so the
//!    pool must reconnect to a server whose kernel still completes TCP
//!    handshakes (the listen backlog) but whose postmaster never answers;
//! 5. `pg_terminate_backend` of every backend of the pool.
//!
//! What each load task does, in a loop: acquire, then either a write (an
//! `INSERT` of its own `(task, seq)` row, committed with
//! `synchronous_commit = on` so "acknowledged" means the commit is in the
//! WAL, which the server's own crash cannot lose; the throwaway cluster
//! runs with `fsync = off`, so an OS crash could) or a read (`SELECT n`
//! with a number only this task and step would send, so an answer meant
//! for another query is caught). Every operation runs under a 10 s limit.
//!
//! What is counted, per fault, from the moment it starts until every task
//! has succeeded again: operations that failed (an error, never a
//! hang), wrong answers (must be 0), hung operations (must be 0), the
//! recovery time (from the end of the fault until every task has
//! succeeded again), and at the end: every acknowledged write present, and
//! this process's fd count back where it started.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use connlab::inspect;
use connlab::pg::connection::Connection;
use connlab::poller::Backend;
use connlab::pool::pg::PgManager;
use connlab::pool::{Config, Pool, PoolError};
use connlab::reactor;
use connlab::testbed::Cluster;

const TASKS: usize = 8;
const POOL_SIZE: usize = 4;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// An operation still running after this is counted as hung (and abandoned).
const OP_LIMIT: Duration = Duration::from_secs(10);
/// Steady load before each fault.
const WARM: Duration = Duration::from_secs(1);
/// How long the postmaster stays frozen: longer than the acquire timeout.
const FREEZE: Duration = Duration::from_millis(2500);
/// Give up waiting for recovery after this (the test then fails).
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    RestartFast,
    RestartImmediate,
    Freeze,
    FreezeAndTerminate,
    TerminateBackends,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::RestartFast,
        Fault::RestartImmediate,
        Fault::Freeze,
        Fault::FreezeAndTerminate,
        Fault::TerminateBackends,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::RestartFast => "`pg_ctl restart -m fast`",
            Fault::RestartImmediate => "`-m immediate` (SIGQUIT, crash recovery)",
            Fault::Freeze => "postmaster `SIGSTOP` 2.5 s",
            Fault::FreezeAndTerminate => "postmaster `SIGSTOP` 2.5 s + backends terminated",
            Fault::TerminateBackends => "`pg_terminate_backend` of every backend",
        }
    }
}

/// The fault thread's report: when the fault ended (the server is back,
/// or the signal was sent), and how long it took.
struct Done {
    ended: Instant,
    took: Duration,
}

/// SQL that ends every backend of our user except the caller's own.
const TERMINATE_ALL: &str = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
     WHERE usename = current_user AND pid <> pg_backend_pid() AND backend_type = 'client backend'";

/// Runs on its own thread, so a blocking `pg_ctl` does not freeze the load
/// it is disturbing (the load's reactor keeps running meanwhile).
fn fault_thread(cluster: &'static Cluster, orders: mpsc::Receiver<Fault>, done: mpsc::Sender<Done>) {
    for fault in orders {
        let started = Instant::now();
        match fault {
            Fault::RestartFast => cluster.restart().expect("pg_ctl restart -m fast"),
            Fault::RestartImmediate => {
                let pid = cluster.pid().expect("a running postmaster");
                signal(pid, "QUIT");
                wait_exited(pid);
                // `restart` finds the postmaster gone and starts a new one,
                // which replays the WAL (crash recovery) before it accepts.
                cluster.restart().expect("start after SIGQUIT");
            }
            Fault::Freeze => {
                let pid = cluster.pid().expect("a running postmaster");
                signal(pid, "STOP");
                thread::sleep(FREEZE);
                signal(pid, "CONT");
            }
            Fault::FreezeAndTerminate => {
                // A connection opened before the freeze: a backend can
                // still signal its siblings while the postmaster sleeps.
                reactor::block_on(Backend::Epoll, async {
                    let mut killer = Connection::connect_url(&cluster.url()).await.expect("connect");
                    let pid = cluster.pid().expect("a running postmaster");
                    signal(pid, "STOP");
                    killer.simple_query(TERMINATE_ALL).await.expect("terminate");
                    reactor::sleep(FREEZE).await;
                    signal(pid, "CONT");
                })
                .expect("reactor");
            }
            Fault::TerminateBackends => {
                reactor::block_on(Backend::Epoll, async {
                    let mut killer = Connection::connect_url(&cluster.url()).await.expect("connect");
                    killer.simple_query(TERMINATE_ALL).await.expect("terminate");
                })
                .expect("reactor");
            }
        }
        let ended = Instant::now();
        if done
            .send(Done {
                ended,
                took: ended - started,
            })
            .is_err()
        {
            return;
        }
    }
}

/// `kill -SIG PID` with the system's `kill(1)`: no `unsafe` outside the
/// library's `sys` layer, even in a test.
fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{sig} {pid}: {status}");
}

/// Wait (bounded) until `pid`, our child, has exited: a zombie (`Z` in
/// `/proc/PID/stat`) until `restart` reaps it.
fn wait_exited(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        if matches!(state, None | Some('Z')) {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
    panic!("postmaster {pid} did not exit after SIGQUIT");
}

/// What the load tasks count, shared on the reactor thread.
#[derive(Default)]
struct Tally {
    ok: Cell<u64>,
    failed: Cell<u64>,
    wrong: Cell<u64>,
    hung: Cell<u64>,
    /// `(task, seq)` of every write the server acknowledged.
    acked: RefCell<Vec<(i64, i64)>>,
    /// Per task: the last time an operation succeeded.
    last_ok: RefCell<Vec<Option<Instant>>>,
    /// Failures by kind, for the report.
    kinds: RefCell<Vec<(&'static str, u64)>>,
}

impl Tally {
    fn failure(&self, why: &str) {
        self.failed.set(self.failed.get() + 1);
        let kind = failure_kind(why);
        let mut kinds = self.kinds.borrow_mut();
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
}

/// A failure's kind, without the fd numbers and durations that make each
/// message unique.
fn failure_kind(why: &str) -> &'static str {
    if why.contains("57P01") {
        "FATAL 57P01 (terminating connection due to administrator command)"
    } else if why.contains("ECONNRESET") {
        "read: ECONNRESET"
    } else if why.contains("acquire timed out") {
        "pool acquire timed out"
    } else if why.contains("wrong answer") {
        "wrong answer"
    } else if why.contains("EOF") || why.contains("closed") {
        "connection closed by the server"
    } else {
        "other"
    }
}

async fn one_op(pool: &Pool<PgManager>, task: usize, seq: i64, tally: &Tally) -> Result<(), String> {
    let mut conn = pool.acquire().await.map_err(|e: PoolError| e.to_string())?;
    if seq % 2 == 0 {
        let sql = format!(
            "BEGIN; SET LOCAL synchronous_commit = on; \
             INSERT INTO pool_faults (task, seq) VALUES ({task}, {seq}); COMMIT"
        );
        conn.simple_query(&sql).await.map_err(|e| e.to_string())?;
        tally.acked.borrow_mut().push((task as i64, seq));
    } else {
        let expect = task as i64 * 1_000_000_000 + seq;
        let rows = conn
            .simple_query(&format!("SELECT {expect}::int8"))
            .await
            .map_err(|e| e.to_string())?;
        let got = rows
            .first()
            .and_then(|r| r.get(0))
            .and_then(|row| row.get::<i64>(0).ok());
        if got != Some(expect) {
            tally.wrong.set(tally.wrong.get() + 1);
            return Err(format!("wrong answer: {got:?} for {expect}"));
        }
    }
    Ok(())
}

async fn load_task(pool: Pool<PgManager>, task: usize, tally: Rc<Tally>, stop: Rc<Cell<bool>>) {
    let mut seq = 0i64;
    while !stop.get() {
        seq += 1;
        match reactor::timeout(OP_LIMIT, one_op(&pool, task, seq, &tally)).await {
            Ok(Ok(())) => {
                tally.ok.set(tally.ok.get() + 1);
                tally.last_ok.borrow_mut()[task] = Some(Instant::now());
            }
            Ok(Err(why)) => {
                tally.failure(&why);
                // A short pause so a dead server is not hammered; the pool's
                // own retries do the rest.
                reactor::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => tally.hung.set(tally.hung.get() + 1),
        }
    }
}

struct Row {
    fault: Fault,
    took: Duration,
    recovery: Duration,
    ok: u64,
    failed: u64,
    wrong: u64,
    hung: u64,
}

#[test]
#[ignore = "fault injection: ~30 s, restarts its own server; run with --ignored --nocapture"]
fn the_pool_survives_restarts_crashes_freezes_and_terminations() {
    let cluster = Cluster::shared().expect("a throwaway PostgreSQL");
    let fds_before = inspect::fd_usage().expect("fd usage").open;
    let (orders, order_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let faults = thread::spawn(move || fault_thread(cluster, order_rx, done_tx));

    let started = Instant::now();
    let (rows, acked, kinds, total) = reactor::block_on(Backend::Epoll, async {
        let mut setup = Connection::connect_url(&cluster.url()).await.expect("connect");
        setup
            .simple_query("DROP TABLE IF EXISTS pool_faults; CREATE TABLE pool_faults (task int, seq int8, PRIMARY KEY (task, seq))")
            .await
            .expect("create table");
        drop(setup);

        let config = Config {
            min_size: 2,
            max_size: POOL_SIZE,
            acquire_timeout: ACQUIRE_TIMEOUT,
            ..Config::default()
        };
        let pool = Pool::open(PgManager::from_url(&cluster.url()).expect("url"), config)
            .await
            .expect("open the pool");
        let tally = Rc::new(Tally::default());
        tally.last_ok.borrow_mut().resize(TASKS, None);
        let stop = Rc::new(Cell::new(false));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| reactor::spawn(load_task(pool.clone(), task, tally.clone(), stop.clone())))
            .collect();

        let mut rows = Vec::new();
        for fault in Fault::ALL {
            reactor::sleep(WARM).await;
            let before = (tally.ok.get(), tally.failed.get(), tally.wrong.get(), tally.hung.get());
            orders.send(fault).expect("fault thread alive");
            let report = loop {
                if let Ok(report) = done.try_recv() {
                    break report;
                }
                reactor::sleep(Duration::from_millis(5)).await;
            };
            let recovered = loop {
                let all = tally.last_ok.borrow().iter().all(|t| t.is_some_and(|t| t > report.ended));
                if all {
                    break report.ended.elapsed();
                }
                assert!(
                    report.ended.elapsed() < RECOVERY_LIMIT,
                    "{}: not every task recovered within {RECOVERY_LIMIT:?}; stats {}",
                    fault.name(),
                    pool.stats()
                );
                reactor::sleep(Duration::from_millis(2)).await;
            };
            rows.push(Row {
                fault,
                took: report.took,
                recovery: recovered,
                ok: tally.ok.get() - before.0,
                failed: tally.failed.get() - before.1,
                wrong: tally.wrong.get() - before.2,
                hung: tally.hung.get() - before.3,
            });
        }
        reactor::sleep(WARM).await;
        stop.set(true);
        for task in tasks {
            task.await;
        }
        println!("pool at the end: {}", pool.stats());
        pool.close();
        drop(pool);

        // Every acknowledged write, read back through a fresh connection.
        let mut check = Connection::connect_url(&cluster.url()).await.expect("connect");
        let results = check
            .simple_query("SELECT task::int8, seq FROM pool_faults")
            .await
            .expect("read back");
        let present: HashSet<(i64, i64)> = results
            .first()
            .map(|rows| {
                (0..rows.len())
                    .filter_map(|i| rows.get(i))
                    .filter_map(|row| Some((row.get::<i64>(0).ok()?, row.get::<i64>(1).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        let acked = tally.acked.borrow().clone();
        let missing = acked.iter().filter(|w| !present.contains(w)).count();
        drop(check);
        let kinds = tally.kinds.borrow().clone();
        let total = (tally.ok.get(), tally.failed.get());
        (rows, (acked.len(), missing), kinds, total)
    })
    .expect("reactor");
    drop(orders);
    faults.join().expect("fault thread");
    let fds_after = inspect::fd_usage().expect("fd usage").open;

    println!();
    println!("| fault | fault lasted | recovery | ok | failed | wrong | hung |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} ms | {} ms | {} | {} | {} | {} |",
            r.fault.name(),
            r.took.as_millis(),
            r.recovery.as_millis(),
            r.ok,
            r.failed,
            r.wrong,
            r.hung
        );
    }
    let (acked, missing) = acked;
    println!();
    println!("acknowledged writes: {acked}, missing afterwards: {missing}");
    println!("fds: {fds_before} before the pool, {fds_after} after it closed");
    println!("operations in the whole run: {} ok, {} failed", total.0, total.1);
    for (kind, n) in &kinds {
        println!("failed with {kind}: {n}");
    }
    println!("whole run: {:.1} s", started.elapsed().as_secs_f64());

    assert_eq!(missing, 0, "acknowledged writes lost");
    assert!(rows.iter().all(|r| r.wrong == 0), "wrong answers");
    assert!(rows.iter().all(|r| r.hung == 0), "hung operations");
    assert_eq!(fds_after, fds_before, "fds not back to the start");
}

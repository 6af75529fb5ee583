//! The PostgreSQL client against a real, throwaway server (`testbed::postgres`),
//! on every poller backend (select, poll, epoll).
//!
//! One server per test binary (`Cluster::shared`), started on first use and
//! removed when the binary exits. A few fake servers (`util::fake_pg`)
//! play the parts a real server will not: one that cannot prove it knows
//! the password, one that dies mid-message; `tests/pg_hostile.rs` has the
//! rest.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use connlab::pg::connection::types::{oid, ToSql, Value};
use connlab::pg::connection::{Connection, Error};
use connlab::pg::protocol::TransactionStatus;
use connlab::poller::Backend;
use connlab::reactor;
use connlab::testbed::postgres::{self as cluster, Cluster};
use util::fake_pg::{fake_server, message, read_message};
use util::on_every_backend;

mod util;

fn cluster() -> &'static Cluster {
    Cluster::shared().unwrap()
}

async fn connect() -> Connection {
    Connection::connect_url(&cluster().url()).await.unwrap()
}

/// Run one statement with the system's `psql`, as an independent witness.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-d", url, "-c", sql])
        .output()
        .expect("psql is installed alongside the server");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------- the harness

#[test]
fn cluster_serves_every_login_over_tcp_and_unix_socket() {
    let cluster = cluster();
    for login in cluster::LOGINS {
        let who = psql(&cluster.url_for(&login), "SELECT current_user");
        assert_eq!(who, login.user);
        let name = psql(&cluster.unix_url_for(&login), "SELECT name FROM users WHERE id = 42");
        assert_eq!(name, "Alice");
    }
}

#[test]
fn cluster_uses_the_auth_method_it_promises() {
    let cluster = cluster();
    let methods = psql(
        &cluster.url(),
        "SELECT string_agg(user_name[1] || '=' || auth_method, ',' ORDER BY line_number) \
         FROM pg_hba_file_rules WHERE type = 'host'",
    );
    for login in [cluster::MD5, cluster::CLEARTEXT, cluster::TRUST] {
        assert!(
            methods.contains(&format!("{}={}", login.user, login.method)),
            "{methods}"
        );
    }
    let stored = psql(
        &cluster.url(),
        "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'connlab_md5'",
    );
    assert_eq!(stored, "md5");
}

#[test]
fn own_cluster_restarts_on_the_same_port_and_is_removed_on_drop() {
    let cluster = Cluster::start().unwrap();
    let (port, dir, pid) = (cluster.port(), cluster.socket_dir().to_path_buf(), cluster.pid());
    assert_eq!(psql(&cluster.url(), "SELECT 1"), "1");
    cluster.restart().unwrap();
    assert_eq!(cluster.port(), port);
    assert_ne!(cluster.pid(), pid);
    assert_eq!(psql(&cluster.url(), "SELECT count(*) FROM users"), "1000");
    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
}

// ---------------------------------------------------------------- connecting

#[test]
fn every_auth_method_logs_in_over_tcp_and_unix_socket() {
    on_every_backend(|backend| async move {
        for login in cluster::LOGINS {
            for url in [cluster().url_for(&login), cluster().unix_url_for(&login)] {
                let mut conn = Connection::connect_url(&url)
                    .await
                    .unwrap_or_else(|e| panic!("{backend:?} {login:?} {url}: {e}"));
                let rows = conn.query("SELECT current_user::text", &[]).await.unwrap();
                assert_eq!(rows.get(0).unwrap().get::<&str>(0).unwrap(), login.user);
                assert!(conn.backend_pid() > 0);
                assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
                assert_eq!(conn.parameter("client_encoding"), Some("UTF8"));
                conn.close().await.unwrap();
            }
        }
    });
}

#[test]
fn wrong_password_fails_with_28p01() {
    on_every_backend(|_| async {
        for login in [cluster::SCRAM, cluster::MD5, cluster::CLEARTEXT] {
            let url = format!(
                "postgres://{}:not-the-password@127.0.0.1:{}/postgres",
                login.user,
                cluster().port()
            );
            let err = Connection::connect_url(&url).await.unwrap_err();
            assert_eq!(err.code(), Some("28P01"), "{login:?}: {err}");
            assert!(
                !err.to_string().contains("not-the-password"),
                "the password leaked into: {err}"
            );
        }
    });
}

#[test]
fn connection_refused_names_the_syscall() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    on_every_backend(|_| async move {
        let err = Connection::connect_url(&format!("postgres://u:p@127.0.0.1:{port}/db"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ECONNREFUSED"), "{err}");
    });
}

#[test]
fn server_with_a_wrong_scram_signature_is_refused() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            read_message(&mut sock, false).unwrap(); // StartupMessage
            let mut sasl = 10i32.to_be_bytes().to_vec();
            sasl.extend_from_slice(b"SCRAM-SHA-256\0\0");
            sock.write_all(&message(b'R', &sasl)).unwrap();
            // SASLInitialResponse: mechanism\0, Int32 len, "n,,n=,r=<client nonce>"
            let (_, body) = read_message(&mut sock, true).unwrap();
            let first = String::from_utf8_lossy(&body[b"SCRAM-SHA-256\0".len() + 4..]).to_string();
            let client_nonce = first.rsplit("r=").next().unwrap().to_string();
            let server_first = format!("r={client_nonce}SERVERNONCE,s=c2FsdHNhbHRzYWx0,i=4096");
            let mut cont = 11i32.to_be_bytes().to_vec();
            cont.extend_from_slice(server_first.as_bytes());
            sock.write_all(&message(b'R', &cont)).unwrap();
            read_message(&mut sock, true).unwrap(); // SASLResponse with the client proof
                                                    // A signature made without the password: 32 zero bytes.
            let mut fin = 12i32.to_be_bytes().to_vec();
            fin.extend_from_slice(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
            sock.write_all(&message(b'R', &fin)).unwrap();
            // An impostor would now say AuthenticationOk.
            let _ = sock.write_all(&message(b'R', &0i32.to_be_bytes()));
        });
        let err = Connection::connect_url(&url).await.unwrap_err();
        assert!(matches!(err, Error::Auth(_)), "{err:?}");
        assert!(err.to_string().contains("signature"), "{err}");
    });
}

#[test]
fn server_dying_mid_message_is_an_error_not_a_hang() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            read_message(&mut sock, false).unwrap();
            sock.write_all(&message(b'R', &0i32.to_be_bytes())).unwrap();
            sock.write_all(&message(b'Z', b"I")).unwrap();
            for _ in ["Parse", "Bind", "Describe", "Execute", "Sync"] {
                read_message(&mut sock, true).unwrap();
            }
            // The first 7 bytes of a 20-byte RowDescription, then close.
            sock.write_all(&[b'T', 0, 0, 0, 19, 0, 1]).unwrap();
        });
        let mut conn = Connection::connect_url(&url).await.unwrap();
        let err = conn.query("SELECT 1", &[]).await.unwrap_err();
        assert!(err.to_string().contains("closed the connection"), "{err}");
        assert!(!conn.is_usable());
        let again = conn.query("SELECT 1", &[]).await.unwrap_err();
        assert!(matches!(again, Error::Closed(_)), "{again:?}");
    });
}

#[test]
fn hostile_length_is_refused_at_once_without_waiting_or_allocating() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            read_message(&mut sock, false).unwrap();
            // "A DataRow of 2 GiB follows": a client that believed it would
            // allocate 2 GiB, or wait forever for the bytes.
            sock.write_all(&[b'D', 0x7f, 0xff, 0xff, 0xff]).unwrap();
            let _ = sock.read(&mut [0u8; 1]);
        });
        let started = Instant::now();
        let err = Connection::connect_url(&url).await.unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

// ---------------------------------------------------------------- queries

#[test]
fn simple_query_returns_one_result_per_statement() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let results = conn
            .simple_query("CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT x FROM t ORDER BY x")
            .await
            .unwrap();
        let tags: Vec<&str> = results.iter().map(|r| r.tag()).collect();
        assert_eq!(tags, ["CREATE TABLE", "INSERT 0 2", "SELECT 2"]);
        let xs: Vec<i32> = results[2].iter().map(|row| row.get(0).unwrap()).collect();
        assert_eq!(xs, [1, 2]);
        assert_eq!(results[1].rows_affected(), 2);
    });
}

#[test]
fn every_supported_type_round_trips() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let params: [&dyn ToSql; 11] = [
            &true,
            &-32768i16,
            &2_147_483_647i32,
            &i64::MIN,
            &1.5f32,
            &std::f64::consts::PI,
            &"",
            &"héllo, wörld ✓ 🐘",
            &big,
            &None::<i32>,
            &f64::INFINITY,
        ];
        let rows = conn
            .query(
                "SELECT $1, $2, $3, $4, $5, $6, $7::text, $8::varchar, $9, $10::int4, $11",
                &params,
            )
            .await
            .unwrap();
        let row = rows.get(0).unwrap();
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<i16>(1).unwrap(), -32768);
        assert_eq!(row.get::<i32>(2).unwrap(), 2_147_483_647);
        assert_eq!(row.get::<i64>(3).unwrap(), i64::MIN);
        assert_eq!(row.get::<f32>(4).unwrap(), 1.5);
        assert_eq!(row.get::<f64>(5).unwrap(), std::f64::consts::PI);
        assert_eq!(row.get::<&str>(6).unwrap(), "");
        assert_eq!(row.get::<String>(7).unwrap(), "héllo, wörld ✓ 🐘");
        assert_eq!(row.get::<Vec<u8>>(8).unwrap(), big);
        assert_eq!(row.get::<Option<i32>>(9).unwrap(), None);
        assert!(row.get::<i32>(9).is_err(), "NULL into a plain i32 must be an error");
        assert_eq!(row.get::<f64>(10).unwrap(), f64::INFINITY);
        let types: Vec<u32> = rows.columns().iter().map(|c| c.type_oid).collect();
        assert_eq!(
            types,
            [
                oid::BOOL,
                oid::INT2,
                oid::INT4,
                oid::INT8,
                oid::FLOAT4,
                oid::FLOAT8,
                oid::TEXT,
                oid::VARCHAR,
                oid::BYTEA,
                oid::INT4,
                oid::FLOAT8
            ]
        );
        assert_eq!(row.value(0).unwrap(), Value::Bool(true));
        assert_eq!(row.value(9).unwrap(), Value::Null);
    });
}

#[test]
fn a_result_of_many_reads_arrives_whole_and_in_order() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        // About 2.5 MB: many 16 KiB reads, messages split across them.
        let rows = conn
            .query(
                "SELECT i, repeat(chr(65 + i % 26), i % 200) FROM generate_series(1, $1) AS i",
                &[&20_000],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 20_000);
        for (n, row) in rows.iter().enumerate() {
            let i = n as i32 + 1;
            assert_eq!(row.get::<i32>(0).unwrap(), i);
            let text = row.get::<&str>(1).unwrap();
            assert_eq!(text.len(), (i % 200) as usize);
            assert!(text.bytes().all(|b| b == b'A' + (i % 26) as u8));
        }
        assert_eq!(rows.tag(), "SELECT 20000");
    });
}

#[test]
fn syntax_error_is_typed_and_leaves_the_connection_usable() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let err = conn.query("SELEKT 1", &[]).await.unwrap_err();
        let db = err.db().expect("a server error");
        assert_eq!(db.code, "42601");
        assert_eq!(db.position, Some(1));
        assert!(!err.is_fatal());
        let rows = conn
            .query("SELECT name FROM users WHERE id = $1", &[&42])
            .await
            .unwrap();
        assert_eq!(rows.get(0).unwrap().get::<&str>(0).unwrap(), "Alice");
    });
}

#[test]
fn transaction_status_follows_begin_error_and_rollback() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        conn.simple_query("BEGIN").await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::InTransaction);
        conn.query("SELECT 1/0", &[]).await.unwrap_err();
        assert_eq!(conn.transaction_status(), TransactionStatus::Failed);
        let err = conn.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some("25P02"));
        conn.simple_query("ROLLBACK").await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    });
}

#[test]
fn prepared_statement_is_parsed_once_and_reused() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let stmt = conn
            .prepare("SELECT id, name FROM users WHERE id = $1 OR id = $2 ORDER BY id")
            .await
            .unwrap();
        assert_eq!(stmt.params(), [oid::INT4, oid::INT4]);
        assert_eq!(stmt.columns().len(), 2);
        for (a, b) in [(1, 42), (42, 7)] {
            let rows = conn.query_prepared(&stmt, &[&a, &b]).await.unwrap();
            assert_eq!(rows.len(), 2);
            assert!(rows.iter().any(|r| r.get::<&str>(1).unwrap() == "Alice"));
        }
        // Text parameters work for any type: the server parses "42" as int4.
        let rows = conn.query_prepared(&stmt, &[&"42", &"0"]).await.unwrap();
        assert_eq!(rows.len(), 1);
        conn.close_statement(stmt).await.unwrap();
        let err = conn.simple_query("EXECUTE s1(1, 2)").await.unwrap_err();
        assert_eq!(err.code(), Some("26000"), "{err}");
    });
}

#[test]
fn pipeline_error_in_the_middle_skips_the_rest_and_rolls_back() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        conn.simple_query("CREATE TEMP TABLE p (x int)").await.unwrap();
        let none: &[&dyn ToSql] = &[];
        let results = conn
            .pipeline(&[
                ("INSERT INTO p VALUES ($1)", &[&1]),
                ("SELECT $1::int + 1", &[&41]),
                ("SELECT 1/0", none),
                ("INSERT INTO p VALUES (2)", none),
            ])
            .await
            .unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().unwrap().rows_affected(), 1);
        assert_eq!(results[1].as_ref().unwrap().get(0).unwrap().get::<i32>(0).unwrap(), 42);
        assert_eq!(results[2].as_ref().unwrap_err().code(), Some("22012"));
        assert!(matches!(results[3], Err(Error::Skipped)));
        // One Sync, one implicit transaction: the first INSERT was rolled back.
        let count = conn.query("SELECT count(*) FROM p", &[]).await.unwrap();
        assert_eq!(count.get(0).unwrap().get::<i64>(0).unwrap(), 0);
        assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    });
}

#[test]
fn notices_and_parameter_changes_arrive_between_results() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        conn.simple_query(
            "DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$; SET application_name = 'connlab-test'",
        )
        .await
        .unwrap();
        let notices = conn.take_notices();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].message, "hello from plpgsql");
        assert_eq!(conn.parameter("application_name"), Some("connlab-test"));
    });
}

// ---------------------------------------------------------------- failures

#[test]
fn cancel_interrupts_pg_sleep_with_57014_in_under_a_second() {
    on_every_backend(|backend| async move {
        let mut conn = connect().await;
        let token = conn.cancel_token();
        let canceller = reactor::spawn(async move {
            reactor::sleep(Duration::from_millis(100)).await;
            token.cancel().await
        });
        let started = Instant::now();
        let err = conn.query("SELECT pg_sleep(10)", &[]).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.code(), Some("57014"), "{err}");
        assert!(took < Duration::from_secs(1), "{backend:?}: cancel took {took:?}");
        canceller.await.unwrap();
        // Cancelling a query does not end the session.
        assert_eq!(conn.query("SELECT 1", &[]).await.unwrap().len(), 1);
    });
}

#[test]
fn terminated_backend_gives_a_clear_error_on_the_next_call() {
    on_every_backend(|_| async {
        let mut victim = connect().await;
        let mut admin = connect().await;
        let pid = victim.backend_pid();
        let rows = admin
            .query("SELECT pg_terminate_backend($1, 5000)", &[&pid])
            .await
            .unwrap();
        assert!(rows.get(0).unwrap().get::<bool>(0).unwrap());
        let err = victim.query("SELECT 1", &[]).await.unwrap_err();
        // Either the server's goodbye (57P01, FATAL) or the EOF behind it.
        assert!(err.is_fatal(), "{err:?}");
        assert!(
            err.code() == Some("57P01") || err.to_string().contains("closed"),
            "unclear error: {err}"
        );
        let again = victim.query("SELECT 1", &[]).await.unwrap_err();
        assert!(matches!(again, Error::Closed(_)), "{again:?}");
    });
}

#[test]
fn close_sends_terminate_and_the_backend_exits() {
    on_every_backend(|_| async {
        let conn = connect().await;
        let pid = conn.backend_pid();
        conn.close().await.unwrap();
        let mut admin = connect().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rows = admin
                .query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .await
                .unwrap();
            if rows.get(0).unwrap().get::<i64>(0).unwrap() == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "backend {pid} still alive after Terminate");
            reactor::sleep(Duration::from_millis(10)).await;
        }
    });
}

// ---------------------------------------------------------------- measuring

/// Round trips, measured: not a test of correctness, so `#[ignore]`d. Run:
/// `cargo test --release --test pg -- --ignored --nocapture measure_round_trips`
/// It prints connect + SCRAM time, sequential prepared queries (p50, p99,
/// queries/s) and pipelined throughput for connlab, and libpq's figure
/// from `pgbench -M prepared` on the same server, interleaved.
#[test]
#[ignore]
fn measure_round_trips() {
    const CONNECTS: usize = 50;
    const WARMUP: usize = 10_000;
    const QUERIES: usize = 20_000;
    const BATCH: usize = 100;
    const ROUNDS: usize = 3;
    let cluster = cluster();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ours = Vec::new();
    let mut piped = Vec::new();
    let mut libpq = Vec::new();
    let mut connects = Vec::new();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for _ in 0..ROUNDS {
        reactor::block_on(Backend::Epoll, async {
            let mut conn = connect().await;
            let stmt = conn.prepare("SELECT name FROM users WHERE id = $1").await.unwrap();
            // A new backend is slow for its first few thousand queries (cold
            // catalog caches, the scheduler placing the two processes);
            // pgbench's 3-second run hides that, so we warm up too.
            for i in 0..WARMUP {
                conn.query_prepared(&stmt, &[&((i % 1000) as i32 + 1)]).await.unwrap();
            }
            let mut lat = Vec::with_capacity(QUERIES);
            let started = Instant::now();
            for i in 0..QUERIES {
                let id = (i % 1000) as i32 + 1;
                let t = Instant::now();
                let rows = conn.query_prepared(&stmt, &[&id]).await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                assert_eq!(rows.len(), 1);
            }
            ours.push(QUERIES as f64 / started.elapsed().as_secs_f64());
            lat.sort_by(f64::total_cmp);
            p50s.push(lat[lat.len() / 2]);
            p99s.push(lat[lat.len() * 99 / 100]);
            let ids: Vec<i32> = (1..=BATCH as i32).collect();
            let params: Vec<[&dyn ToSql; 1]> = ids.iter().map(|id| [id as &dyn ToSql]).collect();
            let batch: Vec<(&str, &[&dyn ToSql])> = params
                .iter()
                .map(|p| ("SELECT name FROM users WHERE id = $1", &p[..]))
                .collect();
            let started = Instant::now();
            for _ in 0..QUERIES / BATCH {
                let results = conn.pipeline(&batch).await.unwrap();
                assert!(results.iter().all(Result::is_ok));
            }
            piped.push(QUERIES as f64 / started.elapsed().as_secs_f64());
            // Last, so that 50 backends exiting do not disturb the loops above.
            for _ in 0..CONNECTS {
                let started = Instant::now();
                let conn = connect().await;
                connects.push(started.elapsed().as_secs_f64() * 1e3);
                conn.close().await.unwrap();
            }
        })
        .unwrap();
        let script = std::env::temp_dir().join(format!("connlab-pgbench-{}.sql", std::process::id()));
        std::fs::write(
            &script,
            "\\set id random(1, 1000)\nSELECT name FROM users WHERE id = :id;\n",
        )
        .unwrap();
        let out = Command::new("pgbench")
            .args(["-n", "-c", "1", "-M", "prepared", "-T", "3", "-f"])
            .arg(&script)
            .arg(cluster.url())
            .output();
        let _ = std::fs::remove_file(&script);
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(tps) = text.lines().find_map(|l| l.strip_prefix("tps = ")) {
                libpq.push(tps.split_whitespace().next().unwrap().parse::<f64>().unwrap());
            }
        }
    }
    let (ours, piped) = (median(ours), median(piped));
    println!(
        "connect + SCRAM auth (median of {}): {:.2} ms",
        connects.len(),
        median(connects)
    );
    println!(
        "sequential prepared SELECT: p50 {:.1} us, p99 {:.1} us, {ours:.0} queries/s",
        median(p50s),
        median(p99s)
    );
    println!(
        "pipelined ({BATCH} per Sync): {piped:.0} queries/s ({:.1}x sequential)",
        piped / ours
    );
    if libpq.is_empty() {
        println!("libpq: pgbench not found, no comparison");
    } else {
        let libpq = median(libpq);
        println!(
            "libpq (pgbench -M prepared): {libpq:.0} queries/s; connlab / libpq = {:.2}x",
            ours / libpq
        );
    }
}

/// Regression (found by the pool's tests): a query whose future was dropped
/// halfway, here by a timeout around `pg_sleep`, used to leave the
/// connection "usable", and the next query read the old query's answer.
/// Now the abandoned request marks the connection broken, the next call
/// says why, and a pool discards it instead of handing it out.
#[test]
fn a_query_abandoned_mid_flight_breaks_the_connection_instead_of_desynchronising_it() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let abandoned = reactor::timeout(Duration::from_millis(50), conn.simple_query("SELECT pg_sleep(0.3)")).await;
        assert!(abandoned.is_err(), "the timeout should have won");
        assert!(
            !conn.is_usable(),
            "an abandoned request leaves the connection out of step"
        );
        let err = conn.simple_query("SELECT 42").await.unwrap_err();
        assert!(matches!(err, Error::Closed(_)), "{err:?}");
        assert!(err.to_string().contains("abandoned"), "{err}");
    });
}

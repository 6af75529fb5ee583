//! The statement cache against a real, throwaway server, on every poller
//! backend: the second `query()` of the same SQL sends Bind/Execute only;
//! a stale statement (ALTER TABLE, DEALLOCATE ALL) is re-parsed instead of
//! failing the caller; a full cache closes what it evicts; capacity 0 is
//! the unnamed-statement path that a transaction pooler needs.

mod support;

use connlab::pg::connection::tap::{Direction, WireRecord};
use connlab::pg::connection::types::ToSql;
use connlab::pg::connection::{Connection, Error};
use connlab::pg::protocol::TransactionStatus;
use connlab::testbed::postgres::Cluster;
use support::on_every_backend;

const NONE: &[&dyn ToSql] = &[];

async fn connect_with(params: &str) -> Connection {
    let url = Cluster::shared().unwrap().url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = if params.is_empty() {
        url
    } else {
        format!("{url}{sep}{params}")
    };
    Connection::connect_url(&url).await.unwrap()
}

/// The names of the messages we sent, in order.
fn sent(records: &[WireRecord]) -> Vec<&'static str> {
    records
        .iter()
        .filter(|r| r.direction == Direction::Sent)
        .map(|r| r.name)
        .collect()
}

async fn name_of(conn: &mut Connection, id: i32) -> Result<String, Error> {
    let rows = conn.query("SELECT name FROM users WHERE id = $1", &[&id]).await?;
    Ok(rows.get(0).expect("one row").get::<&str>(0)?.to_string())
}

async fn server_statements(conn: &mut Connection) -> i64 {
    // Through the simple protocol, so this check adds no statement itself.
    let rows = conn
        .simple_query("SELECT count(*) FROM pg_prepared_statements")
        .await
        .unwrap();
    rows[0].get(0).unwrap().get::<i64>(0).unwrap()
}

#[test]
fn the_second_query_of_the_same_sql_sends_only_bind_and_execute() {
    on_every_backend(|_| async {
        let mut conn = connect_with("").await;
        conn.start_wire_tap(false);
        assert_eq!(name_of(&mut conn, 42).await.unwrap(), "Alice");
        assert_eq!(
            sent(&conn.take_wire_tap()),
            ["Parse", "Describe", "Bind", "Execute", "Sync"]
        );
        conn.start_wire_tap(false);
        assert_eq!(name_of(&mut conn, 42).await.unwrap(), "Alice");
        assert_eq!(sent(&conn.take_wire_tap()), ["Bind", "Execute", "Sync"]);
        assert_eq!(conn.cached_statements(), 1);
        assert_eq!(server_statements(&mut conn).await, 1);
    });
}

#[test]
fn capacity_zero_parses_the_unnamed_statement_every_time() {
    on_every_backend(|_| async {
        let mut conn = connect_with("statement_cache_size=0").await;
        for _ in 0..2 {
            conn.start_wire_tap(false);
            assert_eq!(name_of(&mut conn, 42).await.unwrap(), "Alice");
            assert_eq!(
                sent(&conn.take_wire_tap()),
                ["Parse", "Bind", "Describe", "Execute", "Sync"]
            );
        }
        assert_eq!(conn.cached_statements(), 0);
        assert_eq!(server_statements(&mut conn).await, 0);
    });
}

#[test]
fn a_changed_result_type_is_reparsed_outside_a_transaction() {
    on_every_backend(|_| async {
        let mut conn = connect_with("").await;
        conn.simple_query("CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        assert_eq!(conn.query("SELECT * FROM t", NONE).await.unwrap().columns().len(), 1);
        conn.simple_query("ALTER TABLE t ADD COLUMN y text DEFAULT 'new'")
            .await
            .unwrap();
        // The cached plan's result type changed: the server refuses it
        // (0A000), the client forgets it and retries once, transparently.
        let rows = conn.query("SELECT * FROM t", NONE).await.unwrap();
        assert_eq!(rows.columns().len(), 2);
        assert_eq!(rows.get(0).unwrap().get::<&str>(1).unwrap(), "new");
    });
}

#[test]
fn inside_a_transaction_a_stale_statement_fails_once_then_works_after_rollback() {
    on_every_backend(|_| async {
        let mut conn = connect_with("").await;
        conn.simple_query("CREATE TEMP TABLE t (x int)").await.unwrap();
        conn.query("SELECT * FROM t", NONE).await.unwrap();
        conn.simple_query("ALTER TABLE t ADD COLUMN y int").await.unwrap();
        conn.simple_query("BEGIN").await.unwrap();
        let err = conn.query("SELECT * FROM t", NONE).await.unwrap_err();
        assert_eq!(err.code(), Some("0A000"), "{err}");
        assert_eq!(conn.transaction_status(), TransactionStatus::Failed);
        conn.simple_query("ROLLBACK").await.unwrap();
        assert_eq!(conn.query("SELECT * FROM t", NONE).await.unwrap().columns().len(), 2);
    });
}

#[test]
fn discard_all_empties_the_cache_and_the_next_query_parses_again() {
    on_every_backend(|_| async {
        let mut conn = connect_with("").await;
        assert_eq!(name_of(&mut conn, 42).await.unwrap(), "Alice");
        conn.simple_query("DISCARD ALL").await.unwrap();
        assert_eq!(conn.cached_statements(), 0);
        conn.start_wire_tap(false);
        assert_eq!(name_of(&mut conn, 42).await.unwrap(), "Alice");
        assert_eq!(sent(&conn.take_wire_tap())[0], "Parse");
    });
}

#[test]
fn a_statement_deallocated_behind_the_cache_is_reparsed() {
    on_every_backend(|_| async {
        let mut conn = connect_with("").await;
        assert_eq!(name_of(&mut conn, 42).await.unwrap(), "Alice");
        // What a transaction pooler does to us: the next query lands on a
        // backend without our statement. DEALLOCATE by name (not ALL, which
        // the client notices) hides it the same way.
        let rows = conn
            .simple_query("SELECT name FROM pg_prepared_statements")
            .await
            .unwrap();
        let name = rows[0].get(0).unwrap().get::<&str>(0).unwrap().to_string();
        conn.simple_query(&format!("DEALLOCATE {name}")).await.unwrap();
        assert_eq!(name_of(&mut conn, 42).await.unwrap(), "Alice", "26000 was retried");
    });
}

#[test]
fn a_full_cache_closes_what_it_evicts_on_the_next_request() {
    on_every_backend(|_| async {
        let mut conn = connect_with("statement_cache_size=2").await;
        for i in 0..5 {
            let sql = format!("SELECT {i} + $1");
            conn.query(&sql, &[&1]).await.unwrap();
        }
        assert_eq!(conn.cached_statements(), 2);
        // The last eviction's Close rides on the next request.
        conn.query("SELECT 3 + $1", &[&1]).await.unwrap();
        assert_eq!(server_statements(&mut conn).await, 2);
    });
}

#[test]
fn closes_skipped_by_an_error_are_sent_again() {
    on_every_backend(|_| async {
        let mut conn = connect_with("statement_cache_size=1").await;
        conn.query("SELECT 1 + $1", &[&1]).await.unwrap();
        conn.query("SELECT 2 + $1", &[&1]).await.unwrap(); // evicts the first
                                                           // This batch fails at its Parse, before its trailing Close of the
                                                           // evicted statement: the server skips the Close, so it is queued again.
        let err = conn.query("SELEC 1", NONE).await.unwrap_err();
        assert_eq!(err.code(), Some("42601"));
        conn.query("SELECT 2 + $1", &[&1]).await.unwrap();
        assert_eq!(
            server_statements(&mut conn).await,
            1,
            "only the cached statement is left"
        );
    });
}

#[test]
fn a_pipeline_parses_repeated_sql_once_and_reuses_the_cache() {
    on_every_backend(|_| async {
        let mut conn = connect_with("").await;
        let sql = "SELECT name FROM users WHERE id = $1";
        let (id, n): ([&dyn ToSql; 1], [&dyn ToSql; 1]) = ([&42], [&21]);
        let batch: Vec<(&str, &[&dyn ToSql])> = vec![(sql, &id), (sql, &id), ("SELECT $1::int * 2", &n)];
        conn.start_wire_tap(false);
        let results = conn.pipeline(&batch).await.unwrap();
        let parses = sent(&conn.take_wire_tap()).iter().filter(|n| **n == "Parse").count();
        assert_eq!(parses, 2, "the repeated SQL is parsed once");
        assert_eq!(
            results[0].as_ref().unwrap().get(0).unwrap().get::<&str>(0).unwrap(),
            "Alice"
        );
        assert_eq!(
            results[1].as_ref().unwrap().get(0).unwrap().get::<&str>(0).unwrap(),
            "Alice"
        );
        assert_eq!(results[2].as_ref().unwrap().get(0).unwrap().get::<i32>(0).unwrap(), 42);
        conn.start_wire_tap(false);
        conn.pipeline(&batch).await.unwrap();
        assert!(!sent(&conn.take_wire_tap()).contains(&"Parse"), "all cached now");
    });
}

#[test]
fn a_prepared_pipeline_is_bind_and_execute_only() {
    on_every_backend(|_| async {
        let mut conn = connect_with("").await;
        let st = conn.prepare("SELECT $1::int + 1").await.unwrap();
        let params: [[&dyn ToSql; 1]; 3] = [[&1], [&2], [&3]];
        let batch: Vec<(&_, &[&dyn ToSql])> = params.iter().map(|p| (&st, &p[..])).collect();
        conn.start_wire_tap(false);
        let results = conn.pipeline_prepared(&batch).await.unwrap();
        assert_eq!(
            sent(&conn.take_wire_tap()),
            ["Bind", "Execute", "Bind", "Execute", "Bind", "Execute", "Sync"]
        );
        let got: Vec<i32> = results
            .iter()
            .map(|r| r.as_ref().unwrap().get(0).unwrap().get::<i32>(0).unwrap())
            .collect();
        assert_eq!(got, [2, 3, 4]);
    });
}

//! What a user of the client reaches for first, against a real throwaway
//! server on every poller backend: columns by name, NULL through `Option`,
//! `options=` in the URL, transactions (commit, rollback, a failed commit,
//! a dropped guard), and a large result streamed in bounded batches.

mod util;

use connlab::pg::connection::RowStream;
use connlab::pg::{sqlstate, Connection, Error, Value};
use connlab::testbed::postgres::Cluster;
use util::on_every_backend;

async fn connect() -> Connection {
    Connection::connect_url(&Cluster::shared().unwrap().url())
        .await
        .unwrap()
}

async fn one<T: for<'r> connlab::pg::FromSql<'r>>(conn: &mut Connection, sql: &str) -> T {
    let rows = conn.query(sql, &[]).await.unwrap();
    rows.get(0).unwrap().get::<T>(0).unwrap()
}

#[test]
fn columns_read_by_name_or_position_and_null_only_as_an_option() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let rows = conn
            .query("SELECT 7::int4 AS id, NULL::text AS nick, 'x' AS name", &[])
            .await
            .unwrap();
        let row = rows.get(0).unwrap();
        assert_eq!(row.get::<i32>("id").unwrap(), 7);
        assert_eq!(row.get::<i32>(0).unwrap(), 7);
        assert_eq!(row.get::<&str>("name").unwrap(), "x");
        assert_eq!(row.get::<Option<String>>("nick").unwrap(), None);
        assert_eq!(row.value("nick").unwrap(), Value::Null);
        let null = row.get::<String>("nick").unwrap_err().to_string();
        assert!(null.contains("nick") && null.contains("Option"), "{null}");
        let missing = row.get::<i32>("nope").unwrap_err().to_string();
        assert!(
            missing.contains("nope") && missing.contains("does not exist"),
            "{missing}"
        );
        assert!(row.get::<i32>(3).is_err());
        // A NULL parameter is an Option too.
        let rows = conn.query("SELECT $1::int4 IS NULL", &[&None::<i32>]).await.unwrap();
        assert!(rows.get(0).unwrap().get::<bool>(0).unwrap());
    });
}

#[test]
fn options_in_the_url_set_server_settings_for_the_session() {
    on_every_backend(|_| async {
        let url = format!(
            "{}?options=-c%20statement_timeout%3D4321%20-c%20application_name%3Dfrom_options",
            Cluster::shared().unwrap().url()
        );
        let mut conn = Connection::connect_url(&url).await.unwrap();
        assert_eq!(one::<String>(&mut conn, "SHOW statement_timeout").await, "4321ms");
        assert_eq!(conn.parameter("application_name"), Some("from_options"));
        // An unknown setting is the server's refusal, by name.
        let bad = format!("{}?options=-c%20no_such_setting%3D1", Cluster::shared().unwrap().url());
        let err = Connection::connect_url(&bad).await.unwrap_err().to_string();
        assert!(err.contains("no_such_setting"), "{err}");
    });
}

async fn setup_accounts(conn: &mut Connection) {
    conn.simple_query("CREATE TEMP TABLE acct (id int PRIMARY KEY, n int)")
        .await
        .unwrap();
}

async fn count(conn: &mut Connection) -> i64 {
    one::<i64>(conn, "SELECT count(*) FROM acct").await
}

#[test]
fn a_transaction_commits_or_rolls_back_as_a_whole() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        setup_accounts(&mut conn).await;
        let mut tx = conn.transaction().await.unwrap();
        tx.execute("INSERT INTO acct VALUES (1, 0)", &[]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&mut conn).await, 1);

        let mut tx = conn.transaction().await.unwrap();
        tx.execute("INSERT INTO acct VALUES (2, 0)", &[]).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&mut conn).await, 1);

        // A refused statement fails the block: COMMIT then rolls back, and says so.
        let mut tx = conn.transaction().await.unwrap();
        tx.execute("INSERT INTO acct VALUES (3, 0)", &[]).await.unwrap();
        let dup = tx.execute("INSERT INTO acct VALUES (1, 0)", &[]).await.unwrap_err();
        assert_eq!(dup.code(), Some(sqlstate::UNIQUE_VIOLATION));
        assert!(matches!(tx.commit().await, Err(Error::RolledBack)));
        assert_eq!(count(&mut conn).await, 1);

        // Nested: refused before anything is sent.
        let mut tx = conn.transaction().await.unwrap();
        assert!(matches!(tx.transaction().await, Err(Error::Unsupported(_))));
        tx.rollback().await.unwrap();
    });
}

#[test]
fn a_transaction_dropped_open_is_rolled_back_before_the_next_request() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        setup_accounts(&mut conn).await;
        {
            let mut tx = conn.transaction().await.unwrap();
            tx.execute("INSERT INTO acct VALUES (1, 0)", &[]).await.unwrap();
            // Dropped here, as an early `?` return would.
        }
        // Still open on the server until the next request...
        assert_ne!(
            conn.transaction_status(),
            connlab::pg::protocol::TransactionStatus::Idle
        );
        // ...which rolls it back first: the insert is gone, and this query ran outside it.
        assert_eq!(count(&mut conn).await, 0);
        assert_eq!(
            conn.transaction_status(),
            connlab::pg::protocol::TransactionStatus::Idle
        );
        // A caller that rolls back itself (a pool's reset) is not answered twice.
        drop(conn.transaction().await.unwrap());
        conn.simple_query("ROLLBACK").await.unwrap();
        assert!(
            conn.take_notices().is_empty(),
            "no 'there is no transaction in progress'"
        );
    });
}

async fn collect(stream: &mut RowStream<'_>) -> Vec<i64> {
    let mut got = Vec::new();
    while let Some(row) = stream.next().await.unwrap() {
        got.push(row.get::<i64>("n").unwrap());
    }
    got
}

#[test]
fn a_large_result_streams_in_batches_and_ends_with_its_tag() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let mut stream = conn
            .query_stream("SELECT n::int8 AS n FROM generate_series(1, $1) n", &[&2321i32], 1000)
            .await
            .unwrap();
        assert_eq!(stream.columns()[0].name, "n");
        let got = collect(&mut stream).await;
        assert_eq!(got, (1..=2321).collect::<Vec<i64>>());
        // The tag counts the last Execute's rows only; the stream counts them all.
        assert_eq!((stream.tag(), stream.rows_read()), (Some("SELECT 321"), 2321));
        drop(stream);
        assert_eq!(one::<i32>(&mut conn, "SELECT 1").await, 1);

        // Exactly a multiple of the batch, and an empty result.
        let mut stream = conn
            .query_stream("SELECT 1::int8 AS n FROM generate_series(1, 4)", &[], 2)
            .await
            .unwrap();
        assert_eq!(collect(&mut stream).await.len(), 4);
        drop(stream);
        let mut stream = conn
            .query_stream("SELECT 1::int8 AS n WHERE false", &[], 2)
            .await
            .unwrap();
        assert!(collect(&mut stream).await.is_empty());
    });
}

#[test]
fn a_stream_dropped_halfway_leaves_the_connection_in_step() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let mut stream = conn
            .query_stream("SELECT n::int8 AS n FROM generate_series(1, 100000) n", &[], 100)
            .await
            .unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), 1);
        drop(stream);
        assert!(conn.is_usable());
        assert_eq!(one::<i32>(&mut conn, "SELECT 42").await, 42);
        // Inside a transaction too: the stream's Sync first, then the ROLLBACK.
        let mut tx = conn.transaction().await.unwrap();
        let mut stream = tx
            .query_stream("SELECT 1::int8 AS n FROM generate_series(1, 10)", &[], 3)
            .await
            .unwrap();
        stream.next().await.unwrap();
        drop(stream);
        drop(tx);
        assert_eq!(one::<i32>(&mut conn, "SELECT 43").await, 43);
        assert_eq!(
            conn.transaction_status(),
            connlab::pg::protocol::TransactionStatus::Idle
        );
    });
}

#[test]
fn a_streamed_query_that_fails_is_an_error_and_the_connection_survives() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let err = conn.query_stream("SELECT 1/0", &[], 10).await.unwrap_err();
        assert_eq!(err.code(), Some(sqlstate::DIVISION_BY_ZERO));
        // Failing in a later batch: the error comes from next().
        let mut stream = conn
            .query_stream("SELECT 10 / (5 - n) AS n FROM generate_series(1, 10) n", &[], 2)
            .await
            .unwrap();
        let mut seen = 0;
        let err = loop {
            match stream.next().await {
                Ok(Some(_)) => seen += 1,
                Ok(None) => panic!("the division by zero was not reported"),
                Err(e) => break e,
            }
        };
        assert_eq!((seen, err.code()), (4, Some(sqlstate::DIVISION_BY_ZERO)));
        drop(stream);
        assert_eq!(one::<i32>(&mut conn, "SELECT 44").await, 44);
    });
}

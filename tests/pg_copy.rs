//! COPY against a real, throwaway server, on every poller backend: a stream
//! in (many pieces, one CopyDone) and back out row by row; a bad row and a
//! CopyFail each reported with the connection still usable; a COPY sent
//! through the wrong call refused without losing step.

mod util;

use connlab::pg::connection::{Connection, Error};
use connlab::testbed::postgres::Cluster;
use util::on_every_backend;

async fn connect() -> Connection {
    Connection::connect_url(&Cluster::shared().unwrap().url())
        .await
        .unwrap()
}

async fn count(conn: &mut Connection, table: &str) -> i64 {
    let rows = conn.query(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap();
    rows.get(0).unwrap().get::<i64>(0).unwrap()
}

const ROWS: usize = 20_000;

#[test]
fn rows_streamed_in_come_back_out_row_by_row() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        conn.simple_query("CREATE TEMP TABLE c (id int, name text)")
            .await
            .unwrap();
        let mut sent = Vec::new();
        let mut copy = conn.copy_in("COPY c FROM STDIN").await.unwrap();
        for i in 0..ROWS {
            let line = format!("{i}\tname {i}\n");
            sent.extend_from_slice(line.as_bytes());
            // Rows split across pieces on purpose: the server sees one stream.
            let (a, b) = line.as_bytes().split_at(line.len() / 2);
            copy.send(a).await.unwrap();
            copy.send(b).await.unwrap();
        }
        assert_eq!(copy.finish().await.unwrap(), ROWS as u64);
        assert_eq!(count(&mut conn, "c").await, ROWS as i64);

        let mut out = conn
            .copy_out("COPY (SELECT * FROM c ORDER BY id) TO STDOUT")
            .await
            .unwrap();
        let (mut got, mut rows) = (Vec::new(), 0);
        while out.read(&mut got).await.unwrap() {
            rows += 1;
        }
        assert_eq!((rows, out.rows()), (ROWS, Some(ROWS as u64)), "one CopyData per row");
        assert!(got == sent, "the bytes came back as they went in");
        conn.query("SELECT 1", &[]).await.unwrap();
    });
}

#[test]
fn a_bad_row_is_reported_at_finish_and_nothing_is_copied() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        conn.simple_query("CREATE TEMP TABLE c (id int)").await.unwrap();
        let mut copy = conn.copy_in("COPY c FROM STDIN").await.unwrap();
        copy.send(b"1\n2\nnot a number\n4\n").await.unwrap();
        let err = copy.finish().await.unwrap_err();
        assert_eq!(err.code(), Some("22P02"), "{err}"); // invalid_text_representation
        assert_eq!(count(&mut conn, "c").await, 0, "a COPY is all or nothing");
    });
}

#[test]
fn copy_fail_abandons_the_copy_and_the_server_quotes_the_reason() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        conn.simple_query("CREATE TEMP TABLE c (id int)").await.unwrap();
        let mut copy = conn.copy_in("COPY c FROM STDIN").await.unwrap();
        copy.send(b"1\n2\n").await.unwrap();
        let err = copy.fail("the producer gave up").await.unwrap();
        assert_eq!(err.code(), Some("57014"), "{err}");
        assert!(err.to_string().contains("the producer gave up"), "{err}");
        assert_eq!(count(&mut conn, "c").await, 0);
    });
}

#[test]
fn a_copy_that_cannot_start_is_an_error_not_a_broken_connection() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let err = conn.copy_out("COPY missing TO STDOUT").await.unwrap_err();
        assert_eq!(err.code(), Some("42P01"), "{err}");
        let err = conn.copy_in("COPY missing FROM STDIN").await.unwrap_err();
        assert_eq!(err.code(), Some("42P01"), "{err}");
        assert!(conn.is_usable());
        conn.query("SELECT 1", &[]).await.unwrap();
    });
}

#[test]
fn copy_through_simple_query_is_refused_and_the_connection_stays_in_step() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        conn.simple_query("CREATE TEMP TABLE c (id int); INSERT INTO c VALUES (1), (2)")
            .await
            .unwrap();
        let err = conn.simple_query("COPY c TO STDOUT").await.unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        let err = conn.simple_query("COPY c FROM STDIN").await.unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        assert!(!err.is_fatal());
        assert_eq!(count(&mut conn, "c").await, 2);
    });
}

//! LISTEN/NOTIFY against a real, throwaway server, on every poller backend:
//! notifications reach an idle connection (the reactor wakes it when the
//! socket turns readable), queue up while other requests run, are bounded
//! with the oldest dropped and counted, survive a cancelled wait, and are
//! cleaned off a pooled connection before its next holder sees them.

mod support;

use std::time::Duration;

use connlab::pg::connection::{Connection, Error, MAX_QUEUED_NOTIFICATIONS};
use connlab::pool::pg::PgManager;
use connlab::pool::{Config as PoolConfig, Pool};
use connlab::reactor;
use connlab::testbed::postgres::Cluster;
use support::on_every_backend;

async fn connect() -> Connection {
    Connection::connect_url(&Cluster::shared().unwrap().url())
        .await
        .unwrap()
}

#[test]
fn a_notify_wakes_an_idle_listener() {
    on_every_backend(|_| async {
        let (mut listener, mut sender) = (connect().await, connect().await);
        listener.simple_query("LISTEN news_idle").await.unwrap();
        assert!(listener.is_listening());
        sender.simple_query("NOTIFY news_idle, 'hello'").await.unwrap();
        let n = listener.next_notification().await.unwrap();
        assert_eq!((n.channel.as_str(), n.payload.as_str()), ("news_idle", "hello"));
        assert_eq!(n.process_id, sender.backend_pid());
    });
}

#[test]
fn notifications_that_arrive_during_a_query_are_kept_for_later() {
    on_every_backend(|_| async {
        let (mut listener, mut sender) = (connect().await, connect().await);
        listener.simple_query("LISTEN news_during").await.unwrap();
        sender
            .simple_query("NOTIFY news_during, '1'; NOTIFY news_during, '2'")
            .await
            .unwrap();
        // Make sure they are on the listener's socket before its next query.
        let first = listener.next_notification().await.unwrap();
        listener.query("SELECT 1", &[]).await.unwrap();
        let rest = listener.take_notifications();
        let payloads: Vec<&str> = std::iter::once(&first)
            .chain(&rest)
            .map(|n| n.payload.as_str())
            .collect();
        assert_eq!(payloads, ["1", "2"]);
    });
}

#[test]
fn a_flood_keeps_the_newest_and_counts_what_it_dropped() {
    on_every_backend(|_| async {
        let (mut listener, mut sender) = (connect().await, connect().await);
        listener.simple_query("LISTEN flood").await.unwrap();
        let extra = 10;
        // Distinct payloads: the server folds identical ones in a transaction.
        let sql = format!(
            "SELECT pg_notify('flood', i::text) FROM generate_series(1, {}) AS i",
            MAX_QUEUED_NOTIFICATIONS + extra
        );
        sender.simple_query(&sql).await.unwrap();
        // The last one tells us all have been read off the socket.
        let last = (MAX_QUEUED_NOTIFICATIONS + extra).to_string();
        let mut seen = Vec::new();
        while seen.last().map(|n: &connlab::pg::Notification| n.payload.as_str()) != Some(last.as_str()) {
            listener.query("SELECT 1", &[]).await.unwrap();
            seen.extend(listener.take_notifications());
        }
        assert!(seen.len() <= MAX_QUEUED_NOTIFICATIONS + extra);
        assert_eq!(
            seen.len() as u64 + listener.notifications_dropped(),
            (MAX_QUEUED_NOTIFICATIONS + extra) as u64,
            "each one delivered or counted as dropped"
        );
    });
}

#[test]
fn a_wait_cut_short_by_a_timeout_loses_nothing() {
    on_every_backend(|_| async {
        let (mut listener, mut sender) = (connect().await, connect().await);
        listener.simple_query("LISTEN news_timeout").await.unwrap();
        let waited = reactor::timeout(Duration::from_millis(50), listener.next_notification()).await;
        assert!(waited.is_err(), "nothing was sent yet");
        sender.simple_query("NOTIFY news_timeout, 'late'").await.unwrap();
        assert_eq!(listener.next_notification().await.unwrap().payload, "late");
        listener.query("SELECT 1", &[]).await.unwrap(); // still in step
    });
}

#[test]
fn a_terminated_listener_gets_the_servers_error_not_a_hang() {
    on_every_backend(|_| async {
        let (mut listener, mut admin) = (connect().await, connect().await);
        listener.simple_query("LISTEN news_term").await.unwrap();
        let pid = listener.backend_pid();
        admin.query("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
        let err = listener.next_notification().await.unwrap_err();
        assert!(
            err.code() == Some("57P01") || matches!(err, Error::Closed(_) | Error::Io(_)),
            "{err}"
        );
        assert!(!listener.is_usable());
    });
}

#[test]
fn a_pooled_connection_is_unlistened_before_its_next_holder() {
    on_every_backend(|_| async {
        let manager = PgManager::from_url(&Cluster::shared().unwrap().url()).unwrap();
        let config = PoolConfig {
            min_size: 0,
            max_size: 1,
            ..PoolConfig::default()
        };
        let pool = Pool::new(manager, config);
        let pid = {
            let mut conn = pool.acquire().await.unwrap();
            conn.simple_query("LISTEN news_pool").await.unwrap();
            conn.backend_pid()
        };
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(conn.backend_pid(), pid, "the same connection came back");
        assert!(!conn.is_listening());
        let channels = conn
            .simple_query("SELECT count(*) FROM pg_listening_channels()")
            .await
            .unwrap();
        assert_eq!(channels[0].get(0).unwrap().get::<i64>(0).unwrap(), 0);
    });
}

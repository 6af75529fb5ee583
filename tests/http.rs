//! The HTTP server's connection rules, proved over real loopback sockets on
//! every backend: keep-alive, close both ways, HTTP/1.0, pipelining,
//! `Content-Length` bodies, the framing headers, graceful shutdown, and
//! requests cut at random places (property test).

mod http_support;

use std::time::{Duration, Instant};

use connlab::http::Limits;
use connlab::http::Server;
use connlab::net::{ListenerKind, ReactorThreads};
use connlab::poller::Backend;
use connlab::reactor::Config;
use http_support::{assert_closed, backends, connect, get, handler, read_reply, send, TestServer};
use proptest::prelude::*;

#[test]
fn two_reactor_threads_share_the_connections_and_each_serves_its_own() {
    for kind in [ListenerKind::ReusePort, ListenerKind::Exclusive, ListenerKind::Shared] {
        let servers = ReactorThreads::start(
            Config::new(Backend::Epoll),
            "127.0.0.1:0".parse().unwrap(),
            1024,
            2,
            kind,
            "http",
            |listener, stop| Server::new(listener, Limits::default()).serve(handler, stop.wait()),
        )
        .unwrap();
        // 32 connections: with SO_REUSEPORT the kernel's hash sends all of
        // them to one thread with probability 2^-31; the shared kinds give
        // each to whichever thread wakes, so only the totals are checked.
        let mut conns: Vec<_> = (0..32).map(|_| connect(servers.local_addr())).collect();
        for round in 0..3 {
            for conn in &mut conns {
                send(conn, &get("/threads"));
                let reply = read_reply(conn).unwrap();
                assert_eq!(reply.status, 200, "{kind}");
                assert!(
                    reply.text().contains(&format!("served_before={round}")),
                    "{kind}: {}",
                    reply.text()
                );
            }
        }
        drop(conns);
        servers.stopper().trigger();
        let stats = servers.join().unwrap();
        assert_eq!(stats.len(), 2);
        let accepted: u64 = stats.iter().map(|s| s.accepted).sum();
        let requests: u64 = stats.iter().map(|s| s.requests).sum();
        assert_eq!((accepted, requests), (32, 96), "{kind}: {stats:?}");
        if kind == ListenerKind::ReusePort {
            assert!(stats.iter().all(|s| s.accepted > 0), "{kind}: {stats:?}");
        }
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    for backend in backends() {
        let server = TestServer::start(backend, Limits::default());
        let mut conn = connect(server.addr);
        let client_end = conn.get_ref().local_addr().unwrap();
        for i in 0..5 {
            send(&mut conn, &get("/api/users/42"));
            let reply = read_reply(&mut conn).unwrap();
            assert_eq!(reply.status, 200, "{backend}");
            assert_eq!(
                reply.text(),
                format!("GET /api/users/42 body=0 served_before={i} peer={client_end}"),
                "{backend}: the server saw the same 4-tuple each time"
            );
            assert_eq!(reply.header("Connection"), None);
        }
        assert_eq!(server.stop().accepted, 1, "{backend}: one connection for five requests");
    }
}

#[test]
fn every_response_has_length_date_and_server_timing() {
    let server = TestServer::start(connlab::poller::Backend::Epoll, Limits::default());
    let mut conn = connect(server.addr);
    send(&mut conn, &get("/"));
    let reply = read_reply(&mut conn).unwrap();
    assert_eq!(
        reply.header("Content-Length"),
        Some(reply.body.len().to_string().as_str())
    );
    assert!(reply.header("Date").is_some_and(|d| d.ends_with(" GMT")));
    let timing = reply.header("Server-Timing").unwrap();
    for metric in ["read;dur=", "parse;dur=", "app;dur="] {
        assert!(timing.contains(metric), "{timing}");
    }
}

#[test]
fn connection_close_from_the_client_is_answered_then_closed() {
    for backend in backends() {
        let server = TestServer::start(backend, Limits::default());
        let mut conn = connect(server.addr);
        send(&mut conn, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = read_reply(&mut conn).unwrap();
        assert_eq!(reply.header("Connection"), Some("close"), "{backend}");
        assert_closed(&mut conn);
    }
}

#[test]
fn http10_closes_by_default_and_keeps_alive_when_asked() {
    let server = TestServer::start(connlab::poller::Backend::Epoll, Limits::default());
    let mut conn = connect(server.addr);
    send(&mut conn, b"GET / HTTP/1.0\r\n\r\n");
    let reply = read_reply(&mut conn).unwrap();
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_closed(&mut conn);

    let mut conn = connect(server.addr);
    send(&mut conn, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(read_reply(&mut conn).unwrap().header("Connection"), Some("keep-alive"));
    send(&mut conn, b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(read_reply(&mut conn).unwrap().text().contains("served_before=1"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for backend in backends() {
        let server = TestServer::start(backend, Limits::default());
        let mut conn = connect(server.addr);
        let mut batch = Vec::new();
        for i in 0..10 {
            batch.extend_from_slice(&get(&format!("/{i}")));
        }
        send(&mut conn, &batch);
        for i in 0..10 {
            let reply = read_reply(&mut conn).unwrap();
            assert!(
                reply.text().starts_with(&format!("GET /{i} ")),
                "{backend}: {}",
                reply.text()
            );
        }
    }
}

#[test]
fn a_content_length_body_is_read_whole_even_in_pieces() {
    let server = TestServer::start(connlab::poller::Backend::Epoll, Limits::default());
    let mut conn = connect(server.addr);
    send(
        &mut conn,
        b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234",
    );
    std::thread::sleep(Duration::from_millis(20));
    send(&mut conn, b"56789GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(read_reply(&mut conn).unwrap().text().starts_with("POST /p body=10 "));
    assert!(read_reply(&mut conn).unwrap().text().starts_with("GET /after body=0 "));
}

#[test]
fn a_head_request_gets_the_length_but_no_body() {
    let server = TestServer::start(connlab::poller::Backend::Epoll, Limits::default());
    let mut conn = connect(server.addr);
    send(&mut conn, b"HEAD /big?n=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    send(&mut conn, &get("/next"));
    // The HEAD reply says 5000 but carries nothing; the reader below would
    // swallow 5000 bytes of the next response if the server sent the body.
    let mut line = String::new();
    let mut saw_length = false;
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut conn, &mut line).unwrap();
        saw_length |= line.eq_ignore_ascii_case("content-length: 5000\r\n");
        if line == "\r\n" {
            break;
        }
    }
    assert!(saw_length);
    assert!(read_reply(&mut conn).unwrap().text().starts_with("GET /next "));
}

#[test]
fn shutdown_finishes_requests_in_flight_and_closes_idle_connections() {
    let server = TestServer::start(connlab::poller::Backend::Epoll, Limits::default());
    let mut idle = connect(server.addr);
    send(&mut idle, &get("/warm"));
    read_reply(&mut idle).unwrap();
    let mut busy = connect(server.addr);
    send(&mut busy, &get("/sleep?ms=300"));
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let handle = std::thread::spawn(move || server.stop());
    let reply = read_reply(&mut busy).unwrap();
    assert_eq!(reply.text(), "slept\n");
    assert_eq!(reply.header("Connection"), Some("close"), "the last response says so");
    assert_closed(&mut busy);
    assert_closed(&mut idle);
    let stats = handle.join().unwrap();
    assert_eq!(stats.open, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A request the property test can build and check the answer to.
#[derive(Debug, Clone)]
struct Sent {
    method: &'static str,
    path: String,
    body: Vec<u8>,
}

impl Sent {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\nHost: t\r\n", self.method, self.path).into_bytes();
        if !self.body.is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn sent() -> impl Strategy<Value = Sent> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
        "/[a-z0-9]{0,12}",
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(method, path, body)| Sent { method, path, body })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// However the bytes of a pipelined run of requests are cut into
    /// writes, the server frames the same requests and answers them in
    /// order, on every backend.
    #[test]
    fn requests_cut_anywhere_are_framed_the_same(
        requests in prop::collection::vec(sent(), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        backend in prop::sample::select(backends().to_vec()),
    ) {
        let server = TestServer::start(backend, Limits::default());
        let mut conn = connect(server.addr);
        conn.get_ref().set_nodelay(true).unwrap();
        let stream: Vec<u8> = requests.iter().flat_map(Sent::bytes).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
        points.sort_unstable();
        let mut start = 0;
        for p in points.into_iter().chain([stream.len()]) {
            send(&mut conn, &stream[start..p]);
            start = p;
            std::thread::sleep(Duration::from_millis(1));
        }
        for (i, r) in requests.iter().enumerate() {
            let reply = read_reply(&mut conn).unwrap();
            prop_assert_eq!(reply.status, 200);
            let expected = format!("{} {} body={} served_before={i} ", r.method, r.path, r.body.len());
            prop_assert!(reply.text().starts_with(&expected), "{} vs {}", reply.text(), expected);
        }
    }
}

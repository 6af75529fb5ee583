//! Every way a client (or the database behind the click) can go wrong,
//! made to happen for real: each refusal with its status, a slow head
//! (408) while others are served, the keep-alive timeout (the server
//! closes, so the server's end holds TIME_WAIT), a client that never reads
//! (bounded, then closed), the connection cap (503, counted), resets, and,
//! through the `click` example: PostgreSQL not answering (503 JSON, then
//! recovery), an exhausted pool (503 after the acquire timeout), Ctrl-C.

mod http_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use connlab::http::Limits;
use connlab::inspect::{self, TcpState};
use connlab::poller::Backend;
use http_support::{assert_closed, backends, connect, get, read_reply, send, ClickProcess, TestServer};

fn refused_with(server: &TestServer, request: &[u8]) -> u16 {
    let mut conn = connect(server.addr);
    send(&mut conn, request);
    let reply = read_reply(&mut conn).unwrap();
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_closed(&mut conn);
    reply.status
}

#[test]
fn bad_requests_get_their_status_and_the_connection_closes() {
    for backend in backends() {
        let server = TestServer::start(backend, Limits::default());
        let cases: [(&[u8], u16); 7] = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\nbad header\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
                400,
            ),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: five\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                411,
            ),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
        ];
        for (request, status) in cases {
            assert_eq!(
                refused_with(&server, request),
                status,
                "{backend}: {:?}",
                String::from_utf8_lossy(request)
            );
        }
        let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(20_000));
        assert_eq!(refused_with(&server, long.as_bytes()), 431, "{backend}");
        // The server is fine, and counted them.
        let mut conn = connect(server.addr);
        send(&mut conn, &get("/after"));
        assert_eq!(read_reply(&mut conn).unwrap().status, 200);
        assert_eq!(server.wait_for("refusals counted", |s| s.refused == 8).refused, 8);
    }
}

#[test]
fn a_slow_head_gets_408_and_other_clients_are_served_meanwhile() {
    for backend in backends() {
        let limits = Limits {
            request_timeout: Duration::from_millis(400),
            ..Limits::default()
        };
        let server = TestServer::start(backend, limits);
        let addr = server.addr;
        let slow = thread::spawn(move || {
            let mut conn = connect(addr);
            let started = Instant::now();
            // One byte every 50 ms: the head would take ~2 s; the deadline is 400 ms.
            for byte in get("/slow").iter().take(30) {
                if conn.get_mut().write_all(&[*byte]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            (read_reply(&mut conn), started.elapsed())
        });
        // Meanwhile, another client is answered at full speed.
        thread::sleep(Duration::from_millis(100));
        let mut fast = connect(server.addr);
        for _ in 0..20 {
            let started = Instant::now();
            send(&mut fast, &get("/fast"));
            assert_eq!(read_reply(&mut fast).unwrap().status, 200);
            assert!(
                started.elapsed() < Duration::from_millis(200),
                "{backend}: a fast client waited"
            );
        }
        let (reply, took) = slow.join().unwrap();
        let reply = reply.expect("the slow client gets an answer");
        assert_eq!(reply.status, 408, "{backend}");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{backend}: {took:?}"
        );
        server.wait_for("the 408 counted", |s| s.request_timeouts == 1);
    }
}

#[test]
fn the_server_closes_an_idle_connection_and_its_end_keeps_time_wait() {
    let limits = Limits {
        keep_alive_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = TestServer::start(Backend::Epoll, limits);
    let mut conn = connect(server.addr);
    let client = conn.get_ref().local_addr().unwrap();
    send(&mut conn, &get("/once"));
    read_reply(&mut conn).unwrap();
    let started = Instant::now();
    assert_closed(&mut conn); // EOF: the server's FIN, after the idle timeout
    assert!(started.elapsed() >= Duration::from_millis(150));
    drop(conn); // our FIN answers theirs; the side that closed first waits
    server.wait_for("the idle close counted", |s| s.idle_closed == 1);
    let mut server_end = None;
    for _ in 0..100 {
        server_end = inspect::tcp_table()
            .unwrap()
            .rows
            .into_iter()
            .find(|r| r.local == server.addr && r.remote == client)
            .map(|r| r.state);
        if server_end == Some(TcpState::TimeWait) {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server_end, Some(TcpState::TimeWait), "the server's end of {client}");
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[test]
fn a_client_that_never_reads_is_held_to_bounded_memory_then_closed() {
    let limits = Limits {
        write_timeout: Duration::from_millis(700),
        ..Limits::default()
    };
    let server = TestServer::start(Backend::Epoll, limits);
    let rss_before = vm_rss_kib();
    let mut hog = TcpStream::connect(server.addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
    // Pipelined requests for 64 KiB answers, never reading one.
    let request = get("/big?n=65536");
    let mut sent = 0usize;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        match hog.write(&request) {
            Ok(n) => sent += n,
            Err(_) => break, // our send buffer is full: the server stopped reading us
        }
    }
    let answered = sent / request.len();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the server kept reading a client that never reads ({sent} B sent)"
    );
    // Someone else is served while the hog is stuck.
    let mut other = connect(server.addr);
    send(&mut other, &get("/other"));
    assert_eq!(read_reply(&mut other).unwrap().status, 200);
    let stats = server.wait_for("the write timeout", |s| s.write_timeouts == 1);
    let grown = vm_rss_kib().saturating_sub(rss_before);
    println!(
        "never-reading client: {sent} B of requests ({answered} × 64 KiB asked) accepted before backpressure; \
         RSS grew {grown} KiB; closed after the write timeout ({stats:?})"
    );
    assert!(grown < 32 * 1024, "RSS grew {grown} KiB");
    // The connection is gone: reading drains what the kernel held, then EOF or a reset.
    hog.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = vec![0; 1 << 20];
    loop {
        match hog.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[test]
fn connections_over_the_cap_get_503_and_are_counted() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let server = TestServer::start(Backend::Epoll, limits);
    let mut held: Vec<_> = (0..2)
        .map(|_| {
            let mut conn = connect(server.addr);
            send(&mut conn, &get("/held"));
            read_reply(&mut conn).unwrap();
            conn
        })
        .collect();
    let mut third = connect(server.addr);
    let reply = read_reply(&mut third).unwrap();
    assert_eq!(reply.status, 503);
    assert_closed(&mut third);
    assert_eq!(server.wait_for("the shed count", |s| s.shed == 1).accepted, 2);
    // The held ones still work; closing one makes room.
    send(&mut held[0], &get("/still"));
    assert_eq!(read_reply(&mut held[0]).unwrap().status, 200);
    drop(held.remove(0));
    server.wait_for("a free slot", |s| s.open == 1);
    let mut fourth = connect(server.addr);
    send(&mut fourth, &get("/room"));
    assert_eq!(read_reply(&mut fourth).unwrap().status, 200);
}

/// Close with a RST instead of a FIN: `SO_LINGER` on, timeout 0.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid fd we own, and a pointer to a linger struct with its exact size.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0);
}

#[test]
fn connect_then_reset_cycles_leave_no_connection_behind() {
    let server = TestServer::start(Backend::Epoll, Limits::default());
    for i in 0..1000 {
        let stream = TcpStream::connect(server.addr).unwrap();
        if i % 2 == 1 {
            // Half of them reset in the middle of a request head.
            (&stream).write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        }
        reset(stream);
    }
    let stats = server.wait_for("every connection gone", |s| s.accepted == 1000 && s.open == 0);
    let mut conn = connect(server.addr);
    send(&mut conn, &get("/alive"));
    assert_eq!(read_reply(&mut conn).unwrap().status, 200);
    assert_eq!(stats.requests, 0);
}

// ---- Through the click example, against a real PostgreSQL ----

fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut conn = connect(addr);
    send(&mut conn, &get(path));
    let reply = read_reply(&mut conn).unwrap();
    (reply.status, serde_json::from_slice(&reply.body).unwrap_or_default())
}

#[test]
fn an_exhausted_pool_answers_503_after_the_acquire_timeout() {
    let click = ClickProcess::start(&["--pool-max", "1", "--acquire-timeout-ms", "300"]);
    let addr = click.addr;
    let holder = thread::spawn(move || get_json(addr, "/api/users/42?hold_ms=2000"));
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, body) = get_json(addr, "/api/users/42");
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("pool.acquire()"),
        "{body}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(holder.join().unwrap().0, 200);
    assert_eq!(
        get_json(addr, "/api/users/42").0,
        200,
        "served again once the slot is back"
    );
}

#[test]
fn postgres_not_answering_gives_503_json_and_the_click_recovers() {
    let cluster = connlab::testbed::Cluster::start().expect("a throwaway PostgreSQL");
    let click = ClickProcess::start(&[
        "--url",
        &cluster.url(),
        "--pool-max",
        "2",
        "--acquire-timeout-ms",
        "500",
    ]);
    let (status, body) = get_json(click.addr, "/api/users/42");
    assert_eq!((status, body["name"].as_str()), (200, Some("Alice")));
    let pooled_pid = body["server"]["pg"]["backend_pid"].as_i64().unwrap();

    // PostgreSQL stops answering: the postmaster is frozen (SIGSTOP), and
    // the pooled connection's backend is terminated from an admin session.
    let url = cluster.url();
    let postmaster = cluster.pid().expect("the postmaster's pid") as libc::pid_t;
    connlab::reactor::block_on(Backend::Epoll, async {
        let mut admin = connlab::pg::Connection::connect_url(&url).await.unwrap();
        // SAFETY: a signal to the cluster's postmaster, a process this test started.
        unsafe { libc::kill(postmaster, libc::SIGSTOP) };
        admin
            .simple_query(&format!("SELECT pg_terminate_backend({pooled_pid})"))
            .await
            .unwrap();
    })
    .unwrap();
    let down = (0..3)
        .map(|_| get_json(click.addr, "/api/users/42"))
        .collect::<Vec<_>>();
    // SAFETY: as above: wake the postmaster we froze.
    unsafe { libc::kill(postmaster, libc::SIGCONT) };
    for (status, body) in &down {
        assert_eq!(*status, 503, "{body}");
        assert!(body["error"].is_string(), "a JSON error: {body}");
    }
    // Recovery: within a few tries the pool has a working connection again.
    let recovered = (0..20).any(|_| {
        thread::sleep(Duration::from_millis(100));
        get_json(click.addr, "/api/users/42").0 == 200
    });
    assert!(recovered, "the click never recovered after PostgreSQL came back");
}

#[test]
fn ctrl_c_finishes_the_request_in_flight_and_removes_the_throwaway_cluster() {
    let click = ClickProcess::start(&[]);
    let addr = click.addr;
    let in_flight = thread::spawn(move || get_json(addr, "/api/users/42?hold_ms=700"));
    thread::sleep(Duration::from_millis(200));
    let pg_dirs_before = pg_temp_dirs(click.child.id());
    assert_eq!(pg_dirs_before.len(), 1, "the example started one throwaway cluster");
    let (status, out) = click.interrupt();
    let (code, body) = in_flight.join().unwrap();
    assert_eq!(
        (code, body["name"].as_str()),
        (200, Some("Alice")),
        "the request in flight finished"
    );
    assert!(status.success(), "exit status {status}; stdout: {out}");
    assert!(out.contains("finishing requests in flight"), "{out}");
    assert!(
        !pg_dirs_before[0].exists(),
        "{} was not removed",
        pg_dirs_before[0].display()
    );
}

/// The throwaway clusters' directories of process `pid` (`connlab-pg-PID-N`).
fn pg_temp_dirs(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("connlab-pg-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

#[test]
fn an_idle_connection_costs_the_server_little_user_memory() {
    const N: usize = 1000;
    let limits = Limits {
        max_connections: 2 * N,
        ..Limits::default()
    };
    let server = TestServer::start(Backend::Epoll, limits);
    // Warm up: one request, so the thread's scratch buffer and the
    // server's tables exist before we measure.
    let mut first = connect(server.addr);
    send(&mut first, &get("/warm"));
    read_reply(&mut first).unwrap();
    let before = vm_rss_kib();
    let idle: Vec<TcpStream> = (0..N)
        .map(|_| {
            // A bare socket (no BufReader and its 8 KiB buffer), so the
            // growth measured is the server's, plus the kernel's fd.
            let mut conn = TcpStream::connect(server.addr).unwrap();
            conn.write_all(&get("/then-idle")).unwrap();
            let mut reply = [0u8; 1024];
            let n = conn.read(&mut reply).unwrap();
            assert!(reply[..n].starts_with(b"HTTP/1.1 200"));
            conn
        })
        .collect();
    server.wait_for("all connected", |s| s.open as usize == N + 1);
    let per_conn = (vm_rss_kib().saturating_sub(before)) as f64 * 1024.0 / N as f64;
    println!(
        "{N} idle keep-alive connections (after one request each): {per_conn:.0} B of RSS each, task {} B",
        server.stats().task_bytes
    );
    // Measured here: about 950 B (a task of about 500 B, the handler's
    // future boxed only while a request runs, the reactor's records, a
    // timer, malloc's headers); the goal is 1 KiB. The bound leaves room
    // for a loaded machine's noise in VmRSS, and still fails if a buffer
    // or the handler's future crept back into every idle connection.
    assert!(per_conn < 2048.0, "{per_conn:.0} B per idle connection");
    drop(idle);
}

//! Non-blocking sockets on the reactor, on every backend: echo under load,
//! connect's three outcomes, edge-triggered draining, per-connection
//! failures, half-close, Unix sockets, and EMFILE at accept.

mod helpers;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use connlab::net::echo::{self, EchoOptions};
use connlab::net::{Stream, TcpListener, TcpStream, UnixListener, UnixStream};
use connlab::poller::{Backend, Events, Interest, Mode, Token};
use connlab::reactor::{self, Config};
use helpers::{Checksum, Rng};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A closed port: bind one, note its number, and close it.
fn closed_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind(any_port()).unwrap();
    probe.local_addr().unwrap()
}

/// Sizes from 1 B to 1 MiB, spread evenly on a log scale (so small and
/// large payloads both appear), always including both extremes, with the
/// total capped so the test runs in seconds even on select in a debug build.
fn payload_sizes(rng: &mut Rng, count: usize, total_cap: usize) -> Vec<usize> {
    const MAX: usize = 1 << 20;
    let mut sizes: Vec<usize> = (0..count)
        .map(|i| match i {
            0 => 1,
            1 => MAX,
            _ => {
                let base = 1usize << rng.below(21);
                (base + rng.below(base as u64) as usize).clamp(1, MAX)
            }
        })
        .collect();
    while sizes.iter().sum::<usize>() > total_cap {
        let largest = (2..count).max_by_key(|&i| sizes[i]).unwrap();
        sizes[largest] /= 2;
    }
    sizes
}

#[test]
fn two_hundred_concurrent_clients_get_every_byte_back_in_order() {
    const CLIENTS: usize = 200;
    const TOTAL_CAP: usize = 24 << 20;
    for config in helpers::configs() {
        let mut rng = Rng::new(0x5eed ^ config.backend as u64);
        let sizes = payload_sizes(&mut rng, CLIENTS, TOTAL_CAP);
        let started = Instant::now();
        let (report, results) = config
            .block_on(async move {
                let listener = TcpListener::bind(any_port(), 256).unwrap();
                let addr = listener.local_addr().unwrap();
                let options = EchoOptions {
                    max_conns: Some(CLIENTS as u64),
                    ..EchoOptions::default()
                };
                let server = reactor::spawn(echo::serve(listener, options, std::future::pending()));
                let mut clients = Vec::new();
                for (i, size) in sizes.into_iter().enumerate() {
                    let mut payload = vec![0u8; size];
                    Rng::new(i as u64 + 1).fill(&mut payload);
                    clients.push(reactor::spawn(echo_client(addr, payload)));
                }
                let mut results = Vec::new();
                for client in clients {
                    results.push(client.await);
                }
                (server.await, results)
            })
            .unwrap();
        let report = report.unwrap();
        assert_eq!(report.accepted, CLIENTS as u64, "{config:?}");
        assert_eq!(report.failed, 0, "{config:?}");
        for (i, result) in results.iter().enumerate() {
            let (sent, received) = result.as_ref().unwrap_or_else(|e| panic!("{config:?} client {i}: {e}"));
            assert_eq!(sent, received, "{config:?} client {i}: echo differs");
        }
        let total: u64 = results.iter().map(|r| r.as_ref().unwrap().0 .0).sum();
        assert_eq!(report.bytes_echoed, total);
        eprintln!(
            "{config:?}: {CLIENTS} clients, {total} bytes in {:?}",
            started.elapsed()
        );
    }
}

/// Send `payload` while reading the echo (both at once, or a payload
/// larger than the two socket buffers would deadlock), half-close, and
/// return (length, checksum) of what was sent and of what came back.
async fn echo_client(addr: SocketAddr, payload: Vec<u8>) -> std::io::Result<((u64, Checksum), (u64, Checksum))> {
    let stream = Rc::new(TcpStream::connect(addr).await?);
    let mut sent = Checksum::default();
    sent.update(&payload);
    let sent_len = payload.len() as u64;
    let writer = {
        let stream = stream.clone();
        reactor::spawn(async move {
            // Odd-sized writes exercise partial writes and resumption.
            for chunk in payload.chunks(70_001) {
                stream.write_all(chunk).await?;
            }
            stream.shutdown_write()
        })
    };
    let mut received = Checksum::default();
    let mut received_len = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        received.update(&buf[..n]);
        received_len += n as u64;
    }
    writer.await?;
    Ok(((sent_len, sent), (received_len, received)))
}

#[test]
fn connect_to_a_closed_port_fails_promptly_with_econnrefused() {
    for config in helpers::configs() {
        let addr = closed_port();
        let start = Instant::now();
        let err = config.block_on(TcpStream::connect(addr)).unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{config:?}: {err}");
        assert!(err.to_string().contains("ECONNREFUSED"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the RST should come back at once"
        );
    }
}

#[test]
fn connect_to_a_full_accept_queue_times_out_at_the_deadline() {
    const DEADLINE: Duration = Duration::from_millis(300);
    for config in helpers::configs() {
        config
            .block_on(async {
                // Backlog 1 and nobody accepts: after a couple of handshakes
                // the kernel drops further SYNs, and connect hangs.
                let listener = TcpListener::bind(any_port(), 1).unwrap();
                let addr = listener.local_addr().unwrap();
                let mut held = Vec::new();
                for _ in 0..16 {
                    let start = Instant::now();
                    match TcpStream::connect_timeout(addr, DEADLINE).await {
                        Ok(stream) => held.push(stream),
                        Err(e) => {
                            let elapsed = start.elapsed();
                            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                            assert!(elapsed >= DEADLINE, "gave up early: {elapsed:?}");
                            assert!(elapsed < DEADLINE + Duration::from_secs(2), "gave up late: {elapsed:?}");
                            return;
                        }
                    }
                }
                panic!("{config:?}: 16 connects to a backlog-1 listener all succeeded");
            })
            .unwrap();
    }
}

#[test]
fn an_edge_triggered_reader_that_stops_early_hangs_without_the_drain_rule() {
    // The raw poller first: write 5 bytes, read 3, wait again: no event,
    // although 2 bytes are waiting. This is the hang the rule prevents.
    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let mut poller = Backend::Epoll.open().unwrap();
    let mut events = Events::with_capacity(8);
    poller
        .add(b.as_raw_fd(), Token(1), Interest::READABLE, Mode::Edge)
        .unwrap();
    a.write_all(b"hello").unwrap();
    assert_eq!(poller.wait(&mut events, Some(Duration::from_millis(500))).unwrap(), 1);
    let mut three = [0u8; 3];
    (&b).read_exact(&mut three).unwrap();
    assert_eq!(poller.wait(&mut events, Some(Duration::from_millis(50))).unwrap(), 0);

    // The reactor's reader, same story: it stops after 3 bytes, goes away
    // to sleep (the loop waits, no new edge comes), and still gets the rest
    // at once, because it tries `read` before waiting.
    for config in helpers::configs() {
        config
            .block_on(async {
                let listener = TcpListener::bind(any_port(), 8).unwrap();
                let addr = listener.local_addr().unwrap();
                let client = TcpStream::connect(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                client.write_all(b"hello").await.unwrap();
                let mut three = [0u8; 3];
                server.read_exact(&mut three).await.unwrap();
                reactor::sleep(Duration::from_millis(30)).await;
                let mut two = [0u8; 2];
                let rest = reactor::timeout(Duration::from_secs(2), server.read_exact(&mut two)).await;
                assert!(rest.is_ok(), "{config:?}: the last 2 bytes never arrived");
                assert_eq!(&two, b"lo");
            })
            .unwrap();
    }
}

#[test]
fn a_peer_reset_mid_read_fails_that_connection_only() {
    for config in helpers::configs() {
        config
            .block_on(async {
                let listener = TcpListener::bind(any_port(), 8).unwrap();
                let addr = listener.local_addr().unwrap();
                let doomed = std::net::TcpStream::connect(addr).unwrap();
                let (victim, _) = listener.accept().await.unwrap();
                let healthy_client = TcpStream::connect(addr).await.unwrap();
                let (healthy, _) = listener.accept().await.unwrap();

                // Closing a socket with unread bytes in its receive queue
                // makes the kernel send RST instead of FIN (RFC 2525 2.17).
                victim.write_all(b"unread").await.unwrap();
                (&doomed).write_all(b"half a messa").unwrap();
                reactor::sleep(Duration::from_millis(20)).await;
                drop(doomed);

                let mut buf = [0u8; 64];
                let err = loop {
                    match victim.read(&mut buf).await {
                        Ok(0) => panic!("{config:?}: expected a reset, got a clean EOF"),
                        Ok(_) => continue,
                        Err(e) => break e,
                    }
                };
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

                healthy_client.write_all(b"still fine").await.unwrap();
                let mut ten = [0u8; 10];
                healthy.read_exact(&mut ten).await.unwrap();
                assert_eq!(&ten, b"still fine");
            })
            .unwrap();
    }
}

#[test]
fn eof_in_the_middle_of_a_message_is_an_error_naming_what_arrived() {
    for config in helpers::configs() {
        config
            .block_on(async {
                let listener = TcpListener::bind(any_port(), 8).unwrap();
                let addr = listener.local_addr().unwrap();
                let client = TcpStream::connect(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                client.write_all(&[7u8; 10]).await.unwrap();
                drop(client);
                let mut message = [0u8; 64];
                let err = server.read_exact(&mut message).await.unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
                assert!(err.to_string().contains("after 10 of 64 bytes"), "{err}");
            })
            .unwrap();
    }
}

#[test]
fn a_client_that_half_closes_still_gets_its_reply() {
    for config in helpers::configs() {
        let reply = config
            .block_on(async {
                let listener = TcpListener::bind(any_port(), 8).unwrap();
                let addr = listener.local_addr().unwrap();
                let server = reactor::spawn(async move {
                    let (conn, _) = listener.accept().await.unwrap();
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        match conn.read(&mut buf).await.unwrap() {
                            0 => break,
                            n => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!("got {} bytes", request.len());
                    conn.write_all(answer.as_bytes()).await.unwrap();
                });
                let client = TcpStream::connect(addr).await.unwrap();
                client.write_all(&[1u8; 3000]).await.unwrap();
                client.shutdown_write().unwrap();
                let mut reply = Vec::new();
                let mut buf = [0u8; 64];
                loop {
                    match client.read(&mut buf).await.unwrap() {
                        0 => break,
                        n => reply.extend_from_slice(&buf[..n]),
                    }
                }
                server.await;
                reply
            })
            .unwrap();
        assert_eq!(reply, b"got 3000 bytes", "{config:?}");
    }
}

fn temp_socket_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("connlab-{tag}-{}.sock", std::process::id()))
}

#[test]
fn unix_sockets_echo_and_report_their_path() {
    for config in helpers::configs() {
        let path = temp_socket_path(&format!("echo-{}", config.backend));
        let _ = std::fs::remove_file(&path);
        let listen_path = path.clone();
        config
            .block_on(async move {
                let listener = UnixListener::bind(&listen_path, 8).unwrap();
                let server = reactor::spawn(async move {
                    let (conn, _) = listener.accept().await.unwrap();
                    let mut buf = [0u8; 4];
                    conn.read_exact(&mut buf).await.unwrap();
                    conn.write_all(&buf).await.unwrap();
                });
                let client = Stream::from(UnixStream::connect(&listen_path).await.unwrap());
                assert_eq!(
                    client.peer_addr().unwrap(),
                    connlab::sys::addr::Addr::Unix(Some(listen_path.clone()))
                );
                client.write_all(b"ping").await.unwrap();
                let mut buf = [0u8; 4];
                client.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"ping");
                server.await;
            })
            .unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn connect_to_a_missing_unix_socket_names_the_errno() {
    let path = temp_socket_path("missing");
    let err = reactor::block_on(Backend::Epoll, UnixStream::connect(&path))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("ENOENT"), "{err}");
}

#[test]
fn nodelay_and_addresses_are_visible_on_a_connected_stream() {
    reactor::block_on(Backend::Epoll, async {
        let listener = TcpListener::bind(any_port(), 8).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(client.local_addr().unwrap(), peer);
        assert_eq!(server.peer_addr().unwrap(), peer);
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        assert!(connlab::sys::fd::is_nonblocking(server.as_raw_fd()).unwrap());
        assert!(connlab::sys::fd::is_cloexec(server.as_raw_fd()).unwrap());
    })
    .unwrap();
}

// ---------------------------------------------------------------------------
// EMFILE at accept, in a child process with a low RLIMIT_NOFILE.
// ---------------------------------------------------------------------------

const EMFILE_CHILD: &str = "CONNLAB_TEST_EMFILE_CHILD";
/// The child's fd limit: a few dozen connections, then EMFILE.
const CHILD_NOFILE: u64 = 48;

/// Runs only in the child (the parent test re-executes this binary with
/// the environment variable set). Serves echo under a tiny fd limit until a
/// client sends `QUIT`, then prints its counters for the parent to check.
#[test]
fn emfile_child_process() {
    let Ok(config) = std::env::var(EMFILE_CHILD) else {
        return;
    };
    let config = helpers::parse_config(&config);
    connlab::sys::fd::set_nofile_soft_limit(CHILD_NOFILE).unwrap();
    let listener = TcpListener::bind(any_port(), 512).unwrap();
    println!("ADDR {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    let (shed, stats) = config
        .block_on(async move {
            let quit = Rc::new(Cell::new(false));
            let listener = Rc::new(listener);
            loop {
                let accepted = reactor::timeout(Duration::from_millis(20), listener.accept()).await;
                if quit.get() {
                    break;
                }
                let Ok(result) = accepted else { continue };
                let (conn, _) = result.unwrap();
                let quit = quit.clone();
                let _detached = reactor::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        if &buf[..n] == b"QUIT" {
                            quit.set(true);
                        }
                        if conn.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
            (listener.shed_count(), reactor::stats())
        })
        .unwrap();
    println!("SHED {shed} WAITS {}", stats.waits);
}

#[test]
fn emfile_on_accept_neither_spins_nor_kills_the_server_and_it_recovers() {
    const FLOOD: usize = 150;
    for config in helpers::configs() {
        let backend = helpers::config_name(&config);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "emfile_child_process", "--nocapture", "--test-threads=1"])
            .env(EMFILE_CHILD, &backend)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let addr: SocketAddr = read_tagged(&mut stdout, "ADDR").parse().unwrap();

        // Far more connections than the child has fds. The kernel completes
        // every handshake (the queue holds 512), whatever the child can accept.
        let flood: Vec<_> = (0..FLOOD)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));

        // Free the child's fds: the accepted ones see EOF and close.
        drop(flood);
        std::thread::sleep(Duration::from_millis(100));

        // It serves again.
        let mut fresh = connect_with_retry(addr);
        fresh.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        fresh.write_all(b"ping").unwrap();
        let mut pong = [0u8; 4];
        fresh.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"ping");
        fresh.write_all(b"QUIT").unwrap();
        fresh.read_exact(&mut pong).unwrap();

        let counters = read_tagged(&mut stdout, "SHED");
        let status = child.wait().unwrap();
        assert!(status.success(), "{backend}: child failed: {status}");
        let mut words = counters.split_whitespace();
        let shed: u64 = words.next().unwrap().parse().unwrap();
        let waits: u64 = words.nth(1).unwrap().parse().unwrap();
        eprintln!("{backend}: shed {shed} connections, {waits} waits");
        assert!(shed > 0, "{backend}: the flood never hit EMFILE");
        // The child waited about half a second. A listener spinning on a
        // full queue would make hundreds of thousands of waits in that time;
        // the 20 ms accept timeout alone accounts for a few dozen.
        assert!(waits < 2_000, "{backend}: {waits} waits: the listener spun");
    }
}

fn read_tagged(reader: &mut impl std::io::BufRead, tag: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "child ended before printing {tag}"
        );
        // The harness may print "test name ... " on the same line first.
        if let Some(at) = line.find(tag) {
            return line[at + tag.len()..].trim().to_string();
        }
    }
}

fn connect_with_retry(addr: SocketAddr) -> std::net::TcpStream {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpStream::connect(addr) {
            Ok(stream) => return stream,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying connect: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("server never came back: {e}"),
        }
    }
}

#[test]
fn a_stream_made_in_one_block_on_keeps_working_in_the_next() {
    let listener = TcpListener::bind(any_port(), 8).unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = reactor::block_on(Backend::Epoll, async {
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    })
    .unwrap();
    let config = Config::new(helpers::backends()[0]);
    config
        .block_on(async {
            client.write_all(b"again").await.unwrap();
            let mut buf = [0u8; 5];
            server.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"again");
        })
        .unwrap();
}

/// `target/debug/examples/NAME`, built by `cargo test` along with the tests.
fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    target_dir.join("examples").join(name)
}

#[test]
fn the_echo_server_example_serves_then_stops_on_max_conns_and_on_sigint() {
    let path = example_path("echo_server");
    if !path.exists() {
        eprintln!("skipping: {} not built", path.display());
        return;
    }
    for (extra, stop_with_sigint) in [(["--max-conns", "1"], false), (["--backend", "poll"], true)] {
        let mut child = std::process::Command::new(&path)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let line = read_tagged(&mut stdout, "listening on");
        let addr: SocketAddr = line.split_whitespace().next().unwrap().parse().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        client.write_all(b"echo me").unwrap();
        let mut back = [0u8; 7];
        client.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"echo me");
        drop(client);
        if stop_with_sigint {
            let killed = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
        }
        let summary = read_tagged(&mut stdout, "connection(s)");
        assert!(summary.contains("7 bytes echoed"), "{summary}");
        assert!(child.wait().unwrap().success());
    }
}

/// Accept one connection on a fresh listener; returns (client, server).
async fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(any_port(), 8).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[test]
fn a_connection_nobody_reads_does_not_wake_the_loop_after_its_peer_hangs_up() {
    // Level-triggered pollers report HUP even for an empty interest set.
    // The reactor must drop an fd that nobody waits on, or a pooled idle
    // connection whose server died would make every wait return at once.
    for config in helpers::configs() {
        let waits = config
            .block_on(async {
                let (client, server) = connected_pair().await;
                let mut buf = [0u8; 16];
                // Get the server socket registered and waited on once.
                let reader = reactor::spawn(async move {
                    let n = server.read(&mut buf).await.unwrap();
                    assert_eq!(n, 2);
                    server // keep it open, unread, unwaited
                });
                reactor::sleep(Duration::from_millis(10)).await;
                client.write_all(b"hi").await.unwrap();
                let server = reader.await;
                drop(client);
                reactor::sleep(Duration::from_millis(20)).await;
                let before = reactor::stats().waits;
                reactor::sleep(Duration::from_millis(100)).await;
                drop(server);
                reactor::stats().waits - before
            })
            .unwrap();
        assert!(
            waits <= 5,
            "{config:?}: {waits} waits in 100 ms with a hung-up, unread socket"
        );
    }
}

#[test]
fn writable_interest_ends_when_the_write_finishes() {
    // A connected socket is almost always writable. Watching it for
    // writability after the write finished would make every level-triggered
    // wait return at once.
    for config in helpers::configs() {
        let waits = config
            .block_on(async {
                let (client, server) = connected_pair().await;
                let big = vec![7u8; 4 << 20];
                // 4 MiB outruns both socket buffers: the write must wait for
                // the reader, so it registers writable interest.
                let writer = reactor::spawn(async move {
                    client.write_all(&big).await.unwrap();
                    client
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0;
                while total < 4 << 20 {
                    total += server.read(&mut buf).await.unwrap();
                }
                let _client = writer.await;
                reactor::sleep(Duration::from_millis(20)).await;
                let before = reactor::stats().waits;
                reactor::sleep(Duration::from_millis(100)).await;
                reactor::stats().waits - before
            })
            .unwrap();
        assert!(
            waits <= 5,
            "{config:?}: {waits} waits in 100 ms on idle, writable sockets"
        );
    }
}

/// The timeout a user gave as `connect_timeout=18446744073709551615` reaches
/// here as `Duration::from_secs(u64::MAX)`; it used to panic in the timer.
#[test]
fn connect_timeout_with_a_huge_timeout_connects_instead_of_panicking() {
    let listener = std::net::TcpListener::bind(any_port()).unwrap();
    let addr = listener.local_addr().unwrap();
    for config in helpers::configs() {
        let peer = config
            .block_on(async move {
                let stream = TcpStream::connect_timeout(addr, Duration::from_secs(u64::MAX)).await?;
                stream.peer_addr()
            })
            .unwrap()
            .unwrap();
        assert_eq!(peer, addr, "{config:?}");
    }
}

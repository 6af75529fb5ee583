//! The echo server under abuse, and on more than one thread: each test
//! makes one misbehaving client happen for real (over loopback, against
//! the library's own `net::echo`) and checks that the server's memory and
//! fds stay bounded and that well-behaved clients are not hurt.
//!
//! Each abuse test prints VmRSS and the fd count before and after (run
//! with `--nocapture` to see them; `docs/c10k.md` records a run).

mod helpers;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use connlab::net::echo::{EchoOptions, EchoReport, EchoThreads, ListenerKind};
use connlab::poller::Backend;
use connlab::reactor::Config;

const BACKLOG: i32 = 1024;

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// One echo thread on epoll with `options`.
fn start(options: EchoOptions) -> EchoThreads {
    EchoThreads::start(
        Config::new(Backend::Epoll),
        any_port(),
        BACKLOG,
        1,
        ListenerKind::Shared,
        options,
    )
    .expect("start the echo server")
}

fn stop(server: EchoThreads) -> EchoReport {
    server.stopper().trigger();
    EchoReport::total(&server.join().expect("echo threads end cleanly"))
}

/// The abuse tests compare this process's fd count and VmRSS before and
/// after; run in parallel, each would see the others' sockets. Every test
/// here takes this lock, so they run one at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding it poisons it; the next may still run.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This process's resident memory, in KiB (`VmRSS` in `/proc/self/status`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Open fds in this process.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd").count()
}

fn snapshot(label: &str) -> (u64, usize) {
    let (rss, fds) = (rss_kib(), fd_count());
    println!("{label}: VmRSS {rss} KiB, {fds} fds");
    (rss, fds)
}

/// Wait (bounded) until the fd count is back to `want` or below.
fn fds_settle_to(want: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let now = fd_count();
        if now <= want || Instant::now() > deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the echo server");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("SO_RCVTIMEO");
    stream
}

/// One round trip; returns how long it took.
fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
    let started = Instant::now();
    stream.write_all(message).expect("send");
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).expect("the echo comes back");
    assert_eq!(back, message, "echoed bytes differ");
    started.elapsed()
}

#[test]
fn a_client_that_never_reads_is_held_to_one_buffer_then_closed() {
    let _serial = one_at_a_time();
    let options = EchoOptions {
        write_stall_timeout: Some(Duration::from_millis(1500)),
        ..EchoOptions::default()
    };
    let before = snapshot("never-reads, before");
    let server = start(options);
    let addr = server.local_addr();

    // Send until the kernel will take no more: our send buffer, the
    // server's receive queue, its send buffer and our receive queue are
    // full, and the server holds at most one read's worth unsent.
    let mut greedy = connect(addr);
    greedy.set_nonblocking(true).expect("O_NONBLOCK");
    let chunk = vec![b'x'; 64 * 1024];
    let mut pushed = 0usize;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(300) {
        match greedy.write(&chunk) {
            Ok(n) => {
                pushed += n;
                quiet_since = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("send failed before the server pushed back: {e}"),
        }
        assert!(
            pushed < 256 << 20,
            "the server took {pushed} bytes from a client that reads nothing"
        );
    }
    let during = snapshot("never-reads, blocked");
    println!(
        "the kernel and the server took {} KiB before pushing back",
        pushed / 1024
    );

    // Meanwhile, everyone else is served.
    let mut polite = connect(addr);
    let rtt = round_trip(&mut polite, b"still here?");
    assert!(rtt < Duration::from_secs(1), "a polite client waited {rtt:?}");

    // The stalled connection is cut off after the write-stall timeout
    // (reading now would end the stall, so wait past it first).
    thread::sleep(Duration::from_millis(2500));
    greedy.set_nonblocking(false).expect("blocking again");
    greedy
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("SO_RCVTIMEO");
    let mut sink = vec![0u8; 1 << 20];
    let mut drained = 0usize;
    let ended = loop {
        match greedy.read(&mut sink) {
            Ok(0) => break "EOF",
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "RST",
            Err(e) => panic!("expected the server to close the stalled connection, got {e}"),
        }
    };
    println!(
        "stalled connection ended with {ended} after {} KiB drained",
        drained / 1024
    );
    drop(greedy);
    drop(polite);
    let report = stop(server);
    let after = snapshot("never-reads, after");
    assert_eq!(report.stalled_closed, 1, "{report:?}");
    assert!(after.1 <= before.1, "fds {} -> {}", before.1, after.1);
    // Bounded: the server's own copy is one 64 KiB buffer; allow slack for
    // the allocator and the test's own 1 MiB sink.
    assert!(
        during.0 < before.0 + 8 * 1024,
        "RSS grew from {} to {} KiB",
        before.0,
        during.0
    );
}

#[test]
fn a_silent_client_is_closed_by_the_idle_timeout_and_kept_without_one() {
    let _serial = one_at_a_time();
    let before = snapshot("silent, before");
    let server = start(EchoOptions {
        idle_timeout: Some(Duration::from_millis(300)),
        ..EchoOptions::default()
    });
    let mut silent = connect(server.local_addr());
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let n = silent.read(&mut byte).expect("the server closes, not resets");
    assert_eq!(n, 0, "EOF expected");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "closed after only {waited:?}");
    drop(silent);
    let report = stop(server);
    assert_eq!(report.idle_closed, 1, "{report:?}");
    let after = snapshot("silent, after");
    assert!(after.1 <= before.1);

    // The default: no idle timeout, the connection stays.
    let server = start(EchoOptions::default());
    let mut silent = connect(server.local_addr());
    silent
        .set_read_timeout(Some(Duration::from_millis(600)))
        .expect("SO_RCVTIMEO");
    match silent.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the default server closed a silent connection: {other:?}"),
    }
    let rtt = round_trip(&mut silent, b"x");
    assert!(rtt < Duration::from_secs(1));
    drop(silent);
    stop(server);
}

#[test]
fn the_connection_cap_closes_new_connections_and_serves_the_rest() {
    let _serial = one_at_a_time();
    let server = start(EchoOptions {
        max_open: Some(3),
        ..EchoOptions::default()
    });
    let addr = server.local_addr();
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    for stream in &mut held {
        round_trip(stream, b"in");
    }
    let mut fourth = connect(addr);
    let mut byte = [0u8; 1];
    match fourth.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the fourth connection should be closed at once, got {other:?}"),
    }
    for stream in &mut held {
        round_trip(stream, b"still in");
    }
    drop(held);
    // A slot freed is a slot reusable (the server notices the close first).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut fifth = loop {
        let mut s = connect(addr);
        s.write_all(b"y").expect("send");
        let mut b = [0u8; 1];
        if s.read(&mut b).map(|n| n == 1).unwrap_or(false) {
            break s;
        }
        assert!(Instant::now() < deadline, "no slot freed after the three closed");
        thread::sleep(Duration::from_millis(20));
    };
    round_trip(&mut fifth, b"z");
    drop(fifth);
    let report = stop(server);
    assert!(report.refused >= 1, "{report:?}");
}

#[test]
fn five_thousand_connect_then_reset_cycles_leak_no_fd_or_memory() {
    let _serial = one_at_a_time();
    let server = start(EchoOptions::default());
    let addr = server.local_addr();
    // A reset, made without unsafe code: close a socket whose receive
    // queue still holds unread bytes, and the kernel sends RST instead of
    // FIN (RFC 2525, section 2.17; tcp(7)).
    let cycle = || {
        let mut s = connect(addr);
        s.write_all(b"r").expect("send");
        let mut b = [0u8; 1];
        // Wait for the echo to arrive, then leave it unread.
        s.peek(&mut b).expect("the echo arrives");
    };
    for _ in 0..500 {
        cycle(); // warm-up: the slabs and the allocator reach their working size
    }
    let fds_warm = fds_settle_to(fd_count(), Duration::from_secs(1));
    let before = snapshot("connect-then-RST, before 5,000");
    for _ in 0..5_000 {
        cycle();
    }
    let after_fds = fds_settle_to(fds_warm, Duration::from_secs(5));
    let after = snapshot("connect-then-RST, after 5,000");
    let report = stop(server);
    println!("{report:?}");
    assert_eq!(report.accepted, 5_500);
    assert!(after_fds <= fds_warm, "fds {fds_warm} -> {after_fds}");
    assert!(
        after.0 < before.0 + 1024,
        "RSS grew from {} to {} KiB over 5,000 resets",
        before.0,
        after.0
    );
}

#[test]
fn slow_senders_at_one_byte_a_second_do_not_delay_other_clients() {
    let _serial = one_at_a_time();
    let before = snapshot("slow senders, before");
    let server = start(EchoOptions::default());
    let addr = server.local_addr();
    const SLOW: usize = 50;
    const SLOW_BYTES: usize = 3;
    let slow: Vec<_> = (0..SLOW)
        .map(|i| {
            thread::spawn(move || {
                let mut s = connect(addr);
                for k in 0..SLOW_BYTES {
                    let byte = [b'a' + ((i + k) % 26) as u8];
                    s.write_all(&byte).expect("slow send");
                    let mut back = [0u8; 1];
                    s.read_exact(&mut back).expect("slow echo");
                    assert_eq!(back, byte);
                    thread::sleep(Duration::from_secs(1));
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let mut fast = connect(addr);
    let mut worst = Duration::ZERO;
    let mut trips = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        worst = worst.max(round_trip(&mut fast, &[7u8; 64]));
        trips += 1;
    }
    println!("fast client: {trips} round trips beside {SLOW} slow senders, worst {worst:?}");
    for t in slow {
        t.join().expect("slow client");
    }
    drop(fast);
    let report = stop(server);
    let after = snapshot("slow senders, after");
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(after.1 <= before.1);
    // Not a speed assertion: a slow sender that *blocked* the loop would
    // hold every round trip for up to a second.
    assert!(worst < Duration::from_millis(500), "a round trip waited {worst:?}");
}

#[test]
fn every_listener_kind_serves_every_connection_on_two_threads() {
    let _serial = one_at_a_time();
    for kind in [ListenerKind::ReusePort, ListenerKind::Exclusive, ListenerKind::Shared] {
        let server = EchoThreads::start(
            Config::new(Backend::Epoll),
            any_port(),
            BACKLOG,
            2,
            kind,
            EchoOptions::default(),
        )
        .expect("start two threads");
        let addr = server.local_addr();
        let clients: Vec<_> = (0..4)
            .map(|t| {
                thread::spawn(move || {
                    for i in 0..50u32 {
                        let mut s = connect(addr);
                        round_trip(&mut s, format!("{kind} {t} {i}").as_bytes());
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        server.stopper().trigger();
        let reports = server.join().expect("threads end cleanly");
        let accepted: Vec<u64> = reports.iter().map(|r| r.accepted).collect();
        println!("{kind}: accepted per thread {accepted:?}");
        assert_eq!(accepted.iter().sum::<u64>(), 200, "{kind}");
    }
}

#[test]
fn an_exclusive_listener_is_refused_where_epollexclusive_does_not_exist() {
    let _serial = one_at_a_time();
    for config in [
        Config::new(Backend::Poll),
        Config::new(Backend::Epoll).mode(connlab::poller::Mode::Level),
    ] {
        let err = EchoThreads::start(
            config,
            any_port(),
            BACKLOG,
            2,
            ListenerKind::Exclusive,
            EchoOptions::default(),
        )
        .expect_err("EPOLLEXCLUSIVE needs epoll in edge mode");
        assert!(err.to_string().contains("EPOLLEXCLUSIVE"), "{err}");
    }
}

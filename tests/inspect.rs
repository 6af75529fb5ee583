//! `inspect` against the real kernel and the real `ss`: our reports of live
//! loopback sockets (listener, accepted, connected, half-closed, TIME_WAIT)
//! must agree with what `ss -tanpe` and `/proc` say about the same sockets.
//!
//! Other engineers' tests run on this machine at the same time, so every
//! count here is filtered by a port or 4-tuple this test owns; nothing
//! asserts on a machine-wide total.

mod util;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use connlab::inspect::{self, Family, FdKind, ProcRow, SocketReport, TcpState};
use connlab::sys::addr::{getpeername, getsockname, Addr};
use util::eventually;
use util::ss::{find_ss, parse_ss_line, ss_tanpe};
use util::time_wait::{exchange, ClientClosesFirst};

/// How long any "wait for the kernel to get there" loop may take.
const SETTLE: Duration = Duration::from_secs(5);

fn socket_of(fd: RawFd) -> SocketReport {
    inspect::fd(fd).unwrap().socket.expect("fd is a socket")
}

/// Poll `inspect::fd` until the socket reaches `state` (bounded).
fn wait_for_state(fd: RawFd, state: TcpState) -> SocketReport {
    eventually(SETTLE, || socket_of(fd), |r| r.tcp_state == Some(state))
}

/// A connected pair through `listener`: (client, accepted).
fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    (client, accepted)
}

fn assert_ends_mirror(a: &impl AsRawFd, b: &impl AsRawFd) {
    let (a, b) = (a.as_raw_fd(), b.as_raw_fd());
    assert_eq!(
        getsockname(a).unwrap(),
        getpeername(b).unwrap(),
        "getsockname(fd {a}) != getpeername(fd {b})"
    );
    assert_eq!(
        getpeername(a).unwrap(),
        getsockname(b).unwrap(),
        "getpeername(fd {a}) != getsockname(fd {b})"
    );
}

#[test]
fn every_socket_agrees_with_ss_on_four_tuple_and_state() {
    let Some(ss) = find_ss() else {
        eprintln!("SKIPPED every_socket_agrees_with_ss: `ss` is not on PATH (install iproute2 to run this check)");
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let (connected, accepted) = pair(&listener);

    let (half_closed, mut half_closed_peer) = pair(&listener);
    half_closed.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        half_closed_peer.read(&mut buf).unwrap(),
        0,
        "the peer sees our FIN as EOF"
    );

    // The client closes first, so its end is the one left in TIME_WAIT.
    let (closing, mut closing_peer) = pair(&listener);
    let time_wait_tuple = (closing.local_addr().unwrap(), closing.peer_addr().unwrap());
    drop(closing);
    assert_eq!(closing_peer.read(&mut buf).unwrap(), 0);
    drop(closing_peer);

    let v6 = TcpListener::bind("[::1]:0").ok();
    if v6.is_none() {
        eprintln!("note: no IPv6 loopback here; checking IPv4 sockets only");
    }
    let v6_pair = v6.as_ref().map(pair);

    let mut ours: Vec<(&str, RawFd, TcpState)> = vec![
        ("listener", listener.as_raw_fd(), TcpState::Listen),
        ("connected", connected.as_raw_fd(), TcpState::Established),
        ("accepted", accepted.as_raw_fd(), TcpState::Established),
        ("half-closed", half_closed.as_raw_fd(), TcpState::FinWait2),
        ("half-closed peer", half_closed_peer.as_raw_fd(), TcpState::CloseWait),
    ];
    if let (Some(l6), Some((c6, a6))) = (&v6, &v6_pair) {
        ours.push(("v6 listener", l6.as_raw_fd(), TcpState::Listen));
        ours.push(("v6 connected", c6.as_raw_fd(), TcpState::Established));
        ours.push(("v6 accepted", a6.as_raw_fd(), TcpState::Established));
    }

    let reports: Vec<(&str, RawFd, SocketReport)> = ours
        .iter()
        .map(|&(name, fd, want)| {
            let report = wait_for_state(fd, want);
            assert_eq!(report.tcp_state, Some(want), "{name}: TCP_INFO state");
            assert_eq!(
                report.states_agree(),
                Some(true),
                "{name}: TCP_INFO and /proc/net/tcp disagree"
            );
            (name, fd, report)
        })
        .collect();

    // The TIME_WAIT socket has no fd any more: find it in the kernel's table
    // by its whole 4-tuple. (Not by the local address alone: a source port is
    // unique only per destination, and other tests' TIME_WAIT sockets may
    // share ours toward other ports. This test once failed exactly so.)
    let find = || {
        let table = inspect::tcp_table().unwrap();
        (table.rows.into_iter()).find(|r| (r.local, r.remote) == time_wait_tuple && r.state == TcpState::TimeWait)
    };
    let tw_row = eventually(SETTLE, find, Option::is_some).expect("the closed client's 4-tuple is in TIME_WAIT");
    assert_eq!(tw_row.remote.port(), port);
    assert_eq!(tw_row.inode, 0, "a TIME_WAIT socket has no inode: no fd points at it");

    let ss_rows = ss_tanpe(&ss);
    let pid = std::process::id();
    for (name, fd, report) in &reports {
        let row = ss_rows
            .iter()
            .find(|r| r.inode == Some(report.inode))
            .unwrap_or_else(|| panic!("{name}: ss shows no socket with ino:{}", report.inode));
        assert_eq!(Some(row.state), report.tcp_state, "{name}: state");
        assert_eq!(report.local, Some(Addr::Inet(row.local)), "{name}: local end");
        match &report.peer {
            Some(peer) => assert_eq!(*peer, Addr::Inet(row.peer), "{name}: peer end"),
            // A listener has no peer (ENOTCONN); ss prints `0.0.0.0:*`.
            None => assert!(
                row.peer.ip().is_unspecified() && row.peer.port() == 0,
                "{name}: ss peer {}",
                row.peer
            ),
        }
        assert!(
            row.owners.contains(&(pid, *fd)),
            "{name}: ss says the owners are {:?}, we are pid {pid} fd {fd}",
            row.owners
        );
        if let Some(ProcRow::Tcp(proc_row)) = &report.proc_row {
            assert_eq!(Addr::Inet(proc_row.local), Addr::Inet(row.local), "{name}: /proc local");
        }
    }
    let tw_in_ss = ss_rows
        .iter()
        .find(|r| r.local == tw_row.local && r.peer == tw_row.remote)
        .expect("ss lists the TIME_WAIT 4-tuple too");
    assert_eq!(tw_in_ss.state, TcpState::TimeWait);

    assert_ends_mirror(&connected, &accepted);
    assert_ends_mirror(&half_closed, &half_closed_peer);
    if let Some((c6, a6)) = &v6_pair {
        assert_ends_mirror(c6, a6);
    }
    half_closed_peer.write_all(b"still open this way").unwrap();
}

#[test]
fn listen_queue_counts_connections_not_yet_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let waiting: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let queue = inspect::listen_queue(listener.as_raw_fd()).unwrap();
    assert_eq!(queue.pending, 3);
    assert!(queue.backlog >= 3, "backlog {}", queue.backlog);

    let report = socket_of(listener.as_raw_fd());
    assert_eq!(report.listen_queue, Some(queue));
    match &report.proc_row {
        Some(ProcRow::Tcp(row)) => assert_eq!(row.rx_queue, 3, "/proc/net/tcp rx_queue of a listener = accept queue"),
        other => panic!("no /proc row: {other:?}"),
    }
    if let Some(ss) = find_ss() {
        let row = ss_tanpe(&ss)
            .into_iter()
            .find(|r| r.inode == Some(report.inode))
            .unwrap();
        assert_eq!((row.recv_q, row.send_q), (3, u64::from(queue.backlog)));
    }
    let _first = listener.accept().unwrap();
    assert_eq!(inspect::listen_queue(listener.as_raw_fd()).unwrap().pending, 2);
    let err = inspect::listen_queue(waiting[0].as_raw_fd()).unwrap_err();
    assert!(err.to_string().contains("not a TCP listener"), "{err}");
}

#[test]
fn connected_socket_reports_queued_bytes_and_tcp_info() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut client, server) = pair(&listener);
    client.write_all(&[7u8; 1000]).unwrap();
    let report = eventually(SETTLE, || socket_of(server.as_raw_fd()), |r| r.unread == Some(1000));
    assert_eq!(report.unread, Some(1000), "SIOCINQ counts bytes we have not read");
    let info = report.tcp_info.expect("TCP_INFO on a TCP socket");
    assert_eq!(info.bytes_received(), Some(1000));
    assert!(report.recv_buffer > 0 && report.send_buffer > 0);
    let client_report = socket_of(client.as_raw_fd());
    assert_eq!(client_report.tcp_info.and_then(|i| i.bytes_sent()), Some(1000));
    assert_eq!(client_report.unacked, Some(0), "loopback acknowledges at once");

    let text = inspect::fd(client.as_raw_fd()).unwrap().to_string();
    for layer in [
        "fd table",
        "inode",
        "struct socket",
        "TCP state",
        "TCP_INFO",
        "4-tuple",
        "ss -tanpie",
    ] {
        assert!(text.contains(layer), "Display lacks {layer:?}:\n{text}");
    }
}

#[test]
fn unix_sockets_are_found_in_proc_net_unix() {
    let dir = std::env::temp_dir().join(format!("connlab-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let (server, _) = listener.accept().unwrap();

    let l = socket_of(listener.as_raw_fd());
    assert_eq!(l.family, Family::Unix);
    assert_eq!(l.local, Some(Addr::Unix(Some(path.clone()))));
    match &l.proc_row {
        Some(ProcRow::Unix(row)) => {
            assert!(row.listening);
            assert_eq!(row.path.as_deref(), path.to_str());
        }
        other => panic!("listener not in /proc/net/unix: {other:?}"),
    }
    let c = socket_of(client.as_raw_fd());
    assert_eq!(c.peer, Some(Addr::Unix(Some(path.clone()))));
    assert_eq!(c.local, Some(Addr::Unix(None)), "the client never bound a path");
    match &c.proc_row {
        Some(ProcRow::Unix(row)) => assert_eq!(row.state_name(), "CONNECTED"),
        other => panic!("client not in /proc/net/unix: {other:?}"),
    }
    assert_eq!(c.tcp_state, None);
    drop((server, client, listener));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn process_fds_lists_sockets_pipes_eventfds_and_epoll() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (r, _w) = std::io::pipe().unwrap();
    let efd = connlab::sys::fd::eventfd().unwrap();
    let epoll = connlab::poller::epoll::Epoll::new().unwrap();

    let table = inspect::process_fds().unwrap();
    let kind_of = |fd: RawFd| table.rows.iter().find(|r| r.fd == fd).map(|r| r.kind.clone());
    assert_eq!(kind_of(listener.as_raw_fd()), Some(FdKind::Socket));
    assert_eq!(kind_of(r.as_raw_fd()), Some(FdKind::Pipe));
    assert_eq!(kind_of(efd.as_raw_fd()), Some(FdKind::EventFd));
    assert_eq!(kind_of(epoll.as_raw_fd()), Some(FdKind::Epoll));
    let eventfd_report = inspect::fd(efd.as_raw_fd()).unwrap();
    assert!(eventfd_report.nonblocking && eventfd_report.cloexec);
    assert_eq!(eventfd_report.link, "anon_inode:[eventfd]");

    let usage = inspect::fd_usage().unwrap();
    assert!(usage.open >= 4);
    assert!(usage.highest.is_some_and(|h| h >= efd.as_raw_fd()));
    assert_eq!(
        (usage.soft_limit, usage.hard_limit),
        connlab::sys::fd::nofile_limit().unwrap()
    );
    assert!(usage.to_string().contains("before EMFILE"));
}

/// TIME_WAIT sockets toward `addr` (either end) in `/proc/net/tcp`.
fn time_wait_toward(addr: SocketAddr) -> usize {
    inspect::tcp_census(Some(addr.port())).unwrap().time_wait()
}

/// Poll until `count()` reaches `target` (the last ACKs are in flight), bounded.
fn settle(target: usize, count: impl Fn() -> usize) -> usize {
    eventually(SETTLE, count, |&n| n >= target)
}

#[test]
fn short_connections_leave_time_wait_and_a_reused_one_does_not() {
    const N: usize = 300;
    let server = ClientClosesFirst::start().unwrap();

    // N connections, one request each, closed by us.
    let before = time_wait_toward(server.addr);
    let mut ours = HashSet::new();
    for _ in 0..N {
        let stream = server.connect().unwrap();
        ours.insert(stream.local_addr().unwrap());
    }
    assert_eq!(ours.len(), N, "each connection had its own ephemeral port");
    assert_eq!(settle(N, || server.closes()), N, "the server saw every close");
    let after = settle(before + N, || time_wait_toward(server.addr));
    let in_time_wait = inspect::tcp_table()
        .unwrap()
        .rows
        .iter()
        .filter(|r| r.state == TcpState::TimeWait && r.remote == server.addr && ours.contains(&r.local))
        .count();
    // Slack: the kernel may drop TIME_WAIT sockets early when its table is
    // full (tcp_max_tw_buckets), which other tests on this machine share.
    assert!(
        in_time_wait >= N * 95 / 100,
        "{in_time_wait} of our {N} 4-tuples are in TIME_WAIT"
    );
    let new = after as i64 - before as i64;
    assert!(
        (N as i64 * 95 / 100..=N as i64 + 5).contains(&new),
        "{new} new TIME_WAIT for {N} connections"
    );

    // The same N requests over one connection: none while it is open, one
    // when it closes.
    let before = time_wait_toward(server.addr);
    let mut reused = server.connect().unwrap();
    for _ in 1..N {
        exchange(&mut reused).unwrap();
    }
    assert_eq!(
        time_wait_toward(server.addr),
        before,
        "N requests on one open connection leave no TIME_WAIT"
    );
    drop(reused);
    assert_eq!(settle(N + 1, || server.closes()), N + 1, "the server saw the close");
    let after_close = settle(before + 1, || time_wait_toward(server.addr));
    assert_eq!(after_close, before + 1, "closing it leaves exactly one");

    let in_use = inspect::ports_in_use_toward(server.addr).unwrap();
    assert!(
        in_use >= N * 95 / 100,
        "{in_use} ephemeral ports toward {} after {N}+1 connections",
        server.addr
    );
}

#[test]
fn ss_lines_parse() {
    let row = parse_ss_line(
        "ESTAB 0 0 127.0.0.1:53692 127.0.0.1:32775 users:((\"t\",pid=22051,fd=4)) uid:1000 ino:246076 sk:3 <->",
    )
    .unwrap();
    assert_eq!(row.state, TcpState::Established);
    assert_eq!(row.local, "127.0.0.1:53692".parse().unwrap());
    assert_eq!(row.inode, Some(246076));
    assert_eq!(row.owners, vec![(22051, 4)]);
    let listen = parse_ss_line("LISTEN 0 128 [::1]:8080 [::]:* ino:5 sk:1").unwrap();
    assert_eq!(listen.peer, "[::]:0".parse().unwrap());
    assert_eq!(listen.send_q, 128);
}

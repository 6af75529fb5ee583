//! One behaviour suite for the three readiness backends.
//!
//! Each behaviour is written once, as a function of the [`Backend`], and
//! [`backend_suite!`] instantiates it as a test per backend: `epoll::…`,
//! `poll::…`, `select::…`. Where the backends honestly differ (edge-triggered
//! mode, select's fd ceiling, what select can see of a closed peer) the
//! function says so with a `match` on the backend, so a reader sees each
//! difference next to the behaviour it changes.
//!
//! Everything runs on real kernel objects: socketpairs (`socketpair(2)`),
//! TCP over `127.0.0.1:0`, an eventfd for the waker.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use connlab::poller::{Backend, Interest, Mode, Token, Waker};
use util::poller::*;

const A: Token = Token(1);
const B: Token = Token(2);

fn readable_after_peer_writes(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, mut peer) = pair();
    poller
        .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Level)
        .unwrap();
    expect_no_events(&mut *poller);

    peer.write_all(b"hello").unwrap();
    let event = expect_event(&mut *poller, A);
    assert!(event.readable && !event.writable, "{event:?}");
}

fn writable_at_once_on_a_fresh_socket(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_nonblocking(true).unwrap();
    poller
        .add(client.as_raw_fd(), A, Interest::WRITABLE, Mode::Level)
        .unwrap();

    // An empty send buffer is room to write: ready before anything happens.
    let event = expect_event(&mut *poller, A);
    assert!(event.writable && !event.readable, "{event:?}");
}

fn level_triggered_repeats_until_drained(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, mut peer) = pair();
    poller
        .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Level)
        .unwrap();
    peer.write_all(b"12345").unwrap();

    assert!(expect_event(&mut *poller, A).readable);
    read_exactly(&ours, 3);
    // Two bytes are still unread, so the fd is still readable: said again.
    assert!(expect_event(&mut *poller, A).readable);
    read_exactly(&ours, 2);
    assert_would_block(&ours);
    expect_no_events(&mut *poller);
}

fn edge_triggered_fires_once_per_edge(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, mut peer) = pair();
    if backend != Backend::Epoll {
        assert!(!poller.supports(Mode::Edge));
        let err = poller
            .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Edge)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
        assert!(
            err.to_string().contains(&format!("{backend} does not support Edge")),
            "{err}"
        );
        assert_eq!(poller.registered(), 0);
        return;
    }
    assert!(poller.supports(Mode::Edge));
    poller.add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Edge).unwrap();
    peer.write_all(b"12345").unwrap();
    assert!(expect_event(&mut *poller, A).readable);

    read_exactly(&ours, 3);
    // Two bytes are left, but no *new* data arrived: no edge, no event. A
    // reader that stopped here would wait forever; that is why edge-triggered
    // code reads until EAGAIN.
    expect_no_events(&mut *poller);

    peer.write_all(b"6").unwrap();
    assert!(expect_event(&mut *poller, A).readable);
    read_exactly(&ours, 3);
    assert_would_block(&ours);
}

fn one_shot_disarms_until_modify(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    assert!(poller.supports(Mode::OneShot));
    let (ours, mut peer) = pair();
    poller
        .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::OneShot)
        .unwrap();
    peer.write_all(b"x").unwrap();

    assert!(expect_event(&mut *poller, A).readable);
    // Still readable (nothing was read), but the registration is disarmed.
    expect_no_events(&mut *poller);
    assert_eq!(poller.registered(), 1, "a disarmed fd stays registered");

    poller
        .modify(ours.as_raw_fd(), B, Interest::READABLE, Mode::OneShot)
        .unwrap();
    assert!(
        expect_event(&mut *poller, B).readable,
        "modify re-arms, with the new token"
    );
    expect_no_events(&mut *poller);
}

fn delete_stops_events(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, mut peer) = pair();
    poller
        .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Level)
        .unwrap();
    peer.write_all(b"x").unwrap();
    expect_event(&mut *poller, A);

    poller.delete(ours.as_raw_fd()).unwrap();
    assert_eq!(poller.registered(), 0);
    expect_no_events(&mut *poller);
}

fn registration_errors_name_the_problem(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, _peer) = pair();
    let fd = ours.as_raw_fd();
    poller.add(fd, A, Interest::READABLE, Mode::Level).unwrap();

    let err = poller.add(fd, A, Interest::READABLE, Mode::Level).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert!(
        err.to_string().contains(&format!("fd {fd}")) && err.to_string().contains("EEXIST"),
        "{err}"
    );

    poller.delete(fd).unwrap();
    let err = poller.delete(fd).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("ENOENT"), "{err}");
    let err = poller.modify(fd, A, Interest::READABLE, Mode::Level).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

/// A TCP peer closes: first our read side ends (FIN arrived: `read_closed`,
/// and `read` returns 0), then, once we shut down our write side too, both
/// directions are closed (`hangup`). select has no sets for either fact: it
/// reports the fd readable, and `read` returning 0 is how its user learns.
fn peer_close_gives_read_closed_then_hangup(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (peer, _) = listener.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    poller
        .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Level)
        .unwrap();
    expect_no_events(&mut *poller);

    drop(peer);
    let event = match backend {
        Backend::Select => expect_event_where(&mut *poller, A, "readable", |e| e.readable),
        Backend::Epoll | Backend::Poll => expect_event_where(&mut *poller, A, "read_closed", |e| e.read_closed),
    };
    assert!(
        event.readable && !event.hangup,
        "{backend}: half-closed is not hung up: {event:?}"
    );
    if backend == Backend::Select {
        assert!(
            !event.read_closed && !event.error,
            "select cannot see RDHUP or errors: {event:?}"
        );
    }
    assert_eq!(ours.read(&mut [0u8; 8]).unwrap(), 0, "EOF");

    ours.shutdown(Shutdown::Write).unwrap();
    match backend {
        Backend::Select => {
            let event = expect_event(&mut *poller, A);
            assert!(event.readable && !event.hangup, "{event:?}");
        }
        Backend::Epoll | Backend::Poll => {
            let event = expect_event_where(&mut *poller, A, "hangup", |e| e.hangup);
            assert!(event.read_closed, "{event:?}");
        }
    }
}

fn timeout_returns_after_about_that_long_without_spinning(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, _peer) = pair();
    poller
        .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Level)
        .unwrap();

    let timeout = Duration::from_millis(100);
    let started = Instant::now();
    assert!(wait(&mut *poller, timeout).is_empty());
    let took = started.elapsed();
    assert!(
        took >= timeout,
        "{backend}: returned after {took:?}, before the {timeout:?} timeout"
    );
    assert!(took < PATIENCE, "{backend}: a {timeout:?} wait took {took:?}");

    // Count the waits in a fixed window: each must sleep its full 20 ms.
    let (window, step) = (Duration::from_millis(200), Duration::from_millis(20));
    let started = Instant::now();
    let mut waits = 0;
    while started.elapsed() < window {
        assert!(wait(&mut *poller, step).is_empty());
        waits += 1;
    }
    let most = (window.as_micros() / step.as_micros()) as usize + 1;
    assert!(
        waits <= most,
        "{backend}: {waits} waits of {step:?} in {window:?}: spinning"
    );
}

/// 0.5 ms must not round down to 0 ("return at once"), which would turn a
/// caller's "wait a little" into a busy loop. epoll_wait and poll take whole
/// milliseconds, so it becomes 1 ms; select takes microseconds, 500 µs.
fn sub_millisecond_timeout_does_not_busy_loop(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, _peer) = pair();
    poller
        .add(ours.as_raw_fd(), A, Interest::READABLE, Mode::Level)
        .unwrap();

    let (window, step) = (Duration::from_millis(50), Duration::from_micros(500));
    let started = Instant::now();
    let mut waits = 0;
    while started.elapsed() < window {
        assert!(wait(&mut *poller, step).is_empty());
        waits += 1;
    }
    let most = (window.as_micros() / step.as_micros()) as usize + 1;
    assert!(
        waits <= most,
        "{backend}: {waits} waits of {step:?} in {window:?}: spinning"
    );
}

/// 500 socketpairs, both ends registered; five of them made ready. The wait
/// must name exactly those five.
fn thousand_registered_fds(backend: Backend) {
    let _fds = many_fds();
    many_registered_fds(backend, 500);
}

/// 5,000 socketpairs: well past select's ceiling, no problem for poll or epoll.
fn ten_thousand_registered_fds(backend: Backend) {
    let _fds = many_fds();
    many_registered_fds(backend, 5_000);
}

fn many_registered_fds(backend: Backend, pairs: usize) {
    let mut poller = open(backend);
    let mut fds = register_many(&mut *poller, pairs);
    if backend == Backend::Select {
        assert!(highest_fd(&fds) < 1024, "the test itself must stay below FD_SETSIZE");
    }
    expect_no_events(&mut *poller);

    // Writing on even index 2k makes its partner 2k+1 readable.
    let writers = [0, 2, pairs, 2 * pairs - 4, 2 * pairs - 2].map(|i| i & !1);
    for &w in &writers {
        fds[w].write_all(b"x").unwrap();
    }
    let ready: Vec<Token> = writers.iter().map(|&w| Token(w + 1)).collect();
    expect_readable_tokens(&mut *poller, &ready);

    // Level-triggered and unread: the same five again, and only them.
    expect_readable_tokens(&mut *poller, &ready);
    for &w in &writers {
        read_exactly(&fds[w + 1], 1);
    }
    expect_no_events(&mut *poller);
}

/// Five fds ready, room for two events per wait: level-triggered fds that
/// did not fit must get their turn on the next waits, not starve behind the
/// first two. (epoll moves reported fds to the back of its ready list; poll
/// and select resume their scan where the last one stopped.)
fn more_ready_than_the_buffer_holds_all_get_a_turn(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let mut fds = register_many(&mut *poller, 5);
    for i in (0..fds.len()).step_by(2) {
        fds[i].write_all(b"x").unwrap();
    }
    let mut events = connlab::poller::Events::with_capacity(2);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        poller.wait(&mut events, Some(PATIENCE)).unwrap();
        assert!(!events.is_empty() && events.len() <= 2, "{events:?}");
        seen.extend(events.iter().map(|e| e.token.0));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [1, 3, 5, 7, 9],
        "{backend}: some fd starved"
    );
}

/// fd 1024 does not fit in an fd_set: select refuses it by name, before any
/// set is touched; poll and epoll watch it like any other.
fn fd_at_or_above_fd_setsize(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let (ours, mut peer) = pair();
    // SAFETY: F_DUPFD_CLOEXEC duplicates a live fd onto the lowest free
    // number >= 1024 (never clobbering one in use, unlike dup2) and returns it
    // or -1; on success we take sole ownership of the new fd.
    let high = unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 1024) };
    assert!(
        high >= 1024,
        "fcntl(F_DUPFD_CLOEXEC, 1024) = {high}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: high was just returned by fcntl and nothing else owns it.
    let high = unsafe { OwnedFd::from_raw_fd(high) };
    let fd = high.as_raw_fd();

    if backend == Backend::Select {
        let err = poller.add(fd, A, Interest::READABLE, Mode::Level).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("select: fd {fd} >= FD_SETSIZE (1024); use poll or epoll")
        );
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(poller.registered(), 0);
        let err = poller.modify(fd, A, Interest::READABLE, Mode::Level).unwrap_err();
        assert!(err.to_string().contains("FD_SETSIZE"), "{err}");
        return;
    }
    poller.add(fd, A, Interest::READABLE, Mode::Level).unwrap();
    peer.write_all(b"x").unwrap();
    assert!(expect_event(&mut *poller, A).readable);
}

fn waker_interrupts_a_blocked_wait_from_another_thread(backend: Backend) {
    let _fds = few_fds();
    let mut poller = open(backend);
    let waker = Arc::new(Waker::new().unwrap());
    poller
        .add(waker.as_raw_fd(), A, Interest::READABLE, Mode::Level)
        .unwrap();

    let delay = Duration::from_millis(50);
    let remote = Arc::clone(&waker);
    let started = Instant::now();
    let waking = thread::spawn(move || {
        thread::sleep(delay);
        remote.wake().unwrap();
    });
    // Without the waker this wait would last PATIENCE (5 s).
    let event = expect_event(&mut *poller, A);
    let took = started.elapsed();
    waking.join().unwrap();
    assert!(event.readable, "{event:?}");
    assert!(took >= delay && took < PATIENCE, "{backend}: woke after {took:?}");

    assert_eq!(waker.reset().unwrap(), 1);
    expect_no_events(&mut *poller);
}

/// One test module per backend, one test per behaviour; `extra` lists the
/// behaviours only some backends have.
macro_rules! backend_suite {
    ($module:ident, $backend:expr, extra: [$($extra:ident),*]) => {
        mod $module {
            use super::*;
            backend_suite!(@tests $backend;
                readable_after_peer_writes,
                writable_at_once_on_a_fresh_socket,
                level_triggered_repeats_until_drained,
                edge_triggered_fires_once_per_edge,
                one_shot_disarms_until_modify,
                delete_stops_events,
                registration_errors_name_the_problem,
                peer_close_gives_read_closed_then_hangup,
                timeout_returns_after_about_that_long_without_spinning,
                sub_millisecond_timeout_does_not_busy_loop,
                thousand_registered_fds,
                fd_at_or_above_fd_setsize,
                waker_interrupts_a_blocked_wait_from_another_thread,
                more_ready_than_the_buffer_holds_all_get_a_turn
                $(, $extra)*);
        }
    };
    (@tests $backend:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                super::$name($backend)
            }
        )*
    };
}

backend_suite!(epoll, Backend::Epoll, extra: [ten_thousand_registered_fds]);
backend_suite!(poll, Backend::Poll, extra: [ten_thousand_registered_fds]);
backend_suite!(select, Backend::Select, extra: []);

//! The assertion vocabulary of the poller suite: open a backend, make fds
//! ready on purpose, and say what a wait must (or must not) report.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use connlab::poller::{Backend, Event, Events, Interest, Mode, Poller, Token};
use connlab::sys::fd::raise_nofile_limit;

/// The longest we wait for something that should happen. Generous: the
/// machine is shared, and a correct test only ever waits this long when it is
/// about to fail.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// How long we watch for something that must *not* happen.
pub const QUIET: Duration = Duration::from_millis(50);

/// Tests run on parallel threads of one process and share its fd table. The
/// select tests need their fds below 1024, so tests that open hundreds or
/// thousands of fds take this lock exclusively and everyone else takes it
/// shared. A panicking holder poisons it; the next test carries on regardless.
static FD_TABLE: RwLock<()> = RwLock::new(());

/// Take the fd table for a test that opens only a handful of fds.
pub fn few_fds() -> RwLockReadGuard<'static, ()> {
    FD_TABLE.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Take the fd table alone, for a test that opens hundreds of fds or more.
pub fn many_fds() -> RwLockWriteGuard<'static, ()> {
    FD_TABLE.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh poller of `backend`, with the soft fd limit raised to the hard one.
pub fn open(backend: Backend) -> Box<dyn Poller> {
    raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    backend.open().expect("open the poller")
}

/// A connected pair of non-blocking Unix stream sockets.
pub fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("O_NONBLOCK");
    b.set_nonblocking(true).expect("O_NONBLOCK");
    (a, b)
}

/// One wait with `timeout`, returning what it reported.
pub fn wait(poller: &mut dyn Poller, timeout: Duration) -> Vec<Event> {
    let mut events = Events::with_capacity(1024);
    let n = poller.wait(&mut events, Some(timeout)).expect("wait");
    assert_eq!(n, events.len(), "wait's return value must match the events it filled");
    events.iter().copied().collect()
}

/// The next wait reports exactly one event, for `token`; returns it.
pub fn expect_event(poller: &mut dyn Poller, token: Token) -> Event {
    let events = wait(poller, PATIENCE);
    match events.as_slice() {
        [event] if event.token == token => *event,
        other => panic!("{}: expected one event for {token:?}, got {other:?}", poller.backend()),
    }
}

/// Wait until an event for `token` satisfies `what`, for conditions (TCP
/// segments in flight) that may take more than one wait to show.
pub fn expect_event_where(poller: &mut dyn Poller, token: Token, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        for event in wait(poller, QUIET) {
            if event.token == token && pred(&event) {
                return event;
            }
            seen.push(event);
        }
    }
    panic!("{}: no event for {token:?} with {what}; saw {seen:?}", poller.backend());
}

/// The next wait reports exactly these tokens (in any order), all readable.
pub fn expect_readable_tokens(poller: &mut dyn Poller, expected: &[Token]) {
    let events = wait(poller, PATIENCE);
    let mut got: Vec<Token> = events.iter().map(|e| e.token).collect();
    got.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(got, want, "{}: wrong set of ready fds", poller.backend());
    assert!(events.iter().all(|e| e.readable), "{events:?}");
}

/// Nothing is reported for [`QUIET`].
pub fn expect_no_events(poller: &mut dyn Poller) {
    let events = wait(poller, QUIET);
    assert!(
        events.is_empty(),
        "{}: expected no events, got {events:?}",
        poller.backend()
    );
}

/// Reading `stream` would block: there is nothing left to read.
pub fn assert_would_block(mut stream: &UnixStream) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("fd {}: expected EAGAIN, got {other:?}", stream.as_raw_fd()),
    }
}

/// Read exactly `n` bytes that are known to be there.
pub fn read_exactly(mut stream: &UnixStream, n: usize) {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).expect("read the bytes that were reported");
}

/// `n` socketpairs (2n fds), each end registered READABLE, level-triggered,
/// under the token equal to its index in the returned list.
pub fn register_many(poller: &mut dyn Poller, pairs: usize) -> Vec<UnixStream> {
    let mut fds = Vec::with_capacity(pairs * 2);
    for _ in 0..pairs {
        let (a, b) = pair();
        fds.push(a);
        fds.push(b);
    }
    for (i, s) in fds.iter().enumerate() {
        poller
            .add(s.as_raw_fd(), Token(i), Interest::READABLE, Mode::Level)
            .unwrap_or_else(|e| panic!("{}: register fd #{i}: {e}", poller.backend()));
    }
    assert_eq!(poller.registered(), pairs * 2);
    fds
}

/// The highest fd among `streams`.
pub fn highest_fd(streams: &[UnixStream]) -> RawFd {
    streams.iter().map(|s| s.as_raw_fd()).max().unwrap_or(-1)
}

//! `poller`: "I have N file descriptors. Tell me which ones are ready."
//!
//! One contract, [`Poller`], and three kernels' answers to it, one file
//! each, so that reading them side by side *is* the lesson:
//!
//! | file | syscalls | cost of one wait | man page |
//! |---|---|---|---|
//! | `select.rs` | `select` + `FD_SET`/`FD_ISSET` | O(highest fd), sets rebuilt every call | `select(2)` |
//! | `poll.rs`   | `poll` over a `pollfd` array   | O(registered fds) copied in and scanned | `poll(2)` |
//! | `epoll.rs`  | `epoll_create1`, `epoll_ctl`, `epoll_wait` | O(ready fds); interest kept in the kernel | `epoll(7)` |
//!
//! The contract:
//! - register an fd with a [`Token`] (the caller's name for it, handed back
//!   in events), an [`Interest`] (readable, writable or both) and a [`Mode`];
//! - [`Poller::wait`] fills a reusable [`Events`] buffer, blocking up to a
//!   timeout. `EINTR` is retried with the *remaining* time, and a timeout
//!   below one millisecond rounds **up** (rounding down to 0 would turn a
//!   caller's "wait a little" into a busy loop);
//! - an [`Event`] reports readable, writable, error, hang-up and
//!   read-half-closed separately, because a reactor reacts to each
//!   differently.
//!
//! Modes, honestly different: [`Mode::Level`] everywhere; [`Mode::Edge`] is
//! native to epoll only and the others refuse it with an `Unsupported` error
//! rather than fake it; [`Mode::OneShot`] is native to epoll
//! (`EPOLLONESHOT`) and *emulated* by poll and select (an entry that fired is
//! disarmed until [`Poller::modify`] re-arms it), which is cheap there
//! because their interest lists live in user space anyway. Ask
//! [`Poller::supports`] before relying on a mode.
//!
//! A [`Waker`] (an `eventfd`) registered like any other fd lets another
//! thread interrupt a blocked wait on every backend.

pub mod epoll;
pub mod poll;
pub mod select;
mod waker;

pub use waker::Waker;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The caller's name for a registered fd, handed back in each [`Event`].
/// A reactor uses it as an index into its table of I/O sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// Which readiness the caller wants to hear about.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Data to read, a connection to accept, or the peer closed (`EPOLLIN`,
    /// `POLLIN`, the read `fd_set`).
    pub const READABLE: Interest = Interest(1);
    /// Room in the send buffer, or a non-blocking connect finished
    /// (`EPOLLOUT`, `POLLOUT`, the write `fd_set`).
    pub const WRITABLE: Interest = Interest(2);
    /// Both of the above.
    pub const BOTH: Interest = Interest(3);

    /// Does this interest include readability?
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Does this interest include writability?
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }

    /// The union of two interests.
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Ask for `EPOLLEXCLUSIVE` (epoll only, and only when adding): when
    /// several epoll instances watch one fd, such as a listener shared by
    /// several reactor threads, an event wakes one (or a few) of them
    /// instead of all. poll and select have no such flag and ignore it; a
    /// caller that depends on it checks the backend first.
    pub const fn exclusive(self) -> Interest {
        Interest(self.0 | 4)
    }

    /// Was [`Interest::exclusive`] asked for?
    pub const fn is_exclusive(self) -> bool {
        self.0 & 4 != 0
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE|WRITABLE")?,
            (true, false) => f.write_str("READABLE")?,
            (false, true) => f.write_str("WRITABLE")?,
            (false, false) => f.write_str("NONE")?,
        }
        if self.is_exclusive() {
            f.write_str("|EXCLUSIVE")?;
        }
        Ok(())
    }
}

/// How readiness is reported over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Reported on every wait for as long as the condition holds ("there is
    /// unread data"). Forgiving: read a little, and the next wait says so again.
    Level,
    /// Reported once per change ("new data arrived"). The reader must drain
    /// until `EAGAIN`, or the rest of the data waits for an edge that never
    /// comes. epoll only (`EPOLLET`).
    Edge,
    /// Reported once, then the registration is disarmed until
    /// [`Poller::modify`] re-arms it. Native on epoll (`EPOLLONESHOT`),
    /// emulated in user space by poll and select.
    OneShot,
}

/// One readiness report for one registered fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The token the fd was registered with.
    pub token: Token,
    /// Data can be read without blocking, or the peer closed (read returns 0).
    pub readable: bool,
    /// Bytes can be written without blocking.
    pub writable: bool,
    /// The fd has a pending error (`EPOLLERR`/`POLLERR`); read it with
    /// `getsockopt(SO_ERROR)` or the next `read`/`write`. select has no
    /// separate error set and reports errors as readable and writable.
    pub error: bool,
    /// Both directions are closed (`EPOLLHUP`/`POLLHUP`).
    pub hangup: bool,
    /// The peer shut down its write side: our reads will reach EOF
    /// (`EPOLLRDHUP`/`POLLRDHUP`). select cannot tell this apart from data.
    pub read_closed: bool,
}

impl Event {
    /// An event for `token` with nothing set, for backends to fill in.
    pub const fn empty(token: Token) -> Event {
        Event {
            token,
            readable: false,
            writable: false,
            error: false,
            hangup: false,
            read_closed: false,
        }
    }
}

/// A reusable buffer of events, filled by [`Poller::wait`]. Reusing one
/// buffer means the hot loop allocates nothing.
#[derive(Debug)]
pub struct Events {
    list: Vec<Event>,
    capacity: usize,
}

impl Events {
    /// A buffer that holds at most `capacity` events per wait (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// How many events one wait may return.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when the last wait returned no events (it timed out).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The events of the last wait.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Forget the last wait's events (backends call this first).
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Append an event. Returns false, and drops it, when the buffer is full;
    /// a level-triggered backend will report it again on the next wait.
    pub fn push(&mut self, event: Event) -> bool {
        if self.list.len() < self.capacity {
            self.list.push(event);
            true
        } else {
            false
        }
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// The readiness contract every backend implements.
///
/// Registration is by raw fd: the poller knows nothing of sockets and does
/// not own the fd. Closing an fd while it is registered is the caller's
/// bug: epoll silently drops it (the kernel holds the open file, not the
/// number), while poll would report `POLLNVAL` and select `EBADF`. Delete
/// first.
pub trait Poller {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Whether this backend can honour `mode` (natively or by a documented
    /// emulation). [`Poller::add`] with an unsupported mode fails with
    /// `io::ErrorKind::Unsupported`.
    fn supports(&self, mode: Mode) -> bool;

    /// Start watching `fd`. Adding an fd twice is an error (`EEXIST`).
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()>;

    /// Change what `fd` is watched for; also re-arms a fired one-shot.
    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()>;

    /// Stop watching `fd` (`ENOENT` if it was not registered).
    fn delete(&mut self, fd: RawFd) -> io::Result<()>;

    /// Block until at least one registered fd is ready, the timeout passes
    /// (`None` waits forever), or a [`Waker`] fires. Clears `events`, fills
    /// it, and returns how many events it holds.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize>;

    /// How many fds are registered.
    fn registered(&self) -> usize;
}

/// The three backends, for choosing one at run time (`--backend epoll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `epoll(7)`: Linux's O(ready) answer (2002).
    Epoll,
    /// `poll(2)`: an array of `pollfd`, no fd ceiling, O(N) (System V, 1986).
    Poll,
    /// `select(2)`: three bitmaps capped at `FD_SETSIZE` = 1024, O(N) (BSD, 1983).
    Select,
}

impl Backend {
    /// All backends, in the order the docs compare them.
    pub const ALL: [Backend; 3] = [Backend::Select, Backend::Poll, Backend::Epoll];

    /// The lower-case name used on command lines.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll",
            Backend::Poll => "poll",
            Backend::Select => "select",
        }
    }

    /// A new poller of this kind.
    pub fn open(self) -> io::Result<Box<dyn Poller>> {
        Ok(match self {
            Backend::Epoll => Box::new(epoll::Epoll::new()?),
            Backend::Poll => Box::new(poll::Poll::new()),
            Backend::Select => Box::new(select::Select::new()),
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = io::Error;
    fn from_str(s: &str) -> io::Result<Backend> {
        match s {
            "epoll" => Ok(Backend::Epoll),
            "poll" => Ok(Backend::Poll),
            "select" => Ok(Backend::Select),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown backend {other:?}: expected epoll, poll or select"),
            )),
        }
    }
}

/// The error a backend returns for a mode it cannot honour.
pub fn unsupported_mode(backend: Backend, mode: Mode) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{backend} does not support {mode:?} mode (only epoll has edge-triggered readiness; use Mode::Level)"),
    )
}

/// A timeout in whole milliseconds for `epoll_wait`/`poll`, rounding *up*:
/// 0.5 ms becomes 1 ms, never 0 (which would return at once and make the
/// caller spin). `None` becomes -1, "wait forever".
pub fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// Run one wait, retrying on `EINTR` with whatever is left of the timeout.
///
/// A signal interrupts a blocking wait with `EINTR` (`signal(7)`). Retrying
/// with the *original* timeout would let a stream of signals postpone the
/// deadline forever; retrying with 0 would spin. So keep the deadline and
/// pass the remainder.
pub(crate) fn wait_retrying_eintr<T>(
    timeout: Option<Duration>,
    mut wait_once: impl FnMut(Option<Duration>) -> io::Result<T>,
) -> io::Result<T> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut remaining = timeout;
    loop {
        match wait_once(remaining) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if let Some(deadline) = deadline {
                    remaining = Some(deadline.saturating_duration_since(Instant::now()));
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_millisecond_timeouts_round_up_never_to_zero() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(500))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1001))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), libc::c_int::MAX);
    }

    #[test]
    fn backend_names_parse_and_unknown_names_are_refused() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        let err = "kqueue".parse::<Backend>().unwrap_err();
        assert!(err.to_string().contains("epoll, poll or select"));
    }
}

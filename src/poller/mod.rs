//! `poller`: "I have N file descriptors. Tell me which ones are ready."
//!
//! One contract, [`Poller`], and three kernels' answers to it, one file
//! each, so that reading them side by side *is* the lesson:
//!
//! | file | syscalls | cost of one wait | man page |
//! |---|---|---|---|
//! | `select.rs` | `select` + `FD_SET`/`FD_ISSET` | O(fds set) polled + nfds/64 words walked; sets rebuilt every call; no fd ≥ 1024 | `select(2)` |
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

/// `IN|OUT|ERR|HUP|RDHUP`: the readiness one event reports, as the narrator
/// shows it (the names of the epoll bits each field is read from).
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = [
            (self.readable, "IN"),
            (self.writable, "OUT"),
            (self.error, "ERR"),
            (self.hangup, "HUP"),
            (self.read_closed, "RDHUP"),
        ];
        write!(f, "token {}: ", self.token.0)?;
        let mut names = flags.iter().filter(|(set, _)| *set).map(|(_, name)| *name);
        match names.next() {
            None => f.write_str("-"),
            Some(first) => {
                f.write_str(first)?;
                names.try_for_each(|name| write!(f, "|{name}"))
            }
        }
    }
}

/// `token 3: IN, token 5: OUT|HUP`: one wait's events, for the narrator
/// (`epoll_wait = 2 [token 3: IN, token 5: OUT|HUP]`).
impl fmt::Display for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, event) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{event}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// The readiness contract every backend implements: "of the fds I gave
/// you, which are ready?"
///
/// ```
/// use connlab::poller::{Backend, Events, Interest, Mode, Token};
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let (mut ours, mut peer) = UnixStream::pair()?;
/// ours.set_nonblocking(true)?;
/// let mut poller = Backend::Poll.open()?;
/// poller.add(ours.as_raw_fd(), Token(7), Interest::READABLE, Mode::Level)?;
///
/// let mut events = Events::with_capacity(16);
/// peer.write_all(b"hello")?;
/// poller.wait(&mut events, Some(Duration::from_secs(1)))?;
/// let event = events.iter().next().expect("readable");
/// assert_eq!((event.token, event.readable), (Token(7), true));
///
/// let mut buf = [0u8; 16];
/// assert_eq!(ours.read(&mut buf)?, 5);
/// poller.delete(ours.as_raw_fd())?; // before `ours` is closed
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # What every backend promises
///
/// - [`wait`](Poller::wait) returns when at least one registered fd is ready
///   for what it was registered for, when the timeout passes (0 events), or
///   when a [`Waker`] registered like any other fd is woken. It clears
///   `events` first and reports each ready fd at most once per wait, under
///   the [`Token`] it was registered with.
/// - Timeouts are kept: `EINTR` is retried with the time that is left, a
///   timeout under the backend's unit rounds *up* (0.5 ms never becomes a
///   busy-looping 0), and one too long for the kernel is clamped.
/// - Errors name the call, the fd and the errno (`epoll_ctl(EPOLL_CTL_ADD,
///   fd 7, ...): EEXIST`). A mode the backend cannot honour is refused with
///   `io::ErrorKind::Unsupported` at [`add`](Poller::add), never emulated
///   silently; ask [`supports`](Poller::supports) first.
/// - [`Event`] keeps readable, writable, error, hang-up and read-closed
///   apart where the kernel does (epoll and poll); select cannot tell them
///   apart, and reports an error or a hang-up as readiness.
///
/// # Modes, backend by backend
///
/// | | [`select`](select::Select) | [`poll`](poll::Poll) | [`epoll`](epoll::Epoll) |
/// |---|---|---|---|
/// | [`Mode::Level`] | native | native | native |
/// | [`Mode::Edge`] | refused (`Unsupported`) | refused (`Unsupported`) | native (`EPOLLET`) |
/// | [`Mode::OneShot`] | emulated: a fired entry is left out of the sets | emulated: a fired entry's `pollfd.fd` becomes -1 | native (`EPOLLONESHOT`) |
///
/// - **Level**: reported on every wait for as long as the condition holds.
///   Read half the data and the next wait reports the fd again.
/// - **Edge**: reported when the condition *changes* (new data arrived,
///   room appeared in the send buffer). What was already there when you
///   stopped reading raises no new event.
/// - **OneShot**: reported once, then the fd stays registered but silent
///   until [`modify`](Poller::modify) re-arms it. Emulating it in poll and
///   select is cheap (their interest lists are ours, in user space); faking
///   edge-triggered readiness is not (it would need every fd's last state
///   and would still miss data arriving on an fd that never became
///   unready), so they refuse it.
///
/// # Draining readiness
///
/// With [`Mode::Edge`], an event is a promise that something changed, not
/// that something is left. Say the peer sends 5 bytes: one event. You read
/// 3 and go back to [`wait`](Poller::wait): the 2 bytes still queued raise
/// no new edge, and the wait sleeps until the peer sends *more*, perhaps
/// never. So an edge-triggered reader reads (writes, accepts) until the
/// call fails with `EAGAIN`, and only then waits. `tests/poller.rs`
/// (`edge_triggered_fires_once_per_edge`) shows exactly this 5/3/2 case;
/// the reactor follows the rule for you by trying the syscall before every
/// wait ([`Registration`](crate::reactor::Registration)).
///
/// Level and one-shot forgive a reader that stops early: the next wait (or
/// the next re-arm) sees the bytes that are still there.
///
/// # Spurious events
///
/// An event is a hint, not a guarantee. By the time you act on it, the fd
/// may no longer be ready: another reader took the data, a level event
/// reported a state that changed before you read, a socket with an error
/// is reported readable and the read returns the error. So the fds you
/// register must be non-blocking, and every `read`/`write`/`accept` after
/// an event must treat `EAGAIN` as "not ready after all, wait again", not
/// as an error. And one [`Events`] batch is a snapshot: handling its first
/// event may delete (or close and reuse) the fd a later event of the same
/// batch names, so a reactor checks that a token still means what it did.
///
/// # What the caller must do
///
/// - Register non-blocking fds only (see above), each fd once (`EEXIST`).
/// - [`delete`](Poller::delete) an fd **before** closing it. The poller
///   holds the fd number, not the file: epoll silently drops a closed fd
///   (the kernel tracks the open file, so a `dup` of it keeps the
///   registration alive and its events keep coming, under a number you
///   closed), poll reports `POLLNVAL` (surfaced as `error`), select fails
///   the whole wait with `EBADF`.
/// - Re-arm a fired one-shot fd with [`modify`](Poller::modify).
/// - On select, keep fds below `FD_SETSIZE` (1024): larger ones are refused
///   at `add`, because writing their bit would corrupt memory.
/// - When more fds are ready than `events` holds, the rest are reported by
///   later waits (level: still ready; edge and one-shot on epoll: still on
///   the kernel's ready list); poll and select start their next scan where
///   the last one stopped, so no fd starves.
///
/// # Implementation notes
///
/// Where the interest list lives decides what each call costs:
///
/// - [`select`](select::Select) (`select.rs`) rebuilds three bitmaps from its
///   table before every wait; the kernel polls the fds that are set (O(fds
///   set), plus a walk over `nfds`/64 words) and overwrites the bitmaps with
///   the answer, which is scanned again in user space. No syscall to
///   register.
/// - [`poll`](poll::Poll) (`poll.rs`) hands its whole `pollfd` array to the
///   kernel on every wait, which polls every entry: O(registered), no fd
///   ceiling, no syscall to register.
/// - [`epoll`](epoll::Epoll) (`epoll.rs`) keeps the interest list in the
///   kernel (one `epoll_ctl` syscall per change); sockets put themselves on
///   a ready list, and a wait copies out only that list: O(ready).
///
/// `docs/wait_scaling.md` measures the three; `docs/pollers.md` reads the
/// three files side by side. The shared test suite `tests/poller.rs` runs
/// every rule above on every backend.
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
    /// `select(2)`: three bitmaps capped at `FD_SETSIZE` = 1024, O(fds set) (BSD, 1983).
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

/// How far ahead a deadline too far to represent is put: 30 years, which
/// no connlab program outlives (tokio uses the same "far future").
pub const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// The instant `timeout` from now, saturating: a duration too large for
/// `Instant` (a user's `connect_timeout=18446744073709551615`, a
/// `Duration::MAX` meaning "forever") becomes [`FAR_FUTURE`] from now
/// instead of the panic that `Instant + Duration` gives on overflow. Every
/// deadline in the poller and the reactor is computed here.
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or(now + FAR_FUTURE)
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
    let deadline = timeout.map(deadline_after);
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
    fn deadlines_saturate_instead_of_overflowing() {
        let far = deadline_after(Duration::MAX);
        let ahead = far - Instant::now();
        assert!(
            ahead > FAR_FUTURE - Duration::from_secs(60) && ahead <= FAR_FUTURE,
            "{ahead:?}"
        );
        let near = deadline_after(Duration::from_millis(5)) - Instant::now();
        assert!(near <= Duration::from_millis(5));
        // EINTR's retry keeps a deadline too: it must not overflow either.
        let mut calls = 0;
        let r = wait_retrying_eintr(Some(Duration::from_secs(u64::MAX)), |_| {
            calls += 1;
            Ok::<_, io::Error>(calls)
        });
        assert_eq!(r.unwrap(), 1);
    }

    #[test]
    fn events_show_each_token_and_its_flags() {
        let mut events = Events::with_capacity(2);
        events.push(Event {
            readable: true,
            ..Event::empty(Token(3))
        });
        events.push(Event {
            writable: true,
            hangup: true,
            ..Event::empty(Token(5))
        });
        assert_eq!(events.to_string(), "token 3: IN, token 5: OUT|HUP");
        assert_eq!(Event::empty(Token(1)).to_string(), "token 1: -");
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

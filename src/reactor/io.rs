//! I/O sources: how a future waits for an fd to become readable or writable.
//!
//! The rule every operation follows (`Registration::poll_io`):
//!
//! 1. **Try the syscall first.** A socket that has data needs no wait.
//! 2. On `EAGAIN`, clear the cached readiness for that direction, store the
//!    task's waker, make sure the poller is watching, and return `Pending`.
//! 3. When an event for the fd arrives, set the readiness and wake the task;
//!    it runs step 1 again.
//!
//! `EAGAIN` is a state ("not now"), never an error a caller sees.
//!
//! # How the poller is told (the reactor's [`Mode`])
//!
//! - **Edge** (epoll's default here, `EPOLLET`): each fd is registered once,
//!   for reading *and* writing, and never touched again. An edge-triggered
//!   event says "something changed", once; so readiness is cached here and
//!   only an `EAGAIN` clears it. The price is the rule of edge mode: read
//!   (or write, or accept) until `EAGAIN`, because no second event comes for
//!   data that was already there. Step 1 makes that automatic: a task that
//!   stopped early tries the syscall again next time instead of waiting.
//!   Registering `EPOLLOUT` permanently costs nothing in edge mode: it fires
//!   when the send buffer *gains* room, not for as long as it has room.
//! - **Level** (the default on poll and select; available on epoll):
//!   interest is registered on demand, and only for the directions a task is
//!   waiting on. Above all, **writable interest only while a write is
//!   pending**: a connected socket's send buffer almost always has room,
//!   so a level-triggered poller watching it for writability would return at
//!   once from every wait, a busy loop. Interest is dropped lazily: an event
//!   that finds no waiting task removes its direction (and an fd with no
//!   interest left is deleted from the poller, because `EPOLLHUP`/`POLLHUP`
//!   are reported even for an empty interest set).
//! - **OneShot** (any backend; native on epoll, emulated by poll/select):
//!   each wait re-arms the fd with `modify`, each event disarms it. One
//!   `epoll_ctl` per wait on epoll; free on poll and select, whose interest
//!   lists live in user space.
//!
//! A short read (fewer bytes than asked) means the receive queue was
//! drained, so `net` clears readable readiness right there: the next read
//! waits instead of paying a syscall to hear `EAGAIN`. tokio does the same.
//! It is safe in every mode: in edge mode, any byte that arrives after the
//! read raises a new edge; in level and one-shot modes, arming checks the
//! current state. A peer's FIN (`EPOLLRDHUP`) or a socket error is sticky,
//! never cleared by a short read, so EOF is never missed.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::Reactor;
use crate::poller::{Event, Interest, Mode, Token};

/// Which way an operation moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// read, accept, a peer's FIN.
    Read,
    /// write, a finished connect.
    Write,
}

impl Direction {
    const fn bit(self) -> u8 {
        match self {
            Direction::Read => READ_BIT,
            Direction::Write => WRITE_BIT,
        }
    }
}

const READ_BIT: u8 = 1;
const WRITE_BIT: u8 = 2;

fn interest_of(bits: u8) -> Option<Interest> {
    match bits {
        READ_BIT => Some(Interest::READABLE),
        WRITE_BIT => Some(Interest::WRITABLE),
        b if b == READ_BIT | WRITE_BIT => Some(Interest::BOTH),
        _ => None,
    }
}

/// The reactor's record of one registered fd; its slab key is its token.
pub(crate) struct Source {
    fd: RawFd,
    /// Bits of [`Direction`] believed ready: set by events, cleared by `EAGAIN`.
    ready: u8,
    /// The peer closed its write side, or the socket has an error or hang-up.
    /// Sticky: reads will not block again (they return 0 or the error).
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Bits the poller is currently watching for.
    armed: u8,
    in_poller: bool,
}

impl Source {
    fn waiting(&self) -> u8 {
        let mut bits = 0;
        if self.reader.is_some() {
            bits |= READ_BIT;
        }
        if self.writer.is_some() {
            bits |= WRITE_BIT;
        }
        bits
    }

    fn waiter(&mut self, dir: Direction) -> &mut Option<Waker> {
        match dir {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }
}

impl Reactor {
    /// Start tracking `fd`. In edge mode it is added to the poller now, for
    /// both directions, once; otherwise it is added on the first wait.
    fn register(&self, fd: RawFd, exclusive: bool) -> io::Result<usize> {
        if exclusive && (self.backend != crate::poller::Backend::Epoll || self.mode != Mode::Edge) {
            // EPOLLEXCLUSIVE is epoll's, and it may only be given when adding:
            // level and one-shot modes re-arm with EPOLL_CTL_MOD, which the
            // kernel refuses (EINVAL) on an exclusive registration.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "fd {fd}: an exclusive (EPOLLEXCLUSIVE) registration needs epoll in edge mode, not {} in {:?} mode",
                    self.backend, self.mode
                ),
            ));
        }
        let key = self.sources.borrow_mut().insert_with(|_| Source {
            fd,
            // Unknown at first, so assume ready: step 1 tries the syscall.
            ready: READ_BIT | WRITE_BIT,
            read_closed: false,
            reader: None,
            writer: None,
            armed: 0,
            in_poller: false,
        });
        if self.mode == Mode::Edge {
            // An exclusive registration is for a shared listener: readable only.
            let interest = if exclusive {
                Interest::READABLE.exclusive()
            } else {
                Interest::BOTH
            };
            let added = self.poller.borrow_mut().add(fd, Token(key), interest, Mode::Edge);
            self.bump(|s| s.poller_changes += 1);
            if let Err(e) = added {
                self.sources.borrow_mut().remove(key);
                return Err(e);
            }
            if let Some(source) = self.sources.borrow_mut().get_mut(key) {
                source.armed = READ_BIT | WRITE_BIT;
                source.in_poller = true;
            }
        }
        Ok(key)
    }

    fn deregister(&self, key: usize) {
        let Some(source) = self.sources.borrow_mut().remove(key) else {
            return;
        };
        if source.in_poller {
            // The fd is closed right after this. A failure here (the fd was
            // already gone) leaves nothing to clean up, so it is not reported.
            let _ = self.poller.borrow_mut().delete(source.fd);
            self.bump(|s| s.poller_changes += 1);
        }
    }

    /// Step 2 of the rule: ready now, or store the waker and make sure the
    /// poller is watching.
    fn poll_ready(&self, key: usize, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sources = self.sources.borrow_mut();
        let Some(source) = sources.get_mut(key) else {
            return Poll::Ready(Err(stale_source()));
        };
        if source.ready & dir.bit() != 0 {
            return Poll::Ready(Ok(()));
        }
        let slot = source.waiter(dir);
        match slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => {
                // Two tasks waiting on the same direction of one socket is a
                // caller's mistake; wake the old one rather than strand it.
                if let Some(previous) = slot.replace(cx.waker().clone()) {
                    previous.wake();
                }
            }
        }
        let wanted = match self.mode {
            Mode::Edge => return Poll::Pending,
            Mode::OneShot => source.waiting(),
            Mode::Level => source.armed | source.waiting(),
        };
        if wanted == source.armed {
            return Poll::Pending;
        }
        match self.rearm(source, key, wanted) {
            Ok(()) => Poll::Pending,
            Err(e) => {
                *source.waiter(dir) = None;
                Poll::Ready(Err(e))
            }
        }
    }

    /// Tell the poller to watch `bits` for this source (adding, modifying
    /// or deleting as needed).
    fn rearm(&self, source: &mut Source, key: usize, bits: u8) -> io::Result<()> {
        let mut poller = self.poller.borrow_mut();
        match (interest_of(bits), source.in_poller) {
            (Some(interest), false) => poller.add(source.fd, Token(key), interest, self.mode)?,
            (Some(interest), true) => poller.modify(source.fd, Token(key), interest, self.mode)?,
            (None, true) => poller.delete(source.fd)?,
            (None, false) => {}
        }
        self.bump(|s| s.poller_changes += 1);
        source.in_poller = bits != 0;
        source.armed = bits;
        Ok(())
    }

    fn clear_ready(&self, key: usize, dir: Direction) {
        if let Some(source) = self.sources.borrow_mut().get_mut(key) {
            source.ready &= !dir.bit();
        }
    }

    /// A short read drained the queue: stop believing it is readable,
    /// unless the peer has closed (then the next read returns 0 at once).
    fn clear_read_unless_closed(&self, key: usize) {
        if !self.short_read_means_drained {
            return;
        }
        if let Some(source) = self.sources.borrow_mut().get_mut(key) {
            if !source.read_closed {
                source.ready &= !READ_BIT;
            }
        }
    }

    /// Step 3 of the rule: an event arrived for `event.token`.
    pub(crate) fn dispatch(&self, event: &Event) {
        let key = event.token.0;
        let mut sources = self.sources.borrow_mut();
        let Some(source) = sources.get_mut(key) else {
            return;
        };
        // ANCHOR: dispatch
        let trouble = event.error || event.hangup;
        let mut fired = 0;
        if event.readable || event.read_closed || trouble {
            fired |= READ_BIT;
        }
        if event.writable || trouble {
            fired |= WRITE_BIT;
        }
        if event.read_closed || trouble {
            source.read_closed = true;
        }
        source.ready |= fired;
        // Which directions had a task waiting, before we wake them.
        let had_waiter = source.waiting() & fired;
        if fired & READ_BIT != 0 {
            if let Some(waker) = source.reader.take() {
                waker.wake();
            }
        }
        if fired & WRITE_BIT != 0 {
            if let Some(waker) = source.writer.take() {
                waker.wake();
            }
        }
        match self.mode {
            Mode::Edge => {}
            // The event disarmed the fd (natively on epoll, by emulation on
            // poll and select); the next wait re-arms it.
            Mode::OneShot => source.armed = 0,
            Mode::Level => {
                // Keep watching directions whose task we just woke (it will
                // most likely wait again at once); drop the ones nobody wanted,
                // or they would be reported on every wait.
                let unwanted = fired & !had_waiter;
                let keep = if trouble && had_waiter == 0 {
                    0
                } else {
                    source.armed & !unwanted
                };
                if keep != source.armed || (trouble && keep == 0 && source.in_poller) {
                    // If the poller refuses, the next wait reports the fd
                    // again and we try again; nothing is lost.
                    let _ = self.rearm(source, key, keep);
                }
            }
        }
        // ANCHOR_END: dispatch
    }
}

fn stale_source() -> io::Error {
    io::Error::other("I/O source is no longer registered with the reactor")
}

/// An fd owned together with its place in a reactor: the building block of
/// `net`'s sockets, usable for any pollable fd (a pipe, an eventfd, a
/// signalfd).
///
/// ```
/// use connlab::poller::Backend;
/// use connlab::reactor::{self, Direction, Registration};
/// use connlab::sys::socket;
/// use std::io::Write;
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixStream;
///
/// let (ours, mut peer) = UnixStream::pair()?;
/// ours.set_nonblocking(true)?; // required: see "What the caller must do"
/// let reg = Registration::new(OwnedFd::from(ours));
/// peer.write_all(b"ping")?;
/// let n = reactor::block_on(Backend::Select, async {
///     let mut buf = [0u8; 16];
///     // read(2) until it succeeds; EAGAIN means "wait for readable".
///     std::future::poll_fn(|cx| reg.poll_io(cx, Direction::Read, |fd| socket::read(fd, &mut buf))).await
/// })??;
/// assert_eq!(n, 4);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # The rule it runs
///
/// [`poll_io`](Registration::poll_io) is the whole contract: **try the
/// syscall first; on `EAGAIN`, wait for readiness in that direction and try
/// again.** Readiness is a cache kept per direction, set by the poller's
/// events and cleared only by an `EAGAIN` (or by
/// [`clear_ready`](Registration::clear_ready)). A new registration starts out "ready" both
/// ways, so the first operation costs no wait at all. Because the syscall
/// decides and the event only hints, the rule is right on every backend and
/// in every [`Mode`], and it needs nothing from its caller to handle
/// spurious events (see [`Poller`](crate::poller::Poller#spurious-events)).
///
/// # Draining readiness, for you
///
/// In edge mode an event comes once per change, so a reader that stops
/// before `EAGAIN` gets no event for what it left behind (the 5/3/2 bytes
/// case on the [`Poller`](crate::poller::Poller#draining-readiness) page).
/// Here that reader is safe anyway: its next read tries the syscall before
/// it waits, and finds the bytes. `tests/net.rs`
/// (`an_edge_triggered_reader_that_stops_early_hangs_without_the_drain_rule`)
/// shows the raw poller hang and the reactor not hanging.
///
/// # How the poller is told, per backend
///
/// The reactor picks one [`Mode`] for all its fds
/// ([`reactor::Config::mode`](super::Config::mode); by default edge on
/// [`epoll`](crate::poller::epoll), level on [`poll`](crate::poller::poll)
/// and [`select`](crate::poller::select)):
///
/// - **edge** (epoll): the fd is added once, for both directions, when it
///   joins the reactor, and never changed again: zero `epoll_ctl` per
///   operation;
/// - **level**: interest is added only while a task waits, and writable
///   interest only while a write is pending (a socket with room in its send
///   buffer would otherwise be reported on every wait: a busy loop); it is
///   dropped lazily when an event finds nobody waiting;
/// - **one-shot**: each wait re-arms the fd with `modify`, each event
///   disarms it (one `epoll_ctl` per wait on epoll, free on poll/select).
///
/// # What the caller must do
///
/// - Hand it a **non-blocking** fd (connlab's sockets are born with
///   `SOCK_NONBLOCK`): "try first" on a blocking fd blocks the whole
///   thread, every task with it.
/// - Have **at most one task waiting per direction**: a reader and a writer
///   may wait at the same time, but a second reader replaces the first
///   one's waker, and the first is never woken.
/// - Use it on one thread: it is `!Send`, like the reactor it joins. It
///   joins the reactor of the thread that first uses it, so a listener may
///   be created before [`block_on`](super::block_on) and moved in; if that
///   reactor has stopped and another runs, it moves over.
/// - Let it own the fd. Dropping it leaves the poller, then closes the fd,
///   in that order ([`Poller::delete`](crate::poller::Poller::delete)
///   before close: poll and select would report a closed fd as
///   `POLLNVAL`/`EBADF`, and epoll would keep watching a `dup` of it).
/// - Expect `WouldBlock` never: `EAGAIN` is a state handled here. `EINTR`
///   is retried here too. Any other error is returned as it came.
///
/// Each success spends one unit of the task's I/O budget
/// ([`IO_BUDGET_PER_TURN`](super::IO_BUDGET_PER_TURN)), so one busy socket
/// cannot starve the other tasks on its thread.
pub struct Registration {
    bound: RefCell<Option<Bound>>,
    fd: OwnedFd,
    /// Registered with `EPOLLEXCLUSIVE`; see [`Registration::new_exclusive`].
    exclusive: bool,
}

struct Bound {
    reactor: Rc<Reactor>,
    key: usize,
}

impl Registration {
    /// Wrap an fd. It must already be non-blocking (connlab's sockets are
    /// born so), or the "try first" step would block the whole thread.
    pub fn new(fd: OwnedFd) -> Registration {
        Registration {
            bound: RefCell::new(None),
            fd,
            exclusive: false,
        }
    }

    /// Like [`Registration::new`], for a listener that several reactor
    /// threads watch at once: registered readable-only with
    /// `EPOLLEXCLUSIVE`, so a new connection wakes one of them rather than
    /// all (the thundering herd). Needs epoll in edge mode; any other
    /// reactor refuses it with an error at first use.
    pub fn new_exclusive(fd: OwnedFd) -> Registration {
        Registration {
            bound: RefCell::new(None),
            fd,
            exclusive: true,
        }
    }

    /// Run `f` with this source's reactor and key, joining the current
    /// reactor first if needed.
    fn with<T>(&self, f: impl FnOnce(&Reactor, usize) -> T) -> io::Result<T> {
        {
            let bound = self.bound.borrow();
            if let Some(b) = bound.as_ref() {
                if b.reactor.is_running() {
                    return Ok(f(&b.reactor, b.key));
                }
            }
        }
        let current = Reactor::current().ok_or_else(|| {
            io::Error::other("a connlab socket was used outside reactor::block_on (it needs a running reactor)")
        })?;
        if let Some(old) = self.bound.borrow_mut().take() {
            old.reactor.deregister(old.key);
        }
        let key = current.register(self.fd.as_raw_fd(), self.exclusive)?;
        let out = f(&current, key);
        *self.bound.borrow_mut() = Some(Bound { reactor: current, key });
        Ok(out)
    }

    /// Ready for `dir`, or `Pending` with the task's waker stored.
    pub fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        match self.with(|reactor, key| reactor.poll_ready(key, dir, cx)) {
            Ok(poll) => poll,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Forget cached readiness for `dir`: the next [`Registration::poll_ready`]
    /// waits for an event. (After a non-blocking connect, for instance,
    /// "writable" must come from the kernel, not from the optimistic start.)
    pub fn clear_ready(&self, dir: Direction) -> io::Result<()> {
        self.with(|reactor, key| reactor.clear_ready(key, dir))
    }

    /// A read returned fewer bytes than asked: the queue is drained.
    pub(crate) fn note_short_read(&self) {
        // Only an optimisation; if it cannot be applied, the next read
        // simply hears EAGAIN.
        let _ = self.with(|reactor, key| reactor.clear_read_unless_closed(key));
    }

    /// The whole rule: try `op`; on `EAGAIN` wait for `dir` and try again.
    ///
    /// Each success spends one unit of the task's budget (see
    /// [`super::IO_BUDGET_PER_TURN`]); an empty budget yields to other
    /// tasks even though the fd is still ready.
    pub fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(RawFd) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        // ANCHOR: poll_io
        loop {
            match self.poll_ready(cx, dir) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if !super::consume_budget() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match op(self.fd.as_raw_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_ready(dir)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
        // ANCHOR_END: poll_io
    }

    /// Wait until the fd is readable (or the peer closed, or it has an error).
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(cx, Direction::Read)).await
    }

    /// Wait until the fd is writable (or it has an error).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(cx, Direction::Write)).await
    }
}

impl AsRawFd for Registration {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(b) = self.bound.get_mut().take() {
            b.reactor.deregister(b.key);
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

//! The accept loop's hard cases, shared by TCP and Unix listeners: draining
//! the queue, and running out of file descriptors.
//!
//! **Draining.** One readiness event may stand for many queued connections
//! (and in edge mode there is no second event for the ones left behind), so
//! `accept` is called until `EAGAIN`. The server's loop does that naturally:
//! each `listener.accept().await` tries `accept4` first and only waits on
//! `EAGAIN`. The cap on one turn's drain is the reactor's I/O budget,
//! [`IO_BUDGET_PER_TURN`](crate::reactor::IO_BUDGET_PER_TURN) = 128
//! accepts, after which the accepting task yields so a flood on one
//! listener cannot starve established connections.
//!
//! **EMFILE / ENFILE.** When the fd table is full (`RLIMIT_NOFILE`, or the
//! system-wide `fs.file-max`), `accept4` fails but the connection stays in
//! the queue. The listener therefore stays readable, and a loop that simply
//! retries spins at 100% CPU without ever making progress; in edge mode it
//! would instead never hear of that queue again. The *reserve fd*
//! technique (libev, libuv, nginx): keep one spare fd open (`/dev/null`);
//! on EMFILE, close it, which frees exactly one slot; accept each pending
//! connection and close it at once (the client sees an orderly close instead
//! of hanging in the queue); then reopen the spare. The queue is empty, so
//! the next `accept4` says `EAGAIN` and the task sleeps. What was shed is
//! counted. If the spare cannot be reopened (something else took the slot),
//! the listener backs off on a timer instead of spinning.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::reactor::{self, Direction, Registration, Sleep};
use crate::sys::addr::Addr;
use crate::sys::{errno_name, errno_of, socket};

/// How long a listener with no spare fd waits before trying `accept4`
/// again after EMFILE. Long enough that retrying costs nothing measurable;
/// short enough that service resumes promptly once fds are freed.
const EMFILE_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) struct Acceptor {
    pub(crate) reg: Registration,
    spare: RefCell<Option<File>>,
    shed: Cell<u64>,
    backoff: RefCell<Option<Sleep>>,
}

fn open_spare() -> Option<File> {
    // std opens with O_CLOEXEC. Failing here (already at the limit) is not
    // fatal: the listener works without a spare and backs off on EMFILE.
    File::open("/dev/null").ok()
}

impl Acceptor {
    pub(crate) fn new(fd: OwnedFd) -> Acceptor {
        Acceptor::with_registration(Registration::new(fd))
    }

    /// For a listener shared by several reactors: see [`Registration::new_exclusive`].
    pub(crate) fn exclusive(fd: OwnedFd) -> Acceptor {
        Acceptor::with_registration(Registration::new_exclusive(fd))
    }

    fn with_registration(reg: Registration) -> Acceptor {
        Acceptor {
            reg,
            spare: RefCell::new(open_spare()),
            shed: Cell::new(0),
            backoff: RefCell::new(None),
        }
    }

    pub(crate) fn shed_count(&self) -> u64 {
        self.shed.get()
    }

    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(OwnedFd, Addr)>> {
        loop {
            {
                let mut backoff = self.backoff.borrow_mut();
                if let Some(sleep) = backoff.as_mut() {
                    if Pin::new(sleep).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *backoff = None;
                }
            }
            let err = match self.reg.poll_io(cx, Direction::Read, socket::accept4) {
                Poll::Ready(Ok(accepted)) => return Poll::Ready(Ok(accepted)),
                Poll::Ready(Err(e)) => e,
                Poll::Pending => return Poll::Pending,
            };
            // ANCHOR: emfile
            match errno_of(&err) {
                Some(errno @ (libc::EMFILE | libc::ENFILE)) => match self.shed_queue(errno) {
                    // Linux's accept4 reserves the new fd *before* looking at
                    // the queue, so it says EMFILE even when the queue is
                    // empty. Trying again now would loop on EMFILE; wait for
                    // the next connection (a new event) instead.
                    Shed::Drained => self.reg.clear_ready(Direction::Read)?,
                    Shed::MoreQueued => {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Shed::BackingOff => {}
                },
                // The client reset the connection while it sat in the queue:
                // its problem, not the listener's. Take the next one.
                Some(libc::ECONNABORTED) => {}
                _ => return Poll::Ready(Err(err)),
            }
            // ANCHOR_END: emfile
        }
    }

    /// Out of fds: use the spare to empty the queue, or back off.
    fn shed_queue(&self, errno: i32) -> Shed {
        let fd = self.reg.as_raw_fd();
        let Some(spare) = self.spare.borrow_mut().take() else {
            crate::narrate!(
                "accept4({fd}) = -1 {}: no spare fd; retrying in {EMFILE_BACKOFF:?}",
                errno_name(errno)
            );
            *self.backoff.borrow_mut() = Some(reactor::sleep(EMFILE_BACKOFF));
            return Shed::BackingOff;
        };
        crate::narrate!(
            "accept4({fd}) = -1 {}: closing the spare fd {} to shed the queue",
            errno_name(errno),
            spare.as_raw_fd()
        );
        drop(spare);
        let mut shed = 0u64;
        let mut outcome = Shed::MoreQueued;
        // Bounded like any other drain: a flood faster than accept+close is
        // picked up again on the next turn.
        while shed < u64::from(reactor::IO_BUDGET_PER_TURN) {
            match socket::accept4(fd) {
                Ok((conn, _peer)) => {
                    drop(conn);
                    shed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    outcome = Shed::Drained;
                    break;
                }
                Err(_) => {
                    outcome = Shed::BackingOff;
                    break;
                }
            }
        }
        self.shed.set(self.shed.get() + shed);
        crate::narrate!("shed {shed} queued connection(s) on listener {fd}");
        let spare = open_spare();
        if spare.is_none() || outcome == Shed::BackingOff {
            *self.backoff.borrow_mut() = Some(reactor::sleep(EMFILE_BACKOFF));
            outcome = Shed::BackingOff;
        }
        *self.spare.borrow_mut() = spare;
        outcome
    }
}

/// How a shedding pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shed {
    /// `EAGAIN`: the queue is empty; wait for the next connection.
    Drained,
    /// The per-turn cap was reached with connections still queued.
    MoreQueued,
    /// No spare fd (or another error): retry after [`EMFILE_BACKOFF`].
    BackingOff,
}

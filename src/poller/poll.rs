//! The poll backend: `poll(2)` over an array of `struct pollfd`.
//!
//! poll replaced select's three fixed-size bitmaps with an array of
//! `{ fd, events, revents }` records, one per watched fd. That removes the
//! 1024-fd ceiling (an fd's number no longer has to fit a bitmap), but keeps
//! select's real cost: the kernel remembers nothing between calls. **Every call
//! copies the whole array into the kernel, which polls each file in turn, and
//! copies the whole array back out** with `revents` filled in, because the
//! interest list lives only in our memory. A wait costs O(registered), even
//! when one fd out of 16,000 is ready; epoll keeps the list in the kernel to
//! avoid exactly this.
//!
//! The flip side: registering, changing or forgetting an fd is a write to our
//! own `Vec`, with no syscall at all (epoll pays one `epoll_ctl` each).
//!
//! The array is kept in step with the registrations: `fds[i]` and
//! `entries[i]` describe the same fd, and `index` maps an fd to its `i`.
//! Delete is `swap_remove` (O(1)), so the order of the array is not the
//! order of registration.
//!
//! Modes: level-triggered is poll's only native behaviour. One-shot is
//! emulated: an entry that fired gets a negative `fd`, which `poll(2)`
//! promises to skip (`revents` = 0), until [`Poller::modify`] re-arms it.
//! Edge-triggered is refused with `Unsupported`: faking it would mean
//! remembering every fd's last state and diffing, and would still miss a
//! new arrival on an fd that never became unready.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{timeout_ms, unsupported_mode, wait_retrying_eintr, Backend, Event, Events, Interest, Mode, Poller, Token};
use crate::sys::{cvt, error_from_errno};

/// What `pollfd.fd` holds while a fired one-shot entry is disarmed. poll(2):
/// "If the fd field is negative, then the corresponding events field is
/// ignored and the revents field returns zero."
const DISARMED: RawFd = -1;

/// The poll(2) backend: a `pollfd` array and what each entry means to us.
#[derive(Debug, Default)]
pub struct Poll {
    /// Handed to the kernel as-is on every wait.
    fds: Vec<libc::pollfd>,
    /// `entries[i]` is the registration behind `fds[i]`.
    entries: Vec<Entry>,
    /// fd -> position in both vectors.
    index: HashMap<RawFd, usize>,
    /// Where the next scan of `revents` starts, so that when more fds are
    /// ready than `Events` holds, the ones at the end of the array get their
    /// turn on the next wait instead of starving.
    next_scan: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    token: Token,
    mode: Mode,
}

impl Poll {
    /// A new, empty poller. Unlike epoll there is nothing to create in the
    /// kernel: the whole state is the array we will pass to each call.
    pub fn new() -> Poll {
        Poll::default()
    }
}

// ANCHOR: poll_mask
/// The `POLL*` bits to ask for. `POLLRDHUP` is always requested so a peer's
/// half-close is reported as its own fact; `POLLERR`, `POLLHUP` and
/// `POLLNVAL` are output-only: the kernel reports them unasked.
fn poll_mask(interest: Interest) -> libc::c_short {
    let mut mask = libc::POLLRDHUP;
    if interest.is_readable() {
        mask |= libc::POLLIN;
    }
    if interest.is_writable() {
        mask |= libc::POLLOUT;
    }
    mask
}
// ANCHOR_END: poll_mask

/// Checks shared by `add` and `modify`: a real fd, and a mode poll can honour.
fn check(call: &'static str, fd: RawFd, mode: Mode) -> io::Result<()> {
    if fd < 0 {
        return Err(error_from_errno(call, format_args!("fd {fd}"), libc::EBADF));
    }
    if mode == Mode::Edge {
        return Err(unsupported_mode(Backend::Poll, mode));
    }
    Ok(())
}

impl Poller for Poll {
    fn backend(&self) -> Backend {
        Backend::Poll
    }

    fn supports(&self, mode: Mode) -> bool {
        mode != Mode::Edge
    }

    // ANCHOR: poll_register
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        check("Poll::add", fd, mode)?;
        if self.index.contains_key(&fd) {
            return Err(error_from_errno("Poll::add", format_args!("fd {fd}"), libc::EEXIST));
        }
        let slot = self.fds.len();
        self.fds.push(libc::pollfd {
            fd,
            events: poll_mask(interest),
            revents: 0,
        });
        self.entries.push(Entry { fd, token, mode });
        self.index.insert(fd, slot);
        crate::narrate!("poll: fd {fd} -> pollfd[{slot}] {interest:?} {mode:?} (user space, no syscall)");
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        check("Poll::modify", fd, mode)?;
        let Some(&slot) = self.index.get(&fd) else {
            return Err(error_from_errno("Poll::modify", format_args!("fd {fd}"), libc::ENOENT));
        };
        // Writing the real fd back is also what re-arms a fired one-shot.
        self.fds[slot] = libc::pollfd {
            fd,
            events: poll_mask(interest),
            revents: 0,
        };
        self.entries[slot] = Entry { fd, token, mode };
        crate::narrate!("poll: pollfd[{slot}] fd {fd} now {interest:?} {mode:?} (no syscall)");
        Ok(())
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(slot) = self.index.remove(&fd) else {
            return Err(error_from_errno("Poll::delete", format_args!("fd {fd}"), libc::ENOENT));
        };
        // swap_remove moves the last entry into the hole: O(1), at the price
        // of updating that one entry's index.
        self.fds.swap_remove(slot);
        self.entries.swap_remove(slot);
        if let Some(moved) = self.entries.get(slot) {
            self.index.insert(moved.fd, slot);
        }
        crate::narrate!("poll: fd {fd} removed from pollfd[{slot}] (no syscall)");
        Ok(())
    }
    // ANCHOR_END: poll_register

    // ANCHOR: poll_wait
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let fds = &mut self.fds;
        let ready = wait_retrying_eintr(timeout, |remaining| {
            let ms = timeout_ms(remaining);
            // SAFETY: fds points to fds.len() initialised pollfds that we own
            // exclusively for the call; the kernel reads all of them and
            // writes only their revents fields.
            let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            cvt(ret, "poll", format_args!("{} fds, timeout {ms} ms", fds.len()))
        })? as usize;

        // poll said how many entries have a non-zero revents, but not which:
        // finding them is a scan of the whole array, our O(N) to match the
        // kernel's. Stop early once all `ready` are found.
        let len = self.fds.len();
        let start = if self.next_scan < len { self.next_scan } else { 0 };
        let mut found = 0;
        for slot in (start..len).chain(0..start) {
            if found == ready {
                break;
            }
            let revents = self.fds[slot].revents;
            if revents == 0 {
                continue;
            }
            found += 1;
            let entry = self.entries[slot];
            let has = |flag: libc::c_short| revents & flag != 0;
            let pushed = events.push(Event {
                token: entry.token,
                readable: has(libc::POLLIN) || has(libc::POLLPRI),
                writable: has(libc::POLLOUT),
                // POLLNVAL: the fd was closed while registered (the caller's
                // bug, see `Poller`); report it rather than hide it.
                error: has(libc::POLLERR) || has(libc::POLLNVAL),
                hangup: has(libc::POLLHUP),
                read_closed: has(libc::POLLRDHUP),
            });
            if !pushed {
                // Buffer full: level-triggered, so it will be reported again;
                // start there next time.
                self.next_scan = slot;
                break;
            }
            self.next_scan = slot + 1;
            if entry.mode == Mode::OneShot {
                self.fds[slot].fd = DISARMED;
            }
        }
        crate::narrate!("poll({} fds) = {} [{events}]", self.fds.len(), events.len());
        Ok(events.len())
    }
    // ANCHOR_END: poll_wait

    fn registered(&self) -> usize {
        self.fds.len()
    }
}

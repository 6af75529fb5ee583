//! The epoll backend: `epoll_create1(2)`, `epoll_ctl(2)`, `epoll_wait(2)`;
//! the big picture is in `epoll(7)`.
//!
//! epoll splits the two jobs select and poll do in one call. Interest is
//! registered once with `epoll_ctl` and lives in the kernel (a red-black
//! tree keyed by file). When a socket becomes ready, the network stack runs
//! a callback that puts it on the epoll instance's *ready list*, and
//! `epoll_wait` only copies that list out. So a wait costs O(ready), not
//! O(registered): 16,000 idle connections cost nothing per wait.
//!
//! Where epoll is *not* faster: each interest change is its own syscall
//! (`epoll_ctl`), where poll and select change a user-space array for free;
//! and when nearly every fd is ready, all three must report all of them.
//!
//! The token travels through the kernel in `epoll_event.u64`, so an event
//! names the caller's token directly with no lookup.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{timeout_ms, wait_retrying_eintr, Backend, Event, Events, Interest, Mode, Poller, Token};
use crate::sys::cvt;

/// An epoll instance and the buffer `epoll_wait` writes into.
pub struct Epoll {
    epfd: OwnedFd,
    buffer: Vec<libc::epoll_event>,
    registered: usize,
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`: a new, empty interest list. The flag
    /// keeps the fd from leaking into a child across `execve`.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes only flags and returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let fd = cvt(fd, "epoll_create1", "EPOLL_CLOEXEC")?;
        crate::narrate!("epoll_create1(EPOLL_CLOEXEC) = {fd}");
        Ok(Epoll {
            // SAFETY: fd was just returned by the kernel and is ours alone.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            buffer: Vec::new(),
            registered: 0,
        })
    }

    /// The epoll instance's own fd (it is a file too: see `/proc/self/fd`,
    /// where it shows as `anon_inode:[eventpoll]`).
    pub fn as_raw_fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    // ANCHOR: epoll_ctl
    fn ctl(&mut self, op: libc::c_int, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: event_mask(interest, mode),
            u64: token.0 as u64,
        };
        // SAFETY: epfd is a live epoll fd; event is a valid epoll_event that
        // the kernel only reads.
        let ret = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) };
        cvt(
            ret,
            "epoll_ctl",
            format_args!("{}, fd {fd}, {interest:?} {mode:?}", op_name(op)),
        )?;
        crate::narrate!("epoll_ctl({}, {fd}, {}) = 0", op_name(op), EpollFlags(event.events));
        Ok(())
    }
    // ANCHOR_END: epoll_ctl
}

// ANCHOR: epoll_mask
/// The `EPOLL*` bits for an interest and mode. `EPOLLRDHUP` is always asked
/// for, so a peer's half-close is reported as its own fact; `EPOLLERR` and
/// `EPOLLHUP` need no asking, the kernel always reports them.
fn event_mask(interest: Interest, mode: Mode) -> u32 {
    let mut mask = libc::EPOLLRDHUP as u32;
    if interest.is_readable() {
        mask |= libc::EPOLLIN as u32;
    }
    if interest.is_writable() {
        mask |= libc::EPOLLOUT as u32;
    }
    match mode {
        Mode::Level => {}
        Mode::Edge => mask |= libc::EPOLLET as u32,
        Mode::OneShot => mask |= libc::EPOLLONESHOT as u32,
    }
    if interest.is_exclusive() {
        // epoll_ctl(2): EPOLLEXCLUSIVE accepts only EPOLLIN, EPOLLOUT,
        // EPOLLET and EPOLLWAKEUP beside it; EPOLLRDHUP would be EINVAL.
        mask = (mask & !(libc::EPOLLRDHUP as u32)) | libc::EPOLLEXCLUSIVE as u32;
    }
    mask
}
// ANCHOR_END: epoll_mask

/// `EPOLL*` bits by name, for the narrator: `IN|OUT|RDHUP|ET`. Decoded
/// only when a line is told (`narrate!` formats nothing when it is off).
#[derive(Clone, Copy)]
pub struct EpollFlags(pub u32);

impl fmt::Display for EpollFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(libc::c_int, &str); 8] = [
            (libc::EPOLLIN, "IN"),
            (libc::EPOLLPRI, "PRI"),
            (libc::EPOLLOUT, "OUT"),
            (libc::EPOLLERR, "ERR"),
            (libc::EPOLLHUP, "HUP"),
            (libc::EPOLLRDHUP, "RDHUP"),
            (libc::EPOLLET, "ET"),
            (libc::EPOLLONESHOT, "ONESHOT"),
        ];
        let mut set = NAMES.iter().filter(|(bit, _)| self.0 & *bit as u32 != 0);
        match set.next() {
            None => f.write_str("0"),
            Some((_, first)) => {
                f.write_str(first)?;
                set.try_for_each(|(_, name)| write!(f, "|{name}"))
            }
        }
    }
}

fn op_name(op: libc::c_int) -> &'static str {
    match op {
        libc::EPOLL_CTL_ADD => "EPOLL_CTL_ADD",
        libc::EPOLL_CTL_MOD => "EPOLL_CTL_MOD",
        libc::EPOLL_CTL_DEL => "EPOLL_CTL_DEL",
        _ => "EPOLL_CTL_?",
    }
}

impl Poller for Epoll {
    fn backend(&self) -> Backend {
        Backend::Epoll
    }

    fn supports(&self, _mode: Mode) -> bool {
        true
    }

    // ANCHOR: epoll_register
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest, mode)?;
        self.registered += 1;
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest, mode)
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        // Since Linux 2.6.9 the event argument of DEL may be NULL.
        // SAFETY: epfd is a live epoll fd; a null event is allowed for DEL.
        let ret = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        cvt(ret, "epoll_ctl", format_args!("EPOLL_CTL_DEL, fd {fd}"))?;
        crate::narrate!("epoll_ctl(EPOLL_CTL_DEL, {fd}) = 0");
        self.registered = self.registered.saturating_sub(1);
        Ok(())
    }
    // ANCHOR_END: epoll_register

    // ANCHOR: epoll_wait
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let capacity = events.capacity();
        if self.buffer.len() < capacity {
            self.buffer.resize(capacity, libc::epoll_event { events: 0, u64: 0 });
        }
        let epfd = self.epfd.as_raw_fd();
        let buffer = &mut self.buffer;
        let n = wait_retrying_eintr(timeout, |remaining| {
            let ms = timeout_ms(remaining);
            // SAFETY: buffer holds at least `capacity` initialised
            // epoll_events, and we tell the kernel to write at most that many.
            let ret = unsafe { libc::epoll_wait(epfd, buffer.as_mut_ptr(), capacity as libc::c_int, ms) };
            cvt(
                ret,
                "epoll_wait",
                format_args!("epfd {epfd}, max {capacity}, timeout {ms} ms"),
            )
        })? as usize;
        for raw in &self.buffer[..n] {
            let bits = raw.events;
            let has = |flag: libc::c_int| bits & flag as u32 != 0;
            events.push(Event {
                token: Token(raw.u64 as usize),
                readable: has(libc::EPOLLIN) || has(libc::EPOLLPRI),
                writable: has(libc::EPOLLOUT),
                error: has(libc::EPOLLERR),
                hangup: has(libc::EPOLLHUP),
                read_closed: has(libc::EPOLLRDHUP),
            });
        }
        crate::narrate!("epoll_wait = {n} [{events}]");
        Ok(n)
    }
    // ANCHOR_END: epoll_wait

    fn registered(&self) -> usize {
        self.registered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_flags_decode_by_name() {
        let bits = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        assert_eq!(EpollFlags(bits).to_string(), "IN|RDHUP|ET");
        assert_eq!(EpollFlags(0).to_string(), "0");
    }
}

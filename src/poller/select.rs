//! The select backend: `select(2)` with `FD_ZERO`/`FD_SET`/`FD_ISSET`.
//!
//! select (4.2BSD, 1983) takes three bitmaps, `fd_set`s of `FD_SETSIZE` =
//! 1024 bits: "tell me which of these fds are readable, writable, or have an
//! exceptional condition". Three facts shape this file:
//!
//! 1. **The sets are overwritten.** The kernel writes the answer into the
//!    same bitmaps, clearing the bits of fds that are not ready. So the
//!    sets are rebuilt from our registration table before every call.
//!    (Redis's `ae_select.c` keeps master copies and `memcpy`s them instead;
//!    rebuilding keeps one-shot emulation a matter of skipping an entry.)
//! 2. **The cost is the fds that are set, plus a walk over words.** The
//!    first argument, `nfds`, is the highest fd plus one: the kernel copies
//!    `nfds` bits of each set in and out (a few bytes) and walks them a word
//!    (64 fds) at a time. `do_select` in `fs/select.c` skips a word with no
//!    bit set and every unset bit, so only the fds actually set pay the real
//!    price, an `fdget` and a `vfs_poll` each: O(fds set) + nfds/64 word
//!    tests + the copies. One fd numbered 1000 costs about what one fd
//!    numbered 5 does (`wait/select/1fd_numbered_1000` in
//!    `benches/wait_scaling.rs`); a thousand fds set cost a thousand polls.
//!    We still pass the real maximum rather than `FD_SETSIZE`, which spares
//!    the kernel the copies and the walk over empty words.
//! 3. **The sets are fixed-size: that is what a high fd number costs.** An
//!    fd >= 1024 has no bit, however few fds are watched. libc's `FD_SET`
//!    panics on one and C's writes past the end of the set (memory
//!    corruption), so `add` and `modify` refuse it before any set is
//!    touched. A busy process reaches fd 1024 long before it watches 1024
//!    sockets; poll and epoll have no such ceiling.
//!
//! What select cannot say: it has no error or hang-up set. Linux marks an fd
//! with a pending error both readable and writable, and a hung-up or
//! half-closed fd readable (the next `read` returns the error or 0). So
//! events from this backend never set `error`, `hangup` or `read_closed`:
//! the caller learns those from the `read` or `write` that follows. The
//! third set, `exceptfds`, reports TCP urgent data, not errors, and is not
//! used.
//!
//! Modes: level-triggered only, natively. One-shot is emulated as in the
//! poll backend (a fired entry is left out of the sets until `modify`);
//! edge-triggered is refused with `Unsupported`.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{unsupported_mode, wait_retrying_eintr, Backend, Event, Events, Interest, Mode, Poller, Token};
use crate::sys::{cvt, error_from_errno};

/// The number of bits in an `fd_set`: fds 0..1024 fit, nothing else does.
pub const FD_SETSIZE: RawFd = libc::FD_SETSIZE as RawFd;

/// The longest timeout handed to the kernel (about 68 years); longer ones
/// are clamped, as `timeout_ms` clamps poll's and epoll's.
const MAX_TIMEOUT_SECS: u64 = i32::MAX as u64;
const MICROS_PER_SEC: u64 = 1_000_000;

/// The select(2) backend: a registration table the sets are built from.
#[derive(Debug, Default)]
pub struct Select {
    entries: Vec<Entry>,
    /// fd -> position in `entries`.
    index: HashMap<RawFd, usize>,
    /// Where the next scan starts, so that when more fds are ready than
    /// `Events` holds, the later ones get their turn (as in poll.rs).
    next_scan: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    token: Token,
    interest: Interest,
    mode: Mode,
    /// False once a one-shot entry fired, until `modify` re-arms it.
    armed: bool,
}

impl Select {
    /// A new, empty poller. Like poll, nothing lives in the kernel between
    /// calls.
    pub fn new() -> Select {
        Select::default()
    }
}

// ANCHOR: select_check
/// Checks shared by `add` and `modify`. The fd range is checked here, once,
/// so that every `FD_SET`/`FD_ISSET` later works on a bit that exists.
fn check(call: &'static str, fd: RawFd, mode: Mode) -> io::Result<()> {
    if fd < 0 {
        return Err(error_from_errno(call, format_args!("fd {fd}"), libc::EBADF));
    }
    if fd >= FD_SETSIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("select: fd {fd} >= FD_SETSIZE ({FD_SETSIZE}); use poll or epoll"),
        ));
    }
    if mode == Mode::Edge {
        return Err(unsupported_mode(Backend::Select, mode));
    }
    Ok(())
}
// ANCHOR_END: select_check

/// `timeval` for select, in microseconds, rounding *up* so that 0.5 µs does
/// not become 0 (return at once: a busy loop). `None` is a null pointer,
/// "wait forever", so it is not represented here.
fn timeval(d: Duration) -> libc::timeval {
    let micros = d.as_nanos().div_ceil(1_000) as u64;
    let secs = (micros / MICROS_PER_SEC).min(MAX_TIMEOUT_SECS);
    libc::timeval {
        tv_sec: secs as libc::time_t,
        tv_usec: (micros % MICROS_PER_SEC) as libc::suseconds_t,
    }
}

/// An empty `fd_set`.
fn empty_set() -> libc::fd_set {
    // SAFETY: fd_set is an array of integers, for which all-zero bytes are a
    // valid value (and exactly what FD_ZERO would write).
    unsafe { std::mem::zeroed() }
}

impl Poller for Select {
    fn backend(&self) -> Backend {
        Backend::Select
    }

    fn supports(&self, mode: Mode) -> bool {
        mode != Mode::Edge
    }

    // ANCHOR: select_register
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        check("Select::add", fd, mode)?;
        if self.index.contains_key(&fd) {
            return Err(error_from_errno("Select::add", format_args!("fd {fd}"), libc::EEXIST));
        }
        self.index.insert(fd, self.entries.len());
        self.entries.push(Entry {
            fd,
            token,
            interest,
            mode,
            armed: true,
        });
        crate::narrate!("select: fd {fd} {interest:?} {mode:?} added to the table (user space, no syscall)");
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest, mode: Mode) -> io::Result<()> {
        check("Select::modify", fd, mode)?;
        let Some(&slot) = self.index.get(&fd) else {
            return Err(error_from_errno(
                "Select::modify",
                format_args!("fd {fd}"),
                libc::ENOENT,
            ));
        };
        self.entries[slot] = Entry {
            fd,
            token,
            interest,
            mode,
            armed: true,
        };
        crate::narrate!("select: fd {fd} now {interest:?} {mode:?} (no syscall)");
        Ok(())
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(slot) = self.index.remove(&fd) else {
            return Err(error_from_errno(
                "Select::delete",
                format_args!("fd {fd}"),
                libc::ENOENT,
            ));
        };
        self.entries.swap_remove(slot);
        if let Some(moved) = self.entries.get(slot) {
            self.index.insert(moved.fd, slot);
        }
        crate::narrate!("select: fd {fd} removed from the table (no syscall)");
        Ok(())
    }
    // ANCHOR_END: select_register

    // ANCHOR: select_wait
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let (mut read_set, mut write_set) = (empty_set(), empty_set());
        let entries = &self.entries;
        let (ready, nfds) = wait_retrying_eintr(timeout, |remaining| {
            // Rebuilt on every attempt: a failed or interrupted select may
            // have left the sets modified too.
            let mut max_fd = -1;
            // SAFETY: the pointer is to a live, writable fd_set.
            unsafe { libc::FD_ZERO(&mut read_set) };
            // SAFETY: as above.
            unsafe { libc::FD_ZERO(&mut write_set) };
            for e in entries.iter().filter(|e| e.armed) {
                if e.interest.is_readable() {
                    // SAFETY: `check` refused fds outside 0..FD_SETSIZE at
                    // add/modify, so e.fd has a bit in the set.
                    unsafe { libc::FD_SET(e.fd, &mut read_set) };
                }
                if e.interest.is_writable() {
                    // SAFETY: as above, e.fd < FD_SETSIZE.
                    unsafe { libc::FD_SET(e.fd, &mut write_set) };
                }
                max_fd = max_fd.max(e.fd);
            }
            let nfds = max_fd + 1;
            let mut tv = remaining.map(timeval);
            let tv_ptr = tv.as_mut().map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
            // Linux writes the time left into *tv_ptr; we ignore it, because
            // the deadline lives in wait_retrying_eintr.
            // SAFETY: both sets are valid fd_sets the kernel may read and overwrite;
            // a null exceptfds is allowed; tv_ptr is null or points to a live timeval.
            let ret = unsafe { libc::select(nfds, &mut read_set, &mut write_set, std::ptr::null_mut(), tv_ptr) };
            let micros = remaining.map_or(-1, |d| d.as_micros() as i128);
            let ret = cvt(ret, "select", format_args!("nfds {nfds}, timeout {micros} us"))?;
            Ok((ret, nfds))
        })?;

        // select returns a count of set bits, not which ones: scan the table
        // (O(registered)) and test each armed fd's bits.
        let len = self.entries.len();
        let start = if self.next_scan < len { self.next_scan } else { 0 };
        let mut found = 0;
        for slot in (start..len).chain(0..start) {
            if found == ready as usize {
                break;
            }
            let e = &mut self.entries[slot];
            if !e.armed {
                continue;
            }
            // SAFETY: e.fd < FD_SETSIZE (checked at add/modify), so its bit exists.
            let readable = unsafe { libc::FD_ISSET(e.fd, &read_set) };
            // SAFETY: as above.
            let writable = unsafe { libc::FD_ISSET(e.fd, &write_set) };
            if !readable && !writable {
                continue;
            }
            // select counts an fd once per set it appears in.
            found += usize::from(readable) + usize::from(writable);
            let event = Event {
                readable,
                writable,
                ..Event::empty(e.token)
            };
            if !events.push(event) {
                self.next_scan = slot;
                break;
            }
            self.next_scan = slot + 1;
            if e.mode == Mode::OneShot {
                e.armed = false;
            }
        }
        crate::narrate!("select(nfds {nfds}) = {} [{events}]", events.len());
        Ok(events.len())
    }
    // ANCHOR_END: select_wait

    fn registered(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeval_rounds_up_to_the_next_microsecond() {
        let tv = timeval(Duration::from_nanos(1));
        assert_eq!((tv.tv_sec, tv.tv_usec), (0, 1));
        let tv = timeval(Duration::from_micros(500));
        assert_eq!((tv.tv_sec, tv.tv_usec), (0, 500));
        let tv = timeval(Duration::from_nanos(2_999_999_001));
        assert_eq!((tv.tv_sec, tv.tv_usec), (3, 0));
        let tv = timeval(Duration::ZERO);
        assert_eq!((tv.tv_sec, tv.tv_usec), (0, 0));
        let tv = timeval(Duration::from_secs(u64::MAX));
        assert_eq!(tv.tv_sec, MAX_TIMEOUT_SECS as libc::time_t);
    }

    #[test]
    fn fds_outside_the_set_are_refused_before_any_set_is_touched() {
        let mut select = Select::new();
        let err = select.add(1024, Token(0), Interest::READABLE, Mode::Level).unwrap_err();
        assert_eq!(
            err.to_string(),
            "select: fd 1024 >= FD_SETSIZE (1024); use poll or epoll"
        );
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = select.add(-1, Token(0), Interest::READABLE, Mode::Level).unwrap_err();
        assert!(err.to_string().contains("EBADF"), "{err}");
        assert_eq!(select.registered(), 0);
    }
}

//! File descriptors as integers: their flags, `eventfd(2)`, and the
//! per-process limit on how many a process may hold.
//!
//! - `fcntl(2)`: `F_GETFL`/`F_SETFL` carry `O_NONBLOCK` (a property of the
//!   open file description, shared by `dup`ed fds); `F_GETFD` carries
//!   `FD_CLOEXEC` (a property of this one fd slot).
//! - `fcntl(F_DUPFD_CLOEXEC)`: a second fd for the same open file, at the
//!   lowest free number at or above one you choose (how a test puts a
//!   socket at fd 1000 without opening 997 others).
//! - `eventfd(2)`: a kernel 64-bit counter behind an fd. Writing adds,
//!   reading returns and clears it, and it is readable while non-zero, which
//!   makes it the cheapest way to wake a thread blocked in a poller.
//! - `getrlimit(2)`/`setrlimit(2)` with `RLIMIT_NOFILE`: the fd-table size
//!   past which `socket`/`accept` fail with `EMFILE`.
//!
//! Ownership uses std's `OwnedFd`, whose `Drop` calls `close(2)`; we do not
//! write a second fd wrapper.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// Whether `O_NONBLOCK` is set on the open file description behind `fd`.
pub fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no third argument and only reads kernel state.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let flags = cvt(flags, "fcntl", format_args!("fd {fd}, F_GETFL"))?;
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// Set or clear `O_NONBLOCK`. Sockets made by connlab get it at birth via
/// `SOCK_NONBLOCK` (one syscall fewer, and no window where it is missing);
/// this is for fds that arrive from elsewhere.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL takes no third argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let flags = cvt(flags, "fcntl", format_args!("fd {fd}, F_GETFL"))?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: F_SETFL takes an int of file status flags.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETFL, new) };
        cvt(ret, "fcntl", format_args!("fd {fd}, F_SETFL, {new:#o}"))?;
    }
    Ok(())
}

/// Whether `FD_CLOEXEC` is set, i.e. the fd will be closed across `execve`.
pub fn is_cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD takes no third argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    let flags = cvt(flags, "fcntl", format_args!("fd {fd}, F_GETFD"))?;
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a duplicate of `fd` numbered `min` or
/// the lowest free number above it. Both fds then share one open file (its
/// offset, its `O_NONBLOCK`); closing one leaves the other working. Fails
/// with `EINVAL` when `min` is at or above `RLIMIT_NOFILE`.
pub fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new fd or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    let new = cvt(new, "fcntl", format_args!("fd {fd}, F_DUPFD_CLOEXEC, {min}"))?;
    crate::narrate!("fcntl({fd}, F_DUPFD_CLOEXEC, {min}) = {new}");
    // SAFETY: new was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`: a fresh counter at zero.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags and returns a new fd.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    let fd = cvt(fd, "eventfd", "0, EFD_NONBLOCK|EFD_CLOEXEC")?;
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add 1 to an eventfd's counter, making it readable. `EAGAIN` (the counter
/// is at its maximum) means it is already readable, so it counts as success.
pub fn eventfd_signal(fd: RawFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: we pass a pointer to 8 readable bytes, as eventfd(2) requires.
    let ret = unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
    match cvt(ret, "write", format_args!("eventfd {fd}, 1")) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Read and clear an eventfd's counter; returns the count (0 if it was
/// already clear).
pub fn eventfd_drain(fd: RawFd) -> io::Result<u64> {
    let mut count: u64 = 0;
    // SAFETY: we pass a pointer to 8 writable bytes, as eventfd(2) requires.
    let ret = unsafe { libc::read(fd, &mut count as *mut u64 as *mut libc::c_void, 8) };
    match cvt(ret, "read", format_args!("eventfd {fd}")) {
        Ok(_) => Ok(count),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// The soft and hard `RLIMIT_NOFILE`: (current limit, ceiling).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid, writable rlimit.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    cvt(ret, "getrlimit", "RLIMIT_NOFILE")?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Set the soft `RLIMIT_NOFILE` (the hard limit is kept). Any process may
/// raise its soft limit up to the hard one; going past it takes privilege.
pub fn set_nofile_soft_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a valid rlimit.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    cvt(
        ret,
        "setrlimit",
        format_args!("RLIMIT_NOFILE, soft {soft}, hard {hard}"),
    )?;
    Ok(())
}

/// Raise the soft fd limit to the hard one and return the new limit.
/// Benchmarks and tests that register thousands of fds call this first.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = nofile_limit()?;
    if soft < hard {
        set_nofile_soft_limit(hard)?;
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn eventfd_counts_and_clears() {
        let efd = eventfd().unwrap();
        let fd = efd.as_raw_fd();
        assert!(is_nonblocking(fd).unwrap());
        assert!(is_cloexec(fd).unwrap());
        assert_eq!(eventfd_drain(fd).unwrap(), 0);
        eventfd_signal(fd).unwrap();
        eventfd_signal(fd).unwrap();
        assert_eq!(eventfd_drain(fd).unwrap(), 2);
        assert_eq!(eventfd_drain(fd).unwrap(), 0);
    }
}

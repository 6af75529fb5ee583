//! Signals as an fd: `pthread_sigmask(2)` and `signalfd(2)`, so that
//! Ctrl-C is one more readable fd in the poller instead of a handler that
//! interrupts the program at an arbitrary instruction.
//!
//! The classic alternatives: a handler that sets an atomic flag (the loop
//! only notices at its next wake-up, and a blocked wait ends with `EINTR`,
//! which the pollers retry), or the self-pipe trick (the handler writes a
//! byte to a pipe the loop watches). signalfd is Linux's cleaner form of the
//! second: block the signal so it is never delivered as an interrupt, and
//! read it from an fd instead, with its sender's pid in the record.
//!
//! The mask is per thread and inherited by threads created later, so block
//! the signals on the main thread before spawning any.

use std::io;
use std::mem;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// The name of a signal, for narration.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        _ => "SIG?",
    }
}

fn sigset(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it next.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: set is a valid, writable sigset_t.
    let ret = unsafe { libc::sigemptyset(&mut set) };
    cvt(ret, "sigemptyset", "")?;
    for &signal in signals {
        // SAFETY: set was initialised by sigemptyset.
        let ret = unsafe { libc::sigaddset(&mut set, signal) };
        cvt(ret, "sigaddset", format_args!("{}", signal_name(signal)))?;
    }
    Ok(set)
}

/// Block `signals` for this thread (`pthread_sigmask(SIG_BLOCK)`) and open a
/// `signalfd(SFD_NONBLOCK | SFD_CLOEXEC)` that becomes readable when one is
/// pending.
pub fn signalfd(signals: &[i32]) -> io::Result<OwnedFd> {
    let set = sigset(signals)?;
    // SAFETY: set is initialised; a null old-set pointer is allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // pthread_sigmask returns the error number instead of setting errno.
    if ret != 0 {
        return Err(super::error_from_errno("pthread_sigmask", "SIG_BLOCK", ret));
    }
    // SAFETY: -1 asks for a new fd; set is initialised.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    let fd = cvt(fd, "signalfd", "-1, SFD_NONBLOCK|SFD_CLOEXEC")?;
    let names: Vec<&str> = signals.iter().map(|&s| signal_name(s)).collect();
    crate::narrate!("signalfd(-1, [{}], SFD_NONBLOCK|SFD_CLOEXEC) = {fd}", names.join(" "));
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `read(2)` one `struct signalfd_siginfo` from a signalfd: which signal
/// arrived. `EAGAIN` (kind `WouldBlock`) when none is pending.
pub fn read_signal(fd: RawFd) -> io::Result<i32> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: info is writable for `size` bytes.
    let ret = unsafe { libc::read(fd, &mut info as *mut libc::signalfd_siginfo as *mut libc::c_void, size) };
    let n = cvt(ret, "read", format_args!("signalfd {fd}"))?;
    if n as usize != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("read(signalfd {fd}) returned {n} bytes, expected {size}"),
        ));
    }
    let signal = info.ssi_signo as i32;
    crate::narrate!(
        "read(signalfd {fd}) = {} from pid {}",
        signal_name(signal),
        info.ssi_pid
    );
    Ok(signal)
}

/// Give `SIGPIPE` back its default action (end the process quietly), as a
/// command-line tool wants: `example | head -1` should stop the example
/// when `head` exits, not make its next `println!` panic with `EPIPE`.
///
/// Rust's runtime sets `SIGPIPE` to `SIG_IGN` before `main`, so a write to
/// a closed pipe returns `EPIPE` instead; that is right for a server, where
/// a vanished peer must not kill the process. connlab's own socket writes
/// pass `MSG_NOSIGNAL` to `send(2)` (see [`super::socket`]), so restoring
/// the default changes only what happens on stdout and other pipes.
pub fn default_sigpipe() -> io::Result<()> {
    // SAFETY: signal() with SIG_DFL installs no handler of ours, so no code
    // can run in signal context; it only changes this process's disposition.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if previous == libc::SIG_ERR {
        return Err(super::last_error("signal", "SIGPIPE, SIG_DFL"));
    }
    Ok(())
}

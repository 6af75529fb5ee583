//! A waker: how another thread interrupts a blocked wait, on any backend.
//!
//! It is an `eventfd(2)` registered for readability like any other fd.
//! [`Waker::wake`] writes to it, which makes it readable, which ends the
//! wait. The woken side calls [`Waker::reset`] to read the counter back to
//! zero, or a level-triggered poller would report it forever.
//!
//! Alternatives not taken: the self-pipe trick (two fds instead of one; what
//! select-era code and Redis's `ae` did before eventfd existed), and
//! signals (racy unless combined with `ppoll`/`epoll_pwait` masks).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::fd;

/// An eventfd for waking a poller. Share it across threads in an `Arc`.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new waker. Register [`Waker::as_raw_fd`] with the poller for
    /// [`super::Interest::READABLE`] under a token of your choosing.
    pub fn new() -> io::Result<Waker> {
        Ok(Waker { fd: fd::eventfd()? })
    }

    /// Make the registered fd readable, ending any wait in progress (or the
    /// next one). Safe to call from any thread, any number of times.
    pub fn wake(&self) -> io::Result<()> {
        fd::eventfd_signal(self.fd.as_raw_fd())
    }

    /// Clear the wake-up; returns how many `wake` calls it absorbed.
    pub fn reset(&self) -> io::Result<u64> {
        fd::eventfd_drain(self.fd.as_raw_fd())
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

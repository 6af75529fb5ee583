//! [`Signals`]: Ctrl-C (or any signal) as something a task can await,
//! built from `signalfd` (see `sys::signal`) and a [`Registration`].

use std::future::poll_fn;
use std::io;

use super::{Direction, Registration};
use crate::sys::signal;

/// Signals delivered through an fd the reactor watches.
///
/// Create it on the main thread *before* starting other threads: it blocks
/// the signals for the creating thread, and threads inherit that mask. A
/// blocked signal is no longer an interrupt; it waits until read here.
#[derive(Debug)]
pub struct Signals {
    reg: Registration,
}

impl Signals {
    /// Start catching `signals` (e.g. `[libc::SIGINT, libc::SIGTERM]`).
    pub fn new(signals: &[i32]) -> io::Result<Signals> {
        Ok(Signals {
            reg: Registration::new(signal::signalfd(signals)?),
        })
    }

    /// Wait for the next signal; returns its number.
    pub async fn recv(&self) -> io::Result<i32> {
        poll_fn(|cx| self.reg.poll_io(cx, Direction::Read, signal::read_signal)).await
    }
}

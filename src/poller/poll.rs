//! The poll backend (being written: see the pollers issue). Until then every
//! call reports `Unsupported` so nothing silently misbehaves.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Backend, Events, Interest, Mode, Poller, Token};

/// The poll(2) backend.
#[derive(Debug, Default)]
pub struct Poll {
    _private: (),
}

impl Poll {
    /// A new, empty poll poller.
    pub fn new() -> Poll {
        Poll::default()
    }
}

fn not_yet() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "the poll backend is not written yet")
}

impl Poller for Poll {
    fn backend(&self) -> Backend {
        Backend::Poll
    }
    fn supports(&self, _mode: Mode) -> bool {
        false
    }
    fn add(&mut self, _fd: RawFd, _token: Token, _interest: Interest, _mode: Mode) -> io::Result<()> {
        Err(not_yet())
    }
    fn modify(&mut self, _fd: RawFd, _token: Token, _interest: Interest, _mode: Mode) -> io::Result<()> {
        Err(not_yet())
    }
    fn delete(&mut self, _fd: RawFd) -> io::Result<()> {
        Err(not_yet())
    }
    fn wait(&mut self, _events: &mut Events, _timeout: Option<Duration>) -> io::Result<usize> {
        Err(not_yet())
    }
    fn registered(&self) -> usize {
        0
    }
}

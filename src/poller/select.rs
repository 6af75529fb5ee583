//! The select backend (being written: see the pollers issue). Until then every
//! call reports `Unsupported` so nothing silently misbehaves.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Backend, Events, Interest, Mode, Poller, Token};

/// The select(2) backend.
#[derive(Debug, Default)]
pub struct Select {
    _private: (),
}

impl Select {
    /// A new, empty select poller.
    pub fn new() -> Select {
        Select::default()
    }
}

fn not_yet() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "the select backend is not written yet")
}

impl Poller for Select {
    fn backend(&self) -> Backend {
        Backend::Select
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

//! Test support for every integration test, in one place (mio keeps the
//! same `tests/util`). A test file declares `mod util;` and uses the part
//! it needs; what lives here:
//!
//! - the root: which poller backends and reactor modes a test runs on
//!   ([`backends`], [`configs`]), and their names for a child process;
//!   [`on_every_backend`], which runs a test body on each backend's
//!   reactor and fails it if it hangs; [`eventually`], for state the kernel
//!   reaches a moment later;
//! - [`bytes`]: a seeded generator and a checksum, for payloads a failing
//!   run can replay;
//! - [`poller`]: the poller suite's assertion vocabulary (`expect_event`,
//!   `expect_no_events`, `assert_would_block`) and the fd-table lock;
//! - [`pool`]: a pool manager over plain loopback TCP, the tiny server it
//!   talks to, and a server that accepts and then says nothing;
//! - [`http`]: a test HTTP server on its own thread, a tiny blocking
//!   client that reads responses by their `Content-Length`, and the
//!   `click` example run as a child process;
//! - [`fake_pg`]: a small fake PostgreSQL server, for what no real server
//!   will do (a forged SCRAM signature, a malformed or endless message);
//! - [`ss`]: run the real `ss -tanpe` and parse its lines, to check our
//!   reports against the tool a reader trusts;
//! - [`time_wait`]: a loopback server that lets the client close first, so
//!   the client's end is the one left in TIME_WAIT.
//!
//! Fixtures that are data, not code (the recorded PostgreSQL transcript),
//! are in `tests/fixtures`. Throwaway servers that are real engines
//! (PostgreSQL) are started by the library's harness, not from here.

// Each test binary compiles all of this and uses a different part.
#![allow(dead_code)]

pub mod backends;
pub mod bytes;
pub mod fake_pg;
pub mod http;
pub mod poller;
pub mod pool;
pub mod ss;
pub mod time_wait;

// The vocabulary most reactor tests start with, at the root: `util::configs()`.
#[allow(unused_imports)] // not every binary uses it
pub use backends::{backends, config_name, configs, parse_config};

use std::future::Future;
use std::time::{Duration, Instant};

use connlab::poller::Backend;
use connlab::reactor;

/// Every test body gets this long before it is declared hung.
pub const HANG: Duration = Duration::from_secs(20);

/// Run `body` to completion on a fresh reactor over each backend, failing
/// on a hang (a test that hangs says which backend, instead of stalling the
/// whole run).
pub fn on_every_backend<F, Fut>(body: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in Backend::ALL {
        reactor::block_on(backend, async {
            reactor::timeout(HANG, body(backend))
                .await
                .unwrap_or_else(|_| panic!("{backend:?}: test hung for {HANG:?}"))
        })
        .unwrap_or_else(|e| panic!("{backend:?}: reactor failed: {e}"));
    }
}

/// Probe until `done` holds or `within` has passed, and return the last
/// probe either way (the caller's assertion then says what was wrong). For
/// what the kernel finishes a moment after the call that asked for it: the
/// last ACK of a close, a byte crossing loopback, a TCP state change.
pub fn eventually<T>(within: Duration, mut probe: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + within;
    loop {
        let seen = probe();
        if done(&seen) || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
